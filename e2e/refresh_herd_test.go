package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/config"
	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk"
	"github.com/latchkey/latchkey/server"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/catalog"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/oauth"
	"github.com/latchkey/latchkey/services/password"
	"github.com/latchkey/latchkey/services/tenancy"
	"github.com/latchkey/latchkey/testutil"
	"github.com/latchkey/latchkey/testutil/quirkyprovider"
)

// The refresh herd (DESIGN.md §6): 500 concurrent proxied calls on an
// expired access token, spread over two latchkey processes sharing one
// PostgreSQL, make exactly one refresh request reach the provider, and every
// call succeeds with the new token.
func TestRefreshHerdAcrossTwoProcesses(t *testing.T) {
	if !contains(strings.Join(testutil.Dialects(t), ","), database.Postgres) {
		t.Skip("PostgreSQL not reachable; the herd test needs it (CI runs it)")
	}
	qp := quirkyprovider.New(t)
	qp.SetRotation(true)
	qp.SetReuseDetection(true)
	// A slow token endpoint keeps the refresh in flight while the herd arrives.
	qp.SetTokenDelay(300 * time.Millisecond)

	keyBytes := make([]byte, 32)
	_, _ = rand.Read(keyBytes)
	env := map[string]string{
		config.EnvDatabaseURL:           testutil.NewDatabaseURL(t, database.Postgres),
		config.EnvKeeperURL:             "base64key://" + base64.URLEncoding.EncodeToString(keyBytes),
		config.EnvAllowPrivateUpstreams: "true",
		config.EnvLogFormat:             "json",
	}

	appKey, grantID := seedExpiredOAuthGrant(t, env, qp)

	// Two replicas on one database.
	var procs []*proc
	for i := 0; i < 2; i++ {
		e := map[string]string{config.EnvDataDir: t.TempDir()}
		for k, v := range env {
			e[k] = v
		}
		procs = append(procs, startLatchkey(t, e, "serve"))
	}

	const calls = 500
	var wg sync.WaitGroup
	errs := make(chan error, calls)
	bodies := make(chan string, calls)
	for i := 0; i < calls; i++ {
		p := procs[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := http.DefaultTransport.(*http.Transport).Clone()
			app, err := sdk.NewApp(appKey, sdk.WithBaseURL(p.URL), sdk.WithHTTPClient(&http.Client{Transport: tr}))
			if err != nil {
				errs <- err
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			resp, err := app.Proxy(ctx, sdk.Request{URL: qp.APIURL() + "/whoami", GrantID: grantID})
			if err != nil {
				errs <- err
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- fmt.Errorf("upstream status %d: %s", resp.StatusCode, b)
				return
			}
			bodies <- string(b)
		}()
	}
	wg.Wait()
	close(errs)
	close(bodies)
	n := 0
	for err := range errs {
		if n < 5 {
			t.Errorf("call failed: %v", err)
		}
		n++
	}
	if n > 0 {
		t.Fatalf("%d of %d calls failed", n, calls)
	}
	if got := qp.TokenCallsFor("refresh_token"); got != 1 {
		t.Fatalf("%d refresh requests reached the provider, want exactly 1", got)
	}
	if qp.ReuseDetected() != 0 {
		t.Fatal("a rotated refresh token was reused")
	}
	count := 0
	for range bodies {
		count++
	}
	if count != calls {
		t.Fatalf("%d successful bodies, want %d", count, calls)
	}
	for _, p := range procs {
		p.Stop()
	}
}

// seedExpiredOAuthGrant configures the quirky provider as a custom provider
// of a new app, stores a system grant whose access token Latchkey believes
// expired, and returns an app key and the grant id.
func seedExpiredOAuthGrant(t *testing.T, env map[string]string, qp *quirkyprovider.Provider) (string, string) {
	t.Helper()
	ctx := context.Background()
	e := map[string]string{config.EnvDataDir: t.TempDir()}
	for k, v := range env {
		e[k] = v
	}
	cfg, err := config.Load(func(k string) string { return e[k] }, false)
	if err != nil {
		t.Fatal(err)
	}
	core, err := server.Open(ctx, cfg, testutil.DiscardLogger(), server.CoreOptions{
		PasswordParams: password.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}})
	if err != nil {
		t.Fatal(err)
	}
	defer core.Close()
	boot, err := core.Tenancy.Bootstrap(ctx, tenancy.BootstrapInput{Org: "Herd", App: "herd", OperatorEmail: "herd@latchkey.test"})
	if err != nil {
		t.Fatal(err)
	}
	actor := apikeys.Actor{Kind: "system", ID: "test"}
	host := strings.TrimPrefix(qp.URL(), "http://")
	conf, err := core.OAuth.Configure(ctx, oauth.ConfigureInput{
		AppID: boot.AppID, Provider: "quirky", ClientID: qp.ClientID(), ClientSecret: qp.ClientSecret(), Actor: actor,
		Custom: &catalog.CustomDefinition{ID: "quirky", AuthorizeURL: qp.AuthorizeURL(), TokenURL: qp.TokenURL(),
			UserinfoURL: qp.UserinfoURL(), APIHosts: []string{host}, AllowInsecure: true},
	})
	if err != nil {
		t.Fatalf("configure: %v", err)
	}
	initial := qp.IssueInitial("herd-user")
	past := time.Now().Add(-time.Minute)
	saved, err := core.OAuth.Save(ctx, oauth.SaveInput{
		Connected: oauth.Connected{AppID: boot.AppID, ProviderConfigID: conf.ProviderConfigID, Provider: "quirky",
			AccountIdentifier: "herd-user", AccessToken: initial.AccessToken, RefreshToken: initial.RefreshToken,
			TokenType: "Bearer", ExpiresAt: &past},
		PrincipalKind: models.PrincipalSystem, Actor: actor,
	})
	if err != nil {
		t.Fatalf("save: %v", err)
	}
	return boot.AppKey.APIKey.Reveal(), saved.Grant.ID
}
