package grants_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/grants"
	"github.com/latchkey/latchkey/testutil"
)

// BenchmarkResolve measures the hot path: an app key with an end user
// resolving by provider, on SQLite, among 2,000 other users' grants.
func BenchmarkResolve(b *testing.B) {
	w := newWorld(b, testutil.NewDB(b, database.SQLite))
	gh := w.providerConfig(w.app, "github", models.ProviderConfigActive)
	w.providerConfig(w.app, "linear", models.ProviderConfigActive)
	for i := range 2000 {
		u := w.endUser(w.app, fmt.Sprintf("user-%d", i), models.EndUserActive)
		cred := w.oauthCredential(w.app, gh, fmt.Sprintf("acct-%d", i), "token", nil)
		w.grant(gspec{cred: cred, kind: models.PrincipalUser, principal: u, provider: "github", account: fmt.Sprintf("acct-%d", i)})
	}
	me := w.endUser(w.app, "me", models.EndUserActive)
	cred := w.oauthCredential(w.app, gh, "me-gh", "token", nil)
	want := w.grant(gspec{cred: cred, kind: models.PrincipalUser, principal: me, provider: "github", account: "me-gh"})
	user := &grants.EndUser{ID: me, AppID: w.app, Subject: "me", Groups: []string{"eng", "ops", "all"}, Status: models.EndUserActive}
	in := grants.ResolveInput{Caller: w.appKey(), EndUser: user, Provider: "github"}
	ctx := context.Background()

	b.ReportAllocs()
	for b.Loop() {
		r, err := w.svc.Resolve(ctx, in)
		if err != nil || r.Grant.ID != want {
			b.Fatalf("resolve: %v", err)
		}
	}
}
