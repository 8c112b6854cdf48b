package e2e

import (
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// What `make run` walks a newcomer through, end to end: the binary serves
// the demo; in a real browser the demo host app opens the Connect popup,
// the consent names the demo agent, the demo provider signs Ada in; the page
// shows the grant; `latchkey request` then calls the demo calendar API
// through Latchkey with that grant, as the app and as the agent.
func TestDemoWalkthroughConnectThenCall(t *testing.T) {
	ctx := newBrowser(t)
	env := map[string]string{"LATCHKEY_DATA_DIR": t.TempDir(), "LATCHKEY_LOG_FORMAT": "json"}
	p := startLatchkey(t, env, "serve", "--demo")
	out := p.Stdout()
	appKey := regexp.MustCompile(`lk_app_[a-z0-9]{16}_[A-Za-z0-9]{43}`).FindString(out)
	agentKey := regexp.MustCompile(`lk_agent_[a-z0-9]{16}_[A-Za-z0-9]{43}`).FindString(out)
	if appKey == "" || agentKey == "" || !strings.Contains(out, p.URL+"/demo/host") {
		t.Fatalf("the walkthrough is not printed:\n%s", out)
	}

	step(t, ctx, "open host app", chromedp.Navigate(p.URL+"/demo/host/"),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="demo-host-connect"]`)))
	popup := openPopupBy(t, ctx, `[data-testid="demo-host-connect"]`)
	// One provider: no picker, straight to consent, which names the agent.
	step(t, popup, "consent", chromedp.WaitVisible(chromedp.CSS(`[data-testid="connect-consent"]`)))
	agentText, err := chromedp.Run(popup, chromedp.Text(chromedp.CSS(`[data-testid="connect-agent"]`)))
	if err != nil || !strings.Contains(agentText, "Calendar Assistant") {
		t.Fatalf("consent does not name the demo agent: %q %v", agentText, err)
	}
	step(t, popup, "approve", chromedp.Click(chromedp.CSS(`[data-testid="connect-approve"]`)))
	step(t, popup, "demo login", chromedp.WaitVisible(chromedp.CSS(`[data-testid="demo-user-ada"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="demo-user-ada"]`)))
	step(t, popup, "demo consent", chromedp.WaitVisible(chromedp.CSS(`[data-testid="demo-approve"]`)),
		chromedp.Click(chromedp.CSS(`[data-testid="demo-approve"]`)))
	step(t, ctx, "grant shown", chromedp.WaitVisible(chromedp.CSS(`[data-testid="demo-host-result"]`)))
	grantID, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`[data-testid="demo-host-grant-id"]`)))
	if err != nil || len(grantID) != 36 {
		t.Fatalf("grant id on the page: %q %v", grantID, err)
	}

	events := p.URL + "/demo/api/calendar/events"
	for _, key := range []string{appKey, agentKey} {
		stdout, stderr, code := runLatchkey(t, map[string]string{"LATCHKEY_API_KEY": key, "LATCHKEY_PUBLIC_URL": p.URL},
			"request", "--grant", grantID, events)
		if code != 0 || !strings.Contains(stderr, "200") || !strings.Contains(stdout, "events") {
			t.Fatalf("latchkey request as %s: exit %d\nstdout: %s\nstderr: %s", key[:9], code, stdout, stderr)
		}
	}
	p.Stop()
}
