package oauth_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/oauth"
	"github.com/latchkey/latchkey/testutil"
)

// connectDemo runs one whole Connect round trip against the demo provider
// for the end user of app: Start, the browser at the provider as demoUser,
// Finish. It returns the finished connection and the flow's state.
func connectDemo(t *testing.T, w *world, d *demoEnv, app, demoUser string) (oauth.Connected, string) {
	t.Helper()
	ctx := context.Background()
	binding := newBinding()
	sess := w.session(app, binding)
	authURL, err := w.svc.Start(ctx, oauth.StartInput{AppID: app, ConnectSessionID: sess, Provider: "demo-calendar", BrowserBinding: binding})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	cb := d.authorize(authURL, demoUser, "approve")
	c, err := w.svc.Finish(ctx, oauth.FinishInput{State: cb.Get("state"), Code: cb.Get("code"), BrowserBinding: binding})
	if err != nil {
		t.Fatalf("finish: %v", err)
	}
	if c.ConnectSessionID != sess {
		t.Fatalf("finished session %s, want %s", c.ConnectSessionID, sess)
	}
	return c, cb.Get("state")
}

func TestFullFlowAgainstTheDemoProviderStoresASealedGrant(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		d := newDemo(t)
		ctx := context.Background()
		cfg := w.configureDemo(d, "calendar.read")
		if cfg.RedirectURI != redirectURI {
			t.Fatalf("redirect URI %q, want %q", cfg.RedirectURI, redirectURI)
		}
		ada := w.endUser(w.app, "ada-subject")

		binding := newBinding()
		sess := w.session(w.app, binding)
		authURL, err := w.svc.Start(ctx, oauth.StartInput{AppID: w.app, ConnectSessionID: sess, Provider: "demo-calendar", BrowserBinding: binding})
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(authURL)
		q := u.Query()
		state := q.Get("state")
		if raw, err := base64.RawURLEncoding.DecodeString(state); err != nil || len(raw) < 16 {
			t.Fatalf("state is not ≥128 random bits: %q", state)
		}
		for k, want := range map[string]string{"response_type": "code", "client_id": demoClientID, "redirect_uri": redirectURI,
			"scope": "calendar.read", "code_challenge_method": "S256"} {
			if q.Get(k) != want {
				t.Errorf("authorize %s = %q, want %q", k, q.Get(k), want)
			}
		}
		var flow models.OAuthFlow
		if err := w.db.Where("connect_session_id = ?", sess).Take(&flow).Error; err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(state))
		if flow.StateHash != hex.EncodeToString(sum[:]) || flow.BrowserBindingHash != binding ||
			flow.RedirectURI != redirectURI || flow.ProviderConfigID != cfg.ProviderConfigID {
			t.Fatalf("flow row %+v", flow)
		}
		if got := flow.ExpiresAt.Sub(w.clock.Now()); got != 10*time.Minute {
			t.Errorf("flow expires in %v, want 10m", got)
		}
		verifier, err := w.vault.Open(ctx, oauth.PKCEVerifierBinding(w.app, flow.ID), flow.PKCEVerifierSealed)
		if err != nil {
			t.Fatalf("the sealed verifier does not open: %v", err)
		}
		vsum := sha256.Sum256(verifier)
		if q.Get("code_challenge") != base64.RawURLEncoding.EncodeToString(vsum[:]) {
			t.Fatal("code_challenge is not the S256 of the sealed verifier")
		}

		cb := d.authorize(authURL, "ada", "approve")
		if cb.Get("state") != state {
			t.Fatal("the provider returned another state")
		}
		code := cb.Get("code")
		c, err := w.svc.Finish(ctx, oauth.FinishInput{State: state, Code: code, BrowserBinding: binding})
		if err != nil {
			t.Fatal(err)
		}
		if c.AccountIdentifier != "cal-ada" || c.AccountDisplay != "ada@example.com" || c.Provider != "demo-calendar" ||
			c.ProviderName != "Demo Calendar" || c.AppID != w.app || c.ProviderConfigID != cfg.ProviderConfigID {
			t.Fatalf("connected %v", c)
		}
		if c.AccessToken == "" || c.RefreshToken == "" || c.ExpiresAt == nil ||
			c.ExpiresAt.Sub(w.clock.Now()) != time.Hour || !slices.Equal(c.Scopes, []string{"calendar.read"}) {
			t.Fatalf("tokens: expires %v scopes %v", c.ExpiresAt, c.Scopes)
		}
		if strings.Contains(c.String(), c.AccessToken) || strings.Contains(c.GoString(), c.RefreshToken) {
			t.Fatal("Connected prints its tokens")
		}

		saved, err := w.svc.Save(ctx, oauth.SaveInput{Connected: c, PrincipalKind: models.PrincipalUser, PrincipalID: ada,
			Metadata: map[string]string{"plan": "pro"}, Actor: browserActor})
		if err != nil {
			t.Fatal(err)
		}
		g := saved.Grant
		if saved.Operation != oauth.OperationCreation || g.Status != models.GrantActive || g.PrincipalKind != models.PrincipalUser ||
			g.PrincipalID != ada || g.Provider != "demo-calendar" || g.AccountIdentifier != "cal-ada" ||
			g.Scopes != "calendar.read" || g.Metadata != `{"plan":"pro"}` || g.CredentialID == nil {
			t.Fatalf("saved %+v (%s)", g, saved.Operation)
		}
		var cred models.Credential
		if err := w.db.Where("id = ?", *g.CredentialID).Take(&cred).Error; err != nil {
			t.Fatal(err)
		}
		if cred.Kind != models.CredentialOAuth || cred.ProviderConfigID == nil || *cred.ProviderConfigID != cfg.ProviderConfigID ||
			cred.AccountIdentifier != "cal-ada" || cred.Version != 1 || cred.ExpiresAt == nil || !cred.ExpiresAt.Equal(*c.ExpiresAt) {
			t.Fatalf("credential %+v", cred)
		}
		at, err := w.vault.Open(ctx, oauth.AccessTokenBinding(w.app, cred.ID), cred.AccessTokenCiphertext)
		if err != nil || string(at) != c.AccessToken {
			t.Fatalf("the access token does not open: %v", err)
		}
		rt, err := w.vault.Open(ctx, oauth.RefreshTokenBinding(w.app, cred.ID), cred.RefreshTokenCiphertext)
		if err != nil || string(rt) != c.RefreshToken {
			t.Fatalf("the refresh token does not open: %v", err)
		}
		w.assertNotStored(c.AccessToken, c.RefreshToken, state, code, demoClientSecret, string(verifier))
		if got := w.auditActions(w.app); !slices.Equal(got, []string{"provider.configure", "grant.create"}) {
			t.Fatalf("audit actions %v", got)
		}

		// The access token works at the provider's API: it is the real one.
		resp, body := getWithBearer(t, d.srv.Demo.OAuthEndpoints().APIBaseURL+"/calendar/events", c.AccessToken)
		if resp != 200 {
			t.Fatalf("the stored access token is refused by the API: %d %s", resp, body)
		}
	})
}

func TestReconnectingTheSameAccountReauthorizesTheSameGrant(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		d := newDemo(t)
		ctx := context.Background()
		w.configureDemo(d, "calendar.read")
		ada, bob := w.endUser(w.app, "ada-subject"), w.endUser(w.app, "bob-subject")
		agent := w.agent(w.app, "research-bot")

		first, _ := connectDemo(t, w, d, w.app, "ada")
		s1, err := w.svc.Save(ctx, oauth.SaveInput{Connected: first, PrincipalKind: models.PrincipalUser, PrincipalID: ada, Actor: browserActor})
		if err != nil {
			t.Fatal(err)
		}
		w.db.Model(&models.Grant{}).Where("id = ?", s1.Grant.ID).Update("status", models.GrantNeedsReauth)

		second, _ := connectDemo(t, w, d, w.app, "ada")
		if second.RefreshToken == first.RefreshToken {
			t.Fatal("the provider issued the same refresh token twice")
		}
		s2, err := w.svc.Save(ctx, oauth.SaveInput{Connected: second, PrincipalKind: models.PrincipalUser, PrincipalID: ada,
			AgentID: agent, Actor: browserActor})
		if err != nil {
			t.Fatal(err)
		}
		if s2.Grant.ID != s1.Grant.ID || s2.Operation != oauth.OperationReauth || s2.Grant.Status != models.GrantActive {
			t.Fatalf("reconnect: grant %s (%s, %s), want %s reauth active", s2.Grant.ID, s2.Operation, s2.Grant.Status, s1.Grant.ID)
		}
		if n := w.count("credentials"); n != 1 {
			t.Fatalf("%d credentials after a reconnect, want 1", n)
		}
		var cred models.Credential
		w.db.Where("id = ?", *s2.Grant.CredentialID).Take(&cred)
		rt, err := w.vault.Open(ctx, oauth.RefreshTokenBinding(w.app, cred.ID), cred.RefreshTokenCiphertext)
		if err != nil || string(rt) != second.RefreshToken || cred.Version != 2 {
			t.Fatalf("the credential keeps the old refresh token or version (%d): %v", cred.Version, err)
		}
		if s2.DelegationID == "" {
			t.Fatal("naming an agent created no delegation")
		}
		var del models.Delegation
		if err := w.db.Where("id = ?", s2.DelegationID).Take(&del).Error; err != nil || del.GrantID != s1.Grant.ID ||
			del.AgentID != agent || del.EndUserID != ada || del.Status != models.DelegationActive {
			t.Fatalf("delegation %+v: %v", del, err)
		}

		// The same account connected by another end user is that user's
		// own grant.
		third, _ := connectDemo(t, w, d, w.app, "ada")
		s3, err := w.svc.Save(ctx, oauth.SaveInput{Connected: third, PrincipalKind: models.PrincipalUser, PrincipalID: bob, Actor: browserActor})
		if err != nil {
			t.Fatal(err)
		}
		if s3.Grant.ID == s1.Grant.ID || s3.Operation != oauth.OperationCreation || *s3.Grant.CredentialID == *s1.Grant.CredentialID {
			t.Fatalf("another principal reused grant %s (%s)", s3.Grant.ID, s3.Operation)
		}
		// A system connection of the same account is yet another grant.
		fourth, _ := connectDemo(t, w, d, w.app, "ada")
		s4, err := w.svc.Save(ctx, oauth.SaveInput{Connected: fourth, PrincipalKind: models.PrincipalSystem, Actor: browserActor})
		if err != nil || s4.Operation != oauth.OperationCreation || s4.Grant.PrincipalKind != models.PrincipalSystem {
			t.Fatalf("system grant: %v %+v", err, s4)
		}
		want := []string{"provider.configure", "grant.create", "grant.reauth", "delegation.create", "grant.create", "grant.create"}
		if got := w.auditActions(w.app); !slices.Equal(got, want) {
			t.Fatalf("audit actions %v, want %v", got, want)
		}
		w.assertNotStored(first.AccessToken, first.RefreshToken, second.AccessToken, second.RefreshToken,
			third.AccessToken, fourth.RefreshToken)
	})
}

func TestFinishRefusals(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		d := newDemo(t)
		ctx := context.Background()
		w.configureDemo(d, "calendar.read")
		start := func(t *testing.T) (authURL, binding string) {
			t.Helper()
			binding = newBinding()
			u, err := w.svc.Start(ctx, oauth.StartInput{AppID: w.app, ConnectSessionID: w.session(w.app, binding),
				Provider: "demo-calendar", BrowserBinding: binding})
			if err != nil {
				t.Fatal(err)
			}
			return u, binding
		}

		t.Run("state reused", func(t *testing.T) {
			authURL, binding := start(t)
			cb := d.authorize(authURL, "grace", "approve")
			in := oauth.FinishInput{State: cb.Get("state"), Code: cb.Get("code"), BrowserBinding: binding}
			if _, err := w.svc.Finish(ctx, in); err != nil {
				t.Fatal(err)
			}
			c, err := w.svc.Finish(ctx, in)
			fe := wantFlowError(t, err, oauth.ErrStateInvalid)
			if fe.Code() != "state_mismatch" || !errors.Is(err, errs.ErrConflict) || c.AccessToken != "" || c.ConnectSessionID == "" {
				t.Fatalf("reused state: %v, connected %v", err, c)
			}
		})
		t.Run("state of another browser", func(t *testing.T) {
			authURL, binding := start(t)
			cb := d.authorize(authURL, "grace", "approve")
			c, err := w.svc.Finish(ctx, oauth.FinishInput{State: cb.Get("state"), Code: cb.Get("code"), BrowserBinding: newBinding()})
			wantFlowError(t, err, oauth.ErrStateInvalid)
			if !errors.Is(err, errs.ErrForbidden) || c.ConnectSessionID != "" {
				t.Fatalf("another browser: %v, learned session %q", err, c.ConnectSessionID)
			}
			// The right browser can still finish: the attempt consumed nothing.
			if _, err := w.svc.Finish(ctx, oauth.FinishInput{State: cb.Get("state"), Code: cb.Get("code"), BrowserBinding: binding}); err != nil {
				t.Fatalf("the real browser cannot finish after another tried: %v", err)
			}
		})
		t.Run("unknown state", func(t *testing.T) {
			_, err := w.svc.Finish(ctx, oauth.FinishInput{State: "forged", Code: "x", BrowserBinding: newBinding()})
			wantFlowError(t, err, oauth.ErrStateInvalid)
		})
		t.Run("expired flow", func(t *testing.T) {
			authURL, binding := start(t)
			w.clock.Advance(10*time.Minute + time.Second)
			defer w.clock.Advance(-(10*time.Minute + time.Second))
			_, err := w.svc.Finish(ctx, oauth.FinishInput{State: stateOf(t, authURL), Code: "x", BrowserBinding: binding})
			if fe := wantFlowError(t, err, oauth.ErrFlowExpired); fe.Code() != "flow_expired" || fe.ConnectSessionID == "" {
				t.Fatalf("expired: %+v", fe)
			}
		})
		t.Run("access denied at the provider", func(t *testing.T) {
			authURL, binding := start(t)
			cb := d.authorize(authURL, "grace", "deny")
			_, err := w.svc.Finish(ctx, oauth.FinishInput{State: cb.Get("state"), Error: cb.Get("error"),
				ErrorDescription: cb.Get("error_description"), BrowserBinding: binding})
			fe := wantFlowError(t, err, oauth.ErrAccessDenied)
			if fe.ProviderCode != "access_denied" || fe.Code() != "access_denied" {
				t.Fatalf("denied: %+v", fe)
			}
			// The flow is spent: the same state cannot be replayed with a code.
			_, err = w.svc.Finish(ctx, oauth.FinishInput{State: cb.Get("state"), Code: "x", BrowserBinding: binding})
			wantFlowError(t, err, oauth.ErrStateInvalid)
		})
		t.Run("other provider error keeps only a clean code", func(t *testing.T) {
			authURL, binding := start(t)
			_, err := w.svc.Finish(ctx, oauth.FinishInput{State: stateOf(t, authURL), Error: `server_error"<script>`,
				ErrorDescription: "<script>alert(1)</script>\r\nInjected", BrowserBinding: binding})
			fe := wantFlowError(t, err, oauth.ErrProviderError)
			if fe.ProviderCode != "invalid_error_code" || strings.ContainsAny(fe.ProviderDescription, "\r\n") ||
				strings.Contains(fe.Message, "script") {
				t.Fatalf("provider error: %+v", fe)
			}
		})
		t.Run("code refused by the provider", func(t *testing.T) {
			authURL, binding := start(t)
			_, err := w.svc.Finish(ctx, oauth.FinishInput{State: stateOf(t, authURL), Code: "not-a-code", BrowserBinding: binding})
			fe := wantFlowError(t, err, oauth.ErrExchangeFailed)
			if fe.ProviderCode != "invalid_grant" || strings.Contains(err.Error(), "not-a-code") {
				t.Fatalf("exchange: %+v", fe)
			}
		})
	})
}

func TestStartRefusals(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		d := newDemo(t)
		ctx := context.Background()
		w.configureDemo(d)
		binding := newBinding()
		used := w.session(w.app, binding)
		w.db.Model(&models.ConnectSession{}).Where("id = ?", used).Update("status", models.ConnectCompleted)
		expired := w.session(w.app, binding)
		w.db.Model(&models.ConnectSession{}).Where("id = ?", expired).Update("expires_at", w.clock.Now().Add(-time.Second))
		tests := []struct {
			name string
			in   oauth.StartInput
			want string
		}{
			{"session of another app", oauth.StartInput{AppID: w.other, ConnectSessionID: w.session(w.app, binding), Provider: "demo-calendar", BrowserBinding: binding}, "not_found"},
			{"used session", oauth.StartInput{AppID: w.app, ConnectSessionID: used, Provider: "demo-calendar", BrowserBinding: binding}, "connect_session_used"},
			{"expired session", oauth.StartInput{AppID: w.app, ConnectSessionID: expired, Provider: "demo-calendar", BrowserBinding: binding}, "connect_session_expired"},
			{"another browser", oauth.StartInput{AppID: w.app, ConnectSessionID: w.session(w.app, binding), Provider: "demo-calendar", BrowserBinding: newBinding()}, "forbidden"},
			{"provider not configured", oauth.StartInput{AppID: w.app, ConnectSessionID: w.session(w.app, binding), Provider: "github", BrowserBinding: binding}, "provider_not_configured"},
			{"malformed binding", oauth.StartInput{AppID: w.app, ConnectSessionID: w.session(w.app, binding), Provider: "demo-calendar", BrowserBinding: "cookie"}, "invalid_request"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := w.svc.Start(ctx, tt.in)
				wantCode(t, err, tt.want)
			})
		}
		if n := w.count("oauth_flows"); n != 0 {
			t.Fatalf("refused starts wrote %d flows", n)
		}
	})
}

func TestDeleteExpiredFlowsKeepsLiveOnes(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		d := newDemo(t)
		ctx := context.Background()
		w.configureDemo(d)
		start := func() {
			b := newBinding()
			if _, err := w.svc.Start(ctx, oauth.StartInput{AppID: w.app, ConnectSessionID: w.session(w.app, b),
				Provider: "demo-calendar", BrowserBinding: b}); err != nil {
				t.Fatal(err)
			}
		}
		start()
		w.clock.Advance(time.Hour)
		start()
		n, err := w.svc.DeleteExpiredFlows(ctx, 10*time.Minute)
		if err != nil || n != 1 || w.count("oauth_flows") != 1 {
			t.Fatalf("deleted %d (%v), %d left", n, err, w.count("oauth_flows"))
		}
	})
}
