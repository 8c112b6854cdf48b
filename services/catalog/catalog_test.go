package catalog

import (
	"encoding/xml"
	"errors"
	"io"
	"net/url"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/latchkey/latchkey/services/egress"
	"github.com/latchkey/latchkey/services/errs"
)

// minProviders is the floor the issue sets for the built-in catalog.
const minProviders = 120

func loadCatalog(t *testing.T) *Catalog {
	t.Helper()
	c, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

func TestCatalogHasEnoughProviders(t *testing.T) {
	c := loadCatalog(t)
	if c.Len() < minProviders {
		t.Fatalf("catalog has %d providers, want at least %d", c.Len(), minProviders)
	}
}

// TestEveryEntryIsValid re-checks each entry one by one (Load already
// refuses an invalid one) and adds the properties the proxy and the OAuth
// flow rely on, so a failure names the provider and the rule.
func TestEveryEntryIsValid(t *testing.T) {
	c := loadCatalog(t)
	seen := map[string]bool{}
	for _, p := range c.All() {
		t.Run(p.ID, func(t *testing.T) {
			if seen[p.ID] {
				t.Fatalf("duplicate id")
			}
			seen[p.ID] = true
			if err := p.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !idRE.MatchString(p.ID) {
				t.Errorf("id %q is not a slug", p.ID)
			}
			if !p.Category.Valid() {
				t.Errorf("category %q not in the enum", p.Category)
			}
			if p.ScopeSeparator != " " && p.ScopeSeparator != "," {
				t.Errorf("scope separator %q", p.ScopeSeparator)
			}
			if len(p.APIHosts) == 0 {
				t.Errorf("no api hosts")
			}
			for _, h := range p.APIHosts {
				if h == "*" || strings.TrimSpace(h) == "" {
					t.Errorf("api host %q", h)
				}
				if _, err := egress.ParseHostPattern(substitute(h, "tenant")); err != nil {
					t.Errorf("api host %q: %v", h, err)
				}
			}
			for field, raw := range p.urls() {
				if raw == "" {
					continue
				}
				u, err := url.Parse(substitute(raw, "tenant"))
				if err != nil {
					t.Errorf("%s %q: %v", field, raw, err)
					continue
				}
				if u.Scheme != "https" || u.Host == "" {
					t.Errorf("%s %q is not an https URL with a host", field, raw)
				}
			}
			if p.Identity.EffectiveSource() == "" || p.Identity.IDField == "" {
				t.Errorf("no way to identify the connected account")
			}
			if p.RevokeURL != "" && p.RevokeStyle == "" {
				t.Errorf("revoke_url without revoke_style")
			}
			if p.RefreshTokenRotates && !p.TokensExpire {
				t.Errorf("rotating refresh tokens on a provider whose tokens never expire")
			}
			// A tenant provider must resolve with a sample value; a plain
			// one must resolve with none.
			params := map[string]string{}
			for _, name := range p.Params {
				params[name] = "acme"
			}
			r, err := p.Resolve(params)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			for field, s := range r.urls() {
				if m := placeholder.FindString(s); m != "" && m != "{client_id}" {
					t.Errorf("%s still holds %s after Resolve", field, m)
				}
			}
		})
	}
}

// TestMustHaveProviders pins the providers the issue names: agents use
// them most, and losing one in an edit must fail loudly.
func TestMustHaveProviders(t *testing.T) {
	c := loadCatalog(t)
	for _, id := range []string{
		"google", "google-gmail", "google-calendar", "google-drive", "microsoft", "slack", "github",
		"gitlab", "bitbucket", "atlassian", "jira", "confluence", "linear", "notion", "asana", "monday",
		"clickup", "trello", "airtable", "hubspot", "salesforce", "zendesk", "intercom", "stripe",
		"shopify", "quickbooks", "xero", "dropbox", "box", "zoom", "discord", "figma", "calendly",
		"docusign", "spotify", "x", "linkedin", "reddit",
	} {
		if _, ok := c.Get(id); !ok {
			t.Errorf("provider %q is missing", id)
		}
	}
}

// TestProviderFacts pins facts that are easy to get wrong and expensive
// when wrong (no refresh token, a dead rotated token, a refused flow).
func TestProviderFacts(t *testing.T) {
	c := loadCatalog(t)
	get := func(id string) Provider {
		p, ok := c.Get(id)
		if !ok {
			t.Fatalf("provider %q missing", id)
		}
		return p
	}
	tests := []struct {
		name  string
		id    string
		check func(p Provider) bool
	}{
		{"google asks for offline access and consent", "google-gmail", func(p Provider) bool {
			return p.ExtraAuthorizeParams["access_type"] == "offline" && p.ExtraAuthorizeParams["prompt"] == "consent"
		}},
		{"google variants share google's endpoints", "google-drive", func(p Provider) bool {
			g := get("google")
			return p.AuthorizeURL == g.AuthorizeURL && p.TokenURL == g.TokenURL && p.RevokeURL == g.RevokeURL
		}},
		{"gmail reaches gmail.googleapis.com", "google-gmail", func(p Provider) bool {
			return slices.Contains(p.APIHosts, "gmail.googleapis.com")
		}},
		{"atlassian refresh tokens rotate", "jira", func(p Provider) bool {
			return p.TokensExpire && p.RefreshTokenRotates && p.ExtraAuthorizeParams["audience"] == "api.atlassian.com"
		}},
		{"github oauth app tokens do not expire", "github", func(p Provider) bool {
			return !p.TokensExpire && !p.RefreshTokenRotates
		}},
		{"github app user tokens expire and rotate", "github-app", func(p Provider) bool {
			return p.TokensExpire && p.RefreshTokenRotates
		}},
		{"x requires pkce", "x", func(p Provider) bool { return p.PKCE == PKCERequired }},
		{"airtable requires pkce", "airtable", func(p Provider) bool { return p.PKCE == PKCERequired }},
		{"slack user scopes are comma separated in user_scope", "slack", func(p Provider) bool {
			return p.ScopeSeparator == "," && p.ScopeParamName() == "user_scope" && p.TokenResponseRoot == "authed_user"
		}},
		{"notion authenticates with basic auth", "notion", func(p Provider) bool {
			return p.TokenAuthStyle == AuthStyleHeader && p.Identity.EffectiveSource() == IdentityTokenResponse
		}},
		{"microsoft uses the common tenant and offline_access", "microsoft", func(p Provider) bool {
			return strings.Contains(p.AuthorizeURL, "/common/") && slices.Contains(p.DefaultScopes, "offline_access")
		}},
		{"salesforce identifies through userinfo", "salesforce", func(p Provider) bool {
			return p.Identity.URL == "https://login.salesforce.com/services/oauth2/userinfo"
		}},
		{"shopify is per shop and injects its own header", "shopify", func(p Provider) bool {
			return slices.Equal(p.Params, []string{"shop"}) && strings.HasPrefix(p.Injection(), "header:X-Shopify-Access-Token:")
		}},
		{"dropbox asks for offline tokens", "dropbox", func(p Provider) bool {
			return p.ExtraAuthorizeParams["token_access_type"] == "offline"
		}},
		{"linear scopes are comma separated", "linear", func(p Provider) bool { return p.ScopeSeparator == "," }},
		{"box refresh tokens are single use", "box", func(p Provider) bool { return p.RefreshTokenRotates }},
		{"github revocation names the client", "github", func(p Provider) bool {
			return p.RevokeEndpoint("Iv1.a/b") == "https://api.github.com/applications/Iv1.a%2Fb/token"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !tt.check(get(tt.id)) {
				t.Errorf("%s: fact does not hold", tt.id)
			}
		})
	}
}

func TestAllIsSortedAndByCategoryPartitionsIt(t *testing.T) {
	c := loadCatalog(t)
	all := c.All()
	if !slices.IsSortedFunc(all, func(a, b Provider) int { return strings.Compare(a.ID, b.ID) }) {
		t.Fatal("All is not sorted by id")
	}
	n := 0
	for cat, ps := range c.ByCategory() {
		if !cat.Valid() {
			t.Errorf("unknown category %q", cat)
		}
		for _, p := range ps {
			if p.Category != cat {
				t.Errorf("%s filed under %s", p.ID, cat)
			}
		}
		n += len(ps)
	}
	if n != len(all) {
		t.Fatalf("ByCategory holds %d providers, All %d", n, len(all))
	}
}

// TestCatalogHandsOutCopies: the catalog is shared by every request; a
// caller appending a scope must not change what the next caller sees.
func TestCatalogHandsOutCopies(t *testing.T) {
	c := loadCatalog(t)
	p, _ := c.Get("google")
	p.DefaultScopes[0] = "mutated"
	p.APIHosts[0] = "evil.example"
	p.ExtraAuthorizeParams["prompt"] = "none"
	q, _ := c.Get("google")
	if q.DefaultScopes[0] == "mutated" || q.APIHosts[0] == "evil.example" || q.ExtraAuthorizeParams["prompt"] != "consent" {
		t.Fatal("Get returned shared slices or maps")
	}
	all := c.All()
	all[0].APIHosts[0] = "evil.example"
	if c.All()[0].APIHosts[0] == "evil.example" {
		t.Fatal("All returned shared slices")
	}
}

func TestLoadRefusesBadFiles(t *testing.T) {
	good := `{"id":"acme","name":"Acme","category":"other","docs":"https://acme.example/docs",
		"authorize_url":"https://acme.example/oauth/authorize","token_url":"https://acme.example/oauth/token",
		"identity":{"url":"https://api.acme.example/me","id_field":"id"},"default_scopes":[],"scope_separator":" ",
		"pkce":"supported","token_auth_style":"params","api_hosts":["api.acme.example"],
		"tokens_expire":true,"refresh_token_rotates":false}`
	tests := []struct {
		name  string
		files fstest.MapFS
		want  string
	}{
		{"a valid file loads", fstest.MapFS{"p/acme.json": {Data: []byte(good)}}, ""},
		{"an unknown field is refused", fstest.MapFS{"p/acme.json": {Data: []byte(strings.Replace(good, `"pkce"`, `"pcke":"x","pkce"`, 1))}}, "unknown field"},
		{"the id must match the file name", fstest.MapFS{"p/other.json": {Data: []byte(good)}}, "does not match the file name"},
		{"an invalid entry fails the load", fstest.MapFS{"p/acme.json": {Data: []byte(strings.Replace(good, "https://acme.example/oauth/token", "http://acme.example/oauth/token", 1))}}, "must use https"},
		{"two documents in one file are refused", fstest.MapFS{"p/acme.json": {Data: []byte(good + good)}}, "more than one JSON document"},
		{"catalog entries cannot claim to be custom", fstest.MapFS{"p/acme.json": {Data: []byte(strings.Replace(good, `"id":"acme"`, `"id":"acme","custom":true`, 1))}}, "cannot be marked custom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadFS(tt.files, "p")
			if tt.want == "" {
				if err != nil || c.Len() != 1 {
					t.Fatalf("loadFS = %v, %v", c, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("loadFS error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// validProvider is a small correct entry that the rejection table mutates
// one field at a time.
func validProvider() Provider {
	return Provider{
		ID: "acme", Name: "Acme", Category: CategoryOther, Docs: "https://acme.example/docs",
		AuthorizeURL: "https://acme.example/oauth/authorize", TokenURL: "https://acme.example/oauth/token",
		Identity:      Identity{URL: "https://api.acme.example/me", IDField: "id"},
		DefaultScopes: []string{"read"}, ScopeSeparator: " ", PKCE: PKCESupported, TokenAuthStyle: AuthStyleParams,
		APIHosts: []string{"api.acme.example"},
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(p *Provider)
		field  string
	}{
		{"id with upper case", func(p *Provider) { p.ID = "Acme" }, "id"},
		{"id starting with a hyphen", func(p *Provider) { p.ID = "-acme" }, "id"},
		{"empty name", func(p *Provider) { p.Name = " " }, "name"},
		{"unknown category", func(p *Provider) { p.Category = "games" }, "category"},
		{"http authorize url", func(p *Provider) { p.AuthorizeURL = "http://acme.example/oauth/authorize" }, "authorize_url"},
		{"relative token url", func(p *Provider) { p.TokenURL = "/oauth/token" }, "token_url"},
		{"token url with credentials", func(p *Provider) { p.TokenURL = "https://user:pw@acme.example/token" }, "token_url"},
		{"token url on an IP address", func(p *Provider) { p.TokenURL = "https://10.0.0.1/token" }, "token_url"},
		{"token url on localhost", func(p *Provider) { p.TokenURL = "https://localhost/token" }, "token_url"},
		{"authorize url with a fragment", func(p *Provider) { p.AuthorizeURL = "https://acme.example/a#x" }, "authorize_url"},
		{"missing docs", func(p *Provider) { p.Docs = "" }, "docs"},
		{"no api hosts", func(p *Provider) { p.APIHosts = nil }, "api_hosts"},
		{"bare wildcard host", func(p *Provider) { p.APIHosts = []string{"*"} }, "api_hosts[0]"},
		{"wildcard over a public suffix", func(p *Provider) { p.APIHosts = []string{"*.co.uk"} }, "api_hosts[0]"},
		{"host written as a URL", func(p *Provider) { p.APIHosts = []string{"https://api.acme.example"} }, "api_hosts[0]"},
		{"host not in canonical form", func(p *Provider) { p.APIHosts = []string{"API.acme.example"} }, "api_hosts[0]"},
		{"duplicate host", func(p *Provider) { p.APIHosts = []string{"api.acme.example", "api.acme.example"} }, "api_hosts[1]"},
		{"IP literal host", func(p *Provider) { p.APIHosts = []string{"192.168.1.10"} }, "api_hosts[0]"},
		{"templated wildcard host", func(p *Provider) {
			p.Params = []string{"tenant"}
			p.APIHosts = []string{"*.{tenant}.acme.example"}
		}, "api_hosts[0]"},
		{"missing scope separator", func(p *Provider) { p.ScopeSeparator = "" }, "scope_separator"},
		{"odd scope separator", func(p *Provider) { p.ScopeSeparator = "+" }, "scope_separator"},
		{"scope holding a space", func(p *Provider) { p.DefaultScopes = []string{"read write"} }, "default_scopes"},
		{"scope holding a comma", func(p *Provider) { p.DefaultScopes = []string{"read,write"} }, "default_scopes"},
		{"duplicate scope", func(p *Provider) { p.DefaultScopes = []string{"read", "read"} }, "default_scopes"},
		{"unknown pkce", func(p *Provider) { p.PKCE = "maybe" }, "pkce"},
		{"unknown auth style", func(p *Provider) { p.TokenAuthStyle = "jwt" }, "token_auth_style"},
		{"unknown body format", func(p *Provider) { p.TokenBodyFormat = "xml" }, "token_body_format"},
		{"extra param overriding state", func(p *Provider) { p.ExtraAuthorizeParams = map[string]string{"state": "x"} }, "extra_authorize_params"},
		{"extra param overriding redirect_uri", func(p *Provider) {
			p.ExtraAuthorizeParams = map[string]string{"redirect_uri": "https://evil.example"}
		}, "extra_authorize_params"},
		{"extra param overriding the scope param", func(p *Provider) {
			p.ScopeParam = "user_scope"
			p.ExtraAuthorizeParams = map[string]string{"user_scope": "admin"}
		}, "extra_authorize_params"},
		{"revoke style without url", func(p *Provider) { p.RevokeStyle = RevokeRFC7009 }, "revoke_style"},
		{"revoke url without style", func(p *Provider) { p.RevokeURL = "https://acme.example/revoke" }, "revoke_style"},
		{"client_id placeholder outside github style", func(p *Provider) {
			p.RevokeURL = "https://acme.example/apps/{client_id}/revoke"
			p.RevokeStyle = RevokeRFC7009
		}, "revoke_url"},
		{"no identity", func(p *Provider) { p.Identity = Identity{} }, "identity"},
		{"identity id field not a path", func(p *Provider) { p.Identity.IDField = "data[0].id" }, "identity.id_field"},
		{"identity setting authorization", func(p *Provider) {
			p.Identity.Headers = map[string]string{"Authorization": "Basic x"}
		}, "identity.headers"},
		{"identity body on GET", func(p *Provider) { p.Identity.Body = `{}` }, "identity.body"},
		{"identity body not JSON", func(p *Provider) {
			p.Identity.Method = "POST"
			p.Identity.Body = `{query`
		}, "identity.body"},
		{"token response identity with a url", func(p *Provider) { p.Identity.Source = IdentityTokenResponse }, "identity"},
		{"undeclared placeholder", func(p *Provider) { p.TokenURL = "https://{shop}.acme.example/token" }, "token_url"},
		{"declared but unused param", func(p *Provider) { p.Params = []string{"shop"} }, "params"},
		{"reserved param name", func(p *Provider) {
			p.Params = []string{"client_id"}
			p.TokenURL = "https://{client_id}.acme.example/token"
		}, "params"},
		{"badly named param", func(p *Provider) {
			p.Params = []string{"Shop"}
			p.TokenURL = "https://{Shop}.acme.example/token"
		}, "params"},
		{"inject without token", func(p *Provider) { p.Inject = "header:Authorization:Bearer" }, "inject"},
		{"inject into cookie", func(p *Provider) { p.Inject = "header:Cookie:sid={token}" }, "inject"},
		{"inject with unknown kind", func(p *Provider) { p.Inject = "body:token:{token}" }, "inject"},
		{"scripted logo", func(p *Provider) {
			p.LogoSVG = `<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`
		}, "logo_svg"},
	}
	if err := (func() Provider { p := validProvider(); return p })().Validate(); err != nil {
		t.Fatalf("the base provider must be valid: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validProvider()
			tt.mutate(&p)
			assertFieldProblem(t, p.Validate(), tt.field)
		})
	}
}

func assertFieldProblem(t *testing.T, err error, field string) {
	t.Helper()
	var ve *errs.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error = %v, want a *errs.ValidationError naming %q", err, field)
	}
	for _, p := range ve.Problems {
		if p.Field == field {
			return
		}
	}
	t.Fatalf("error = %v, want a problem with field %q", err, field)
}

func TestResolve(t *testing.T) {
	c := loadCatalog(t)
	shopify, _ := c.Get("shopify")

	t.Run("fills every templated field", func(t *testing.T) {
		r, err := shopify.Resolve(map[string]string{"shop": "Acme-Store"})
		if err != nil {
			t.Fatal(err)
		}
		if r.AuthorizeURL != "https://acme-store.myshopify.com/admin/oauth/authorize" ||
			r.TokenURL != "https://acme-store.myshopify.com/admin/oauth/access_token" ||
			!strings.HasPrefix(r.Identity.URL, "https://acme-store.myshopify.com/") ||
			!slices.Equal(r.APIHosts, []string{"acme-store.myshopify.com"}) || r.Params != nil {
			t.Fatalf("resolved = %+v", r)
		}
		if shopify.AuthorizeURL != "https://{shop}.myshopify.com/admin/oauth/authorize" {
			t.Fatal("Resolve changed its receiver")
		}
	})

	refused := []struct {
		name   string
		params map[string]string
	}{
		{"missing", nil},
		{"empty", map[string]string{"shop": ""}},
		{"a dot moves the host", map[string]string{"shop": "evil.com"}},
		{"a slash moves the path", map[string]string{"shop": "evil.com/x"}},
		{"an at sign adds credentials", map[string]string{"shop": "a@evil"}},
		{"a colon adds a port", map[string]string{"shop": "acme:8443"}},
		{"a leading hyphen", map[string]string{"shop": "-acme"}},
		{"longer than a DNS label", map[string]string{"shop": strings.Repeat("a", 64)}},
		{"an encoded dot", map[string]string{"shop": "evil%2ecom"}},
		{"an unknown extra param", map[string]string{"shop": "acme", "region": "eu"}},
	}
	for _, tt := range refused {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			_, err := shopify.Resolve(tt.params)
			var ve *errs.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Resolve(%v) error = %v, want a validation error", tt.params, err)
			}
		})
	}

	t.Run("a provider without params resolves to itself", func(t *testing.T) {
		gh, _ := c.Get("github")
		r, err := gh.Resolve(nil)
		if err != nil || r.TokenURL != gh.TokenURL {
			t.Fatalf("Resolve(nil) = %+v, %v", r, err)
		}
	})

	t.Run("the reserved client_id placeholder survives", func(t *testing.T) {
		ghe, _ := c.Get("github-enterprise-cloud")
		r, err := ghe.Resolve(map[string]string{"subdomain": "octo"})
		if err != nil {
			t.Fatal(err)
		}
		if r.RevokeURL != "https://api.octo.ghe.com/applications/{client_id}/token" {
			t.Fatalf("revoke url = %q", r.RevokeURL)
		}
	})
}

func TestCustom(t *testing.T) {
	c := loadCatalog(t)
	base := CustomDefinition{
		ID:           "acme-crm",
		Name:         "Acme CRM",
		AuthorizeURL: "https://login.acme.example/oauth/authorize",
		TokenURL:     "https://login.acme.example/oauth/token",
		UserinfoURL:  "https://login.acme.example/userinfo",
		APIHosts:     []string{"api.acme.example"},
		Scopes:       []string{"openid", "crm.read"},
	}

	t.Run("a complete definition becomes a provider with defaults", func(t *testing.T) {
		p, err := c.Custom(base)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Custom || p.Category != CategoryOther || p.ScopeSeparator != " " || p.PKCE != PKCESupported ||
			p.TokenAuthStyle != AuthStyleAuto || p.Identity.IDField != "sub" || p.Identity.DisplayField != "email" {
			t.Fatalf("custom provider = %+v", p)
		}
	})

	t.Run("a revoke url defaults to RFC 7009", func(t *testing.T) {
		def := base
		def.RevokeURL = "https://login.acme.example/oauth/revoke"
		p, err := c.Custom(def)
		if err != nil || p.RevokeStyle != RevokeRFC7009 {
			t.Fatalf("Custom = %+v, %v", p, err)
		}
	})

	rejected := []struct {
		name   string
		mutate func(d *CustomDefinition)
		field  string
	}{
		{"missing id", func(d *CustomDefinition) { d.ID = "" }, "id"},
		{"id that is not a slug", func(d *CustomDefinition) { d.ID = "Acme CRM" }, "id"},
		{"missing token url", func(d *CustomDefinition) { d.TokenURL = "" }, "token_url"},
		{"http authorize url", func(d *CustomDefinition) { d.AuthorizeURL = "http://login.acme.example/authorize" }, "authorize_url"},
		{"http userinfo url", func(d *CustomDefinition) { d.UserinfoURL = "http://login.acme.example/userinfo" }, "identity.url"},
		{"loopback token url", func(d *CustomDefinition) { d.TokenURL = "https://127.0.0.1:9000/token" }, "token_url"},
		{"ftp revoke url", func(d *CustomDefinition) { d.RevokeURL = "ftp://login.acme.example/revoke" }, "revoke_url"},
		{"no api hosts", func(d *CustomDefinition) { d.APIHosts = nil }, "api_hosts"},
		{"bare wildcard", func(d *CustomDefinition) { d.APIHosts = []string{"*"} }, "api_hosts[0]"},
		{"public suffix wildcard", func(d *CustomDefinition) { d.APIHosts = []string{"*.com"} }, "api_hosts[0]"},
		{"scope with a space", func(d *CustomDefinition) { d.Scopes = []string{"crm read"} }, "default_scopes"},
		{"unknown pkce", func(d *CustomDefinition) { d.PKCE = "sometimes" }, "pkce"},
		{"extra param overriding code_challenge", func(d *CustomDefinition) {
			d.ExtraAuthorizeParams = map[string]string{"code_challenge": "x"}
		}, "extra_authorize_params"},
		{"placeholder in a custom url", func(d *CustomDefinition) { d.TokenURL = "https://{tenant}.acme.example/token" }, "token_url"},
	}
	for _, tt := range rejected {
		t.Run("rejects "+tt.name, func(t *testing.T) {
			def := base
			def.APIHosts = slices.Clone(base.APIHosts)
			tt.mutate(&def)
			_, err := c.Custom(def)
			assertFieldProblem(t, err, tt.field)
		})
	}

	t.Run("allow insecure admits a local demo provider", func(t *testing.T) {
		def := CustomDefinition{
			ID: "demo", AuthorizeURL: "http://127.0.0.1:8080/demo/oauth/authorize",
			TokenURL: "http://127.0.0.1:8080/demo/oauth/token", UserinfoURL: "http://127.0.0.1:8080/demo/userinfo",
			APIHosts: []string{"127.0.0.1:8080", "localhost:8080"}, AllowInsecure: true,
		}
		p, err := c.Custom(def)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Resolve(nil); err != nil {
			t.Fatalf("Resolve of an insecure custom provider: %v", err)
		}
		def.AllowInsecure = false
		if _, err := c.Custom(def); err == nil {
			t.Fatal("the same definition without AllowInsecure was accepted")
		}
	})

	t.Run("a catalog id is overridden field by field", func(t *testing.T) {
		p, err := c.Custom(CustomDefinition{ID: "github", APIHosts: []string{"api.github.com", "models.github.ai"}})
		if err != nil {
			t.Fatal(err)
		}
		gh, _ := c.Get("github")
		if !p.Custom || p.TokenURL != gh.TokenURL || p.Identity.URL != gh.Identity.URL ||
			!slices.Equal(p.APIHosts, []string{"api.github.com", "models.github.ai"}) {
			t.Fatalf("override = %+v", p)
		}
		if again, _ := c.Get("github"); again.Custom || len(again.APIHosts) != len(gh.APIHosts) {
			t.Fatal("the override changed the catalog entry")
		}
	})

	t.Run("overriding every templated url drops the tenant param", func(t *testing.T) {
		p, err := c.Custom(CustomDefinition{
			ID:           "shopify",
			AuthorizeURL: "https://shop.acme.example/admin/oauth/authorize",
			TokenURL:     "https://shop.acme.example/admin/oauth/access_token",
			UserinfoURL:  "https://shop.acme.example/admin/api/2025-01/shop.json",
			APIHosts:     []string{"shop.acme.example"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if p.Params != nil {
			t.Fatalf("params = %v, want none", p.Params)
		}
	})

	t.Run("overriding part of a tenant provider keeps its param", func(t *testing.T) {
		p, err := c.Custom(CustomDefinition{ID: "zendesk", Scopes: []string{"read", "write"}})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(p.Params, []string{"subdomain"}) {
			t.Fatalf("params = %v", p.Params)
		}
	})
}

func TestMonogram(t *testing.T) {
	tests := []struct {
		name, initials string
	}{
		{"Google Drive", "GD"},
		{"monday.com", "M"},
		{"X (Twitter)", "XT"},
		{"Microsoft 365 (single tenant)", "M3"},
		{"  ", "?"},
		{"Ärzte Verbund", "ÄV"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := monogramInitials(tt.name); got != tt.initials {
				t.Errorf("initials = %q, want %q", got, tt.initials)
			}
		})
	}

	t.Run("is deterministic", func(t *testing.T) {
		// Pinned: the colour must not change between releases or replicas.
		if got := MonogramColor("Slack"); got != pinnedSlackColor {
			t.Fatalf("MonogramColor(Slack) = %s, want %s", got, pinnedSlackColor)
		}
		if Monogram("Slack") != Monogram("Slack") {
			t.Fatal("monogram changed between calls")
		}
	})

	t.Run("escapes markup in the name", func(t *testing.T) {
		svg := Monogram(`<script>&"`)
		if strings.Contains(svg, "<script>") {
			t.Fatalf("unescaped name in %s", svg)
		}
		if err := checkLogoSVG(svg); err != nil {
			t.Fatalf("monogram of a hostile name: %v", err)
		}
	})

	c := loadCatalog(t)
	for _, p := range c.All() {
		svg := p.Logo()
		if err := wellFormed(svg); err != nil {
			t.Errorf("%s: logo is not well-formed XML: %v", p.ID, err)
		}
		// Our own marks must pass the rules hand-made ones are held to.
		if err := checkLogoSVG(svg); err != nil {
			t.Errorf("%s: logo fails the logo rules: %v", p.ID, err)
		}
		r, g, b := parseHex(t, MonogramColor(p.Name))
		if contrastWithWhite(r, g, b) < 4.5 {
			t.Errorf("%s: white on %s is below WCAG AA contrast", p.ID, MonogramColor(p.Name))
		}
		if !strings.HasPrefix(p.LogoDataURI(), "data:image/svg+xml;base64,") {
			t.Errorf("%s: data URI %q", p.ID, p.LogoDataURI()[:30])
		}
	}
}

const pinnedSlackColor = "#ba2ca0"

func wellFormed(s string) error {
	dec := xml.NewDecoder(strings.NewReader(s))
	dec.Strict = true
	for {
		_, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func parseHex(t *testing.T, s string) (uint8, uint8, uint8) {
	t.Helper()
	var r, g, b uint8
	if len(s) != 7 || s[0] != '#' {
		t.Fatalf("colour %q", s)
	}
	for i, dst := range []*uint8{&r, &g, &b} {
		var v uint8
		for _, ch := range s[1+2*i : 3+2*i] {
			v <<= 4
			switch {
			case ch >= '0' && ch <= '9':
				v |= uint8(ch - '0')
			case ch >= 'a' && ch <= 'f':
				v |= uint8(ch-'a') + 10
			default:
				t.Fatalf("colour %q", s)
			}
		}
		*dst = v
	}
	return r, g, b
}

func TestLogoSVGRules(t *testing.T) {
	tests := []struct {
		name string
		svg  string
		ok   bool
	}{
		{"a simple mark", `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><circle cx="5" cy="5" r="4" fill="#123456"/></svg>`, true},
		{"a gradient reference", `<svg xmlns="http://www.w3.org/2000/svg"><defs><linearGradient id="g"><stop offset="0" stop-color="#fff"/></linearGradient></defs><rect width="1" height="1" fill="url(#g)"/></svg>`, true},
		{"not XML", `<svg><rect></svg>`, false},
		{"a script", `<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`, false},
		{"an event handler", `<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>`, false},
		{"an external image", `<svg xmlns="http://www.w3.org/2000/svg"><image href="https://evil.example/x.png"/></svg>`, false},
		{"a foreign object", `<svg xmlns="http://www.w3.org/2000/svg"><foreignObject/></svg>`, false},
		{"an external url in fill", `<svg xmlns="http://www.w3.org/2000/svg"><rect fill="url(https://evil.example/#g)"/></svg>`, false},
		{"a doctype with entities", `<!DOCTYPE svg [<!ENTITY x "y">]><svg xmlns="http://www.w3.org/2000/svg"></svg>`, false},
		{"another root element", `<html></html>`, false},
		{"two roots", `<svg xmlns="http://www.w3.org/2000/svg"></svg><svg xmlns="http://www.w3.org/2000/svg"></svg>`, false},
		{"too large", `<svg xmlns="http://www.w3.org/2000/svg"><desc>` + strings.Repeat("a", maxLogoSVG) + `</desc></svg>`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkLogoSVG(tt.svg)
			if (err == nil) != tt.ok {
				t.Fatalf("checkLogoSVG = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
