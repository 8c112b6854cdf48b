package tokens_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/catalog"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/oauth"
	"github.com/latchkey/latchkey/services/tokens"
	"github.com/latchkey/latchkey/testutil"
	"github.com/latchkey/latchkey/testutil/quirkyprovider"
)

func TestRefreshBeforeExpiry(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		svc := w.service(nil)
		old, id, _ := w.issued(2 * time.Minute) // inside the 5-minute margin
		tok, err := svc.AccessToken(context.Background(), w.app, id, false)
		if err != nil {
			t.Fatal(err)
		}
		if tok.Value == old.AccessToken || !w.provider.AccessTokenValid(tok.Value) {
			t.Fatalf("want a new, valid access token")
		}
		if got := w.refreshCalls(); got != 1 {
			t.Fatalf("refresh calls = %d, want 1", got)
		}
		c := w.row(id)
		if c.Version != 2 || tok.Version != 2 || c.RefreshState != models.RefreshIdle || c.RefreshFailures != 0 {
			t.Fatalf("row after refresh: version %d (token %d), state %s, failures %d", c.Version, tok.Version, c.RefreshState, c.RefreshFailures)
		}
		if w.storedAccess(id) != tok.Value {
			t.Fatal("the returned token is not the committed one")
		}
		// The provider rotated: the stored refresh token is the new one.
		if rt := w.storedRefresh(id); rt == old.RefreshToken || !w.provider.RefreshTokenValid(rt) {
			t.Fatal("the rotated refresh token was not stored")
		}
		want := w.clock.Now().Add(quirkyprovider.DefaultAccessTTL)
		if c.ExpiresAt == nil || c.ExpiresAt.Sub(want).Abs() > 5*time.Second {
			t.Fatalf("expires_at %v, want about %v", c.ExpiresAt, want)
		}
		if c.NextRefreshAt == nil || c.ExpiresAt.Sub(*c.NextRefreshAt) != tokens.DefaultMargin {
			t.Fatalf("next_refresh_at %v, want the margin before %v", c.NextRefreshAt, c.ExpiresAt)
		}
		evs := w.auditActions(tokens.ActionTokenRefresh)
		if len(evs) != 1 || evs[0].Outcome != models.OutcomeSuccess || evs[0].Provider != "quirky" || evs[0].OrganizationID != w.org {
			t.Fatalf("audit rows %+v", evs)
		}
		// Tokens never reach the audit trail.
		for _, s := range []string{old.AccessToken, old.RefreshToken, tok.Value} {
			if strings.Contains(fmt.Sprintf("%+v", evs), s) {
				t.Fatal("a token reached an audit row")
			}
		}
		// The new token is fresh: no second refresh.
		again, err := svc.AccessToken(context.Background(), w.app, id, false)
		if err != nil || again.Value != tok.Value || w.refreshCalls() != 1 {
			t.Fatalf("second call: err %v, same token %v, calls %d", err, again.Value == tok.Value, w.refreshCalls())
		}
	})
}

func TestNoRefreshWhenFresh(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		svc := w.service(nil)
		old, id, _ := w.issued(time.Hour)
		tok, err := svc.AccessToken(context.Background(), w.app, id, false)
		if err != nil {
			t.Fatal(err)
		}
		if tok.Value != old.AccessToken || tok.Version != 1 || w.provider.TokenCalls() != 0 {
			t.Fatalf("fresh token: got a different token or %d token calls", w.provider.TokenCalls())
		}
		// A token that never expires is never refreshed.
		id2, _ := w.credential(cred{access: "at_forever", refresh: "rt_forever", noExpiry: true})
		tok, err = svc.AccessToken(context.Background(), w.app, id2, false)
		if err != nil || tok.Value != "at_forever" || tok.ExpiresAt != nil || w.provider.TokenCalls() != 0 {
			t.Fatalf("non-expiring token: %v %v", tok, err)
		}
	})
}

func TestResponseWithoutRefreshTokenKeepsTheOldOne(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		w.provider.SetOmitRefreshToken(true)
		svc := w.service(nil)
		old, id, _ := w.issued(-time.Minute)
		first, err := svc.AccessToken(context.Background(), w.app, id, false)
		if err != nil {
			t.Fatal(err)
		}
		if w.storedRefresh(id) != old.RefreshToken {
			t.Fatal("the refresh token changed although the response had none")
		}
		// It still works: a forced refresh with it succeeds.
		second, err := svc.ForceAfter(context.Background(), w.app, id, first.Version)
		if err != nil {
			t.Fatal(err)
		}
		if second.Value == first.Value || second.Version != first.Version+1 || w.refreshCalls() != 2 {
			t.Fatalf("forced refresh with the kept refresh token: version %d, calls %d", second.Version, w.refreshCalls())
		}
	})
}

func TestExpiresInQuirks(t *testing.T) {
	tests := []struct {
		name         string
		mode         quirkyprovider.ExpiresIn
		tokensExpire bool
		want         time.Duration // 0: no expiry
	}{
		{"number is trusted", quirkyprovider.ExpiresNumber, true, 2 * time.Hour},
		{"string is parsed", quirkyprovider.ExpiresString, true, 2 * time.Hour},
		{"missing on an expiring provider assumes an hour", quirkyprovider.ExpiresMissing, true, tokens.AssumedLifetime},
		{"missing on a non-expiring provider never expires", quirkyprovider.ExpiresMissing, false, 0},
		{"zero assumes an hour", quirkyprovider.ExpiresZero, true, tokens.AssumedLifetime},
		{"negative assumes an hour", quirkyprovider.ExpiresNegative, true, tokens.AssumedLifetime},
		{"ten years assumes an hour", quirkyprovider.ExpiresTenYears, true, tokens.AssumedLifetime},
	}
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				w := newWorld(t, db, quirkyprovider.WithAccessTTL(2*time.Hour))
				w.provider.SetExpiresIn(tt.mode)
				w.clients.update(w.pc, func(c *oauth.ClientConfig) { c.Provider.TokensExpire = tt.tokensExpire })
				svc := w.service(nil)
				_, id, _ := w.issued(-time.Second)
				tok, err := svc.AccessToken(context.Background(), w.app, id, false)
				if err != nil {
					t.Fatal(err)
				}
				c := w.row(id)
				if tt.want == 0 {
					if c.ExpiresAt != nil || tok.ExpiresAt != nil || c.NextRefreshAt != nil {
						t.Fatalf("expires_at %v, want none", c.ExpiresAt)
					}
					return
				}
				want := w.clock.Now().Add(tt.want)
				if c.ExpiresAt == nil || c.ExpiresAt.Sub(want).Abs() > 5*time.Second {
					t.Fatalf("expires_at %v, want about %v", c.ExpiresAt, want)
				}
				if tok.ExpiresAt == nil || !tok.ExpiresAt.Equal(*c.ExpiresAt) {
					t.Fatalf("token expiry %v differs from the row's %v", tok.ExpiresAt, c.ExpiresAt)
				}
			})
		}
	})
}

func TestShortLivedTokenIsNotRefreshedOnEveryUse(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db, quirkyprovider.WithAccessTTL(2*time.Minute)) // shorter than the margin
		svc := w.service(nil)
		_, id, _ := w.issued(-time.Second)
		if _, err := svc.AccessToken(context.Background(), w.app, id, false); err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, err := svc.AccessToken(context.Background(), w.app, id, false); err != nil {
				t.Fatal(err)
			}
		}
		if got := w.refreshCalls(); got != 1 {
			t.Fatalf("refresh calls = %d, want 1: a token shorter than the margin is refreshed at half its life", got)
		}
		w.clock.Advance(61 * time.Second)
		if _, err := svc.AccessToken(context.Background(), w.app, id, false); err != nil {
			t.Fatal(err)
		}
		if got := w.refreshCalls(); got != 2 {
			t.Fatalf("refresh calls = %d after half the lifetime, want 2", got)
		}
	})
}

func TestInvalidGrantMarksGrantsNeedsReauth(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		svc := w.service(nil)
		old, id, gids := w.issued(-time.Minute)
		g2 := gids[0]
		revoked := w.grant(id, models.GrantRevoked)
		w.provider.RevokeFamilyOf(old.RefreshToken) // the user disconnected at the provider
		_, err := svc.AccessToken(context.Background(), w.app, id, false)
		wantCode(t, err, wire.CodeReauthRequired)
		if g := w.grantRow(g2); g.Status != models.GrantNeedsReauth {
			t.Fatalf("grant status %s, want needs_reauth", g.Status)
		}
		if g := w.grantRow(revoked); g.Status != models.GrantRevoked {
			t.Fatalf("a revoked grant became %s", g.Status)
		}
		c := w.row(id)
		if c.RefreshState != models.RefreshIdle || c.LastRefreshError == "" || c.Version != 1 {
			t.Fatalf("row: state %s, error %q, version %d", c.RefreshState, c.LastRefreshError, c.Version)
		}
		if evs := w.auditActions(tokens.ActionGrantNeedsReauth); len(evs) != 1 || evs[0].GrantID != g2 {
			t.Fatalf("needs_reauth audit rows %+v", evs)
		}
		// Nobody may use the credential now: no further provider calls.
		_, err = svc.AccessToken(context.Background(), w.app, id, false)
		wantCode(t, err, wire.CodeReauthRequired)
		if got := w.refreshCalls(); got != 1 {
			t.Fatalf("refresh calls = %d, want 1", got)
		}
	})
}

func TestExpiredTokenWithoutRefreshTokenNeedsReauth(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		svc := w.service(nil)
		id, gids := w.credential(cred{access: "at_old", expiresIn: -time.Minute})
		_, err := svc.AccessToken(context.Background(), w.app, id, false)
		wantCode(t, err, wire.CodeReauthRequired)
		if g := w.grantRow(gids[0]); g.Status != models.GrantNeedsReauth {
			t.Fatalf("grant status %s", g.Status)
		}
		// Unexpired but due: served as it is.
		id2, _ := w.credential(cred{access: "at_soon", expiresIn: time.Minute})
		if tok, err := svc.AccessToken(context.Background(), w.app, id2, false); err != nil || tok.Value != "at_soon" {
			t.Fatalf("due token without refresh token: %v %v", tok, err)
		}
		if w.provider.TokenCalls() != 0 {
			t.Fatal("the provider was called without a refresh token")
		}
	})
}

func TestTransientFailureKeepsUnexpiredTokenWorking(t *testing.T) {
	tests := []struct {
		name      string
		fault     quirkyprovider.Fault
		minWait   time.Duration
		oauthCode string
	}{
		{"503", quirkyprovider.ServerError(http.StatusServiceUnavailable), tokens.DefaultBackoffBase, ""},
		{"429 with Retry-After", quirkyprovider.RateLimited("600"), 10 * time.Minute, ""},
		{"400 invalid_request", quirkyprovider.Fault{Status: 400, Error: "invalid_request"}, tokens.DefaultBackoffBase, "invalid_request"},
	}
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				w := newWorld(t, db)
				svc := w.service(nil)
				old, id, gids := w.issued(2 * time.Minute)
				w.provider.FailNext(1, tt.fault)
				tok, err := svc.AccessToken(context.Background(), w.app, id, false)
				if err != nil {
					t.Fatalf("want the old token, got %v", err)
				}
				if tok.Value != old.AccessToken {
					t.Fatal("want the old, still valid token")
				}
				c := w.row(id)
				if c.RefreshFailures != 1 || c.NextRefreshAt == nil || c.RefreshState != models.RefreshIdle || c.LastRefreshError == "" {
					t.Fatalf("row: failures %d, next %v, state %s, error %q", c.RefreshFailures, c.NextRefreshAt, c.RefreshState, c.LastRefreshError)
				}
				if wait := c.NextRefreshAt.Sub(w.clock.Now()); wait < tt.minWait-2*time.Second {
					t.Fatalf("backoff %v, want at least %v", wait, tt.minWait)
				}
				if g := w.grantRow(gids[0]); g.Status != models.GrantActive {
					t.Fatalf("a transient failure changed the grant to %s", g.Status)
				}
				evs := w.auditActions(tokens.ActionTokenRefresh)
				if len(evs) != 1 || evs[0].Outcome != models.OutcomeUpstreamError || evs[0].UpstreamStatus != tt.fault.Status {
					t.Fatalf("audit %+v", evs)
				}
				// During the backoff the old token is served without calls.
				if tok, err := svc.AccessToken(context.Background(), w.app, id, false); err != nil || tok.Value != old.AccessToken {
					t.Fatalf("during backoff: %v", err)
				}
				if got := w.refreshCalls(); got != 1 {
					t.Fatalf("refresh calls = %d during backoff, want 1", got)
				}
				// After the backoff it refreshes again and recovers.
				w.clock.Advance(tt.minWait + time.Second)
				tok, err = svc.AccessToken(context.Background(), w.app, id, false)
				if err != nil || tok.Value == old.AccessToken {
					t.Fatalf("after backoff: err %v", err)
				}
				if c := w.row(id); c.RefreshFailures != 0 || c.LastRefreshError != "" {
					t.Fatalf("success did not reset the failures: %d %q", c.RefreshFailures, c.LastRefreshError)
				}
			})
		}
	})
}

func TestTransientFailureWithExpiredTokenIsAnError(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		svc := w.service(nil)
		_, id, _ := w.issued(-time.Minute)
		w.provider.FailNext(1, quirkyprovider.ServerError(http.StatusBadGateway))
		_, err := svc.AccessToken(context.Background(), w.app, id, false)
		ce := wantCode(t, err, wire.CodeUpstreamUnreachable)
		if secs, _ := ce.Details["retry_after_seconds"].(int64); secs < int64(tokens.DefaultBackoffBase/time.Second)-1 {
			t.Fatalf("retry_after_seconds %v", ce.Details["retry_after_seconds"])
		}
		// Backoff holds: the next call fails without calling the provider.
		_, err = svc.AccessToken(context.Background(), w.app, id, false)
		wantCode(t, err, wire.CodeUpstreamUnreachable)
		if got := w.refreshCalls(); got != 1 {
			t.Fatalf("refresh calls = %d during backoff, want 1", got)
		}
		w.clock.Advance(tokens.DefaultBackoffBase + time.Second)
		if _, err := svc.AccessToken(context.Background(), w.app, id, false); err != nil {
			t.Fatalf("after backoff: %v", err)
		}
		// A network failure is transient too.
		id2, _ := w.credential(cred{access: "at", refresh: "rt", expiresIn: -time.Minute, pc: w.providerConfig(catalog.Provider{
			ID: "down", TokenURL: "http://127.0.0.1:1/token", TokenAuthStyle: catalog.AuthStyleHeader, TokensExpire: true})})
		_, err = svc.AccessToken(context.Background(), w.app, id2, false)
		wantCode(t, err, wire.CodeUpstreamUnreachable)
		if c := w.row(id2); c.RefreshFailures != 1 || !strings.Contains(c.LastRefreshError, "network") {
			t.Fatalf("network failure recorded as %d %q", c.RefreshFailures, c.LastRefreshError)
		}
	})
}

func TestInvalidClientBreaksTheConfigNotTheGrants(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		svc := w.service(nil)
		_, id, gids := w.issued(-time.Minute)
		w.provider.SetFault(quirkyprovider.InvalidClient())
		_, err := svc.AccessToken(context.Background(), w.app, id, false)
		wantCode(t, err, wire.CodeProviderNotConfigured)
		if b := w.clients.Broken(); len(b) != 1 || b[0] != w.pc {
			t.Fatalf("MarkBroken calls %v, want [%s]", b, w.pc)
		}
		if g := w.grantRow(gids[0]); g.Status != models.GrantActive {
			t.Fatalf("grant became %s; one bad OAuth app must not break users' grants", g.Status)
		}
		// The config is broken now: no more provider calls.
		_, err = svc.AccessToken(context.Background(), w.app, id, false)
		wantCode(t, err, wire.CodeProviderNotConfigured)
		if got := w.refreshCalls(); got != 1 {
			t.Fatalf("refresh calls = %d, want 1", got)
		}
		// A broken config stops refreshing, not using: an unexpired token
		// (due for refresh) keeps being served, from the failing call on.
		old, id2, _ := w.issued(2 * time.Minute)
		w.clients.update(w.pc, func(c *oauth.ClientConfig) { c.Status = models.ProviderConfigActive })
		tok, err := svc.AccessToken(context.Background(), w.app, id2, false)
		if err != nil || tok.Value != old.AccessToken {
			t.Fatalf("unexpired token on invalid_client: %v", err)
		}
		if b := w.clients.Broken(); len(b) != 2 {
			t.Fatalf("MarkBroken calls %v, want a second one", b)
		}
		if tok, err := svc.AccessToken(context.Background(), w.app, id2, false); err != nil || tok.Value != old.AccessToken {
			t.Fatalf("unexpired token with a broken config: %v", err)
		}
		if got := w.refreshCalls(); got != 2 {
			t.Fatalf("refresh calls = %d, want 2", got)
		}
	})
}

func TestClientAuthenticationStyles(t *testing.T) {
	for _, tt := range []struct {
		style catalog.AuthStyle
		want  string
	}{{catalog.AuthStyleHeader, "basic"}, {catalog.AuthStyleParams, "post"}, {catalog.AuthStyleAuto, "basic"}} {
		t.Run(string(tt.style), func(t *testing.T) {
			w := newWorld(t, testutil.NewDB(t, database.SQLite))
			w.clients.update(w.pc, func(c *oauth.ClientConfig) { c.Provider.TokenAuthStyle = tt.style })
			_, id, _ := w.issued(-time.Minute)
			if _, err := w.service(nil).AccessToken(context.Background(), w.app, id, false); err != nil {
				t.Fatal(err)
			}
			reqs := w.provider.TokenRequests()
			if len(reqs) != 1 || reqs[0].ClientAuth != tt.want {
				t.Fatalf("requests %+v, want one with %s client authentication", reqs, tt.want)
			}
		})
	}
}

// TestJSONBodyAndResponseRoot covers providers that take JSON token
// requests and nest the tokens (Slack's authed_user), with client
// authentication in the body and a separate refresh URL (Figma).
func TestJSONBodyAndResponseRoot(t *testing.T) {
	var mu sync.Mutex
	var got map[string]string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/refresh" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request shape", http.StatusBadRequest)
			return
		}
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		_ = json.Unmarshal(body, &got)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"ok":true,"authed_user":{"access_token":"at_new","refresh_token":"rt_new","expires_in":"7200","token_type":"user"}}`)
	}))
	t.Cleanup(srv.Close)
	w := newWorld(t, testutil.NewDB(t, database.SQLite))
	pc := w.providerConfig(catalog.Provider{ID: "jsony", TokenURL: srv.URL + "/token", RefreshURL: srv.URL + "/refresh",
		TokenAuthStyle: catalog.AuthStyleParams, TokenBodyFormat: catalog.BodyJSON, TokenResponseRoot: "authed_user",
		TokensExpire: true})
	id, _ := w.credential(cred{pc: pc, access: "at_old", refresh: "rt_old", expiresIn: -time.Minute})
	tok, err := w.service(nil).AccessToken(context.Background(), w.app, id, false)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Value != "at_new" || tok.Type != "user" || w.storedRefresh(id) != "rt_new" {
		t.Fatalf("token %v, refresh stored %v", tok, w.storedRefresh(id) == "rt_new")
	}
	if exp := w.row(id).ExpiresAt; exp == nil || exp.Sub(w.clock.Now().Add(2*time.Hour)).Abs() > 5*time.Second {
		t.Fatalf("expires_at %v, want two hours", exp)
	}
	mu.Lock()
	defer mu.Unlock()
	if got["grant_type"] != "refresh_token" || got["refresh_token"] != "rt_old" || got["client_id"] != w.provider.ClientID() ||
		got["client_secret"] != w.provider.ClientSecret() {
		t.Fatalf("JSON body fields: grant_type %q, client_id %q", got["grant_type"], got["client_id"])
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	var hits atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(target.Close)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirect.Close)
	w := newWorld(t, testutil.NewDB(t, database.SQLite))
	pc := w.providerConfig(catalog.Provider{ID: "redirecty", TokenURL: redirect.URL, TokenAuthStyle: catalog.AuthStyleHeader})
	id, _ := w.credential(cred{pc: pc, access: "at", refresh: "rt", expiresIn: -time.Minute})
	_, err := w.service(nil).AccessToken(context.Background(), w.app, id, false)
	wantCode(t, err, wire.CodeUpstreamUnreachable)
	if hits.Load() != 0 {
		t.Fatal("the refresh request (client secret, refresh token) followed a redirect")
	}
}

func TestForcedRefreshHappensOnceForConcurrentForcers(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		svc := w.service(nil)
		_, id, _ := w.issued(time.Hour)
		ctx := context.Background()
		seen, err := svc.AccessToken(ctx, w.app, id, false)
		if err != nil {
			t.Fatal(err)
		}
		gate := make(chan struct{})
		w.provider.SetTokenGate(gate)
		const n = 50
		results := make(chan tokens.Token, n)
		errc := make(chan error, n)
		for range n {
			go func() {
				tok, err := svc.ForceAfter(ctx, w.app, id, seen.Version) // 50 upstream 401s
				if err != nil {
					errc <- err
					return
				}
				results <- tok
			}()
		}
		waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := w.provider.AwaitBlocked(waitCtx, 1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // let the rest pile up behind the flight
		close(gate)
		var first tokens.Token
		for i := range n {
			select {
			case err := <-errc:
				t.Fatal(err)
			case tok := <-results:
				if i == 0 {
					first = tok
				}
				if tok.Value != first.Value || tok.Version != seen.Version+1 {
					t.Fatalf("forcer %d got version %d / another token", i, tok.Version)
				}
			}
		}
		if got := w.refreshCalls(); got != 1 {
			t.Fatalf("refresh calls = %d, want 1", got)
		}
		// A late 401 for the old version does not refresh again.
		late, err := svc.ForceAfter(ctx, w.app, id, seen.Version)
		if err != nil || late.Value != first.Value || w.refreshCalls() != 1 {
			t.Fatalf("late forcer: err %v, calls %d", err, w.refreshCalls())
		}
		// AccessToken(force) refreshes a fresh token once.
		forced, err := svc.AccessToken(ctx, w.app, id, true)
		if err != nil || forced.Version != first.Version+1 || w.refreshCalls() != 2 {
			t.Fatalf("AccessToken(force): version %d, err %v, calls %d", forced.Version, err, w.refreshCalls())
		}
	})
}

func TestSingleFlightInProcess(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		svc := w.service(nil)
		_, id, _ := w.issued(-time.Minute)
		gate := make(chan struct{})
		w.provider.SetTokenGate(gate)
		tokensSeen := herd(t, w, []*tokens.Service{svc}, id, 100, gate)
		if got := w.refreshCalls(); got != 1 {
			t.Fatalf("refresh calls = %d for 100 callers, want 1", got)
		}
		if len(tokensSeen) != 1 {
			t.Fatalf("callers saw %d different tokens", len(tokensSeen))
		}
	})
}

// TestRefreshHerdAcrossReplicas is the herd test at the service
// level: two replicas (two Services, two connection pools, one database)
// with 250 callers each on an expired token, behind a gated provider.
// Exactly one refresh reaches the provider and all 500 callers get the
// same new token.
func TestRefreshHerdAcrossReplicas(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		a := w.service(nil)
		b := w.service(testutil.Reopen(t, db))
		old, id, _ := w.issued(-time.Minute)
		gate := make(chan struct{})
		w.provider.SetTokenGate(gate)
		seen := herd(t, w, []*tokens.Service{a, b}, id, 250, gate)
		if got := w.provider.TokenCalls(); got != 1 {
			t.Fatalf("token endpoint calls = %d for 500 callers on two replicas, want 1", got)
		}
		if len(seen) != 1 {
			t.Fatalf("callers saw %d different tokens, want 1", len(seen))
		}
		for tok := range seen {
			if tok == old.AccessToken || w.storedAccess(id) != tok {
				t.Fatal("callers got a token other than the committed new one")
			}
		}
		if w.provider.ReuseDetected() != 0 {
			t.Fatal("a rotated-out refresh token was presented")
		}
	})
}

// herd runs perService callers of AccessToken on every service, releases
// the gate once the first refresh waits at it, and returns the distinct
// tokens the callers got.
func herd(t *testing.T, w *world, svcs []*tokens.Service, id string, perService int, gate chan struct{}) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]bool{}
	var firstErr error
	for _, svc := range svcs {
		for range perService {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tok, err := svc.AccessToken(ctx, w.app, id, false)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					return
				}
				seen[tok.Value] = true
			}()
		}
	}
	if err := w.provider.AwaitBlocked(ctx, 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // everyone else queues behind the flight and the row
	close(gate)
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("a caller failed: %v", firstErr)
	}
	return seen
}

func TestInterruptedRefreshOnRotatingProviderNeedsReauth(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		svc := w.service(nil)
		_, id, gids := w.issued(-time.Minute)
		markInFlight(t, w, id, w.clock.Now().Add(-10*time.Minute))
		_, err := svc.AccessToken(context.Background(), w.app, id, false)
		wantCode(t, err, wire.CodeReauthRequired)
		if w.provider.TokenCalls() != 0 {
			t.Fatal("the provider was called with a refresh token that may have been rotated")
		}
		if g := w.grantRow(gids[0]); g.Status != models.GrantNeedsReauth {
			t.Fatalf("grant status %s, want needs_reauth", g.Status)
		}
		if c := w.row(id); c.RefreshState != models.RefreshIdle {
			t.Fatalf("state %s after recovery", c.RefreshState)
		}
	})
}

func TestInterruptedRefreshOnNonRotatingProviderIsRetried(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		w.provider.SetRotation(false)
		w.clients.update(w.pc, func(c *oauth.ClientConfig) { c.Provider.RefreshTokenRotates = false })
		svc := w.service(nil)
		old, id, gids := w.issued(-time.Minute)
		markInFlight(t, w, id, w.clock.Now().Add(-10*time.Minute))
		tok, err := svc.AccessToken(context.Background(), w.app, id, false)
		if err != nil {
			t.Fatal(err)
		}
		if tok.Value == old.AccessToken || w.refreshCalls() != 1 || w.grantRow(gids[0]).Status != models.GrantActive {
			t.Fatal("a stale refresh on a non-rotating provider should be taken over")
		}
	})
}

func TestLiveRefreshElsewhereIsWaitedFor(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		svc := w.service(nil)
		old, id, _ := w.issued(-time.Minute)
		// Another replica claimed the refresh a moment ago.
		markInFlight(t, w, id, w.clock.Now())
		done := make(chan error, 1)
		var got tokens.Token
		go func() {
			var err error
			got, err = svc.AccessToken(context.Background(), w.app, id, false)
			done <- err
		}()
		time.Sleep(150 * time.Millisecond)
		select {
		case err := <-done:
			t.Fatalf("returned while another replica was refreshing: %v", err)
		default:
		}
		// The other replica commits its new pair.
		at, err := w.vault.Seal(context.Background(), oauth.AccessTokenBinding(w.app, id), []byte("at_from_other_replica"))
		if err != nil {
			t.Fatal(err)
		}
		exp := w.clock.Now().Add(time.Hour).UTC()
		if err := w.db.Gorm.Model(&models.Credential{}).Where("id = ?", id).Updates(map[string]any{
			"access_token_ciphertext": at, "expires_at": exp, "version": 2, "refresh_state": models.RefreshIdle,
			"refresh_started_at": nil}).Error; err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got.Value != "at_from_other_replica" || got.Value == old.AccessToken || w.provider.TokenCalls() != 0 {
			t.Fatalf("want the other replica's token without a provider call")
		}
	})
}

func markInFlight(t *testing.T, w *world, id string, started time.Time) {
	t.Helper()
	s := started.UTC().Truncate(time.Second)
	if err := w.db.Gorm.Model(&models.Credential{}).Where("id = ?", id).
		Updates(map[string]any{"refresh_state": models.RefreshInFlight, "refresh_started_at": s}).Error; err != nil {
		t.Fatal(err)
	}
}

func TestSweep(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		svc := w.service(nil)
		ctx := context.Background()
		_, due, _ := w.issued(time.Minute)
		fresh, freshID, _ := w.issued(time.Hour)
		_, expired, _ := w.issued(-time.Hour)
		// Due, but nobody may use it.
		_, unused, unusedGrants := w.issued(time.Minute)
		if err := w.db.Gorm.Model(&models.Grant{}).Where("id = ?", unusedGrants[0]).
			Update("status", models.GrantRevoked).Error; err != nil {
			t.Fatal(err)
		}
		// Stuck mid-refresh since long ago on a rotating provider.
		_, stuck, stuckGrants := w.issued(time.Hour)
		markInFlight(t, w, stuck, w.clock.Now().Add(-time.Hour))

		rep, err := svc.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Refreshed != 2 || rep.Failed != 0 || rep.Interrupted != 1 {
			t.Fatalf("sweep report %+v, want 2 refreshed and 1 interrupted", rep)
		}
		for _, id := range []string{due, expired} {
			if c := w.row(id); c.Version != 2 {
				t.Fatalf("credential %s not refreshed by the sweep", id)
			}
		}
		if c := w.row(freshID); c.Version != 1 || w.storedAccess(freshID) != fresh.AccessToken {
			t.Fatal("the sweep refreshed a fresh token")
		}
		if c := w.row(unused); c.Version != 1 {
			t.Fatal("the sweep refreshed a credential without an active grant")
		}
		if g := w.grantRow(stuckGrants[0]); g.Status != models.GrantNeedsReauth {
			t.Fatalf("stuck refresh: grant %s", g.Status)
		}
		if got := w.refreshCalls(); got != 2 {
			t.Fatalf("refresh calls %d, want 2", got)
		}
		// A second sweep finds nothing to do.
		if rep, err := svc.Sweep(ctx); err != nil || rep != (tokens.SweepReport{}) {
			t.Fatalf("second sweep %+v %v", rep, err)
		}
	})
}

func TestRunSweepsUntilCancelled(t *testing.T) {
	w := newWorld(t, testutil.NewDB(t, database.SQLite))
	svc := w.service(nil, tokens.WithSweep(20*time.Millisecond, 0, 0))
	_, id, _ := w.issued(time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for w.row(id).Version != 2 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not refresh the due credential")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v", err)
	}
}

func TestTokenIsRedacted(t *testing.T) {
	exp := time.Now()
	tok := tokens.Token{Value: "at_secret_value", Type: "bearer", ExpiresAt: &exp, Version: 3}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "token", tok)
	for _, s := range []string{fmt.Sprint(tok), fmt.Sprintf("%+v", tok), fmt.Sprintf("%#v", tok), logged.String()} {
		if strings.Contains(s, "at_secret_value") {
			t.Fatalf("token printed: %s", s)
		}
	}
}

func TestUnknownCredentialIsNotFound(t *testing.T) {
	w := newWorld(t, testutil.NewDB(t, database.SQLite))
	svc := w.service(nil)
	_, id, _ := w.issued(time.Hour)
	for _, tt := range []struct{ app, id string }{{w.app, w.id()}, {w.id(), id}, {w.app, "not-a-uuid"}} {
		if _, err := svc.AccessToken(context.Background(), tt.app, tt.id, false); err == nil {
			t.Fatalf("AccessToken(%s, %s) succeeded", tt.app, tt.id)
		}
	}
}

func TestMarginOption(t *testing.T) {
	w := newWorld(t, testutil.NewDB(t, database.SQLite))
	svc := w.service(nil, tokens.WithMargin(10*time.Minute))
	_, id, _ := w.issued(9 * time.Minute)
	if _, err := svc.AccessToken(context.Background(), w.app, id, false); err != nil {
		t.Fatal(err)
	}
	if w.refreshCalls() != 1 {
		t.Fatal("WithMargin was not applied")
	}
}
