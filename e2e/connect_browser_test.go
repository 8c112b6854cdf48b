package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/latchkey/latchkey/config"
	"github.com/latchkey/latchkey/handlers/demo"
	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/server"
	"github.com/latchkey/latchkey/services/agents"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/catalog"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/oauth"
	"github.com/latchkey/latchkey/services/tenancy"
	"github.com/latchkey/latchkey/testutil/testserver"
)

const (
	browserDemoProvider = "demo-calendar"
	browserClientID     = "latchkey-browser-test"
	browserClientSecret = "browser-test-client-secret"
)

// connectStage is a real Latchkey on its own loopback origin, the demo OAuth
// provider on a second origin, and a host app on a third: the three parties
// of a Connect in a browser.
type connectStage struct {
	lkURL   string
	hostURL string
	core    *server.Core
	app     *sdk.App
	appID   string
	agent   agents.Created
	demo    *demo.Server
	// sessionReq is what the host backend asks Latchkey for.
	sessionReq func() wire.ConnectSessionRequest
	// afterMint, when set, runs on each minted session before the host
	// page gets its token.
	afterMint func(sessionID string)
}

func newConnectStage(t *testing.T, launcher string) *connectStage {
	t.Helper()
	st := &connectStage{}
	lkLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st.lkURL = "http://" + lkLn.Addr().String()

	demoSrv := httptest.NewUnstartedServer(nil)
	st.demo, err = demo.New(demo.Options{
		BaseURL:      "http://" + demoSrv.Listener.Addr().String() + "/demo",
		OAuthClients: []demo.Client{{ID: browserClientID, Secret: browserClientSecret, RedirectURIs: []string{st.lkURL + oauth.CallbackPath}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/demo/", http.StripPrefix("/demo", st.demo.Handler()))
	demoSrv.Config.Handler = mux
	demoSrv.Start()
	t.Cleanup(demoSrv.Close)

	st.core = testserver.NewCore(t, database.SQLite, testserver.Options{Env: map[string]string{
		config.EnvPublicURL:             st.lkURL,
		config.EnvAllowPrivateUpstreams: "true",
	}})
	srv, err := server.New(st.core)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lkLn) }()
	t.Cleanup(func() { cancel(); <-done })

	host := httptest.NewServer(st.hostHandler(t, launcher))
	t.Cleanup(host.Close)
	st.hostURL = host.URL

	bg := context.Background()
	seed := testserver.NewSeed(t, st.core)
	app, key := seed.App("")
	st.appID = app.ID
	actor := apikeys.Actor{Kind: "system", ID: "browser-test"}
	if err := st.core.Tenancy.SetURLs(bg, app.ID, tenancy.URLs{Origins: []string{st.hostURL}, ReturnURLs: []string{st.hostURL + "/connected"}}, actor); err != nil {
		t.Fatal(err)
	}
	ep := st.demo.OAuthEndpoints()
	if _, err := st.core.OAuth.Configure(bg, oauth.ConfigureInput{
		AppID: app.ID, Provider: browserDemoProvider, ClientID: browserClientID, ClientSecret: browserClientSecret,
		Scopes: []string{demo.ScopeCalendarRead}, Actor: actor,
		Custom: &catalog.CustomDefinition{Name: "Demo Calendar", AuthorizeURL: ep.AuthorizeURL, TokenURL: ep.TokenURL,
			UserinfoURL: ep.UserinfoURL, IDField: "id", DisplayField: "email", RevokeURL: ep.RevokeURL,
			APIHosts: []string{ep.APIHost}, AllowInsecure: true},
	}); err != nil {
		t.Fatal(err)
	}
	// A second provider makes the picker appear.
	if _, err := st.core.OAuth.Configure(bg, oauth.ConfigureInput{
		AppID: app.ID, Provider: "github", ClientID: "gh", ClientSecret: "gh-secret", Actor: actor}); err != nil {
		t.Fatal(err)
	}
	st.agent = seed.Agent(app.ID, "research-bot")
	if _, err := st.core.DB.Gorm.Model(&models.Agent{}).Where("id = ?", st.agent.Agent.ID).Update("display_name", "Research Bot").Rows(); err != nil {
		t.Fatal(err)
	}
	st.app, err = sdk.NewApp(key.APIKey.Reveal(), sdk.WithBaseURL(st.lkURL))
	if err != nil {
		t.Fatal(err)
	}
	st.sessionReq = func() wire.ConnectSessionRequest {
		return wire.ConnectSessionRequest{
			AllowedProviders: []string{browserDemoProvider, "github"},
			AllowedOrigin:    st.hostURL,
			AgentID:          st.agent.Agent.ID,
			EndUser:          &wire.EndUser{ID: "ada-1", Email: "ada@example.com", DisplayName: "Ada"},
		}
	}
	return st
}

// hostHandler is the app embedding Connect: its backend mints the session
// with the app key; its page opens the popup with the chosen launcher.
func (st *connectStage) hostHandler(t *testing.T, launcher string) http.Handler {
	// The published package comes from the npm registry through make test.
	// Without it the page cannot open the popup, and the test would only
	// say so after its timeout.
	alterConnect := filepath.Join("..", "node_modules", "@alter-ai", "connect", "dist", "alter-connect.umd.js")
	if _, err := os.Stat(alterConnect); launcher == "alter" && err != nil {
		t.Fatalf("@alter-ai/connect is not installed (run make test, which runs npm ci): %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/session", func(w http.ResponseWriter, r *http.Request) {
		res, err := st.app.CreateConnectSession(r.Context(), st.sessionReq())
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if st.afterMint != nil {
			st.afterMint(res.SessionID)
		}
		json.NewEncoder(w).Encode(map[string]string{"session_token": res.SessionToken})
	})
	mux.HandleFunc("/vendor/alter-connect.umd.js", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(alterConnect)
		if err != nil {
			http.Error(w, "run npm ci: "+err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "text/javascript")
		w.Write(b)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		var script, open string
		switch launcher {
		case "alter":
			script = `<script src="/vendor/alter-connect.umd.js"></script>`
			open = `AlterConnect.create().open({token: tok, baseURL: LK,
				onSuccess: function (g) { window.__result = g; },
				onError: function (e) { window.__error = {code: e.code, message: e.message}; },
				onExit: function () { window.__exit = true; }});`
		default:
			script = `<script src="` + st.lkURL + `/static/js/connect.js"></script>`
			open = `LatchkeyConnect.open({sessionToken: tok, baseURL: LK, mode: "popup",
				onSuccess: function (g) { window.__result = g; },
				onError: function (e) { window.__error = {code: e.code, message: e.message}; },
				onClose: function () { window.__exit = true; }});`
		}
		fmt.Fprintf(w, `<!doctype html><html><head><title>Host app</title>%s</head><body>
<button id="connect">Connect calendar</button>
<script>
var LK = %q;
window.__result = null; window.__error = null; window.__exit = false;
document.getElementById("connect").addEventListener("click", function () {
  fetch("/session").then(function (r) { return r.json(); }).then(function (s) {
    var tok = s.session_token;
    %s
  });
});
</script></body></html>`, script, st.lkURL, open)
	})
	return mux
}

// openPopup clicks the host's Connect button and returns a context driving
// the popup window it opens.
func openPopup(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	return openPopupBy(t, ctx, "#connect")
}

// openPopupBy clicks the element sel and returns a context driving the
// Connect popup it opens.
func openPopupBy(t *testing.T, ctx context.Context, sel string) context.Context {
	t.Helper()
	ch := chromedp.WaitNewTarget(ctx, func(info *target.Info) bool { return strings.Contains(info.URL, "/sdk/oauth/connect") })
	step(t, ctx, "click connect", chromedp.Click(chromedp.CSS(sel)))
	var id target.ID
	select {
	case id = <-ch:
	case <-time.After(20 * time.Second):
		t.Fatal("the Connect popup did not open")
	}
	pctx, cancel := chromedp.NewContext(ctx, chromedp.WithTargetID(id))
	t.Cleanup(cancel)
	// Attach once without a timeout; a timeout on the attaching call would
	// bound every later step on the popup.
	if err := chromedp.Do(pctx); err != nil {
		t.Fatalf("attach to the popup: %v", err)
	}
	return pctx
}

// waitJS polls a JavaScript expression in the host page until it is truthy.
func waitJS(t *testing.T, ctx context.Context, expr string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, err := chromedp.Run(sctx, chromedp.Evaluate[string](`(function(){ var v = `+expr+`; return v ? JSON.stringify(v) : ""; })()`))
		cancel()
		if err == nil && v != "" {
			return v
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", expr)
	return ""
}

func runConnectInBrowser(t *testing.T, launcher string) {
	st := newConnectStage(t, launcher)
	ctx := newBrowser(t)
	step(t, ctx, "open host", chromedp.Navigate(st.hostURL+"/"), chromedp.WaitVisible(chromedp.CSS("#connect")))
	popup := openPopup(t, ctx)

	// Picker (two providers), then consent naming the agent.
	step(t, popup, "picker", chromedp.WaitVisible(chromedp.CSS(`[data-testid="connect-picker"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="connect-provider-`+browserDemoProvider+`"]`)))
	step(t, popup, "consent", chromedp.WaitVisible(chromedp.CSS(`[data-testid="connect-consent"]`)))
	agentText, err := chromedp.Run(popup, chromedp.Text(chromedp.CSS(`[data-testid="connect-agent"]`)))
	if err != nil || !strings.Contains(agentText, "Research Bot") {
		t.Fatalf("consent does not name the agent: %q %v", agentText, err)
	}
	step(t, popup, "approve", chromedp.Click(chromedp.CSS(`[data-testid="connect-approve"]`)))
	// The demo provider: sign in as Ada, approve its consent.
	step(t, popup, "demo login", chromedp.WaitVisible(chromedp.CSS(`[data-testid="demo-user-ada"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="demo-user-ada"]`)))
	step(t, popup, "demo consent", chromedp.WaitVisible(chromedp.CSS(`[data-testid="demo-approve"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="demo-approve"]`)))

	raw := waitJS(t, ctx, "window.__result || window.__error")
	var grants []wire.Grant
	if err := json.Unmarshal([]byte(raw), &grants); err != nil || len(grants) != 1 {
		t.Fatalf("onSuccess did not receive one grant: %s", raw)
	}
	g := grants[0]
	if g.Provider != browserDemoProvider || g.AccountIdentifier == "" || g.GrantID == "" {
		t.Fatalf("grant: %+v", g)
	}

	// The same grant serves a proxied call as the agent it was delegated to.
	agentClient, err := sdk.NewAgent(st.agent.Key.APIKey.Reveal(), sdk.WithBaseURL(st.lkURL))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := agentClient.Proxy(context.Background(), sdk.Request{URL: st.demo.OAuthEndpoints().APIBaseURL + "/calendar/events", GrantID: g.GrantID})
	if err != nil {
		t.Fatalf("proxy as the agent: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get(wire.HeaderProxied) != "true" {
		t.Fatalf("proxied call: %d %s", resp.StatusCode, body)
	}
}

func TestBrowserConnectWithPublishedPackage(t *testing.T) { runConnectInBrowser(t, "alter") }

func TestBrowserConnectWithOwnLauncher(t *testing.T) { runConnectInBrowser(t, "latchkey") }

// The user denies at Latchkey's consent: onError gets access_denied.
func TestBrowserConnectDenied(t *testing.T) {
	for _, launcher := range []string{"alter", "latchkey"} {
		t.Run(launcher, func(t *testing.T) {
			st := newConnectStage(t, launcher)
			ctx := newBrowser(t)
			step(t, ctx, "open host", chromedp.Navigate(st.hostURL+"/"), chromedp.WaitVisible(chromedp.CSS("#connect")))
			popup := openPopup(t, ctx)
			step(t, popup, "picker", chromedp.WaitVisible(chromedp.CSS(`[data-testid="connect-picker"]`)),
				chromedp.Click(chromedp.CSS(`[data-testid="connect-provider-`+browserDemoProvider+`"]`)))
			step(t, popup, "deny", chromedp.WaitVisible(chromedp.CSS(`[data-testid="connect-deny"]`)),
				chromedp.Click(chromedp.CSS(`[data-testid="connect-deny"]`)))
			raw := waitJS(t, ctx, "window.__error || window.__result")
			if !strings.Contains(raw, "access_denied") {
				t.Fatalf("onError: %s", raw)
			}
		})
	}
}

// A session that expired before the popup opened ends in onError with the
// stable code.
func TestBrowserConnectExpiredSession(t *testing.T) {
	st := newConnectStage(t, "alter")
	// The session expires before the popup opens (the browser got there
	// too late).
	st.afterMint = func(id string) {
		st.core.DB.Gorm.Model(&models.ConnectSession{}).Where("id = ?", id).Update("expires_at", time.Now().Add(-time.Minute))
	}
	ctx := newBrowser(t)
	step(t, ctx, "open host", chromedp.Navigate(st.hostURL+"/"), chromedp.WaitVisible(chromedp.CSS("#connect")))
	// The popup shows the error, posts it and closes itself: the host's
	// onError is what the app sees.
	step(t, ctx, "click connect", chromedp.Click(chromedp.CSS("#connect")))
	raw := waitJS(t, ctx, "window.__error || window.__result")
	if !strings.Contains(raw, "connect_session_expired") {
		t.Fatalf("onError: %s", raw)
	}
}
