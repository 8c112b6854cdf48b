package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/bearer"
	"github.com/latchkey/latchkey/services/connect"
	"github.com/latchkey/latchkey/testutil"
	views "github.com/latchkey/latchkey/views/pages/connect"
)

// forEachDialect runs fn against a fresh world on every dialect.
func forEachDialect(t *testing.T, fn func(t *testing.T, w *connectWorld)) {
	for _, d := range testutil.Dialects(t) {
		t.Run(d, func(t *testing.T) { fn(t, newConnectWorld(t, d)) })
	}
}

func TestConnectHappyPathCreatesGrantAndDelegation(t *testing.T) {
	forEachDialect(t, func(t *testing.T, w *connectWorld) {
		res := w.demoSession(func(r *wire.ConnectSessionRequest) {
			r.AgentID = w.agent.Agent.ID
			r.Metadata = map[string]string{"plan": "pro"}
		})
		b := w.browser()
		consentURL, consent := b.consent(res)
		for _, want := range []string{
			`data-testid="connect-agent"`, "Research Bot</strong> will be able to use this connection on your behalf",
			`data-testid="connect-provider-name">Demo Calendar<`, "calendar.read", "Signed in as Ada",
		} {
			if !strings.Contains(consent.body, want) {
				t.Fatalf("consent page lacks %q:\n%s", want, consent.body)
			}
		}
		// Approving redirects to the provider, so the form may target it.
		if csp := consent.header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' "+w.demoURL) ||
			!strings.Contains(csp, "script-src 'self';") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Fatalf("consent CSP = %q", csp)
		}

		cb := b.authorizeAtDemo(consentURL, consent, "ada", "approve")
		p := b.get(cb)
		if p.status != http.StatusOK || !strings.Contains(p.body, `data-testid="connect-success"`) {
			t.Fatalf("result: %d\n%s", p.status, p.body)
		}
		d := result(t, p)
		if d.TargetOrigin != appOrigin || d.Message.Type != views.MessageSuccess || len(d.Message.Grants) != 1 {
			t.Fatalf("data block = %+v", d)
		}
		g := d.Message.Grants[0]
		if g.Provider != demoProvider || g.ProviderName != "Demo Calendar" || g.AccountIdentifier != "cal-ada" ||
			g.Operation != "creation" || g.Status != "active" || g.Timestamp == "" ||
			len(g.Scopes) != 1 || g.Scopes[0] != "calendar.read" || g.Metadata["account_display_name"] != "ada@example.com" ||
			g.Metadata["plan"] != "pro" {
			t.Fatalf("posted grant = %+v", g)
		}

		var grant models.Grant
		if err := w.core.DB.Gorm.Where("id = ? AND app_id = ?", g.GrantID, w.app.ID).Take(&grant).Error; err != nil {
			t.Fatalf("the posted grant is not stored: %v", err)
		}
		row := w.session(res.SessionID)
		if grant.PrincipalKind != models.PrincipalUser || row.EndUserID == nil || grant.PrincipalID != *row.EndUserID {
			t.Fatalf("grant principal %s/%s, want the session's end user", grant.PrincipalKind, grant.PrincipalID)
		}
		var del models.Delegation
		if err := w.core.DB.Gorm.Where("grant_id = ? AND agent_id = ?", grant.ID, w.agent.Agent.ID).Take(&del).Error; err != nil || del.Status != models.DelegationActive {
			t.Fatalf("no active delegation to the agent: %v", err)
		}
		if row.Status != models.ConnectCompleted || row.ResultGrants != `["`+grant.ID+`"]` {
			t.Fatalf("session %s grants %s", row.Status, row.ResultGrants)
		}
		// The cookies are of no further use once the session is over.
		for _, c := range b.c.Jar.Cookies(mustURL(t, w.url+"/sdk/oauth/callback")) {
			t.Fatalf("cookie %s still set after completion", c.Name)
		}

		st, err := w.sdk.ConnectSessionStatus(context.Background(), res.SessionID)
		if err != nil || st.Status != wire.ConnectCompleted || len(st.Grants) != 1 || st.Grants[0].GrantID != grant.ID ||
			st.Grants[0].ProviderName != "Demo Calendar" || st.Grants[0].Principal.ID != "ada-1" {
			t.Fatalf("poll = %+v %v", st, err)
		}
		// Nothing in the result page or the stored rows gives away a token.
		if strings.Contains(p.body, res.SessionToken) || strings.Contains(row.BrowserBindingHash, res.SessionToken) {
			t.Fatal("the session token leaked")
		}
	})
}

func TestConnectExchangeSetsABindingCookieOnce(t *testing.T) {
	forEachDialect(t, func(t *testing.T, w *connectWorld) {
		res := w.demoSession(nil)
		b := w.browser()
		u, _ := url.Parse(res.ConnectURL)
		p := b.exchange(strings.TrimPrefix(u.Fragment, "session="), "popup")
		if p.status != http.StatusOK {
			t.Fatalf("exchange: %d %s", p.status, p.body)
		}
		var ck *http.Cookie
		for _, c := range (&http.Response{Header: p.header}).Cookies() {
			if c.Name == "latchkey_connect" {
				ck = c
			}
		}
		if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/sdk/oauth/" || len(ck.Value) != 43 || ck.MaxAge <= 0 {
			t.Fatalf("binding cookie = %+v", ck)
		}
		if row := w.session(res.SessionID); row.BrowserBindingHash != bearer.Hash(ck.Value) {
			t.Fatal("the session does not store the cookie's SHA-256")
		}

		tests := []struct {
			name       string
			token      string
			header     func(h http.Header)
			wantStatus int
			wantCode   string
		}{
			{name: "the same token again is connect_session_used", token: strings.TrimPrefix(u.Fragment, "session="),
				wantStatus: http.StatusConflict, wantCode: "connect_session_used"},
			{name: "an unknown token is not_found", token: connect.TokenPrefix + strings.Repeat("x", 43),
				wantStatus: http.StatusNotFound, wantCode: "not_found"},
			{name: "a cross-site exchange is forbidden", token: "anything",
				header: func(h http.Header) {
					h.Set("Origin", "https://evil.example.test")
					h.Set("Sec-Fetch-Site", "cross-site")
				},
				wantStatus: http.StatusForbidden, wantCode: "forbidden"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				other := w.browser()
				body, _ := json.Marshal(map[string]string{"session_token": tt.token, "mode": "popup"})
				req, _ := http.NewRequest(http.MethodPost, w.url+"/sdk/oauth/connect/exchange", strings.NewReader(string(body)))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Origin", w.url)
				if tt.header != nil {
					tt.header(req.Header)
				}
				p := other.do(req)
				var e wire.ErrorBody
				_ = json.Unmarshal([]byte(p.body), &e)
				if p.status != tt.wantStatus || string(e.Error.Code) != tt.wantCode {
					t.Fatalf("%d %s, want %d %s", p.status, p.body, tt.wantStatus, tt.wantCode)
				}
				if strings.Contains(p.header.Get("Set-Cookie"), "latchkey_connect=") && !strings.Contains(p.header.Get("Set-Cookie"), "Max-Age=0") {
					t.Fatal("a refused exchange set a binding cookie")
				}
			})
		}
	})
}

func TestConnectExpiredSessionTellsTheApp(t *testing.T) {
	forEachDialect(t, func(t *testing.T, w *connectWorld) {
		res := w.demoSession(nil)
		w.clock.Advance(connect.DefaultLifetime + 1)
		b := w.browser()
		u, _ := url.Parse(res.ConnectURL)
		p := b.exchange(strings.TrimPrefix(u.Fragment, "session="), "popup")
		var e wire.ErrorBody
		_ = json.Unmarshal([]byte(p.body), &e)
		if p.status != http.StatusGone || e.Error.Code != wire.CodeConnectSessionExpired || e.Error.Details["target_origin"] != appOrigin {
			t.Fatalf("expired exchange: %d %s", p.status, p.body)
		}
		st, err := w.sdk.ConnectSessionStatus(context.Background(), res.SessionID)
		if err != nil || st.Status != wire.ConnectExpired {
			t.Fatalf("poll = %+v %v", st, err)
		}
	})
}

func TestConnectPickerListsProvidersUnlessThereIsOne(t *testing.T) {
	forEachDialect(t, func(t *testing.T, w *connectWorld) {
		tests := []struct {
			name      string
			providers []string
			wantPage  string
		}{
			{name: "one provider goes straight to consent", providers: []string{demoProvider}, wantPage: `data-testid="connect-consent"`},
			{name: "two providers show the picker", providers: []string{demoProvider, "github"}, wantPage: `data-testid="connect-picker"`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res := w.demoSession(func(r *wire.ConnectSessionRequest) { r.AllowedProviders = tt.providers })
				b := w.browser()
				p := b.get(b.open(res.ConnectURL, "popup"))
				if p.status != http.StatusOK || !strings.Contains(p.body, tt.wantPage) {
					t.Fatalf("%d, want %s:\n%s", p.status, tt.wantPage, p.body)
				}
				if len(tt.providers) < 2 {
					return
				}
				for _, slug := range tt.providers {
					if !strings.Contains(p.body, `data-testid="connect-provider-`+slug+`"`) {
						t.Fatalf("picker lacks %s:\n%s", slug, p.body)
					}
				}
				link := regexp.MustCompile(`href="([^"]+)" data-testid="connect-provider-github"`).FindStringSubmatch(p.body)
				if link == nil {
					t.Fatal("no link for github")
				}
				c := b.get(link[1])
				if !strings.Contains(c.body, `data-testid="connect-consent"`) || !strings.Contains(c.body, `data-testid="connect-back"`) ||
					!strings.Contains(c.body, `>GitHub<`) {
					t.Fatalf("github consent:\n%s", c.body)
				}
			})
		}
	})
}

func TestConnectConsentRefusesForgedPosts(t *testing.T) {
	forEachDialect(t, func(t *testing.T, w *connectWorld) {
		tests := []struct {
			name     string
			attacker bool // post from another browser (its own cookies)
			mod      func(v url.Values, h http.Header)
			wantCode string
		}{
			{name: "no CSRF token", mod: func(v url.Values, _ http.Header) { v.Del("csrf") }, wantCode: connect.CodeInvalidRequest},
			{name: "wrong CSRF token", mod: func(v url.Values, _ http.Header) { v.Set("csrf", "AAAA") }, wantCode: connect.CodeInvalidRequest},
			{name: "two CSRF tokens", mod: func(v url.Values, _ http.Header) { v.Add("csrf", v.Get("csrf")) }, wantCode: connect.CodeInvalidRequest},
			{name: "cross-site origin", mod: func(_ url.Values, h http.Header) {
				h.Set("Origin", "https://evil.example.test")
				h.Del("Sec-Fetch-Site")
			}, wantCode: connect.CodeInvalidRequest},
			{name: "cross-site fetch metadata", mod: func(_ url.Values, h http.Header) { h.Set("Sec-Fetch-Site", "cross-site") }, wantCode: connect.CodeInvalidRequest},
			{name: "same-site but cross-origin fetch metadata", mod: func(_ url.Values, h http.Header) { h.Set("Sec-Fetch-Site", "same-site") }, wantCode: connect.CodeInvalidRequest},
			{name: "the right form from a browser without the cookie", attacker: true, wantCode: connect.CodeInvalidRequest},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res := w.demoSession(nil)
				b := w.browser()
				consentURL, consent := b.consent(res)
				poster := b
				if tt.attacker {
					poster = w.browser()
				}
				p := poster.submit(consentURL, consent.body, "connect-deny", tt.mod)
				if code := errorCode(t, p); code != tt.wantCode || p.status != http.StatusBadRequest {
					t.Fatalf("forged post: %d %s, want 400 %s", p.status, code, tt.wantCode)
				}
				if d := result(t, p); d.TargetOrigin != "" {
					t.Fatal("a refused post was delivered to the app")
				}
				if row := w.session(res.SessionID); row.Status != models.ConnectPending {
					t.Fatalf("a forged post changed the session to %s", row.Status)
				}
				// The real browser can still decide.
				if p := b.submit(consentURL, consent.body, "connect-deny", nil); errorCode(t, p) != connect.CodeAccessDenied {
					t.Fatalf("genuine deny after a forged one:\n%s", p.body)
				}
			})
		}
	})
}

func TestConnectDenyAtConsentReportsAccessDenied(t *testing.T) {
	forEachDialect(t, func(t *testing.T, w *connectWorld) {
		res := w.demoSession(nil)
		b := w.browser()
		consentURL, consent := b.consent(res)
		p := b.submit(consentURL, consent.body, "connect-deny", nil)
		if p.status != http.StatusOK || errorCode(t, p) != connect.CodeAccessDenied {
			t.Fatalf("deny: %d\n%s", p.status, p.body)
		}
		d := result(t, p)
		if d.TargetOrigin != appOrigin || d.Message.Type != views.MessageError || d.Message.Error != "access_denied" || d.Message.ErrorDescription == "" {
			t.Fatalf("data block = %+v", d)
		}
		st, err := w.sdk.ConnectSessionStatus(context.Background(), res.SessionID)
		if err != nil || st.Status != wire.ConnectFailed || st.ErrorCode != "access_denied" {
			t.Fatalf("poll = %+v %v", st, err)
		}
		// The session is over: its pages now say so and tell nobody.
		again := b.get(consentURL)
		if code := errorCode(t, again); code != connect.CodeBrowserMismatch && code != connect.CodeSessionUsed {
			t.Fatalf("consent after deny: %s", code)
		}
		if result(t, again).TargetOrigin != "" {
			t.Fatal("a finished session was delivered twice")
		}
	})
}

func TestConnectDenyAtTheProviderReportsAccessDenied(t *testing.T) {
	forEachDialect(t, func(t *testing.T, w *connectWorld) {
		res := w.demoSession(nil)
		b := w.browser()
		consentURL, consent := b.consent(res)
		p := b.get(b.authorizeAtDemo(consentURL, consent, "grace", "deny"))
		if errorCode(t, p) != "access_denied" {
			t.Fatalf("provider deny:\n%s", p.body)
		}
		if d := result(t, p); d.TargetOrigin != appOrigin || d.Message.Error != "access_denied" {
			t.Fatalf("data block = %+v", d)
		}
		if row := w.session(res.SessionID); row.Status != models.ConnectFailed || row.ErrorCode != "access_denied" {
			t.Fatalf("session %s %s", row.Status, row.ErrorCode)
		}
	})
}

func TestConnectCallbackBelongsToTheBrowserThatStarted(t *testing.T) {
	forEachDialect(t, func(t *testing.T, w *connectWorld) {
		res := w.demoSession(nil)
		victim := w.browser()
		consentURL, consent := victim.consent(res)
		cb := victim.authorizeAtDemo(consentURL, consent, "ada", "approve")

		// Another browser holding the callback URL (leaked, or planted by
		// an attacker) is refused and consumes nothing.
		p := w.browser().get(cb)
		if p.status != http.StatusForbidden || errorCode(t, p) != connect.CodeBrowserMismatch || result(t, p).TargetOrigin != "" {
			t.Fatalf("foreign callback: %d\n%s", p.status, p.body)
		}
		if row := w.session(res.SessionID); row.Status != models.ConnectPending {
			t.Fatalf("a foreign callback changed the session to %s", row.Status)
		}

		// The browser that started finishes.
		cookies := victim.c.Jar.Cookies(mustURL(t, w.url+"/sdk/oauth/"))
		p = victim.get(cb)
		if !strings.Contains(p.body, `data-testid="connect-success"`) {
			t.Fatalf("own callback:\n%s", p.body)
		}

		// Replaying the state, even with the binding cookie put back, is
		// refused: the flow and the session are single-use.
		replay := w.browser()
		replay.c.Jar.SetCookies(mustURL(t, w.url+"/sdk/oauth/"), cookies)
		p = replay.get(cb)
		if p.status == http.StatusOK && strings.Contains(p.body, "connect-success") {
			t.Fatal("a replayed callback succeeded")
		}
		if code := errorCode(t, p); code != "state_mismatch" && code != connect.CodeSessionUsed {
			t.Fatalf("replayed callback: %s", code)
		}
		if result(t, p).TargetOrigin != "" {
			t.Fatal("a replayed callback was delivered to the app")
		}
		var n int64
		w.core.DB.Gorm.Model(&models.Grant{}).Where("app_id = ?", w.app.ID).Count(&n)
		if n != 1 {
			t.Fatalf("%d grants, want 1", n)
		}
	})
}

func TestConnectRedirectFlowReturnsToTheReturnURL(t *testing.T) {
	forEachDialect(t, func(t *testing.T, w *connectWorld) {
		t.Run("success", func(t *testing.T) {
			res := w.demoSession(func(r *wire.ConnectSessionRequest) { r.ReturnURL = appReturn })
			b := w.browser()
			next := b.open(res.ConnectURL, "redirect")
			consent := b.get(next)
			cb := b.authorizeAtDemo(w.url+next, consent, "ada", "approve")
			p := b.get(cb)
			if p.status != http.StatusFound {
				t.Fatalf("redirect-flow callback: %d\n%s", p.status, p.body)
			}
			loc := p.location(t)
			q := loc.Query()
			if loc.Scheme+"://"+loc.Host+loc.Path != "https://app.example.test/connected" || q.Get("tab") != "accounts" {
				t.Fatalf("returned to %s", loc.Redacted())
			}
			var g models.Grant
			w.core.DB.Gorm.Where("app_id = ?", w.app.ID).Take(&g)
			want := map[string]string{
				"alter_connect_success": "true", "grant_id": g.ID, "provider": demoProvider, "provider_name": "Demo Calendar",
				"account_identifier": "cal-ada", "operation": "creation", "scopes": "calendar.read", "status": "active",
			}
			for k, v := range want {
				if q.Get(k) != v {
					t.Fatalf("%s = %q, want %q (in %s)", k, q.Get(k), v, loc.RawQuery)
				}
			}
			if q.Get("timestamp") == "" {
				t.Fatal("no timestamp")
			}
		})
		t.Run("deny", func(t *testing.T) {
			res := w.demoSession(func(r *wire.ConnectSessionRequest) { r.ReturnURL = appReturn })
			b := w.browser()
			next := b.open(res.ConnectURL, "redirect")
			consent := b.get(next)
			p := b.submit(w.url+next, consent.body, "connect-deny", nil)
			if p.status != http.StatusFound {
				t.Fatalf("redirect-flow deny: %d\n%s", p.status, p.body)
			}
			q := p.location(t).Query()
			if q.Get("alter_connect_error") != "true" || q.Get("error_code") != "access_denied" || q.Get("error_description") == "" || q.Get("tab") != "accounts" {
				t.Fatalf("returned with %s", q.Encode())
			}
		})
		t.Run("popup with only a return URL goes back there too", func(t *testing.T) {
			res := w.demoSession(func(r *wire.ConnectSessionRequest) { r.AllowedOrigin, r.ReturnURL = "", appReturn })
			b := w.browser()
			next := b.open(res.ConnectURL, "popup")
			consent := b.get(next)
			p := b.submit(w.url+next, consent.body, "connect-deny", nil)
			if p.status != http.StatusFound || p.location(t).Query().Get("error_code") != "access_denied" {
				t.Fatalf("deny without origin: %d %s", p.status, p.header.Get("Location"))
			}
		})
	})
}

func TestConnectPagesAreSelfContained(t *testing.T) {
	forEachDialect(t, func(t *testing.T, w *connectWorld) {
		res := w.demoSession(func(r *wire.ConnectSessionRequest) { r.AllowedProviders = []string{demoProvider, "github"} })
		b := w.browser()
		popup := b.get("/sdk/oauth/connect")
		picker := b.get(b.open(res.ConnectURL, "popup"))
		unknown := b.get("/sdk/oauth/connect/s/00000000-0000-0000-0000-000000000000")
		scriptTag := regexp.MustCompile(`<script[^>]*>`)
		for name, p := range map[string]page{"popup": popup, "picker": picker, "unknown session": unknown} {
			for _, tag := range scriptTag.FindAllString(p.body, -1) {
				if !strings.Contains(tag, ` src="/static/js/connect-popup.js?v=`) && tag != `<script id="connect-result" type="application/json">` {
					t.Fatalf("%s: inline or foreign script %q", name, tag)
				}
			}
			if strings.Contains(p.body, "<style") || strings.Contains(p.body, ` style="`) || strings.Contains(p.body, " onclick=") {
				t.Fatalf("%s: inline style or handler", name)
			}
			h := p.header
			if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self';") || !strings.Contains(csp, "frame-ancestors 'none'") {
				t.Fatalf("%s: CSP %q", name, csp)
			}
			if h.Get("Cache-Control") != "no-store" || h.Get("X-Frame-Options") != "DENY" || h.Get("Referrer-Policy") != "no-referrer" {
				t.Fatalf("%s: headers %v", name, h)
			}
		}
		if errorCode(t, unknown) != connect.CodeNotFound || unknown.status != http.StatusNotFound {
			t.Fatalf("unknown session page: %d\n%s", unknown.status, unknown.body)
		}
		for _, js := range []string{"/static/js/connect-popup.js", "/static/js/connect.js"} {
			if p := b.get(js); p.status != http.StatusOK || !strings.HasPrefix(p.header.Get("Content-Type"), "text/javascript") {
				t.Fatalf("%s: %d %s", js, p.status, p.header.Get("Content-Type"))
			}
		}
	})
}

func TestConnectSessionEndpointsAreForAppKeysOnly(t *testing.T) {
	forEachDialect(t, func(t *testing.T, w *connectWorld) {
		if _, err := w.sdk.CreateConnectSession(context.Background(), wire.ConnectSessionRequest{AllowedOrigin: "https://evil.example.test"}); sdkErrCode(err) != wire.CodeInvalidRequest {
			t.Fatalf("unregistered origin: %v", err)
		}
		if _, err := w.sdk.CreateConnectSession(context.Background(), wire.ConnectSessionRequest{AllowedProviders: []string{"gitlab"}}); sdkErrCode(err) != wire.CodeProviderNotConfigured {
			t.Fatalf("unconfigured provider: %v", err)
		}
		// An agent key may not mint: Connect consent is the app's to ask for.
		agentKey := w.seed.Key(w.app.ID, w.agent.Agent.ID)
		signer, err := wire.NewSigner(agentKey.APIKey, w.clock.Now, nil)
		if err != nil {
			t.Fatal(err)
		}
		areq, _ := http.NewRequest(http.MethodPost, w.url+wire.PathConnectSession, strings.NewReader(`{}`))
		areq.Header.Set("Content-Type", "application/json")
		if err := signer.Sign(areq); err != nil {
			t.Fatal(err)
		}
		if p := w.browser().do(areq); p.status != http.StatusForbidden {
			t.Fatalf("agent-key mint: %d %s", p.status, p.body)
		}
		req, _ := http.NewRequest(http.MethodPost, w.url+wire.PathConnectSession, strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		if p := w.browser().do(req); p.status != http.StatusUnauthorized {
			t.Fatalf("unsigned mint: %d", p.status)
		}
		other := w.seed.Agent(w.app.ID, "")
		if _, err := w.sdk.CreateConnectSession(context.Background(), wire.ConnectSessionRequest{
			AgentID: other.Agent.ID, EndUser: &wire.EndUser{ID: "u"}, AllowedProviders: []string{demoProvider},
		}); err != nil {
			t.Fatalf("mint for an own agent: %v", err)
		}
		otherApp, _ := w.seed.App("")
		foreign := w.seed.Agent(otherApp.ID, "")
		if _, err := w.sdk.CreateConnectSession(context.Background(), wire.ConnectSessionRequest{
			AgentID: foreign.Agent.ID, EndUser: &wire.EndUser{ID: "u"},
		}); sdkErrCode(err) != wire.CodeNotFound {
			t.Fatalf("agent of another app: %v", err)
		}
		if _, err := w.sdk.ConnectSessionStatus(context.Background(), "00000000-0000-0000-0000-000000000000"); sdkErrCode(err) != wire.CodeNotFound {
			t.Fatalf("unknown session poll: %v", err)
		}
	})
}

func sdkErrCode(err error) wire.ErrorCode {
	var e *sdk.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestConnectReconnectingTheSameAccountIsAReauth(t *testing.T) {
	forEachDialect(t, func(t *testing.T, w *connectWorld) {
		connectOnce := func() views.Grant {
			t.Helper()
			b := w.browser()
			consentURL, consent := b.consent(w.demoSession(nil))
			p := b.get(b.authorizeAtDemo(consentURL, consent, "ada", "approve"))
			d := result(t, p)
			if len(d.Message.Grants) != 1 {
				t.Fatalf("result: %+v", d)
			}
			return d.Message.Grants[0]
		}
		first, second := connectOnce(), connectOnce()
		if first.Operation != "creation" || second.Operation != "reauth" || second.GrantID != first.GrantID {
			t.Fatalf("first %s %s, second %s %s", first.Operation, first.GrantID, second.Operation, second.GrantID)
		}
	})
}

func TestConnectSessionExpiringAtTheProviderIsReported(t *testing.T) {
	forEachDialect(t, func(t *testing.T, w *connectWorld) {
		res := w.demoSession(nil)
		b := w.browser()
		consentURL, consent := b.consent(res)
		cb := b.authorizeAtDemo(consentURL, consent, "ada", "approve")
		w.clock.Advance(connect.DefaultLifetime + 1)
		p := b.get(cb)
		if code := errorCode(t, p); code != connect.CodeSessionExpired {
			t.Fatalf("late callback: %s", code)
		}
		if d := result(t, p); d.TargetOrigin != appOrigin || d.Message.Error != connect.CodeSessionExpired {
			t.Fatalf("data block = %+v", d)
		}
		var n int64
		w.core.DB.Gorm.Model(&models.Grant{}).Where("app_id = ?", w.app.ID).Count(&n)
		if n != 0 {
			t.Fatal("an expired session stored a grant")
		}
	})
}
