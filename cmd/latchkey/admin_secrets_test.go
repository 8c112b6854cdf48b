package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/grants"
	"github.com/latchkey/latchkey/services/sdkauth"
	"github.com/latchkey/latchkey/testutil"
)

const cliSecret = "lkCLI-sk_live_0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d"

func TestSecretsCreateAndGrant(t *testing.T) {
	for _, d := range testutil.Dialects(t) {
		t.Run(d, func(t *testing.T) {
			c := newCLI(t, d)
			boot := c.runJSON("admin", "bootstrap", "--org", "Acme", "--app", "web", "--operator-email", "ops@acme.test")
			appID := boot["app_id"].(string)
			agentID := c.runJSON("admin", "agents", "create", "--app", appID, "--name", "bot")["agent_id"].(string)

			out, errOut, code := c.run("admin", "secrets", "create", "--app", appID, "--name", "stripe", "--value", cliSecret,
				"--inject", "header:Authorization:Bearer {secret}", "--allowed-host", "api.stripe.com", "--allowed-host", "*.stripe.com", "--json")
			if code != 0 {
				t.Fatalf("secrets create: exit %d: %s", code, errOut)
			}
			if strings.Contains(out+errOut, cliSecret) {
				t.Fatal("secrets create printed the value")
			}
			var res map[string]string
			if err := json.Unmarshal([]byte(out), &res); err != nil || res["provider"] != "secret:stripe" {
				t.Fatalf("secrets create printed %q", out)
			}
			secretID := res["managed_secret_id"]
			// --value-env keeps the value out of argv.
			c.env["OPENAI_KEY"] = "sk-openai-from-env"
			out, _, code = c.run("admin", "secrets", "create", "--app", appID, "--name", "openai", "--value-env", "OPENAI_KEY",
				"--inject", "query:api_key:{secret}", "--allowed-host", "api.openai.com", "--json")
			if code != 0 || strings.Contains(out, "sk-openai-from-env") {
				t.Fatalf("secrets create --value-env: exit %d, %q", code, out)
			}

			grantIDs := map[string]string{}
			for _, p := range []string{"system", "user:alice", "group:eng", "agent:" + agentID} {
				g := c.runJSON("admin", "secrets", "grant", "--secret", secretID, "--principal", p)
				id, _ := g["grant_id"].(string)
				if id == "" || g["created"] != true {
					t.Fatalf("grant %s: %v", p, g)
				}
				grantIDs[p] = id
			}
			again := c.runJSON("admin", "secrets", "grant", "--secret", secretID, "--principal", "group:eng")
			if again["grant_id"] != grantIDs["group:eng"] || again["created"] != false {
				t.Fatalf("repeated grant: %v", again)
			}

			core := c.core()
			ctx := context.Background()
			caller := sdkauth.Caller{AppID: appID, KeyID: "lk_app_test", KeyKind: "app"}
			r, err := core.Grants.Resolve(ctx, grants.ResolveInput{Caller: caller, GrantID: grantIDs["system"]})
			if err != nil {
				t.Fatal(err)
			}
			cred, err := core.Grants.Secret(ctx, r)
			if err != nil || cred.AccessToken != cliSecret || len(cred.AllowedHosts) != 2 {
				t.Fatalf("the granted secret does not open: %v %v", cred, err)
			}
			var g models.Grant
			core.DB.Gorm.Where("id = ?", grantIDs["agent:"+agentID]).Take(&g)
			if g.PrincipalKind != models.PrincipalAgent || g.PrincipalID != agentID || g.Provider != "secret:stripe" {
				t.Fatalf("agent grant %+v", g)
			}
			core.Close()

			audit, _, _ := c.run("admin", "audit", "list", "--app", appID, "--json")
			for _, action := range []string{"secret.create", "grant.create"} {
				if !strings.Contains(audit, `"`+action+`"`) {
					t.Errorf("no %s audit row", action)
				}
			}
			if strings.Contains(audit, cliSecret) {
				t.Fatal("the value appears in the audit listing")
			}
		})
	}
}

func TestSecretsBadInputExitsTwoAndWritesNothing(t *testing.T) {
	for _, d := range testutil.Dialects(t) {
		t.Run(d, func(t *testing.T) {
			c := newCLI(t, d)
			c.env["EMPTY_VAR"] = ""
			boot := c.runJSON("admin", "bootstrap", "--org", "Acme", "--app", "web", "--operator-email", "ops@acme.test")
			appID := boot["app_id"].(string)
			other := c.runJSON("admin", "bootstrap", "--org", "Other", "--app", "web", "--operator-email", "ops@other.test")["app_id"].(string)
			secretID := c.runJSON("admin", "secrets", "create", "--app", appID, "--name", "taken", "--value", "v1",
				"--inject", "header:X-Key:{secret}", "--allowed-host", "api.example.com")["managed_secret_id"].(string)
			otherAgent := c.runJSON("admin", "agents", "create", "--app", other, "--name", "bot")["agent_id"].(string)

			core := c.core()
			rows := countRows(t, core, &models.ManagedSecret{}, &models.Credential{}, &models.Grant{}, &models.EndUser{}, &models.AuditEvent{})

			create := func(extra ...string) []string {
				return append([]string{"admin", "secrets", "create", "--app", appID, "--name", "fresh"}, extra...)
			}
			good := []string{"--value", cliSecret, "--inject", "header:Authorization:Bearer {secret}", "--allowed-host", "api.example.com"}
			tests := []struct {
				name string
				args []string
				want string
			}{
				{"no allowed host", create("--value", cliSecret, "--inject", "header:Authorization:Bearer {secret}"), "--allowed-host"},
				{"bare wildcard host", create("--value", cliSecret, "--inject", "header:A:{secret}", "--allowed-host", "*"), "allowed-host"},
				{"template without placeholder", create("--value", cliSecret, "--inject", "header:Authorization:Bearer "+cliSecret, "--allowed-host", "api.example.com"), "{secret}"},
				{"template of unknown kind", create("--value", cliSecret, "--inject", "cookie:a:{secret}", "--allowed-host", "api.example.com"), "inject"},
				{"no value", create("--inject", "header:A:{secret}", "--allowed-host", "api.example.com"), "--value"},
				{"value and value-env", create(append(good, "--value-env", "X")...), "not both"},
				{"empty value-env", create("--value-env", "EMPTY_VAR", "--inject", "header:A:{secret}", "--allowed-host", "api.example.com"), "EMPTY_VAR"},
				{"value split by the shell", create("--value", "first-half", cliSecret, "--inject", "header:A:{secret}"), "unexpected argument"},
				{"duplicate name", []string{"admin", "secrets", "create", "--app", appID, "--name", "taken", "--value", cliSecret, "--inject", "header:A:{secret}", "--allowed-host", "api.example.com"}, "already exists"},
				{"bad name", []string{"admin", "secrets", "create", "--app", appID, "--name", "Not Valid", "--value", cliSecret, "--inject", "header:A:{secret}", "--allowed-host", "api.example.com"}, "name"},
				{"unknown app", append([]string{"admin", "secrets", "create", "--app", unknownID, "--name", "fresh"}, good...), "app not found"},
				{"malformed app", append([]string{"admin", "secrets", "create", "--app", "web", "--name", "fresh"}, good...), "app id"},
				{"grant unknown secret", []string{"admin", "secrets", "grant", "--secret", unknownID, "--principal", "system"}, "managed secret not found"},
				{"grant malformed secret", []string{"admin", "secrets", "grant", "--secret", "taken", "--principal", "system"}, "secret"},
				{"grant bad principal", []string{"admin", "secrets", "grant", "--secret", secretID, "--principal", "everyone"}, "principal"},
				{"grant unknown agent", []string{"admin", "secrets", "grant", "--secret", secretID, "--principal", "agent:" + unknownID}, "agent not found"},
				{"grant another app's agent", []string{"admin", "secrets", "grant", "--secret", secretID, "--principal", "agent:" + otherAgent}, "agent not found"},
				{"grant without principal", []string{"admin", "secrets", "grant", "--secret", secretID}, "missing --principal"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					errOut := c.wantUsageError(t, tt.args, tt.want)
					if strings.Contains(errOut, cliSecret) {
						t.Fatalf("the error shows the secret value: %q", errOut)
					}
				})
			}
			rows.assertUnchanged(t, core)
		})
	}
}
