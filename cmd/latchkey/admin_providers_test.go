package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/config"
	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/testutil"
)

const providerSecret = "lkCLI-oauth-client-secret-4b3a2c1d"

func TestProvidersConfigure(t *testing.T) {
	for _, d := range testutil.Dialects(t) {
		t.Run(d, func(t *testing.T) {
			c := newCLI(t, d)
			c.env[config.EnvPublicURL] = "https://latchkey.example.com"
			appID := c.runJSON("admin", "bootstrap", "--org", "Acme", "--app", "web", "--operator-email", "ops@acme.test")["app_id"].(string)

			out, errOut, code := c.run("admin", "providers", "configure", "--app", appID, "--provider", "github",
				"--client-id", "Iv1.abc", "--client-secret", providerSecret, "--scopes", "repo,read:user", "--json")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if strings.Contains(out+errOut, providerSecret) {
				t.Fatal("providers configure printed the client secret")
			}
			var res map[string]string
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("not one JSON object: %q", out)
			}
			if res["redirect_uri"] != "https://latchkey.example.com/sdk/oauth/callback" || res["provider_config_id"] == "" {
				t.Fatalf("result %v", res)
			}

			// The secret from the environment, a custom provider, tenant params.
			c.env["GH_SECRET"] = "from-the-env"
			again := c.runJSON("admin", "providers", "configure", "--app", appID, "--provider", "github",
				"--client-id", "Iv1.abc", "--client-secret-env", "GH_SECRET", "--api-host", "api.github.com", "--api-host", "models.github.ai")
			if again["provider_config_id"] != res["provider_config_id"] {
				t.Fatal("configuring again created another config")
			}
			c.runJSON("admin", "providers", "configure", "--app", appID, "--provider", "acme-crm", "--client-id", "acme",
				"--client-secret", providerSecret, "--authorize-url", "https://auth.acme.example/authorize",
				"--token-url", "https://auth.acme.example/token", "--userinfo-url", "https://auth.acme.example/me",
				"--id-field", "id", "--api-host", "api.acme.example", "--name", "Acme CRM")
			c.runJSON("admin", "providers", "configure", "--app", appID, "--provider", "shopify", "--client-id", "s",
				"--client-secret", providerSecret, "--param", "shop=acme")

			core := c.core()
			ctx := context.Background()
			gh, err := core.OAuth.Client(ctx, appID, "github")
			if err != nil || gh.ClientSecret != "from-the-env" || !slices.Equal(gh.Provider.APIHosts, []string{"api.github.com", "models.github.ai"}) ||
				!slices.Equal(gh.Scopes, gh.Provider.DefaultScopes) {
				t.Fatalf("github: %v %v", gh, err)
			}
			acme, err := core.OAuth.Client(ctx, appID, "acme-crm")
			if err != nil || acme.Provider.Name != "Acme CRM" || acme.Provider.Identity.IDField != "id" {
				t.Fatalf("acme: %+v %v", acme.Provider, err)
			}
			shop, err := core.OAuth.Client(ctx, appID, "shopify")
			if err != nil || !strings.Contains(shop.Provider.TokenURL, "acme.myshopify.com") {
				t.Fatalf("shopify: %v %v", shop, err)
			}
			var n int64
			core.DB.Gorm.Model(&models.ProviderConfig{}).Where("app_id = ?", appID).Count(&n)
			if n != 3 {
				t.Fatalf("%d provider configs, want 3", n)
			}
			core.Close()

			audit, _, _ := c.run("admin", "audit", "list", "--app", appID, "--json")
			if strings.Count(audit, `"provider.configure"`) != 4 || strings.Contains(audit, providerSecret) {
				t.Fatalf("audit listing: %s", audit)
			}
		})
	}
}

func TestProvidersConfigureBadInputExitsTwoAndWritesNothing(t *testing.T) {
	for _, d := range testutil.Dialects(t) {
		t.Run(d, func(t *testing.T) {
			c := newCLI(t, d)
			c.env["EMPTY_VAR"] = ""
			appID := c.runJSON("admin", "bootstrap", "--org", "Acme", "--app", "web", "--operator-email", "ops@acme.test")["app_id"].(string)
			core := c.core()
			rows := countRows(t, core, &models.ProviderConfig{}, &models.AuditEvent{}, &models.DataKey{})
			base := func(extra ...string) []string {
				return append([]string{"admin", "providers", "configure", "--app", appID}, extra...)
			}
			tests := []struct {
				name string
				args []string
				want string
			}{
				{"no provider", base("--client-id", "x", "--client-secret", providerSecret), "--provider"},
				{"no client id", base("--provider", "github", "--client-secret", providerSecret), "--client-id"},
				{"no client secret", base("--provider", "github", "--client-id", "x"), "--client-secret"},
				{"secret and secret env", base("--provider", "github", "--client-id", "x", "--client-secret", providerSecret, "--client-secret-env", "X"), "not both"},
				{"empty secret env", base("--provider", "github", "--client-id", "x", "--client-secret-env", "EMPTY_VAR"), "EMPTY_VAR"},
				{"secret split by the shell", base("--provider", "github", "--client-id", "x", "--client-secret", "first-half", providerSecret), "unexpected argument"},
				{"unknown provider without URLs", base("--provider", "nosuch", "--client-id", "x", "--client-secret", providerSecret), "not in the catalog"},
				{"custom without api host", base("--provider", "acme", "--client-id", "x", "--client-secret", providerSecret,
					"--authorize-url", "https://a.example/authorize", "--token-url", "https://a.example/token"), "api_hosts"},
				{"custom over plain http", base("--provider", "acme", "--client-id", "x", "--client-secret", providerSecret,
					"--authorize-url", "http://a.example/authorize", "--token-url", "https://a.example/token", "--api-host", "api.a.example"), "https"},
				{"host injection through a param", base("--provider", "shopify", "--client-id", "x", "--client-secret", providerSecret,
					"--param", "shop=evil.com/x"), "params.shop"},
				{"malformed param", base("--provider", "shopify", "--client-id", "x", "--client-secret", providerSecret, "--param", "shop"), "name=value"},
				{"bad scope", base("--provider", "github", "--client-id", "x", "--client-secret", providerSecret, "--scopes", "repo user"), "scopes"},
				{"unknown app", []string{"admin", "providers", "configure", "--app", unknownID, "--provider", "github", "--client-id", "x", "--client-secret", providerSecret}, "app not found"},
				{"malformed app", []string{"admin", "providers", "configure", "--app", "web", "--provider", "github", "--client-id", "x", "--client-secret", providerSecret}, "app id"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					errOut := c.wantUsageError(t, tt.args, tt.want)
					if strings.Contains(errOut, providerSecret) {
						t.Fatalf("the error shows the client secret: %q", errOut)
					}
				})
			}
			rows.assertUnchanged(t, core)
		})
	}
}
