package demo_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/latchkey/latchkey/handlers/demo"
	"github.com/latchkey/latchkey/testutil/demotest"
	"github.com/latchkey/latchkey/testutil/testclock"
)

// Registered clients of the test servers. The redirect URIs are never
// contacted: the test client stops at the redirect and reads Location.
const (
	idpClientID     = "host-app"
	idpClientSecret = "host-app-secret"
	idpCallback     = "http://host.example/auth/callback"

	oauthClientID     = "latchkey"
	oauthClientSecret = "latchkey-secret"
	oauthCallback     = "http://latchkey.example/oauth/callback"

	otherClientID     = "other-app"
	otherClientSecret = "other-app-secret"
	otherCallback     = "http://other.example/callback"
)

// testKey is generated once: RSA key generation dominates a test's run time
// otherwise, and the key's identity does not matter to these tests.
var testKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

// env is a demo server mounted under /demo the way the HTTP edge mounts it,
// on a clock shared by the server and the verifiers.
type env struct {
	t     *testing.T
	srv   *demotest.Server
	clock *testclock.Clock
}

func newEnv(t *testing.T, mods ...func(*demo.Options)) *env {
	t.Helper()
	key, err := testKey()
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	clk := testclock.New(time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC))
	opts := demo.Options{
		Clock:      clk.Now,
		SigningKey: key,
		IDPClients: []demo.Client{
			{ID: idpClientID, Secret: idpClientSecret, RedirectURIs: []string{idpCallback}},
			{ID: otherClientID, Secret: otherClientSecret, RedirectURIs: []string{otherCallback}},
		},
		OAuthClients: []demo.Client{
			{ID: oauthClientID, Secret: oauthClientSecret, RedirectURIs: []string{oauthCallback}},
			{ID: otherClientID, Secret: otherClientSecret, RedirectURIs: []string{otherCallback}},
		},
	}
	for _, m := range mods {
		m(&opts)
	}
	return &env{t: t, srv: demotest.Start(t, opts), clock: clk}
}

// ctx carries the test server's client for oauth2 and go-oidc.
func (e *env) ctx() context.Context {
	return context.WithValue(e.t.Context(), oauth2.HTTPClient, e.srv.Client())
}

func (e *env) oauthConfig(scopes ...string) *oauth2.Config {
	if len(scopes) == 0 {
		scopes = []string{demo.ScopeCalendarRead, demo.ScopeCalendarWrite}
	}
	ep := e.srv.Demo.OAuthEndpoints()
	return &oauth2.Config{
		ClientID: oauthClientID, ClientSecret: oauthClientSecret, RedirectURL: oauthCallback, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: ep.AuthorizeURL, TokenURL: ep.TokenURL, AuthStyle: oauth2.AuthStyleInHeader},
	}
}

func (e *env) idpConfig() *oauth2.Config {
	iss := e.srv.Demo.Issuer()
	return &oauth2.Config{
		ClientID: idpClientID, ClientSecret: idpClientSecret, RedirectURL: idpCallback,
		Scopes:   []string{"openid", "email", "profile", "groups"},
		Endpoint: oauth2.Endpoint{AuthURL: iss + "/authorize", TokenURL: iss + "/token", AuthStyle: oauth2.AuthStyleInParams},
	}
}

// oauthCode runs the OAuth provider's authorization for user with a fresh
// PKCE verifier and returns code and verifier.
func (e *env) oauthCode(cfg *oauth2.Config, user string) (code, verifier string) {
	e.t.Helper()
	verifier = oauth2.GenerateVerifier()
	loc := e.srv.Authorize(e.t, cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier)), user, "approve")
	if got := loc.Query().Get("state"); got != "st-1" {
		e.t.Fatalf("state = %q, want st-1 (redirect %s)", got, loc.Redacted())
	}
	code = loc.Query().Get("code")
	if code == "" {
		e.t.Fatalf("no code in redirect: %s", loc.Redacted())
	}
	return code, verifier
}

// connect is a whole OAuth-provider authorization: code, then tokens.
func (e *env) connect(user string, scopes ...string) *oauth2.Token {
	e.t.Helper()
	cfg := e.oauthConfig(scopes...)
	code, verifier := e.oauthCode(cfg, user)
	tok, err := cfg.Exchange(e.ctx(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		e.t.Fatalf("exchange: %v", err)
	}
	return tok
}

// refresh forces a refresh-token grant with refreshToken.
func (e *env) refresh(cfg *oauth2.Config, refreshToken string) (*oauth2.Token, error) {
	return cfg.TokenSource(e.ctx(), &oauth2.Token{RefreshToken: refreshToken}).Token()
}

// oauthErrorCode returns the RFC 6749 error code of a failed oauth2 call.
func oauthErrorCode(t *testing.T, err error) string {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("want an *oauth2.RetrieveError, got %v", err)
	}
	return re.ErrorCode
}

// call makes an HTTP request with an optional bearer token and JSON body
// and decodes a JSON answer into a map.
func (e *env) call(method, path, token, contentType, body string) (*http.Response, map[string]any) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.srv.Base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out); err != nil {
			e.t.Fatalf("decode %s: %v", raw, err)
		}
	}
	return resp, out
}

// postForm sends a raw token-endpoint style request.
func (e *env) postForm(path string, v url.Values, basicID, basicSecret string) (*http.Response, map[string]any) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.t.Context(), http.MethodPost, e.srv.Base+path, strings.NewReader(v.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicID != "" {
		req.SetBasicAuth(url.QueryEscape(basicID), url.QueryEscape(basicSecret))
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &out)
	}
	return resp, out
}
