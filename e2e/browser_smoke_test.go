package e2e

import (
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/testutil/testserver"
)

// The landing page renders in a real browser with its stylesheet applied
// and no script blocked by the CSP.
func TestBrowserRendersLanding(t *testing.T) {
	ctx := newBrowser(t)
	srv := testserver.Start(t, testserver.NewCore(t, database.SQLite, testserver.Options{}))
	step(t, ctx, "open landing", chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS(`[data-testid="landing"]`)))
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil || title == "" {
		t.Fatalf("title %q: %v", title, err)
	}
}
