package demo_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"
	"golang.org/x/oauth2"

	"github.com/latchkey/latchkey/handlers/demo"
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

// clock is a settable time source shared by the server and the verifiers.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a demo server mounted under /demo the way the HTTP edge mounts it.
type env struct {
	t     *testing.T
	srv   *httptest.Server
	demo  *demo.Server
	base  string // srv.URL + "/demo"
	clock *clock
}

func newEnv(t *testing.T, mods ...func(*demo.Options)) *env {
	t.Helper()
	key, err := testKey()
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String() + "/demo"
	clk := &clock{t: time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)}
	opts := demo.Options{
		BaseURL:    base,
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
	d, err := demo.New(opts)
	if err != nil {
		t.Fatalf("demo.New: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/demo/", http.StripPrefix("/demo", d.Handler()))
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)
	return &env{t: t, srv: srv, demo: d, base: base, clock: clk}
}

// ctx carries the test server's client for oauth2 and go-oidc.
func (e *env) ctx() context.Context {
	return context.WithValue(e.t.Context(), oauth2.HTTPClient, e.srv.Client())
}

// browser is a cookie-keeping client that does not follow redirects, so the
// test sees where the server sends it.
func (e *env) browser() *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &http.Client{
		Jar: jar,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

func (e *env) oauthConfig(scopes ...string) *oauth2.Config {
	if len(scopes) == 0 {
		scopes = []string{demo.ScopeCalendarRead, demo.ScopeCalendarWrite}
	}
	ep := e.demo.OAuthEndpoints()
	return &oauth2.Config{
		ClientID: oauthClientID, ClientSecret: oauthClientSecret, RedirectURL: oauthCallback, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: ep.AuthorizeURL, TokenURL: ep.TokenURL, AuthStyle: oauth2.AuthStyleInHeader},
	}
}

func (e *env) idpConfig() *oauth2.Config {
	iss := e.demo.Issuer()
	return &oauth2.Config{
		ClientID: idpClientID, ClientSecret: idpClientSecret, RedirectURL: idpCallback,
		Scopes:   []string{"openid", "email", "profile", "groups"},
		Endpoint: oauth2.Endpoint{AuthURL: iss + "/authorize", TokenURL: iss + "/token", AuthStyle: oauth2.AuthStyleInParams},
	}
}

// form is an HTML form as a browser would submit it.
type form struct {
	action  string
	fields  url.Values
	buttons map[string][2]string // data-testid → name, value
}

// parseForm reads the first form of an HTML page.
func parseForm(t *testing.T, body string) form {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse page: %v", err)
	}
	f := form{fields: url.Values{}, buttons: map[string][2]string{}}
	found := false
	var walk func(n *html.Node, inForm bool)
	walk = func(n *html.Node, inForm bool) {
		if n.Type == html.ElementNode {
			a := map[string]string{}
			for _, at := range n.Attr {
				a[at.Key] = at.Val
			}
			switch n.Data {
			case "form":
				if found {
					return
				}
				found, inForm = true, true
				f.action = a["action"]
			case "input":
				if inForm && a["type"] == "hidden" {
					f.fields.Add(a["name"], a["value"])
				}
			case "button":
				if inForm {
					f.buttons[a["data-testid"]] = [2]string{a["name"], a["value"]}
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, inForm)
		}
	}
	walk(doc, false)
	if !found {
		t.Fatalf("no form on page:\n%s", body)
	}
	return f
}

// get fetches a URL with the browser and returns status and body.
func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// submit posts a form as if its button with testid were clicked.
func (e *env) submit(c *http.Client, f form, testid string) (*http.Response, string) {
	e.t.Helper()
	btn, ok := f.buttons[testid]
	if !ok {
		e.t.Fatalf("no button %q on the page (have %v)", testid, f.buttons)
	}
	v := url.Values{}
	for k, vs := range f.fields {
		v[k] = append([]string(nil), vs...)
	}
	v.Set(btn[0], btn[1])
	target := e.srv.URL + f.action
	resp, err := c.PostForm(target, v)
	if err != nil {
		e.t.Fatalf("POST %s: %v", f.action, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// authorize walks the pages of one authorization in a fresh browser:
// login as user, then (OAuth provider) the consent decision. It returns the
// redirect the server answered with.
func (e *env) authorize(authURL, user, decision string) *url.URL {
	e.t.Helper()
	c := e.browser()
	resp, body := get(e.t, c, authURL)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("login page: status %d\n%s", resp.StatusCode, body)
	}
	resp, body = e.submit(c, parseForm(e.t, body), "demo-user-"+user)
	if decision != "" {
		if resp.StatusCode != http.StatusOK {
			e.t.Fatalf("consent page: status %d\n%s", resp.StatusCode, body)
		}
		resp, body = e.submit(c, parseForm(e.t, body), "demo-"+decision)
	}
	if resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("want a 303 back to the client, got %d\n%s", resp.StatusCode, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		e.t.Fatalf("Location: %v", err)
	}
	return loc
}

// oauthCode runs the OAuth provider's authorization for user with a fresh
// PKCE verifier and returns code and verifier.
func (e *env) oauthCode(cfg *oauth2.Config, user string) (code, verifier string) {
	e.t.Helper()
	verifier = oauth2.GenerateVerifier()
	loc := e.authorize(cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier)), user, "approve")
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
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.base+path, rd)
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
	req, err := http.NewRequestWithContext(e.t.Context(), http.MethodPost, e.base+path, strings.NewReader(v.Encode()))
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
