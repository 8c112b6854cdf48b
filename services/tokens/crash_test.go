package tokens_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

	"gocloud.dev/secrets/localsecrets"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/catalog"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/oauth"
	"github.com/latchkey/latchkey/services/tokens"
	"github.com/latchkey/latchkey/services/vault"
	"github.com/latchkey/latchkey/testutil"
)

// Environment of the crash helper process.
const (
	envCrashHelper   = "LK_TOKENS_CRASH_HELPER"
	envCrashDB       = "LK_TOKENS_CRASH_DB"
	envCrashKey      = "LK_TOKENS_CRASH_KEY"
	envCrashApp      = "LK_TOKENS_CRASH_APP"
	envCrashCred     = "LK_TOKENS_CRASH_CRED"
	envCrashConfig   = "LK_TOKENS_CRASH_CONFIG"
	envCrashTokenURL = "LK_TOKENS_CRASH_TOKEN_URL"
	envCrashClient   = "LK_TOKENS_CRASH_CLIENT"
	envCrashSecret   = "LK_TOKENS_CRASH_SECRET"
)

// TestCrashHelper is the replica that dies: TestCrashBetweenRotationAndCommit
// runs this test binary again with only this test selected and
// LK_TOKENS_CRASH_HELPER=1. It starts a refresh that never gets its answer
// and is SIGKILLed by the parent. Run on its own, it skips.
func TestCrashHelper(t *testing.T) {
	if os.Getenv(envCrashHelper) != "1" {
		t.Skip("helper process of TestCrashBetweenRotationAndCommit")
	}
	ctx := context.Background()
	db, err := database.Open(ctx, database.Options{URL: os.Getenv(envCrashDB)})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(os.Getenv(envCrashKey))
	if err != nil || len(raw) != 32 {
		t.Fatalf("bad key: %v", err)
	}
	keeper := localsecrets.NewKeeper([32]byte(raw))
	appID, pc := os.Getenv(envCrashApp), os.Getenv(envCrashConfig)
	clients := &fakeClients{db: db.Gorm, configs: map[string]oauth.ClientConfig{pc: {
		ProviderConfigID: pc, AppID: appID, ClientID: os.Getenv(envCrashClient), ClientSecret: os.Getenv(envCrashSecret),
		Status: models.ProviderConfigActive,
		Provider: catalog.Provider{ID: "quirky", TokenURL: os.Getenv(envCrashTokenURL), TokenAuthStyle: catalog.AuthStyleHeader,
			TokensExpire: true, RefreshTokenRotates: true},
	}}}
	svc := tokens.New(db.Gorm, vault.New(db.Gorm, keeper), clients, &http.Client{}, audit.New(db.Gorm, nil), nil)
	_, err = svc.AccessToken(ctx, appID, os.Getenv(envCrashCred), false)
	t.Fatalf("the refresh returned (%v); the parent should have killed this process first", err)
}

// TestCrashBetweenRotationAndCommit kills a real process between the
// provider's rotation and the commit of the new pair: a helper process
// claims the refresh (in_flight, committed) and sends it through a front
// that forwards it to the quirky provider — which rotates, retiring the
// stored refresh token — and then withholds the answer until the helper
// has been SIGKILLed. A fresh replica must then detect the interrupted
// refresh and move the grants to needs_reauth without presenting the dead
// refresh token.
func TestCrashBetweenRotationAndCommit(t *testing.T) {
	for _, dialect := range testutil.Dialects(t) {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			dbURL := testutil.NewDatabaseURL(t, dialect)
			db, err := database.Open(ctx, database.Options{URL: dbURL})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			m, err := database.NewMigrator(db)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.Up(ctx); err != nil {
				t.Fatal(err)
			}
			w := newWorld(t, db)
			old, id, gids := w.issued(-time.Minute)

			rotated := make(chan int, 1)
			hold := make(chan struct{})
			front := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				req, _ := http.NewRequest(http.MethodPost, w.provider.TokenURL(), bytes.NewReader(body))
				req.Header.Set("Content-Type", r.Header.Get("Content-Type"))
				req.Header.Set("Authorization", r.Header.Get("Authorization"))
				resp, err := w.provider.Client().Do(req)
				status := 0
				if err == nil {
					status = resp.StatusCode
					_ = resp.Body.Close()
				}
				rotated <- status
				// The answer never reaches the helper.
				select {
				case <-hold:
				case <-r.Context().Done():
				}
			}))
			t.Cleanup(front.Close)
			t.Cleanup(func() { close(hold) }) // runs before front.Close

			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(),
				envCrashHelper+"=1", envCrashDB+"="+dbURL, envCrashKey+"="+base64.StdEncoding.EncodeToString(w.key[:]),
				envCrashApp+"="+w.app, envCrashCred+"="+id, envCrashConfig+"="+w.pc, envCrashTokenURL+"="+front.URL,
				envCrashClient+"="+w.provider.ClientID(), envCrashSecret+"="+w.provider.ClientSecret())
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
			})

			select {
			case status := <-rotated:
				if status != http.StatusOK {
					t.Fatalf("the provider answered the helper's refresh with %d", status)
				}
			case err := <-exited:
				t.Fatalf("helper exited before refreshing (%v):\n%s", err, out.String())
			case <-time.After(60 * time.Second):
				t.Fatalf("helper never refreshed:\n%s", out.String())
			}
			// Recorded before the provider call, not committed after it.
			if c := w.row(id); c.RefreshState != models.RefreshInFlight || c.RefreshStartedAt == nil || c.Version != 1 {
				t.Fatalf("row while the helper waits: state %s, version %d", c.RefreshState, c.Version)
			}
			if w.provider.RefreshTokenValid(old.RefreshToken) {
				t.Fatal("the provider did not rotate the refresh token")
			}
			if err := cmd.Process.Kill(); err != nil { // SIGKILL: no deferred cleanup runs
				t.Fatal(err)
			}
			<-exited

			// A fresh replica, once the refresh has gone stale.
			w.clock.Advance(tokens.DefaultStaleAfter + time.Second)
			svc := w.service(nil)
			_, err = svc.AccessToken(ctx, w.app, id, false)
			wantCode(t, err, wire.CodeReauthRequired)
			for _, gid := range gids {
				if g := w.grantRow(gid); g.Status != models.GrantNeedsReauth {
					t.Fatalf("grant status %s, want needs_reauth", g.Status)
				}
			}
			if got := w.refreshCalls(); got != 1 {
				t.Fatalf("refresh calls = %d, want only the helper's", got)
			}
			if w.provider.ReuseDetected() != 0 {
				t.Fatal("the dead refresh token was presented after the crash")
			}
			if c := w.row(id); c.RefreshState != models.RefreshIdle || c.LastRefreshError == "" {
				t.Fatalf("row after recovery: state %s, error %q", c.RefreshState, c.LastRefreshError)
			}
		})
	}
}
