package handlers_test

// HTTP-level Connect tests: the real server (server.New over a real core,
// on a loopback port) with the demo OAuth provider in its own httptest
// server, driven by cookie-keeping clients that do what a browser and
// connect-popup.js do. A Chromium test of the same flow lives in e2e.

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/config"
	"github.com/latchkey/latchkey/handlers/demo"
	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/server"
	"github.com/latchkey/latchkey/services/agents"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/oauth"
	"github.com/latchkey/latchkey/services/tenancy"
	"github.com/latchkey/latchkey/testutil/demotest"
	"github.com/latchkey/latchkey/testutil/htmlform"
	"github.com/latchkey/latchkey/testutil/testclock"
	"github.com/latchkey/latchkey/testutil/testserver"
	views "github.com/latchkey/latchkey/views/pages/connect"
)

const (
	// The app's registered Connect URLs.
	appOrigin = "https://app.example.test"
	appReturn = "https://app.example.test/connected?tab=accounts"

	demoProvider     = "demo-calendar"
	demoClientID     = "latchkey"
	demoClientSecret = "latchkey-demo-secret"
)

var seedActor = apikeys.Actor{Kind: audit.ActorCLI, ID: "test"}

// connectWorld is a running Latchkey whose public URL is its real address
// (so connect_url and the OAuth redirect URI point at it), the demo
// provider configured as a custom provider of one app, and that app's SDK
// client.
type connectWorld struct {
	t       *testing.T
	url     string
	core    *server.Core
	seed    *testserver.Seed
	clock   *testclock.Clock
	demoURL string
	app     models.App
	sdk     *sdk.App
	agent   agents.Created
}

func newConnectWorld(t *testing.T, dialect string) *connectWorld {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lkURL := "http://" + ln.Addr().String()

	demoSrv := demotest.Start(t, demo.Options{
		OAuthClients: []demo.Client{{ID: demoClientID, Secret: demoClientSecret, RedirectURIs: []string{lkURL + oauth.CallbackPath}}},
	})

	clk := testclock.New(time.Now().UTC().Truncate(time.Second))
	core := testserver.NewCore(t, dialect, testserver.Options{Now: clk.Now, Env: map[string]string{
		config.EnvPublicURL:             lkURL,
		config.EnvAllowPrivateUpstreams: "true",
	}})
	testserver.Serve(t, core, ln)

	w := &connectWorld{t: t, url: lkURL, core: core, seed: testserver.NewSeed(t, core), clock: clk, demoURL: demoSrv.URL}
	var key apikeys.Minted
	w.app, key = w.seed.App("")
	bg := context.Background()
	if err := core.Tenancy.SetURLs(bg, w.app.ID, tenancy.URLs{Origins: []string{appOrigin}, ReturnURLs: []string{appReturn}}, seedActor); err != nil {
		t.Fatal(err)
	}
	if _, err := core.OAuth.Configure(bg, oauth.ConfigureInput{
		AppID: w.app.ID, Provider: demoProvider, ClientID: demoClientID, ClientSecret: demoClientSecret,
		Scopes: []string{demo.ScopeCalendarRead}, Actor: seedActor,
		Custom: demoSrv.CustomDefinition(),
	}); err != nil {
		t.Fatalf("configure the demo provider: %v", err)
	}
	if _, err := core.OAuth.Configure(bg, oauth.ConfigureInput{
		AppID: w.app.ID, Provider: "github", ClientID: "gh-client", ClientSecret: "gh-secret", Actor: seedActor,
	}); err != nil {
		t.Fatalf("configure github: %v", err)
	}
	if w.agent, err = core.Agents.Create(bg, agents.CreateInput{
		AppID: w.app.ID, Name: "research-bot", DisplayName: "Research Bot", Actor: seedActor,
	}); err != nil {
		t.Fatal(err)
	}
	if w.sdk, err = sdk.NewApp(key.APIKey.Reveal(), sdk.WithBaseURL(lkURL), sdk.WithClock(clk.Now)); err != nil {
		t.Fatal(err)
	}
	return w
}

// mint creates a Connect session through the signed SDK endpoint.
func (w *connectWorld) mint(req wire.ConnectSessionRequest) *wire.ConnectSessionResponse {
	w.t.Helper()
	res, err := w.sdk.CreateConnectSession(context.Background(), req)
	if err != nil {
		w.t.Fatalf("mint: %v", err)
	}
	return res
}

// demoSession is the usual session: the demo provider only, for end user
// Ada, posting back to the registered origin.
func (w *connectWorld) demoSession(mod func(*wire.ConnectSessionRequest)) *wire.ConnectSessionResponse {
	req := wire.ConnectSessionRequest{
		AllowedProviders: []string{demoProvider}, AllowedOrigin: appOrigin,
		EndUser: &wire.EndUser{ID: "ada-1", Email: "ada@example.com", DisplayName: "Ada"},
	}
	if mod != nil {
		mod(&req)
	}
	return w.mint(req)
}

func (w *connectWorld) session(id string) models.ConnectSession {
	w.t.Helper()
	var row models.ConnectSession
	if err := w.core.DB.Gorm.Where("id = ?", id).Take(&row).Error; err != nil {
		w.t.Fatal(err)
	}
	return row
}

// browser is one browser profile: its own cookies, no automatic redirects
// (the test follows them), and the headers a browser adds to same-origin
// requests.
type browser struct {
	t *testing.T
	w *connectWorld
	c *http.Client
}

func (w *connectWorld) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		w.t.Fatal(err)
	}
	return &browser{t: w.t, w: w, c: &http.Client{
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (p page) location(t *testing.T) *url.URL {
	t.Helper()
	u, err := url.Parse(p.header.Get("Location"))
	if err != nil || p.header.Get("Location") == "" {
		t.Fatalf("no redirect (status %d):\n%s", p.status, p.body)
	}
	return u
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return page{status: res.StatusCode, header: res.Header, body: string(body)}
}

// get loads a page (absolute URL, or a path on Latchkey).
func (b *browser) get(u string) page {
	b.t.Helper()
	if strings.HasPrefix(u, "/") {
		u = b.w.url + u
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	return b.do(req)
}

// exchange does what connect-popup.js does with the fragment's token.
func (b *browser) exchange(token, mode string) page {
	b.t.Helper()
	body, _ := json.Marshal(map[string]string{"session_token": token, "mode": mode})
	req, err := http.NewRequest(http.MethodPost, b.w.url+"/sdk/oauth/connect/exchange", strings.NewReader(string(body)))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Origin", b.w.url)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.do(req)
}

// open loads connect_url like the launcher and the popup script do: the
// page (the fragment stays in the browser), then the exchange. It returns
// the page the script would go to next.
func (b *browser) open(connectURL, mode string) string {
	b.t.Helper()
	u, err := url.Parse(connectURL)
	if err != nil {
		b.t.Fatal(err)
	}
	token := strings.TrimPrefix(u.Fragment, "session=")
	u.Fragment = ""
	p := b.get(u.String())
	if p.status != http.StatusOK || !strings.Contains(p.body, `data-testid="connect-loading"`) {
		b.t.Fatalf("popup page: %d\n%s", p.status, p.body)
	}
	p = b.exchange(token, mode)
	if p.status != http.StatusOK {
		b.t.Fatalf("exchange: %d %s", p.status, p.body)
	}
	var next struct{ Next string }
	if err := json.Unmarshal([]byte(p.body), &next); err != nil || !strings.HasPrefix(next.Next, "/sdk/oauth/connect/") {
		b.t.Fatalf("exchange answer %q", p.body)
	}
	return next.Next
}

// submit posts a page's first form as if the button with testid were
// clicked, with the headers a browser sends for a same-origin form (the
// demo provider ignores them).
func (b *browser) submit(base string, body string, testid string, mod func(url.Values, http.Header)) page {
	b.t.Helper()
	f := htmlform.Parse(b.t, body)
	v := f.Values(b.t, testid)
	action := f.Target(b.t, base)
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set("Accept", "text/html")
	// What Chromium sends for a same-origin form post from a page with
	// Referrer-Policy: no-referrer: an opaque Origin, and fetch metadata.
	h.Set("Origin", "null")
	h.Set("Sec-Fetch-Site", "same-origin")
	if mod != nil {
		mod(v, h)
	}
	req, err := http.NewRequest(http.MethodPost, action, strings.NewReader(v.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header = h
	return b.do(req)
}

// consent opens a session and returns its consent page (the picker is
// skipped for one provider).
func (b *browser) consent(res *wire.ConnectSessionResponse) (string, page) {
	b.t.Helper()
	next := b.open(res.ConnectURL, "popup")
	p := b.get(next)
	if p.status != http.StatusOK || !strings.Contains(p.body, `data-testid="connect-consent"`) {
		b.t.Fatalf("consent page %s: %d\n%s", next, p.status, p.body)
	}
	return b.w.url + next, p
}

// authorizeAtDemo approves at Latchkey's consent screen, then plays the
// user at the demo provider (login as user, then decision) and returns the
// callback URL the provider sends the browser back to.
func (b *browser) authorizeAtDemo(consentURL string, consent page, user, decision string) string {
	b.t.Helper()
	p := b.submit(consentURL, consent.body, "connect-approve", nil)
	if p.status != http.StatusFound {
		b.t.Fatalf("approve: %d\n%s", p.status, p.body)
	}
	authURL := p.location(b.t)
	if !strings.HasPrefix(authURL.String(), b.w.demoURL+"/demo/oauth/authorize?") {
		b.t.Fatalf("approve redirected to %s, want the demo's authorize endpoint", authURL.Redacted())
	}
	p = b.get(authURL.String())
	if p.status != http.StatusOK {
		b.t.Fatalf("demo login: %d\n%s", p.status, p.body)
	}
	p = b.submit(authURL.String(), p.body, "demo-user-"+user, nil)
	p = b.submit(authURL.String(), p.body, "demo-"+decision, nil)
	if p.status != http.StatusSeeOther {
		b.t.Fatalf("demo decision: %d\n%s", p.status, p.body)
	}
	cb := p.location(b.t)
	if got := cb.Scheme + "://" + cb.Host + cb.Path; got != b.w.url+oauth.CallbackPath {
		b.t.Fatalf("the provider sent the browser to %s", got)
	}
	return cb.String()
}

var resultBlock = regexp.MustCompile(`<script id="connect-result" type="application/json">([^<]*)</script>`)

// result reads the data block connect-popup.js posts from.
func result(t *testing.T, p page) views.ResultData {
	t.Helper()
	m := resultBlock.FindAllStringSubmatch(p.body, -1)
	if len(m) != 1 {
		t.Fatalf("want one connect-result data block, found %d:\n%s", len(m), p.body)
	}
	var d views.ResultData
	if err := json.Unmarshal([]byte(m[0][1]), &d); err != nil {
		t.Fatalf("data block: %v", err)
	}
	// Whatever the outcome: an exact registered origin, or nothing.
	if d.TargetOrigin != "" && d.TargetOrigin != appOrigin {
		t.Fatalf("target origin %q is not the registered origin", d.TargetOrigin)
	}
	return d
}

// errorCode is the code a Connect error page shows.
var errorCodeRE = regexp.MustCompile(`data-testid="connect-error-code"[^>]*>([^<]*)<`)

func errorCode(t *testing.T, p page) string {
	t.Helper()
	m := errorCodeRE.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("not a Connect error page (%d):\n%s", p.status, p.body)
	}
	return m[1]
}
