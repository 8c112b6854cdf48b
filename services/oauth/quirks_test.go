package oauth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/catalog"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/oauth"
	"github.com/latchkey/latchkey/testutil"
	"github.com/latchkey/latchkey/testutil/quirkyprovider"
)

// quirkyConnect configures a custom provider at the quirky provider, runs
// Start, lets the provider approve at once, and calls Finish.
func quirkyConnect(t *testing.T, w *world, p *quirkyprovider.Provider, secret string) (oauth.Connected, error) {
	t.Helper()
	ctx := context.Background()
	w.configure(oauth.ConfigureInput{Provider: "quirky", ClientID: p.ClientID(), ClientSecret: secret,
		Scopes: []string{"read"},
		Custom: &catalog.CustomDefinition{AuthorizeURL: p.AuthorizeURL(), TokenURL: p.TokenURL(),
			UserinfoURL: p.UserinfoURL(), IDField: "id", RevokeURL: p.RevokeURL(),
			APIHosts: []string{strings.TrimPrefix(p.URL(), "http://")}}})
	binding := newBinding()
	authURL, err := w.svc.Start(ctx, oauth.StartInput{AppID: w.app, ConnectSessionID: w.session(w.app, binding),
		Provider: "quirky", BrowserBinding: binding})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := noRedirects(p.Client()).Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("the quirky provider did not answer with a code: %v %s", err, resp.Status)
	}
	return w.svc.Finish(ctx, oauth.FinishInput{State: loc.Query().Get("state"), Code: loc.Query().Get("code"), BrowserBinding: binding})
}

func TestExpiresInQuirks(t *testing.T) {
	w := newWorld(t, testutil.NewDB(t, database.SQLite))
	hour := time.Hour
	tests := []struct {
		name        string
		mode        quirkyprovider.ExpiresIn
		omitRefresh bool
		want        *time.Duration // from now; nil: no expiry
	}{
		{"number", quirkyprovider.ExpiresNumber, false, ptr(hour)},
		{"string", quirkyprovider.ExpiresString, false, ptr(hour)},
		{"missing means no expiry", quirkyprovider.ExpiresMissing, false, nil},
		{"zero is refreshed conservatively", quirkyprovider.ExpiresZero, false, ptr(oauth.ConservativeLifetime)},
		{"negative is refreshed conservatively", quirkyprovider.ExpiresNegative, false, ptr(oauth.ConservativeLifetime)},
		{"ten years is refreshed conservatively", quirkyprovider.ExpiresTenYears, false, ptr(oauth.ConservativeLifetime)},
		{"absurd without a refresh token is kept without expiry", quirkyprovider.ExpiresTenYears, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := quirkyprovider.New(t, quirkyprovider.WithAccessTTL(2*time.Hour))
			p.SetAccessTTL(hour)
			p.SetExpiresIn(tt.mode)
			p.SetOmitRefreshToken(tt.omitRefresh)
			c, err := quirkyConnect(t, w, p, p.ClientSecret())
			if err != nil {
				t.Fatal(err)
			}
			if c.AccountIdentifier != quirkyprovider.DefaultSubject || (c.RefreshToken == "") != tt.omitRefresh {
				t.Fatalf("connected %v", c)
			}
			switch {
			case tt.want == nil && c.ExpiresAt != nil:
				t.Fatalf("expires at %v, want none", c.ExpiresAt)
			case tt.want != nil && (c.ExpiresAt == nil || c.ExpiresAt.Sub(w.clock.Now()) != *tt.want):
				t.Fatalf("expires at %v, want now+%v", c.ExpiresAt, *tt.want)
			}
			if reqs := p.TokenRequests(); len(reqs) != 1 || reqs[0].Form.Get("code_verifier") == "" {
				t.Fatalf("token requests %+v: want one with a PKCE verifier", reqs)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestInvalidClientMarksTheProviderConfigBroken(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		p := quirkyprovider.New(t)
		_, err := quirkyConnect(t, w, p, "a-stale-client-secret")
		fe := wantFlowError(t, err, oauth.ErrExchangeFailed)
		if fe.ProviderCode != "invalid_client" || fe.ConnectSessionID == "" || strings.Contains(err.Error(), "a-stale-client-secret") {
			t.Fatalf("exchange error %+v", fe)
		}
		var pc models.ProviderConfig
		w.db.Where("app_id = ? AND provider = ?", w.app, "quirky").Take(&pc)
		if pc.Status != models.ProviderConfigBroken || pc.BrokenReason == "" {
			t.Fatalf("config %s (%q), want broken", pc.Status, pc.BrokenReason)
		}
		_, err = w.svc.Client(context.Background(), w.app, "quirky")
		wantCode(t, err, "provider_not_configured")
		if got := w.auditActions(w.app); !slices.Contains(got, oauth.ActionProviderBroken) {
			t.Fatalf("audit actions %v", got)
		}
		// Both client authentication styles were tried (auto).
		var styles []string
		for _, r := range p.TokenRequests() {
			styles = append(styles, r.ClientAuth)
		}
		if !slices.Equal(styles, []string{"basic", "post"}) {
			t.Fatalf("client auth attempts %v", styles)
		}
	})
}

// fakeProvider is an httptest server for a provider quirk the demo and
// quirky providers do not have; handler gets every request.
func fakeProvider(t *testing.T, tls bool, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// startFake starts a flow for provider and returns the state and binding,
// as if the browser came back from an authorize page.
func startFake(t *testing.T, w *world, svc *oauth.Service, provider string) (authURL, binding string) {
	t.Helper()
	binding = newBinding()
	u, err := svc.Start(context.Background(), oauth.StartInput{AppID: w.app, ConnectSessionID: w.session(w.app, binding),
		Provider: provider, BrowserBinding: binding})
	if err != nil {
		t.Fatal(err)
	}
	return u, binding
}

func TestSlackStyleTokenResponseRoot(t *testing.T) {
	// Both dialects: Slack has no PKCE, so the flow row stores an empty
	// (not NULL) verifier column.
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) { testSlackStyleTokenResponseRoot(t, newWorld(t, db)) })
}

func testSlackStyleTokenResponseRoot(t *testing.T, w *world) {
	ctx := context.Background()
	var gotBasic bool
	srv := fakeProvider(t, false, func(rw http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/oauth.v2.access":
			id, secret, ok := r.BasicAuth()
			gotBasic = ok && id == "slack-client" && secret == "slack-secret"
			_ = r.ParseForm()
			if r.PostForm.Get("code") == "bad-code" {
				// Slack answers errors with HTTP 200.
				writeJSON(rw, http.StatusOK, map[string]any{"ok": false, "error": "invalid_code"})
				return
			}
			if r.PostForm.Get("redirect_uri") != redirectURI || r.PostForm.Has("code_verifier") {
				writeJSON(rw, http.StatusOK, map[string]any{"ok": false, "error": "bad_redirect_uri"})
				return
			}
			writeJSON(rw, http.StatusOK, map[string]any{
				"ok": true, "access_token": "xoxb-bot-token", "token_type": "bot", "scope": "commands",
				"team": map[string]any{"id": "T1", "name": "Acme"},
				"authed_user": map[string]any{"id": "U1", "scope": "channels:read,users:read", "access_token": "xoxp-user-token",
					"token_type": "user", "refresh_token": "xoxe-1-refresh", "expires_in": 43200},
			})
		case "/api/auth.test":
			if r.Header.Get("Authorization") != "Bearer xoxp-user-token" {
				writeJSON(rw, http.StatusOK, map[string]any{"ok": false, "error": "invalid_auth"})
				return
			}
			writeJSON(rw, http.StatusOK, map[string]any{"ok": true, "user_id": "U1", "user": "ada", "team_id": "T1"})
		default:
			http.NotFound(rw, r)
		}
	})
	w.configure(oauth.ConfigureInput{Provider: "slack", ClientID: "slack-client", ClientSecret: "slack-secret",
		Custom: &catalog.CustomDefinition{AuthorizeURL: srv.URL + "/oauth/v2/authorize", TokenURL: srv.URL + "/api/oauth.v2.access",
			UserinfoURL: srv.URL + "/api/auth.test", IDField: "user_id", DisplayField: "user"}})

	authURL, binding := startFake(t, w, w.svc, "slack")
	q := mustQuery(t, authURL)
	if q.Get("user_scope") != "channels:read,channels:history,users:read" || q.Has("scope") || q.Has("code_challenge") {
		t.Fatalf("slack authorize query %v", q)
	}
	c, err := w.svc.Finish(ctx, oauth.FinishInput{State: q.Get("state"), Code: "good-code", BrowserBinding: binding})
	if err != nil {
		t.Fatal(err)
	}
	if !gotBasic {
		t.Fatal("the token request did not authenticate with HTTP Basic (catalog: header)")
	}
	if c.AccessToken != "xoxp-user-token" || c.RefreshToken != "xoxe-1-refresh" || c.TokenType != "user" ||
		c.AccountIdentifier != "U1" || c.AccountDisplay != "ada" || !slices.Equal(c.Scopes, []string{"channels:read", "users:read"}) ||
		c.ExpiresAt == nil || c.ExpiresAt.Sub(w.clock.Now()) != 12*time.Hour {
		t.Fatalf("connected %v expires %v", c, c.ExpiresAt)
	}

	authURL, binding = startFake(t, w, w.svc, "slack")
	_, err = w.svc.Finish(ctx, oauth.FinishInput{State: stateOf(t, authURL), Code: "bad-code", BrowserBinding: binding})
	if fe := wantFlowError(t, err, oauth.ErrExchangeFailed); fe.ProviderCode != "invalid_code" {
		t.Fatalf("ok=false: %+v", fe)
	}
}

func TestJSONTokenBody(t *testing.T) {
	w := newWorld(t, testutil.NewDB(t, database.SQLite))
	srv := fakeProvider(t, false, func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/oauth/token" {
			http.NotFound(rw, r)
			return
		}
		var body map[string]string
		id, secret, ok := r.BasicAuth()
		if r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&body) != nil ||
			!ok || id != "notion-client" || secret != "notion-secret" {
			writeJSON(rw, http.StatusBadRequest, map[string]any{"error": "invalid_request"})
			return
		}
		if body["grant_type"] != "authorization_code" || body["code"] != "the-code" || body["redirect_uri"] != redirectURI {
			writeJSON(rw, http.StatusBadRequest, map[string]any{"error": "invalid_grant"})
			return
		}
		writeJSON(rw, http.StatusOK, map[string]any{"access_token": "ntn_secret", "token_type": "bearer",
			"refresh_token": "ntn_refresh", "expires_in": "3600", "workspace_id": "ws-1", "workspace_name": "Acme",
			"bot_id": 12345678901234567})
	})
	w.configure(oauth.ConfigureInput{Provider: "notion", ClientID: "notion-client", ClientSecret: "notion-secret",
		Custom: &catalog.CustomDefinition{AuthorizeURL: srv.URL + "/v1/oauth/authorize", TokenURL: srv.URL + "/v1/oauth/token"}})
	authURL, binding := startFake(t, w, w.svc, "notion")
	if q := mustQuery(t, authURL); q.Get("owner") != "user" {
		t.Fatalf("extra authorize params missing: %v", q)
	}
	c, err := w.svc.Finish(context.Background(), oauth.FinishInput{State: stateOf(t, authURL), Code: "the-code", BrowserBinding: binding})
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessToken != "ntn_secret" || c.AccountIdentifier != "ws-1" || c.AccountDisplay != "Acme" ||
		c.ExpiresAt == nil || c.ExpiresAt.Sub(w.clock.Now()) != time.Hour {
		t.Fatalf("connected %v", c)
	}
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func TestIDTokenIdentity(t *testing.T) {
	t.Run("verified against the issuer", func(t *testing.T) {
		w := newWorld(t, testutil.NewDB(t, database.SQLite))
		d := newDemo(t)
		iss := d.srv.Demo.Issuer()
		svc := w.service(nil, oauth.WithIssuers(map[string]string{"twitch": iss}))
		// Twitch identifies accounts by its ID token; here it is pointed at
		// the demo identity provider, which signs real ID tokens.
		w.configure(oauth.ConfigureInput{Provider: "twitch", ClientID: demoClientID, ClientSecret: demoClientSecret,
			Scopes: []string{"openid", "email"},
			Custom: &catalog.CustomDefinition{AuthorizeURL: iss + "/authorize", TokenURL: iss + "/token", PKCE: catalog.PKCESupported}})
		authURL, binding := startFake(t, w, svc, "twitch")
		if mustQuery(t, authURL).Get("nonce") == "" {
			t.Fatal("no nonce sent for an id_token provider")
		}
		cb := d.authorize(authURL, "grace", "")
		c, err := svc.Finish(context.Background(), oauth.FinishInput{State: cb.Get("state"), Code: cb.Get("code"), BrowserBinding: binding})
		if err != nil {
			t.Fatal(err)
		}
		if c.AccountIdentifier != "grace" || c.AccountDisplay != "grace" {
			t.Fatalf("connected %v (%q)", c, c.AccountDisplay)
		}
	})
	t.Run("unverified over plain http is refused", func(t *testing.T) {
		w := newWorld(t, testutil.NewDB(t, database.SQLite))
		d := newDemo(t)
		iss := d.srv.Demo.Issuer()
		w.configure(oauth.ConfigureInput{Provider: "twitch", ClientID: demoClientID, ClientSecret: demoClientSecret,
			Scopes: []string{"openid"},
			Custom: &catalog.CustomDefinition{AuthorizeURL: iss + "/authorize", TokenURL: iss + "/token", PKCE: catalog.PKCESupported}})
		authURL, binding := startFake(t, w, w.svc, "twitch")
		cb := d.authorize(authURL, "grace", "")
		_, err := w.svc.Finish(context.Background(), oauth.FinishInput{State: cb.Get("state"), Code: cb.Get("code"), BrowserBinding: binding})
		wantFlowError(t, err, oauth.ErrIdentityFailed)
	})

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		aud     string
		nonce   func(sent string) string
		wantErr bool
	}{
		{"over TLS from the token endpoint", "tls-client", func(s string) string { return s }, false},
		{"for another audience", "someone-else", func(s string) string { return s }, true},
		{"with another flow's nonce", "tls-client", func(string) string { return "replayed" }, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, testutil.NewDB(t, database.SQLite))
			var nonce string
			srv := fakeProvider(t, true, func(rw http.ResponseWriter, r *http.Request) {
				raw, err := jwt.Signed(signer).Claims(map[string]any{
					"iss": "https://login.example", "sub": "user-42", "aud": tt.aud, "nonce": tt.nonce(nonce),
					"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "preferred_username": "ada",
				}).Serialize()
				if err != nil {
					t.Error(err)
				}
				writeJSON(rw, http.StatusOK, map[string]any{"access_token": "at-tls", "token_type": "Bearer",
					"expires_in": 3600, "id_token": raw})
			})
			svc := w.service(srv.Client())
			w.configure(oauth.ConfigureInput{Provider: "twitch", ClientID: "tls-client", ClientSecret: "s",
				Custom: &catalog.CustomDefinition{AuthorizeURL: srv.URL + "/authorize", TokenURL: srv.URL + "/token"}})
			authURL, binding := startFake(t, w, svc, "twitch")
			nonce = mustQuery(t, authURL).Get("nonce")
			c, err := svc.Finish(context.Background(), oauth.FinishInput{State: stateOf(t, authURL), Code: "c", BrowserBinding: binding})
			if tt.wantErr {
				wantFlowError(t, err, oauth.ErrIdentityFailed)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.AccountIdentifier != "user-42" || c.AccountDisplay != "ada" {
				t.Fatalf("connected %v", c)
			}
		})
	}
}
