package oauth_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/catalog"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/oauth"
	"github.com/latchkey/latchkey/testutil"
)

const githubSecret = "gh-client-secret-9f8e7d6c5b4a"

func TestConfigureCatalogProvider(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		ctx := context.Background()
		res := w.configure(oauth.ConfigureInput{Provider: "github", ClientID: "Iv1.abc", ClientSecret: githubSecret})
		if res.RedirectURI != redirectURI || res.ProviderConfigID == "" {
			t.Fatalf("result %+v", res)
		}
		var pc models.ProviderConfig
		if err := w.db.Where("id = ?", res.ProviderConfigID).Take(&pc).Error; err != nil {
			t.Fatal(err)
		}
		gh, _ := w.cat.Get("github")
		if pc.AppID != w.app || pc.Provider != "github" || pc.ClientID != "Iv1.abc" || pc.Status != models.ProviderConfigActive ||
			pc.Scopes != strings.Join(gh.DefaultScopes, " ") || pc.CustomDefinition != "" {
			t.Fatalf("provider config %+v", pc)
		}
		secret, err := w.vault.Open(ctx, oauth.ClientSecretBinding(w.app, pc.ID), pc.ClientSecretCiphertext)
		if err != nil || string(secret) != githubSecret {
			t.Fatalf("the client secret does not open: %v", err)
		}
		cc, err := w.svc.Client(ctx, w.app, "github")
		if err != nil {
			t.Fatal(err)
		}
		if cc.ClientSecret != githubSecret || cc.Provider.TokenURL != gh.TokenURL || cc.RedirectURI != redirectURI ||
			!slices.Equal(cc.Scopes, gh.DefaultScopes) || strings.Contains(cc.String(), githubSecret) {
			t.Fatalf("client %v", cc)
		}

		// Configuring again replaces the config in place, with new scopes,
		// and repairs a broken one.
		if err := w.svc.MarkBroken(ctx, pc.ID, "invalid_client from the token endpoint"); err != nil {
			t.Fatal(err)
		}
		_, err = w.svc.Client(ctx, w.app, "github")
		wantCode(t, err, "provider_not_configured")
		var ce *errs.CodedError
		if !errors.As(err, &ce) || ce.Details["status"] != models.ProviderConfigBroken || !strings.Contains(ce.Message, "broken") {
			t.Fatalf("broken config: %v", err)
		}
		if err := w.svc.MarkBroken(ctx, pc.ID, "again"); err != nil {
			t.Fatal(err)
		}
		again := w.configure(oauth.ConfigureInput{Provider: "github", ClientID: "Iv1.new", ClientSecret: "rotated-secret",
			Scopes: []string{"repo", "read:user", "repo"}})
		if again.ProviderConfigID != res.ProviderConfigID {
			t.Fatal("re-configuring created a second config")
		}
		cc, err = w.svc.Client(ctx, w.app, "github")
		if err != nil || cc.ClientID != "Iv1.new" || cc.ClientSecret != "rotated-secret" || !slices.Equal(cc.Scopes, []string{"repo", "read:user"}) {
			t.Fatalf("after re-configure: %v %v", cc, err)
		}
		if got := w.auditActions(w.app); !slices.Equal(got, []string{"provider.configure", "provider.broken", "provider.configure"}) {
			t.Fatalf("audit actions %v", got)
		}
		w.assertNotStored(githubSecret, "rotated-secret")

		// Another app sees nothing of it.
		_, err = w.svc.Client(ctx, w.other, "github")
		wantCode(t, err, "provider_not_configured")
		_, err = w.svc.ClientByID(ctx, w.other, res.ProviderConfigID)
		wantCode(t, err, "provider_not_configured")

		w.db.Model(&models.ProviderConfig{}).Where("id = ?", pc.ID).Update("status", models.ProviderConfigDisabled)
		_, err = w.svc.ClientByID(ctx, w.app, res.ProviderConfigID)
		wantCode(t, err, "provider_not_configured")
	})
}

func TestConfigureCustomProviderAndOverride(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		ctx := context.Background()
		w.configure(oauth.ConfigureInput{Provider: "acme-crm", ClientID: "acme", ClientSecret: "s3cr3t",
			Custom: &catalog.CustomDefinition{Name: "Acme CRM", AuthorizeURL: "https://auth.acme.example/authorize",
				TokenURL: "https://auth.acme.example/token", UserinfoURL: "https://auth.acme.example/userinfo",
				APIHosts: []string{"api.acme.example"}}})
		cc, err := w.svc.Client(ctx, w.app, "acme-crm")
		if err != nil {
			t.Fatal(err)
		}
		p := cc.Provider
		if !p.Custom || p.Name != "Acme CRM" || p.TokenURL != "https://auth.acme.example/token" ||
			p.Identity.URL != "https://auth.acme.example/userinfo" || p.Identity.IDField != "sub" ||
			!slices.Equal(p.APIHosts, []string{"api.acme.example"}) || len(cc.Scopes) != 0 {
			t.Fatalf("custom provider %+v scopes %v", p, cc.Scopes)
		}

		// Overriding a catalog entry keeps its endpoints and replaces the hosts.
		w.configure(oauth.ConfigureInput{Provider: "github", ClientID: "id", ClientSecret: "s",
			Custom: &catalog.CustomDefinition{APIHosts: []string{"api.github.com", "models.github.ai"}}})
		cc, err = w.svc.Client(ctx, w.app, "github")
		gh, _ := w.cat.Get("github")
		if err != nil || cc.Provider.TokenURL != gh.TokenURL || !slices.Equal(cc.Provider.APIHosts, []string{"api.github.com", "models.github.ai"}) {
			t.Fatalf("override: %+v %v", cc.Provider, err)
		}

		// An insecure definition stops resolving on a server without the
		// development switch.
		w.configure(oauth.ConfigureInput{Provider: "local", ClientID: "id", ClientSecret: "s",
			Custom: &catalog.CustomDefinition{AuthorizeURL: "http://127.0.0.1:9/a", TokenURL: "http://127.0.0.1:9/t",
				APIHosts: []string{"127.0.0.1:9"}}})
		strict := oauth.New(w.db, w.vault, w.audit, w.cat, nil, publicURL, w.clock.Now)
		_, err = strict.Client(ctx, w.app, "local")
		wantCode(t, err, "provider_not_configured")
		_, err = strict.Configure(ctx, oauth.ConfigureInput{AppID: w.app, Provider: "local2", ClientID: "id", ClientSecret: "s",
			Custom: &catalog.CustomDefinition{AuthorizeURL: "http://127.0.0.1:9/a", TokenURL: "http://127.0.0.1:9/t",
				APIHosts: []string{"127.0.0.1:9"}}, Actor: cliActor})
		wantCode(t, err, "invalid_request")
	})
}

func TestConfigureTenantParams(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		ctx := context.Background()
		w.configure(oauth.ConfigureInput{Provider: "shopify", ClientID: "id", ClientSecret: "s",
			Params: map[string]string{"shop": "Acme-Store"}})
		cc, err := w.svc.Client(ctx, w.app, "shopify")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(cc.Provider.TokenURL, "https://acme-store.myshopify.com/") ||
			!slices.Contains(cc.Provider.APIHosts, "acme-store.myshopify.com") || len(cc.Provider.Params) != 0 {
			t.Fatalf("resolved shopify %+v", cc.Provider)
		}

		before := w.count("provider_configs")
		for _, tt := range []struct {
			name   string
			params map[string]string
		}{
			{"host injection with a path", map[string]string{"shop": "evil.com/x"}},
			{"host injection with a dot", map[string]string{"shop": "evil.example"}},
			{"userinfo injection", map[string]string{"shop": "a@evil"}},
			{"missing param", nil},
			{"unknown param", map[string]string{"shop": "acme", "region": "eu"}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				_, err := w.svc.Configure(ctx, oauth.ConfigureInput{AppID: w.app, Provider: "shopify", ClientID: "id",
					ClientSecret: "s", Params: tt.params, Actor: cliActor})
				wantCode(t, err, "invalid_request")
			})
		}
		if w.count("provider_configs") != before {
			t.Fatal("a refused configure wrote a row")
		}
		cc, _ = w.svc.Client(ctx, w.app, "shopify")
		if !strings.Contains(cc.Provider.TokenURL, "acme-store") {
			t.Fatal("a refused configure changed the stored params")
		}
	})
}

func TestConfigureRefusesBadInputAndWritesNothing(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		ctx := context.Background()
		const secret = "never-echo-this-secret"
		custom := func(mod func(*catalog.CustomDefinition)) *catalog.CustomDefinition {
			d := &catalog.CustomDefinition{AuthorizeURL: "https://a.example/authorize", TokenURL: "https://a.example/token",
				APIHosts: []string{"api.a.example"}}
			mod(d)
			return d
		}
		tests := []struct {
			name string
			in   oauth.ConfigureInput
			want string
		}{
			{"malformed app", oauth.ConfigureInput{AppID: "web", Provider: "github", ClientID: "id", ClientSecret: secret}, "app"},
			{"unknown app", oauth.ConfigureInput{AppID: "3f1b2c4d-0000-4000-8000-000000000000", Provider: "github", ClientID: "id", ClientSecret: secret}, "not found"},
			{"missing client id", oauth.ConfigureInput{Provider: "github", ClientSecret: secret}, "client_id"},
			{"missing client secret", oauth.ConfigureInput{Provider: "github", ClientID: "id"}, "client_secret"},
			{"secret with a line break", oauth.ConfigureInput{Provider: "github", ClientID: "id", ClientSecret: secret + "\r\nX: y"}, "client_secret"},
			{"bad slug", oauth.ConfigureInput{Provider: "Git Hub", ClientID: "id", ClientSecret: secret}, "provider"},
			{"unknown slug without URLs", oauth.ConfigureInput{Provider: "nosuch", ClientID: "id", ClientSecret: secret}, "not in the catalog"},
			{"scope with a space", oauth.ConfigureInput{Provider: "github", ClientID: "id", ClientSecret: secret, Scopes: []string{"repo user"}}, "scopes"},
			{"params for a provider without params", oauth.ConfigureInput{Provider: "github", ClientID: "id", ClientSecret: secret, Params: map[string]string{"shop": "x"}}, "params.shop"},
			{"custom without token URL", oauth.ConfigureInput{Provider: "acme", ClientID: "id", ClientSecret: secret,
				Custom: custom(func(d *catalog.CustomDefinition) { d.TokenURL = "" })}, "token_url"},
			{"custom without API hosts", oauth.ConfigureInput{Provider: "acme", ClientID: "id", ClientSecret: secret,
				Custom: custom(func(d *catalog.CustomDefinition) { d.APIHosts = nil })}, "api_hosts"},
			{"custom with a bare wildcard host", oauth.ConfigureInput{Provider: "acme", ClientID: "id", ClientSecret: secret,
				Custom: custom(func(d *catalog.CustomDefinition) { d.APIHosts = []string{"*"} })}, "api_hosts"},
			{"custom with another slug", oauth.ConfigureInput{Provider: "acme", ClientID: "id", ClientSecret: secret,
				Custom: custom(func(d *catalog.CustomDefinition) { d.ID = "other" })}, "custom.id"},
		}
		before := map[string]int64{}
		tables := []string{"provider_configs", "audit_events", "data_keys"}
		for _, tb := range tables {
			before[tb] = w.count(tb)
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				in := tt.in
				if in.AppID == "" {
					in.AppID = w.app
				}
				in.Actor = cliActor
				_, err := w.svc.Configure(ctx, in)
				if err == nil {
					t.Fatal("accepted")
				}
				if !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error %q does not mention %q", err, tt.want)
				}
				if strings.Contains(err.Error(), secret) {
					t.Fatal("the error quotes the client secret")
				}
			})
		}
		for _, tb := range tables {
			if n := w.count(tb); n != before[tb] {
				t.Fatalf("refused input changed %s: %d → %d", tb, before[tb], n)
			}
		}
	})
}

func TestMarkBrokenUnknownConfigIsNotFound(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		for _, id := range []string{"x", "3f1b2c4d-0000-4000-8000-000000000000"} {
			if err := w.svc.MarkBroken(context.Background(), id, "r"); !errors.Is(err, errs.ErrNotFound) {
				t.Fatalf("MarkBroken(%q) = %v, want not found", id, err)
			}
		}
	})
}
