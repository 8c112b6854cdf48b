package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/config"
	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/server"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/identity"
	"github.com/latchkey/latchkey/testutil"
	"github.com/latchkey/latchkey/testutil/oidcissuer"
)

func TestAdminIdPSet(t *testing.T) {
	for _, d := range testutil.Dialects(t) {
		t.Run(d, func(t *testing.T) {
			c := newCLI(t, d)
			appID := c.runJSON("admin", "bootstrap", "--org", "Acme", "--app", "web", "--operator-email", "ops@acme.test")["app_id"].(string)
			iss := oidcissuer.New(t, oidcissuer.WithPath("/realms/staff"))
			const secret = "kc-client-secret-9fK2mQ7xLp4Vw1Rz"

			out, errOut, code := c.run("admin", "idp", "set", "--app", appID, "--issuer", iss.URL, "--audience", "latchkey",
				"--client-id", "latchkey-web", "--client-secret", secret, "--json")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if strings.Contains(errOut, "warning") {
				t.Fatalf("warned about a reachable issuer: %s", errOut)
			}
			res := decodeOne(t, out)
			if res["preset"] != identity.PresetKeycloak || res["idp_id"] == "" || len(res) != 2 {
				t.Fatalf("output %v, want {idp_id, preset: keycloak}", res)
			}

			// Explicit claims override the preset; the same row is updated.
			again := c.runJSON("admin", "idp", "set", "--app", appID, "--issuer", iss.URL, "--audience", "latchkey",
				"--groups-claim", "realm_access.roles", "--user-claim", "preferred_username", "--client-id", "latchkey-web")
			if again["idp_id"] != res["idp_id"] {
				t.Fatal("a second set created another IdP")
			}

			core := c.core()
			idp, err := core.Identity.IdP(context.Background(), appID)
			if err != nil {
				t.Fatal(err)
			}
			if idp.Issuer != iss.URL || idp.Audience != "latchkey" || idp.GroupsClaim != "realm_access.roles" ||
				idp.UserClaim != "preferred_username" || !idp.HasClientSecret {
				t.Fatalf("stored IdP %+v", idp)
			}
			// The new IdP verifies tokens straight away.
			u, err := core.Identity.Verify(context.Background(), appID, iss.Mint(t, map[string]any{
				"aud": "latchkey", "preferred_username": "ada", "realm_access": map[string]any{"roles": []string{"eng"}},
			}))
			if err != nil || u.Subject != "ada" || len(u.Groups) != 1 {
				t.Fatalf("verify after set: %+v %v", u, err)
			}
			if databaseHolds(t, c, core, secret) {
				t.Fatal("the client secret is stored in plaintext")
			}
			core.Close()

			listing, _, _ := c.run("admin", "audit", "list", "--app", appID, "--json")
			if strings.Count(listing, `"idp.set"`) != 2 {
				t.Fatalf("want two idp.set audit rows: %s", listing)
			}
			if strings.Contains(listing, secret) {
				t.Fatal("the client secret appears in the audit listing")
			}
		})
	}
}

func TestAdminIdPSetAcceptsAnUnreachableIssuerWithAWarning(t *testing.T) {
	c := newCLI(t, database.SQLite)
	appID := c.runJSON("admin", "bootstrap", "--org", "Acme", "--app", "web", "--operator-email", "ops@acme.test")["app_id"].(string)
	iss := oidcissuer.New(t)
	iss.SetDown(true)
	out, errOut, code := c.run("admin", "idp", "set", "--app", appID, "--issuer", iss.URL, "--audience", "aud", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.HasPrefix(errOut, "latchkey: warning:") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("want one warning line, got %q", errOut)
	}
	if res := decodeOne(t, out); res["preset"] != identity.PresetGeneric {
		t.Fatalf("output %v", res)
	}
	if n := count(t, c.core(), &models.IdentityProvider{}); n != 1 {
		t.Fatalf("%d IdP rows, want 1", n)
	}
}

func TestAdminIdPSetBadInputExitsTwoAndWritesNothing(t *testing.T) {
	for _, d := range testutil.Dialects(t) {
		t.Run(d, func(t *testing.T) {
			c := newCLI(t, d)
			appID := c.runJSON("admin", "bootstrap", "--org", "Acme", "--app", "web", "--operator-email", "ops@acme.test")["app_id"].(string)
			core := c.core()
			auditBefore := count(t, core, &models.AuditEvent{})
			ok := []string{"--issuer", "https://acme.okta.com", "--audience", "api://default"}
			tests := []struct {
				name string
				args []string
				want string
			}{
				{"unknown app", append([]string{"--app", unknownID}, ok...), "app not found"},
				{"malformed app id", append([]string{"--app", "web"}, ok...), "app id"},
				{"non-https issuer", []string{"--app", appID, "--issuer", "http://acme.okta.com", "--audience", "a"}, "https"},
				{"relative issuer", []string{"--app", appID, "--issuer", "acme.okta.com", "--audience", "a"}, "absolute URL"},
				{"missing audience", []string{"--app", appID, "--issuer", "https://acme.okta.com"}, "missing --audience"},
				{"missing issuer and app", []string{"--audience", "a"}, "missing --app, --issuer"},
				{"secret without client id", append([]string{"--app", appID, "--client-secret", "s3cret-value"}, ok...), "client-secret"},
				{"unknown flag", append([]string{"--app", appID, "--tenant", "x"}, ok...), "flag provided but not defined"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					errOut := c.wantUsageError(t, append([]string{"admin", "idp", "set"}, tt.args...), tt.want)
					if strings.Contains(strings.TrimSpace(errOut), "\n") {
						t.Fatalf("error %q is not one line", errOut)
					}
					if strings.Contains(errOut, "s3cret-value") {
						t.Fatal("the error echoes the client secret")
					}
				})
			}
			if n := count(t, core, &models.IdentityProvider{}); n != 0 {
				t.Fatalf("bad input wrote %d IdP rows", n)
			}
			if n := count(t, core, &models.AuditEvent{}); n != auditBefore {
				t.Fatalf("bad input wrote %d audit rows", n-auditBefore)
			}
		})
	}
}

func decodeOne(t *testing.T, out string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("not one JSON object: %q", out)
	}
	return m
}

// databaseHolds reports whether s appears in the stored bytes: every file of
// the SQLite data dir (database, WAL), or the text of every PostgreSQL row
// (bytea renders as hex, so the hex of s is looked for as well).
func databaseHolds(t *testing.T, c *cli, core *server.Core, s string) bool {
	t.Helper()
	needles := [][]byte{[]byte(s), []byte(hex.EncodeToString([]byte(s)))}
	var hay [][]byte
	if core.DB.Dialect == database.SQLite {
		files, err := filepath.Glob(filepath.Join(c.env[config.EnvDataDir], "*"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err == nil {
				hay = append(hay, b)
			}
		}
	} else {
		var tables []string
		if err := core.DB.Gorm.Raw("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'").Scan(&tables).Error; err != nil {
			t.Fatal(err)
		}
		for _, tbl := range tables {
			var rows []string
			if err := core.DB.Gorm.Raw(`SELECT t::text FROM "` + tbl + `" t`).Scan(&rows).Error; err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				hay = append(hay, []byte(r))
			}
		}
	}
	for _, h := range hay {
		for _, n := range needles {
			if bytes.Contains(h, n) {
				return true
			}
		}
	}
	return false
}
