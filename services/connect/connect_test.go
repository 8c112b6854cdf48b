package connect_test

import (
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/bearer"
	"github.com/latchkey/latchkey/services/connect"
	"github.com/latchkey/latchkey/testutil"
)

func TestMintRefusesWhatTheAppDidNotRegister(t *testing.T) {
	for _, dialect := range testutil.Dialects(t) {
		t.Run(dialect, func(t *testing.T) {
			e := newEnv(t, dialect)
			other, _ := e.seed.App("")
			otherAgent := e.seed.Agent(other.ID, "")
			ownAgent := e.seed.Agent(e.app.ID, "")
			tests := []struct {
				name   string
				req    wire.ConnectSessionRequest
				caller func() error
				want   wire.ErrorCode
			}{
				{name: "unregistered origin is invalid_request",
					req: wire.ConnectSessionRequest{AllowedOrigin: "https://evil.example.test"}, want: wire.CodeInvalidRequest},
				{name: "origin with a trailing slash is not the registered origin",
					req: wire.ConnectSessionRequest{AllowedOrigin: appOrigin + "/"}, want: wire.CodeInvalidRequest},
				{name: "origin in another case is not the registered origin",
					req: wire.ConnectSessionRequest{AllowedOrigin: strings.ToUpper(appOrigin)}, want: wire.CodeInvalidRequest},
				{name: "unregistered return_url is invalid_request",
					req: wire.ConnectSessionRequest{ReturnURL: appReturn + "/elsewhere"}, want: wire.CodeInvalidRequest},
				{name: "return_url with an extra query is not the registered one",
					req: wire.ConnectSessionRequest{ReturnURL: appReturn + "?next=/x"}, want: wire.CodeInvalidRequest},
				{name: "unknown provider is provider_not_configured",
					req: wire.ConnectSessionRequest{AllowedProviders: []string{"github", "gitlab"}}, want: wire.CodeProviderNotConfigured},
				{name: "malformed provider slug is invalid_request",
					req: wire.ConnectSessionRequest{AllowedProviders: []string{"Git Hub"}}, want: wire.CodeInvalidRequest},
				{name: "agent of another app is not_found",
					req:  wire.ConnectSessionRequest{AgentID: otherAgent.Agent.ID, EndUser: &wire.EndUser{ID: "u-1"}},
					want: wire.CodeNotFound},
				{name: "agent id that is not a UUID is invalid_request",
					req: wire.ConnectSessionRequest{AgentID: "research-bot", EndUser: &wire.EndUser{ID: "u-1"}}, want: wire.CodeInvalidRequest},
				{name: "agent without an end user is invalid_request",
					req: wire.ConnectSessionRequest{AgentID: ownAgent.Agent.ID}, want: wire.CodeInvalidRequest},
				{name: "user token and end_user together are invalid_request",
					req: wire.ConnectSessionRequest{EndUser: &wire.EndUser{ID: "u-1"}}, caller: func() error {
						c := e.caller(e.app, e.key)
						c.UserToken = "eyJ.fake.jwt"
						_, err := e.core.Connect.Mint(e.ctx, c, wire.ConnectSessionRequest{EndUser: &wire.EndUser{ID: "u-1"}})
						return err
					}, want: wire.CodeInvalidRequest},
				{name: "user token of an app without IdP is invalid_user_token",
					caller: func() error {
						c := e.caller(e.app, e.key)
						c.UserToken = "eyJ.fake.jwt"
						_, err := e.core.Connect.Mint(e.ctx, c, wire.ConnectSessionRequest{})
						return err
					}, want: wire.CodeInvalidUserToken},
				{name: "an agent caller is forbidden",
					caller: func() error {
						c := e.caller(e.app, e.key)
						c.AgentID = ownAgent.Agent.ID
						_, err := e.core.Connect.Mint(e.ctx, c, wire.ConnectSessionRequest{})
						return err
					}, want: wire.CodeForbidden},
				{name: "app without active provider configs is provider_not_configured",
					caller: func() error {
						_, key := e.seed.App("")
						app2, _ := e.core.Tenancy.App(e.ctx, key.AppID)
						_, err := e.core.Connect.Mint(e.ctx, e.caller(app2, key), wire.ConnectSessionRequest{})
						return err
					}, want: wire.CodeProviderNotConfigured},
				{name: "too many metadata entries are invalid_request",
					req: wire.ConnectSessionRequest{Metadata: manyEntries(connect.MaxMetadataKeys + 1)}, want: wire.CodeInvalidRequest},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					before := countSessions(t, e)
					var err error
					if tt.caller != nil {
						err = tt.caller()
					} else {
						_, err = e.core.Connect.Mint(e.ctx, e.caller(e.app, e.key), tt.req)
					}
					if got := sdkCode(err); got != tt.want {
						t.Fatalf("code = %q (%v), want %q", got, err, tt.want)
					}
					if after := countSessions(t, e); after != before {
						t.Fatalf("a refused mint stored a session (%d → %d)", before, after)
					}
				})
			}
		})
	}
}

func manyEntries(n int) map[string]string {
	m := map[string]string{}
	for i := range n {
		m[strings.Repeat("k", i+1)] = "v"
	}
	return m
}

func countSessions(t *testing.T, e *env) int64 {
	t.Helper()
	var n int64
	if err := e.core.DB.Gorm.Model(&models.ConnectSession{}).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMintStoresOnlyTheTokenHash(t *testing.T) {
	for _, dialect := range testutil.Dialects(t) {
		t.Run(dialect, func(t *testing.T) {
			e := newEnv(t, dialect)
			agent := e.seed.Agent(e.app.ID, "research-bot")
			res := e.mint(wire.ConnectSessionRequest{
				AllowedProviders: []string{"github"}, AllowedOrigin: appOrigin, ReturnURL: appReturn,
				AgentID: agent.Agent.ID, EndUser: &wire.EndUser{ID: "u-123", Email: "ada@example.com", DisplayName: "Ada"},
				Metadata: map[string]string{"plan": "pro"},
			})
			if !strings.HasPrefix(res.SessionToken, connect.TokenPrefix) || len(res.SessionToken) != len(connect.TokenPrefix)+43 {
				t.Fatalf("session token %q is not %s + 256 bits", "(redacted)", connect.TokenPrefix)
			}
			if want := "https://latchkey.example.test/sdk/oauth/connect#session=" + res.SessionToken; res.ConnectURL != want {
				t.Fatalf("connect_url is not the public popup URL with the token in the fragment")
			}
			if want := e.clock.Now().Add(connect.DefaultLifetime); !res.ExpiresAt.Equal(want) {
				t.Fatalf("expires_at = %v, want %v", res.ExpiresAt, want)
			}
			row := e.session(res.SessionID)
			if row.TokenHash != bearer.Hash(res.SessionToken) {
				t.Fatal("the stored token hash is not the token's SHA-256")
			}
			if row.PrincipalKind != models.PrincipalUser || row.EndUserID == nil || row.AgentID == nil || *row.AgentID != agent.Agent.ID {
				t.Fatalf("session principal = %s user=%v agent=%v", row.PrincipalKind, row.EndUserID, row.AgentID)
			}
			if row.Status != models.ConnectPending || row.BrowserBindingHash != "" || row.OpenedAt != nil {
				t.Fatalf("fresh session: status %s binding %q opened %v", row.Status, row.BrowserBindingHash, row.OpenedAt)
			}
			var n int64
			e.core.DB.Gorm.Model(&models.ConnectSession{}).Where("token_hash = ? OR metadata LIKE ?", res.SessionToken, "%"+res.SessionToken+"%").Count(&n)
			if n != 0 {
				t.Fatal("the raw session token is stored")
			}
			var audits []models.AuditEvent
			e.core.DB.Gorm.Where("action = ? AND app_id = ?", connect.ActionSessionCreate, e.app.ID).Find(&audits)
			if len(audits) != 1 || audits[0].AgentID != agent.Agent.ID || strings.Contains(audits[0].Context, res.SessionToken) {
				t.Fatalf("audit rows = %+v, want one connect.session.create naming the agent and not the token", audits)
			}
		})
	}
}

func TestMintPicksPrincipalAndProviders(t *testing.T) {
	for _, dialect := range testutil.Dialects(t) {
		t.Run(dialect, func(t *testing.T) {
			e := newEnv(t, dialect)
			tests := []struct {
				name          string
				req           wire.ConnectSessionRequest
				wantKind      string
				wantProviders string
			}{
				{name: "no end user makes a system session over every active config",
					req: wire.ConnectSessionRequest{}, wantKind: models.PrincipalSystem, wantProviders: `["github","slack"]`},
				{name: "asserted end user makes a user session",
					req: wire.ConnectSessionRequest{EndUser: &wire.EndUser{ID: "u-9"}}, wantKind: models.PrincipalUser, wantProviders: `["github","slack"]`},
				{name: "requested providers keep their order without duplicates",
					req: wire.ConnectSessionRequest{AllowedProviders: []string{"slack", "github", "slack"}}, wantKind: models.PrincipalSystem, wantProviders: `["slack","github"]`},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					row := e.session(e.mint(tt.req).SessionID)
					if row.PrincipalKind != tt.wantKind || row.AllowedProviders != tt.wantProviders {
						t.Fatalf("kind %s providers %s, want %s %s", row.PrincipalKind, row.AllowedProviders, tt.wantKind, tt.wantProviders)
					}
				})
			}
		})
	}
}

func TestExchangeWorksOnceForOneBrowser(t *testing.T) {
	for _, dialect := range testutil.Dialects(t) {
		t.Run(dialect, func(t *testing.T) {
			e := newEnv(t, dialect)
			res := e.mint(wire.ConnectSessionRequest{AllowedProviders: []string{"github"}, AllowedOrigin: appOrigin})
			first := binding()
			opened, err := e.core.Connect.Exchange(e.ctx, connect.ExchangeInput{Token: res.SessionToken, Binding: first})
			if err != nil {
				t.Fatalf("first exchange: %v", err)
			}
			if opened.SessionID != res.SessionID || len(opened.Providers) != 1 || opened.Providers[0] != "github" {
				t.Fatalf("opened = %+v", opened)
			}
			if row := e.session(res.SessionID); row.BrowserBindingHash != first || row.OpenedAt == nil {
				t.Fatal("the exchange did not bind the session to the browser")
			}

			tests := []struct {
				name  string
				token string
				want  string
			}{
				{name: "the same token again is connect_session_used", token: res.SessionToken, want: connect.CodeSessionUsed},
				{name: "an unknown token is not_found", token: connect.TokenPrefix + strings.Repeat("A", 43), want: connect.CodeNotFound},
				{name: "a malformed token is not_found", token: "not-a-token", want: connect.CodeNotFound},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					_, err := e.core.Connect.Exchange(e.ctx, connect.ExchangeInput{Token: tt.token, Binding: binding()})
					code, d := failureCode(t, err)
					if code != tt.want || d != (connect.Delivery{}) {
						t.Fatalf("code %s delivery %+v, want %s and no delivery", code, d, tt.want)
					}
				})
			}
			if row := e.session(res.SessionID); row.BrowserBindingHash != first {
				t.Fatal("a refused exchange rebound the session")
			}
			if _, err := e.core.Connect.View(e.ctx, res.SessionID, binding(), ""); err == nil {
				t.Fatal("another browser could view the session")
			} else if code, _ := failureCode(t, err); code != connect.CodeBrowserMismatch {
				t.Fatalf("another browser: %s, want browser_mismatch", code)
			}
			if _, err := e.core.Connect.View(e.ctx, res.SessionID, first, ""); err != nil {
				t.Fatalf("the bound browser cannot view its session: %v", err)
			}
		})
	}
}

func TestExpiredSessionIsReportedAndDelivered(t *testing.T) {
	for _, dialect := range testutil.Dialects(t) {
		t.Run(dialect, func(t *testing.T) {
			e := newEnv(t, dialect)
			res := e.mint(wire.ConnectSessionRequest{AllowedOrigin: appOrigin, ReturnURL: appReturn})
			e.clock.Advance(connect.DefaultLifetime + time.Second)

			_, err := e.core.Connect.Exchange(e.ctx, connect.ExchangeInput{Token: res.SessionToken, Binding: binding()})
			code, d := failureCode(t, err)
			if code != connect.CodeSessionExpired || d.TargetOrigin != appOrigin || d.ReturnURL != appReturn {
				t.Fatalf("code %s delivery %+v, want connect_session_expired to the registered URLs", code, d)
			}
			st, err := e.core.Connect.Status(e.ctx, e.caller(e.app, e.key), res.SessionID)
			if err != nil {
				t.Fatal(err)
			}
			if st.Status != wire.ConnectExpired || st.ErrorCode != connect.CodeSessionExpired {
				t.Fatalf("status = %+v, want expired", st)
			}
			if row := e.session(res.SessionID); row.Status != models.ConnectExpired {
				t.Fatalf("stored status %s, want expired", row.Status)
			}
		})
	}
}

func TestDeliveryGoesOnlyToStillRegisteredURLs(t *testing.T) {
	for _, dialect := range testutil.Dialects(t) {
		t.Run(dialect, func(t *testing.T) {
			e := newEnv(t, dialect)
			res := e.mint(wire.ConnectSessionRequest{AllowedOrigin: appOrigin, ReturnURL: appReturn})
			b := binding()
			if _, err := e.core.Connect.Exchange(e.ctx, connect.ExchangeInput{Token: res.SessionToken, Binding: b}); err != nil {
				t.Fatal(err)
			}
			// The operator replaces the app's URLs while the user is on the
			// consent screen: the old origin must hear nothing.
			if err := e.core.Tenancy.SetURLs(e.ctx, e.app.ID, tenancyURLs("https://new.example.test"), testActor); err != nil {
				t.Fatal(err)
			}
			code, d := failureCode(t, e.core.Connect.Deny(e.ctx, res.SessionID, b))
			if code != connect.CodeAccessDenied || d != (connect.Delivery{}) {
				t.Fatalf("code %s delivery %+v, want access_denied delivered nowhere", code, d)
			}
		})
	}
}

func TestStatusFollowsTheSession(t *testing.T) {
	for _, dialect := range testutil.Dialects(t) {
		t.Run(dialect, func(t *testing.T) {
			e := newEnv(t, dialect)
			res := e.mint(wire.ConnectSessionRequest{AllowedOrigin: appOrigin})
			caller := e.caller(e.app, e.key)
			st, err := e.core.Connect.Status(e.ctx, caller, res.SessionID)
			if err != nil || st.Status != wire.ConnectPending {
				t.Fatalf("fresh session: %+v %v", st, err)
			}
			other, otherKey := e.seed.App("")
			if _, err := e.core.Connect.Status(e.ctx, e.caller(other, otherKey), res.SessionID); sdkCode(err) != wire.CodeNotFound {
				t.Fatalf("another app's poll: %v, want not_found", err)
			}
			if _, err := e.core.Connect.Status(e.ctx, caller, "not-a-uuid"); sdkCode(err) != wire.CodeNotFound {
				t.Fatalf("malformed id: %v, want not_found", err)
			}
			b := binding()
			if _, err := e.core.Connect.Exchange(e.ctx, connect.ExchangeInput{Token: res.SessionToken, Binding: b}); err != nil {
				t.Fatal(err)
			}
			code, d := failureCode(t, e.core.Connect.Deny(e.ctx, res.SessionID, b))
			if code != connect.CodeAccessDenied || d.TargetOrigin != appOrigin {
				t.Fatalf("deny: %s %+v", code, d)
			}
			st, err = e.core.Connect.Status(e.ctx, caller, res.SessionID)
			if err != nil || st.Status != wire.ConnectFailed || st.ErrorCode != connect.CodeAccessDenied || st.ErrorDescription == "" {
				t.Fatalf("after deny: %+v %v", st, err)
			}
			// A finished session cannot be finished again, nor begun.
			if code, _ := failureCode(t, e.core.Connect.Deny(e.ctx, res.SessionID, b)); code != connect.CodeSessionUsed {
				t.Fatalf("second deny: %s, want connect_session_used", code)
			}
			if _, err := e.core.Connect.Begin(e.ctx, res.SessionID, b, "github"); err == nil {
				t.Fatal("a failed session could begin a flow")
			} else if code, _ := failureCode(t, err); code != connect.CodeSessionUsed {
				t.Fatalf("begin after deny: %s", code)
			}
		})
	}
}
