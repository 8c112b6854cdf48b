package demo_test

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/latchkey/latchkey/handlers/demo"
	"github.com/latchkey/latchkey/testutil/demotest"
	"github.com/latchkey/latchkey/testutil/htmlform"
)

// validAuthorize is a correct OAuth-provider authorization request.
func validAuthorize() url.Values {
	return url.Values{
		"response_type":         {"code"},
		"client_id":             {oauthClientID},
		"redirect_uri":          {oauthCallback},
		"scope":                 {"calendar.read"},
		"state":                 {"st-v"},
		"code_challenge":        {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())},
		"code_challenge_method": {"S256"},
	}
}

func TestAuthorizeRejectsBadRequests(t *testing.T) {
	e := newEnv(t)
	type want struct {
		page  bool   // an error page, never a redirect
		code  string // the OAuth error
		state string // the state sent back ("" for none)
	}
	for _, tc := range []struct {
		name   string
		server string // "oauth" (default) or "idp"
		mod    func(url.Values)
		want   want
	}{
		{"unknown client is an error page", "", func(v url.Values) { v.Set("client_id", "nobody") }, want{page: true, code: "invalid_client"}},
		{"missing client_id is an error page", "", func(v url.Values) { v.Del("client_id") }, want{page: true, code: "invalid_request"}},
		{"repeated client_id is an error page", "", func(v url.Values) { v.Add("client_id", otherClientID) }, want{page: true, code: "invalid_request"}},
		{"unregistered redirect_uri is an error page", "", func(v url.Values) { v.Set("redirect_uri", "http://evil.example/cb") }, want{page: true, code: "invalid_request"}},
		{"redirect_uri prefix match is not enough", "", func(v url.Values) { v.Set("redirect_uri", oauthCallback+"/x") }, want{page: true, code: "invalid_request"}},
		{"redirect_uri with extra query is not enough", "", func(v url.Values) { v.Set("redirect_uri", oauthCallback+"?next=evil") }, want{page: true, code: "invalid_request"}},
		{"another client's redirect_uri is an error page", "", func(v url.Values) { v.Set("redirect_uri", otherCallback) }, want{page: true, code: "invalid_request"}},
		{"missing redirect_uri is an error page", "", func(v url.Values) { v.Del("redirect_uri") }, want{page: true, code: "invalid_request"}},
		{"missing PKCE", "", func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") }, want{code: "invalid_request", state: "st-v"}},
		{"missing code_challenge", "", func(v url.Values) { v.Del("code_challenge") }, want{code: "invalid_request", state: "st-v"}},
		{"missing method means plain, which is refused", "", func(v url.Values) { v.Del("code_challenge_method") }, want{code: "invalid_request", state: "st-v"}},
		{"plain PKCE", "", func(v url.Values) { v.Set("code_challenge_method", "plain") }, want{code: "invalid_request", state: "st-v"}},
		{"malformed challenge", "", func(v url.Values) { v.Set("code_challenge", "short") }, want{code: "invalid_request", state: "st-v"}},
		{"implicit flow", "", func(v url.Values) { v.Set("response_type", "token") }, want{code: "unsupported_response_type", state: "st-v"}},
		{"missing response_type", "", func(v url.Values) { v.Del("response_type") }, want{code: "invalid_request", state: "st-v"}},
		{"unknown scope", "", func(v url.Values) { v.Set("scope", "calendar.read calendar.admin") }, want{code: "invalid_scope", state: "st-v"}},
		{"repeated scope parameter", "", func(v url.Values) { v.Add("scope", "calendar.write") }, want{code: "invalid_request", state: "st-v"}},
		{"missing state", "", func(v url.Values) { v.Del("state") }, want{code: "invalid_request"}},
		{"repeated state", "", func(v url.Values) { v.Add("state", "two") }, want{code: "invalid_request"}},
		{"form_post response mode", "", func(v url.Values) { v.Set("response_mode", "form_post") }, want{code: "invalid_request", state: "st-v"}},
		{"IdP without openid", "idp", func(v url.Values) { v.Set("scope", "email") }, want{code: "invalid_scope", state: "st-v"}},
		{"IdP with the OAuth provider's scope", "idp", func(v url.Values) { v.Set("scope", "openid calendar.read") }, want{code: "invalid_scope", state: "st-v"}},
		{"IdP client at the OAuth provider", "", func(v url.Values) { v.Set("client_id", idpClientID); v.Set("redirect_uri", idpCallback) }, want{page: true, code: "invalid_client"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := validAuthorize()
			server, callback := "/oauth", oauthCallback
			if tc.server == "idp" {
				server, callback = "/idp", idpCallback
				v.Set("client_id", idpClientID)
				v.Set("redirect_uri", idpCallback)
				v.Set("scope", "openid")
			}
			tc.mod(v)
			resp, body := demotest.Get(t, demotest.Browser(t), e.srv.Base+server+"/authorize?"+v.Encode())
			if tc.want.page {
				if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
					t.Fatalf("want a 400 error page and no redirect, got %d Location=%q", resp.StatusCode, resp.Header.Get("Location"))
				}
				if !strings.Contains(body, tc.want.code) || !strings.Contains(body, `data-testid="demo-error"`) {
					t.Errorf("error page lacks %s:\n%s", tc.want.code, body)
				}
				return
			}
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("want a redirect with an error, got %d\n%s", resp.StatusCode, body)
			}
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if got := loc.Scheme + "://" + loc.Host + loc.Path; got != callback {
				t.Fatalf("redirected to %s", got)
			}
			q := loc.Query()
			if q.Get("error") != tc.want.code || q.Get("state") != tc.want.state || q.Has("code") {
				t.Errorf("redirect query = %v, want error=%s state=%q", q, tc.want.code, tc.want.state)
			}
		})
	}
}

func TestAuthorizeFormRequiresCSRFToken(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name  string
		tweak func(c *http.Client, f *htmlform.Form)
	}{
		{"no cookie (a cross-site post)", func(c *http.Client, f *htmlform.Form) { c.Jar = nil }},
		{"wrong token", func(c *http.Client, f *htmlform.Form) { f.Fields.Set("csrf", "csrf_forged") }},
		{"no token", func(c *http.Client, f *htmlform.Form) { f.Fields.Del("csrf") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := demotest.Browser(t)
			_, body := demotest.Get(t, c, e.srv.Base+"/oauth/authorize?"+validAuthorize().Encode())
			f := htmlform.Parse(t, body)
			tc.tweak(c, &f)
			resp, _ := e.srv.Submit(t, c, f, "demo-user-ada")
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d, want 403", resp.StatusCode)
			}
		})
	}
}

func TestAuthorizeFormRevalidatesTheRequest(t *testing.T) {
	e := newEnv(t)
	c := demotest.Browser(t)
	_, body := demotest.Get(t, c, e.srv.Base+"/oauth/authorize?"+validAuthorize().Encode())
	f := htmlform.Parse(t, body)
	f.Fields.Set("redirect_uri", "http://evil.example/cb")
	resp, _ := e.srv.Submit(t, c, f, "demo-user-ada")
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
		t.Fatalf("a tampered form must not redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	_, body = demotest.Get(t, c, e.srv.Base+"/oauth/authorize?"+validAuthorize().Encode())
	f = htmlform.Parse(t, body)
	f.Buttons["demo-user-mallory"] = htmlform.Button{Name: "user", Value: "mallory"}
	if resp, _ := e.srv.Submit(t, c, f, "demo-user-mallory"); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown user: %d, want 400", resp.StatusCode)
	}
}

func TestTokenEndpointRejectsBadRequests(t *testing.T) {
	e := newEnv(t)
	cfg := e.oauthConfig()
	for _, tc := range []struct {
		name string
		// build returns the form and the Basic credentials to send; it may
		// use a fresh code.
		build      func(code, verifier string) (url.Values, string, string)
		wantStatus int
		wantError  string
	}{
		{"unknown client", func(code, ver string) (url.Values, string, string) {
			return exchangeForm(code, ver), "nobody", "x"
		}, 401, "invalid_client"},
		{"wrong secret", func(code, ver string) (url.Values, string, string) {
			return exchangeForm(code, ver), oauthClientID, "wrong"
		}, 401, "invalid_client"},
		{"no client authentication", func(code, ver string) (url.Values, string, string) {
			return exchangeForm(code, ver), "", ""
		}, 401, "invalid_client"},
		{"client_id in the body without a secret", func(code, ver string) (url.Values, string, string) {
			v := exchangeForm(code, ver)
			v.Set("client_id", oauthClientID)
			return v, "", ""
		}, 401, "invalid_client"},
		{"two authentication methods", func(code, ver string) (url.Values, string, string) {
			v := exchangeForm(code, ver)
			v.Set("client_secret", oauthClientSecret)
			return v, oauthClientID, oauthClientSecret
		}, 400, "invalid_request"},
		{"body client_id differs from Basic", func(code, ver string) (url.Values, string, string) {
			v := exchangeForm(code, ver)
			v.Set("client_id", otherClientID)
			return v, oauthClientID, oauthClientSecret
		}, 400, "invalid_request"},
		{"missing code_verifier", func(code, ver string) (url.Values, string, string) {
			v := exchangeForm(code, ver)
			v.Del("code_verifier")
			return v, oauthClientID, oauthClientSecret
		}, 400, "invalid_request"},
		{"malformed code_verifier", func(code, ver string) (url.Values, string, string) {
			v := exchangeForm(code, ver)
			v.Set("code_verifier", "too-short")
			return v, oauthClientID, oauthClientSecret
		}, 400, "invalid_request"},
		{"wrong code_verifier", func(code, ver string) (url.Values, string, string) {
			return exchangeForm(code, oauth2.GenerateVerifier()), oauthClientID, oauthClientSecret
		}, 400, "invalid_grant"},
		{"wrong redirect_uri", func(code, ver string) (url.Values, string, string) {
			v := exchangeForm(code, ver)
			v.Set("redirect_uri", otherCallback)
			return v, oauthClientID, oauthClientSecret
		}, 400, "invalid_grant"},
		{"missing redirect_uri", func(code, ver string) (url.Values, string, string) {
			v := exchangeForm(code, ver)
			v.Del("redirect_uri")
			return v, oauthClientID, oauthClientSecret
		}, 400, "invalid_request"},
		{"unknown code", func(code, ver string) (url.Values, string, string) {
			return exchangeForm("demo_code_nope", ver), oauthClientID, oauthClientSecret
		}, 400, "invalid_grant"},
		{"another client's code", func(code, ver string) (url.Values, string, string) {
			v := exchangeForm(code, ver)
			v.Set("redirect_uri", otherCallback)
			return v, otherClientID, otherClientSecret
		}, 400, "invalid_grant"},
		{"missing grant_type", func(code, ver string) (url.Values, string, string) {
			v := exchangeForm(code, ver)
			v.Del("grant_type")
			return v, oauthClientID, oauthClientSecret
		}, 400, "invalid_request"},
		{"client credentials grant", func(code, ver string) (url.Values, string, string) {
			return url.Values{"grant_type": {"client_credentials"}}, oauthClientID, oauthClientSecret
		}, 400, "unsupported_grant_type"},
		{"password grant", func(code, ver string) (url.Values, string, string) {
			return url.Values{"grant_type": {"password"}, "username": {"ada"}, "password": {"x"}}, oauthClientID, oauthClientSecret
		}, 400, "unsupported_grant_type"},
		{"missing refresh_token", func(code, ver string) (url.Values, string, string) {
			return url.Values{"grant_type": {"refresh_token"}}, oauthClientID, oauthClientSecret
		}, 400, "invalid_request"},
		{"unknown refresh_token", func(code, ver string) (url.Values, string, string) {
			return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"demo_rt_nope"}}, oauthClientID, oauthClientSecret
		}, 400, "invalid_grant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, verifier := e.oauthCode(cfg, "ada")
			v, id, secret := tc.build(code, verifier)
			resp, body := e.postForm("/oauth/token", v, id, secret)
			if resp.StatusCode != tc.wantStatus || body["error"] != tc.wantError {
				t.Fatalf("got %d %v, want %d %s", resp.StatusCode, body, tc.wantStatus, tc.wantError)
			}
			if tc.wantStatus == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("401 without WWW-Authenticate: Basic (RFC 6749 §5.2)")
			}
			if resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", resp.Header.Get("Cache-Control"))
			}
		})
	}
}

func exchangeForm(code, verifier string) url.Values {
	return url.Values{
		"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {oauthCallback}, "code_verifier": {verifier},
	}
}

func TestTokenEndpointRejectsMalformedBodies(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, path, contentType, body string
	}{
		{"JSON body", "/oauth/token", "application/json", `{"grant_type":"refresh_token"}`},
		{"parameters in the query", "/oauth/token?grant_type=refresh_token", "application/x-www-form-urlencoded", "refresh_token=x"},
		{"repeated parameter", "/oauth/token", "application/x-www-form-urlencoded", "grant_type=refresh_token&grant_type=authorization_code"},
		{"revocation with a JSON body", "/oauth/revoke", "application/json", `{"token":"x"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.srv.Base+tc.path, strings.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.contentType)
			req.SetBasicAuth(oauthClientID, oauthClientSecret)
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", resp.StatusCode)
			}
		})
	}
}

func TestCodesExpireAfterSixtySeconds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		wait    time.Duration
		wantErr bool
	}{
		{"redeemed within a minute", 59 * time.Second, false},
		{"redeemed after a minute", 60 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			cfg := e.oauthConfig()
			code, verifier := e.oauthCode(cfg, "ada")
			e.clock.Advance(tc.wait)
			_, err := cfg.Exchange(e.ctx(), code, oauth2.VerifierOption(verifier))
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("exchange: %v", err)
				}
				return
			}
			if oauthErrorCode(t, err) != "invalid_grant" {
				t.Fatalf("want invalid_grant, got %v", err)
			}
		})
	}
}

func TestWrongVerifierBurnsTheCode(t *testing.T) {
	e := newEnv(t)
	cfg := e.oauthConfig()
	code, verifier := e.oauthCode(cfg, "ada")
	if _, err := cfg.Exchange(e.ctx(), code, oauth2.VerifierOption(oauth2.GenerateVerifier())); oauthErrorCode(t, err) != "invalid_grant" {
		t.Fatal("wrong verifier accepted")
	}
	if _, err := cfg.Exchange(e.ctx(), code, oauth2.VerifierOption(verifier)); oauthErrorCode(t, err) != "invalid_grant" {
		t.Fatal("a code survived a failed redemption, so verifiers could be guessed")
	}
}

func TestCalendarAPIAuthorization(t *testing.T) {
	e := newEnv(t, func(o *demo.Options) { o.AccessTokenTTL = time.Minute })
	full := e.connect("ada")
	readOnly := e.connect("ada", demo.ScopeCalendarRead)
	writeOnly := e.connect("grace", demo.ScopeCalendarWrite)
	revoked := e.connect("linus")
	e.postForm("/oauth/revoke", url.Values{"token": {revoked.AccessToken}}, oauthClientID, oauthClientSecret)
	idJWT, err := e.srv.Demo.MintToken("ada", oauthClientID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	const event = `{"title":"Standup","start":"2026-03-16T09:30:00Z"}`

	for _, tc := range []struct {
		name, method, token, contentType, body string
		rawAuth                                string // Authorization header instead of Bearer token
		wantStatus                             int
		wantError                              string // error in WWW-Authenticate or body
	}{
		{name: "no token", method: "GET", wantStatus: 401},
		{name: "garbage token", method: "GET", token: "demo_at_garbage", wantStatus: 401, wantError: "invalid_token"},
		{name: "refresh token as access token", method: "GET", token: full.RefreshToken, wantStatus: 401, wantError: "invalid_token"},
		{name: "IdP JWT is not a calendar token", method: "GET", token: idJWT, wantStatus: 401, wantError: "invalid_token"},
		{name: "revoked token", method: "GET", token: revoked.AccessToken, wantStatus: 401, wantError: "invalid_token"},
		{name: "basic auth instead of bearer", method: "GET", rawAuth: "Basic YWRhOng=", wantStatus: 400, wantError: "invalid_request"},
		{name: "read with read scope", method: "GET", token: readOnly.AccessToken, wantStatus: 200},
		{name: "read with write scope", method: "GET", token: writeOnly.AccessToken, wantStatus: 200},
		{name: "write with read scope", method: "POST", token: readOnly.AccessToken, contentType: "application/json", body: event, wantStatus: 403, wantError: "insufficient_scope"},
		{name: "write with write scope", method: "POST", token: writeOnly.AccessToken, contentType: "application/json", body: event, wantStatus: 201},
		{name: "write as form", method: "POST", token: full.AccessToken, contentType: "application/x-www-form-urlencoded", body: "title=x", wantStatus: 415},
		{name: "unknown field", method: "POST", token: full.AccessToken, contentType: "application/json", body: `{"title":"x","start":"2026-03-16T09:30:00Z","owner":"grace"}`, wantStatus: 400},
		{name: "missing start", method: "POST", token: full.AccessToken, contentType: "application/json", body: `{"title":"x"}`, wantStatus: 400},
		{name: "bad start", method: "POST", token: full.AccessToken, contentType: "application/json", body: `{"title":"x","start":"tomorrow"}`, wantStatus: 400},
		{name: "empty title", method: "POST", token: full.AccessToken, contentType: "application/json", body: `{"title":"  ","start":"2026-03-16T09:30:00Z"}`, wantStatus: 400},
		{name: "two objects", method: "POST", token: full.AccessToken, contentType: "application/json", body: event + event, wantStatus: 400},
		{name: "wrong method", method: "DELETE", token: full.AccessToken, wantStatus: 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tc.method, e.srv.Base+"/api/calendar/events", strings.NewReader(tc.body))
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			if tc.rawAuth != "" {
				req.Header.Set("Authorization", tc.rawAuth)
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			www := resp.Header.Get("WWW-Authenticate")
			switch {
			case tc.wantStatus == 401 && tc.wantError == "":
				// RFC 6750 §3.1: no error code when no credentials were sent.
				if !strings.HasPrefix(www, "Bearer realm=") || strings.Contains(www, "error=") {
					t.Errorf("WWW-Authenticate = %q", www)
				}
			case tc.wantStatus == 401 || tc.wantStatus == 403:
				if !strings.HasPrefix(www, "Bearer ") || !strings.Contains(www, `error="`+tc.wantError+`"`) {
					t.Errorf("WWW-Authenticate = %q, want error=%s", www, tc.wantError)
				}
			}
			if strings.Contains(www, tc.token) && tc.token != "" {
				t.Error("WWW-Authenticate echoes the token")
			}
		})
	}

	// Expiry is the provider's clock, not the client's opinion.
	e.clock.Advance(time.Minute)
	resp, _ := e.call(http.MethodGet, "/api/calendar/events", full.AccessToken, "", "")
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("expired token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

func TestPagesCarryStrictSecurityHeaders(t *testing.T) {
	e := newEnv(t)
	resp, body := demotest.Get(t, demotest.Browser(t), e.srv.Base+"/oauth/authorize?"+validAuthorize().Encode())
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "frame-ancestors 'none'", "form-action 'self' http://latchkey.example"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "script-src") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP allows scripts: %q", csp)
	}
	if strings.Contains(body, "<script") {
		t.Error("a demo page contains a script")
	}
	for h, want := range map[string]string{
		"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	for _, c := range resp.Cookies() {
		if c.Name == "latchkey_demo_csrf" && (!c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/demo/") {
			t.Errorf("CSRF cookie %+v", c)
		}
	}
	for _, id := range []string{"demo-user-ada", "demo-user-grace", "demo-user-linus"} {
		if !strings.Contains(body, `data-testid="`+id+`"`) {
			t.Errorf("login page lacks %s", id)
		}
	}
	// The stylesheet the pages link is served, same-origin.
	css, _ := demotest.Get(t, demotest.Browser(t), e.srv.Base+"/assets/demo.css")
	if css.StatusCode != http.StatusOK || !strings.HasPrefix(css.Header.Get("Content-Type"), "text/css") {
		t.Errorf("stylesheet: %d %s", css.StatusCode, css.Header.Get("Content-Type"))
	}
	if !strings.Contains(body, `href="/demo/assets/demo.css"`) {
		t.Error("pages should link the stylesheet under the mount point")
	}
}

func TestNewRejectsUnusableOptions(t *testing.T) {
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	good := demo.Client{ID: "c", Secret: "s", RedirectURIs: []string{"http://x.example/cb"}}
	for _, tc := range []struct {
		name string
		opts demo.Options
	}{
		{"no base URL", demo.Options{}},
		{"relative base URL", demo.Options{BaseURL: "/demo"}},
		{"base URL with a query", demo.Options{BaseURL: "http://x.example/demo?a=b"}},
		{"ftp base URL", demo.Options{BaseURL: "ftp://x.example/demo"}},
		{"client without secret", demo.Options{BaseURL: "http://x.example/demo", OAuthClients: []demo.Client{{ID: "c", RedirectURIs: good.RedirectURIs}}}},
		{"client without id", demo.Options{BaseURL: "http://x.example/demo", IDPClients: []demo.Client{{Secret: "s", RedirectURIs: good.RedirectURIs}}}},
		{"client without redirect URIs", demo.Options{BaseURL: "http://x.example/demo", OAuthClients: []demo.Client{{ID: "c", Secret: "s"}}}},
		{"relative redirect URI", demo.Options{BaseURL: "http://x.example/demo", OAuthClients: []demo.Client{{ID: "c", Secret: "s", RedirectURIs: []string{"/cb"}}}}},
		{"redirect URI with fragment", demo.Options{BaseURL: "http://x.example/demo", OAuthClients: []demo.Client{{ID: "c", Secret: "s", RedirectURIs: []string{"http://x.example/cb#f"}}}}},
		{"duplicate client", demo.Options{BaseURL: "http://x.example/demo", OAuthClients: []demo.Client{good, good}}},
		{"weak signing key", demo.Options{BaseURL: "http://x.example/demo", SigningKey: weak}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.SigningKey == nil {
				key, err := testKey()
				if err != nil {
					t.Fatal(err)
				}
				tc.opts.SigningKey = key
			}
			if _, err := demo.New(tc.opts); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestUnknownPathsAndMethods(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/", 404},
		{"GET", "/oauth/token", 405},
		{"GET", "/oauth/revoke", 405},
		{"GET", "/idp/nope", 404},
		{"PUT", "/idp/jwks", 405},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tc.method, e.srv.Base+tc.path, nil)
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}
