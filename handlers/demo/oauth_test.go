package demo_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/latchkey/latchkey/handlers/demo"
	"github.com/latchkey/latchkey/testutil/demotest"
	"github.com/latchkey/latchkey/testutil/htmlform"
)

func TestOAuthProviderFullFlowConnectsAccountAndServesCalendar(t *testing.T) {
	for _, tc := range []struct {
		user, wantID, wantEmail string
	}{
		{"ada", "cal-ada", "ada@example.com"},
		{"grace", "cal-grace", "grace@example.com"},
		{"linus", "cal-linus", "linus@example.com"},
	} {
		t.Run(tc.user, func(t *testing.T) {
			e := newEnv(t)
			tok := e.connect(tc.user)
			if tok.AccessToken == "" || tok.RefreshToken == "" {
				t.Fatalf("want access and refresh token, got %+v", tok)
			}
			if got, _ := tok.Extra("expires_in").(float64); got != 3600 {
				t.Errorf("expires_in = %v, want 3600 (default one hour)", tok.Extra("expires_in"))
			}
			if got := tok.Extra("scope"); got != "calendar.read calendar.write" {
				t.Errorf("scope = %v", got)
			}

			resp, info := e.call(http.MethodGet, "/oauth/userinfo", tok.AccessToken, "", "")
			if resp.StatusCode != http.StatusOK || info["id"] != tc.wantID || info["email"] != tc.wantEmail {
				t.Fatalf("userinfo: %d %v", resp.StatusCode, info)
			}

			resp, list := e.call(http.MethodGet, "/api/calendar/events", tok.AccessToken, "", "")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("list events: %d %v", resp.StatusCode, list)
			}
			seeded := len(list["events"].([]any))
			if seeded == 0 {
				t.Fatal("want seeded events for a newcomer to look at")
			}

			resp, ev := e.call(http.MethodPost, "/api/calendar/events", tok.AccessToken, "application/json",
				`{"title":"Try Latchkey","start":"2026-03-15T10:00:00Z"}`)
			if resp.StatusCode != http.StatusCreated || ev["title"] != "Try Latchkey" || ev["id"] == "" {
				t.Fatalf("create event: %d %v", resp.StatusCode, ev)
			}
			_, list = e.call(http.MethodGet, "/api/calendar/events", tok.AccessToken, "", "")
			if got := len(list["events"].([]any)); got != seeded+1 {
				t.Fatalf("events after create = %d, want %d", got, seeded+1)
			}
		})
	}
}

func TestOAuthProviderKeepsEachUsersCalendarSeparate(t *testing.T) {
	e := newEnv(t)
	ada, grace := e.connect("ada"), e.connect("grace")
	e.call(http.MethodPost, "/api/calendar/events", ada.AccessToken, "application/json", `{"title":"Ada only","start":"2026-03-15T10:00:00Z"}`)
	_, list := e.call(http.MethodGet, "/api/calendar/events", grace.AccessToken, "", "")
	for _, ev := range list["events"].([]any) {
		if ev.(map[string]any)["title"] == "Ada only" {
			t.Fatal("grace sees ada's event")
		}
	}
}

func TestOAuthProviderDenyReturnsAccessDeniedWithState(t *testing.T) {
	e := newEnv(t)
	cfg := e.oauthConfig()
	loc := e.srv.Authorize(t, cfg.AuthCodeURL("st-deny", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), "ada", "deny")
	q := loc.Query()
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != oauthCallback {
		t.Errorf("redirected to %s, want %s", got, oauthCallback)
	}
	if q.Get("error") != "access_denied" || q.Get("state") != "st-deny" || q.Has("code") {
		t.Fatalf("redirect query = %v", q)
	}
	if q.Get("iss") != e.srv.Base+"/oauth" {
		t.Errorf("iss = %q, want the provider (RFC 9207)", q.Get("iss"))
	}
}

func TestOAuthProviderConsentListsRequestedScopes(t *testing.T) {
	e := newEnv(t)
	c := demotest.Browser(t)
	_, body := demotest.Get(t, c, e.oauthConfig(demo.ScopeCalendarRead).AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	_, body = e.srv.Submit(t, c, htmlform.Parse(t, body), "demo-user-grace")
	if !strings.Contains(body, "calendar.read") || strings.Contains(body, "calendar.write") {
		t.Errorf("consent page should list exactly calendar.read:\n%s", body)
	}
	for _, id := range []string{`data-testid="demo-approve"`, `data-testid="demo-deny"`, "Grace Hopper"} {
		if !strings.Contains(body, id) {
			t.Errorf("consent page lacks %s", id)
		}
	}
}

func TestOAuthProviderRefreshRotatesAndReuseRevokesFamily(t *testing.T) {
	e := newEnv(t)
	cfg := e.oauthConfig()
	first := e.connect("ada")

	second, err := e.refresh(cfg, first.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
		t.Fatal("refresh must rotate the refresh token")
	}
	if second.AccessToken == first.AccessToken {
		t.Fatal("refresh must issue a new access token")
	}
	third, err := e.refresh(cfg, second.RefreshToken)
	if err != nil {
		t.Fatalf("refresh with the rotated token: %v", err)
	}
	if resp, _ := e.call(http.MethodGet, "/api/calendar/events", third.AccessToken, "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("new access token: %d", resp.StatusCode)
	}

	// Replaying the first (rotated-out) refresh token is reuse.
	_, err = e.refresh(cfg, first.RefreshToken)
	if code := oauthErrorCode(t, err); code != "invalid_grant" {
		t.Fatalf("reuse: error %q, want invalid_grant", code)
	}
	// The whole family is gone: the current refresh token and every access
	// token issued under the grant.
	_, err = e.refresh(cfg, third.RefreshToken)
	if code := oauthErrorCode(t, err); code != "invalid_grant" {
		t.Fatalf("current token after reuse: error %q, want invalid_grant", code)
	}
	for _, at := range []string{first.AccessToken, second.AccessToken, third.AccessToken} {
		resp, _ := e.call(http.MethodGet, "/api/calendar/events", at, "", "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("access token after family revocation: %d, want 401", resp.StatusCode)
		}
	}
	// Other grants are untouched.
	other := e.connect("ada")
	if resp, _ := e.call(http.MethodGet, "/api/calendar/events", other.AccessToken, "", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("an unrelated grant was revoked too: %d", resp.StatusCode)
	}
}

func TestOAuthProviderRefreshCanNarrowButNotWidenScope(t *testing.T) {
	e := newEnv(t)
	tok := e.connect("ada")

	// x/oauth2 sends no scope on refresh, so these are raw requests.
	resp, read := e.postForm("/oauth/token", url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "scope": {demo.ScopeCalendarRead},
	}, oauthClientID, oauthClientSecret)
	if resp.StatusCode != http.StatusOK || read["scope"] != demo.ScopeCalendarRead {
		t.Fatalf("narrowing refresh: %d %v", resp.StatusCode, read["scope"])
	}
	at, _ := read["access_token"].(string)
	resp, _ = e.call(http.MethodPost, "/api/calendar/events", at, "application/json", `{"title":"x","start":"2026-03-15T10:00:00Z"}`)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("write with a read-only token: %d, want 403", resp.StatusCode)
	}

	rt, _ := read["refresh_token"].(string)
	resp, body := e.postForm("/oauth/token", url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {rt}, "scope": {"calendar.read calendar.admin"},
	}, oauthClientID, oauthClientSecret)
	if resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_scope" {
		t.Errorf("widening refresh: %d %v, want invalid_scope", resp.StatusCode, body)
	}
}

func TestOAuthProviderCodeReuseRevokesTokensIssuedFromIt(t *testing.T) {
	e := newEnv(t)
	cfg := e.oauthConfig()
	code, verifier := e.oauthCode(cfg, "ada")
	tok, err := cfg.Exchange(e.ctx(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	_, err = cfg.Exchange(e.ctx(), code, oauth2.VerifierOption(verifier))
	if c := oauthErrorCode(t, err); c != "invalid_grant" {
		t.Fatalf("second exchange: %q, want invalid_grant", c)
	}
	if resp, _ := e.call(http.MethodGet, "/api/calendar/events", tok.AccessToken, "", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("access token from a replayed code: %d, want 401", resp.StatusCode)
	}
	if _, err := e.refresh(cfg, tok.RefreshToken); oauthErrorCode(t, err) != "invalid_grant" {
		t.Errorf("refresh token from a replayed code still works")
	}
}

func TestOAuthProviderRevocation(t *testing.T) {
	for _, tc := range []struct {
		name string
		// which token of the pair is sent, and with which hint
		token, hint string
	}{
		{"refresh token revokes the grant", "refresh", "refresh_token"},
		{"access token revokes the grant", "access", "access_token"},
		{"hint is only a hint", "refresh", "access_token"},
		{"no hint", "access", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tok := e.connect("ada")
			send := tok.RefreshToken
			if tc.token == "access" {
				send = tok.AccessToken
			}
			v := url.Values{"token": {send}}
			if tc.hint != "" {
				v.Set("token_type_hint", tc.hint)
			}
			resp, _ := e.postForm("/oauth/revoke", v, oauthClientID, oauthClientSecret)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("revoke: %d", resp.StatusCode)
			}
			if r, _ := e.call(http.MethodGet, "/api/calendar/events", tok.AccessToken, "", ""); r.StatusCode != http.StatusUnauthorized {
				t.Errorf("API after revocation: %d, want 401", r.StatusCode)
			}
			if _, err := e.refresh(e.oauthConfig(), tok.RefreshToken); oauthErrorCode(t, err) != "invalid_grant" {
				t.Error("refresh after revocation should be invalid_grant")
			}
		})
	}
}

func TestOAuthProviderRevocationEdgeCases(t *testing.T) {
	e := newEnv(t)
	tok := e.connect("ada")
	for _, tc := range []struct {
		name       string
		form       url.Values
		id, secret string
		wantStatus int
		wantError  string
	}{
		{"unknown token is 200 (RFC 7009 §2.2)", url.Values{"token": {"demo_rt_nope"}}, oauthClientID, oauthClientSecret, 200, ""},
		{"another client's token is 200 and left alone", url.Values{"token": {tok.RefreshToken}}, otherClientID, otherClientSecret, 200, ""},
		{"missing token", url.Values{}, oauthClientID, oauthClientSecret, 400, "invalid_request"},
		{"unknown hint", url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"id_token"}}, oauthClientID, oauthClientSecret, 400, "unsupported_token_type"},
		{"wrong secret", url.Values{"token": {tok.RefreshToken}}, oauthClientID, "nope", 401, "invalid_client"},
		{"no client authentication", url.Values{"token": {tok.RefreshToken}}, "", "", 401, "invalid_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.postForm("/oauth/revoke", tc.form, tc.id, tc.secret)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d (%v)", resp.StatusCode, tc.wantStatus, body)
			}
			if tc.wantError != "" && body["error"] != tc.wantError {
				t.Errorf("error %v, want %s", body["error"], tc.wantError)
			}
		})
	}
	// None of the above revoked anything.
	if r, _ := e.call(http.MethodGet, "/api/calendar/events", tok.AccessToken, "", ""); r.StatusCode != http.StatusOK {
		t.Errorf("token was revoked by a refused or foreign request: %d", r.StatusCode)
	}
}

func TestOAuthProviderAccessTokensExpire(t *testing.T) {
	e := newEnv(t, func(o *demo.Options) { o.AccessTokenTTL = 30 * time.Second })
	tok := e.connect("ada")
	if got, _ := tok.Extra("expires_in").(float64); got != 30 {
		t.Errorf("expires_in = %v, want 30", tok.Extra("expires_in"))
	}
	e.clock.Advance(29 * time.Second)
	if r, _ := e.call(http.MethodGet, "/api/calendar/events", tok.AccessToken, "", ""); r.StatusCode != http.StatusOK {
		t.Fatalf("before expiry: %d", r.StatusCode)
	}
	e.clock.Advance(time.Second)
	r, _ := e.call(http.MethodGet, "/api/calendar/events", tok.AccessToken, "", "")
	if r.StatusCode != http.StatusUnauthorized || !strings.Contains(r.Header.Get("WWW-Authenticate"), "expired") {
		t.Fatalf("after expiry: %d %q", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
	// The refresh token still works and yields a working access token.
	fresh, err := e.refresh(e.oauthConfig(), tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh after expiry: %v", err)
	}
	if r, _ := e.call(http.MethodGet, "/api/calendar/events", fresh.AccessToken, "", ""); r.StatusCode != http.StatusOK {
		t.Fatalf("refreshed token: %d", r.StatusCode)
	}
}

func TestOAuthProviderRefreshTokensExpire(t *testing.T) {
	e := newEnv(t, func(o *demo.Options) { o.RefreshTokenTTL = time.Hour })
	tok := e.connect("ada")
	e.clock.Advance(time.Hour)
	if _, err := e.refresh(e.oauthConfig(), tok.RefreshToken); oauthErrorCode(t, err) != "invalid_grant" {
		t.Fatal("an expired refresh token must be invalid_grant")
	}
}

func TestOAuthProviderAcceptsClientSecretPost(t *testing.T) {
	e := newEnv(t)
	cfg := e.oauthConfig()
	cfg.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	code, verifier := e.oauthCode(cfg, "linus")
	tok, err := cfg.Exchange(e.ctx(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange with body credentials: %v", err)
	}
	if _, err := e.refresh(cfg, tok.RefreshToken); err != nil {
		t.Fatalf("refresh with body credentials: %v", err)
	}
}

func TestOAuthEndpointsDescribeTheProvider(t *testing.T) {
	e := newEnv(t)
	ep := e.srv.Demo.OAuthEndpoints()
	host := strings.TrimPrefix(e.srv.URL, "http://")
	if ep.TokenURL != e.srv.Base+"/oauth/token" || ep.RevokeURL != e.srv.Base+"/oauth/revoke" ||
		ep.UserinfoURL != e.srv.Base+"/oauth/userinfo" || ep.APIBaseURL != e.srv.Base+"/api" || ep.APIHost != host {
		t.Errorf("endpoints = %+v", ep)
	}
	if !slices.Equal(ep.Scopes, []string{"calendar.read", "calendar.write"}) {
		t.Errorf("scopes = %v", ep.Scopes)
	}
}
