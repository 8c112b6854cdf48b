package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/sdk"
	"github.com/latchkey/latchkey/sdk/wire"
)

func TestCallsUseTheDocumentedRoutes(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	agentKey := newKey(wire.KeyKindAgent)
	const gid, aid = "0b7e4f52-8c1d-4a9e-b3f6-2d5c7a9e1f04", testAgentID
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		call       func(ctx context.Context, a *sdk.App) (any, error)
		answer     any // JSON written with 200; nil writes 204
		wantMethod string
		wantTarget string
		wantBody   string
		check      func(t *testing.T, got any)
	}{
		{
			name:       "Me",
			call:       func(ctx context.Context, a *sdk.App) (any, error) { return a.Me(ctx) },
			answer:     wire.Me{Kind: wire.KeyKindApp, AppID: "app-1", KeyID: "lk_app_x", KeyStatus: wire.KeyStatusActive},
			wantMethod: "GET", wantTarget: "/sdk/v1/me",
			check: func(t *testing.T, got any) {
				if got.(*wire.Me).AppID != "app-1" {
					t.Errorf("got %+v", got)
				}
			},
		},
		{
			name: "ListGrants with every filter",
			call: func(ctx context.Context, a *sdk.App) (any, error) {
				return a.ListGrants(ctx, sdk.ListGrantsOptions{Provider: "github", Status: wire.GrantNeedsReauth, Limit: 5, Cursor: "abc"})
			},
			answer:     wire.GrantList{Grants: []wire.Grant{{GrantID: gid}}, NextCursor: "def"},
			wantMethod: "GET", wantTarget: "/sdk/v1/grants?provider=github&status=needs_reauth&limit=5&cursor=abc",
			check: func(t *testing.T, got any) {
				p := got.(sdk.GrantPage)
				if len(p.Grants) != 1 || p.NextCursor != "def" {
					t.Errorf("got %+v", p)
				}
			},
		},
		{
			name:       "GetGrant",
			call:       func(ctx context.Context, a *sdk.App) (any, error) { return a.GetGrant(ctx, gid) },
			answer:     wire.Grant{GrantID: gid, Provider: "github"},
			wantMethod: "GET", wantTarget: "/sdk/v1/grants/" + gid,
		},
		{
			name:       "RevokeGrant",
			call:       func(ctx context.Context, a *sdk.App) (any, error) { return nil, a.RevokeGrant(ctx, gid) },
			wantMethod: "DELETE", wantTarget: "/sdk/v1/grants/" + gid,
		},
		{
			name:       "RevokeDelegation",
			call:       func(ctx context.Context, a *sdk.App) (any, error) { return nil, a.RevokeDelegation(ctx, gid, aid) },
			wantMethod: "DELETE", wantTarget: "/sdk/v1/grants/" + gid + "/delegations/" + aid,
		},
		{
			name: "GrantManagedSecret",
			call: func(ctx context.Context, a *sdk.App) (any, error) {
				return a.GrantManagedSecret(ctx, "ms-1", wire.Principal{Kind: wire.PrincipalAgent, ID: aid})
			},
			answer:     wire.Grant{GrantID: gid, Principal: wire.Principal{Kind: wire.PrincipalAgent, ID: aid}},
			wantMethod: "POST", wantTarget: "/sdk/v1/managed-secrets/ms-1/grants",
			wantBody: `{"principal":{"kind":"agent","id":"` + aid + `"}}`,
		},
		{
			name: "CreateConnectSession",
			call: func(ctx context.Context, a *sdk.App) (any, error) {
				return a.CreateConnectSession(ctx, wire.ConnectSessionRequest{AllowedProviders: []string{"github"}, AgentID: aid,
					EndUser: &wire.EndUser{ID: "u-123"}})
			},
			answer:     wire.ConnectSessionResponse{SessionID: "cs-1", SessionToken: "tok", ConnectURL: "https://lk/c", ExpiresAt: created},
			wantMethod: "POST", wantTarget: "/sdk/oauth/connect/session",
			wantBody: `{"allowed_providers":["github"],"agent_id":"` + aid + `","end_user":{"id":"u-123"}}`,
			check: func(t *testing.T, got any) {
				if got.(*wire.ConnectSessionResponse).SessionID != "cs-1" {
					t.Errorf("got %+v", got)
				}
			},
		},
		{
			name:       "ConnectSessionStatus",
			call:       func(ctx context.Context, a *sdk.App) (any, error) { return a.ConnectSessionStatus(ctx, "cs-1") },
			answer:     wire.ConnectSessionStatus{SessionID: "cs-1", Status: wire.ConnectCompleted, Grants: []wire.Grant{{GrantID: gid}}},
			wantMethod: "GET", wantTarget: "/sdk/v1/connect/sessions/cs-1",
		},
		{
			name:       "GetApproval",
			call:       func(ctx context.Context, a *sdk.App) (any, error) { return a.GetApproval(ctx, "ap-1") },
			answer:     wire.ApprovalEnvelope{Approval: wire.Approval{ApprovalID: "ap-1", Status: wire.ApprovalApproved}},
			wantMethod: "GET", wantTarget: "/sdk/v1/approvals/ap-1",
			check: func(t *testing.T, got any) {
				if got.(*wire.Approval).Status != wire.ApprovalApproved {
					t.Errorf("got %+v", got)
				}
			},
		},
		{
			name: "CreateAgent",
			call: func(ctx context.Context, a *sdk.App) (any, error) {
				return a.CreateAgent(ctx, wire.CreateAgentRequest{Name: "research-bot", DisplayName: "Research bot"})
			},
			answer: wire.CreateAgentResponse{Agent: wire.Agent{AgentID: aid, Name: "research-bot"},
				Key: wire.AgentKey{KeyID: "lk_agent_x", Status: wire.KeyStatusActive, APIKey: agentKey}},
			wantMethod: "POST", wantTarget: "/sdk/v1/agents",
			wantBody: `{"name":"research-bot","display_name":"Research bot"}`,
			check: func(t *testing.T, got any) {
				c := got.(*sdk.CreatedAgent)
				if c.Agent.AgentID != aid || c.Key.APIKey.Reveal() != agentKey || c.Key.Key.APIKey != "" {
					t.Errorf("created agent key not moved into the redacting type: %v", c)
				}
			},
		},
		{
			name: "ListAgents",
			call: func(ctx context.Context, a *sdk.App) (any, error) {
				return a.ListAgents(ctx, sdk.ListAgentsOptions{Limit: 2})
			},
			answer:     wire.AgentList{Agents: []wire.Agent{{AgentID: aid}}},
			wantMethod: "GET", wantTarget: "/sdk/v1/agents?limit=2",
		},
		{
			name:       "GetAgentInfo",
			call:       func(ctx context.Context, a *sdk.App) (any, error) { return a.GetAgentInfo(ctx, aid) },
			answer:     wire.Agent{AgentID: aid, Keys: []wire.AgentKey{{KeyID: "lk_agent_x"}}},
			wantMethod: "GET", wantTarget: "/sdk/v1/agents/" + aid,
		},
		{
			name: "MintAgentKey with a label",
			call: func(ctx context.Context, a *sdk.App) (any, error) {
				return a.MintAgentKey(ctx, aid, wire.MintAgentKeyRequest{Label: "rotation 2026-01"})
			},
			answer:     wire.AgentKey{KeyID: "lk_agent_x", Status: wire.KeyStatusActive, Label: "rotation 2026-01", APIKey: agentKey},
			wantMethod: "POST", wantTarget: "/sdk/v1/agents/" + aid + "/keys", wantBody: `{"label":"rotation 2026-01"}`,
			check: func(t *testing.T, got any) {
				m := got.(*sdk.MintedKey)
				if m.Key.Label != "rotation 2026-01" || m.APIKey.Reveal() != agentKey || m.Key.APIKey != "" {
					t.Errorf("got %v", m)
				}
			},
		},
		{
			name: "MintAgentKey without a label",
			call: func(ctx context.Context, a *sdk.App) (any, error) {
				return a.MintAgentKey(ctx, aid, wire.MintAgentKeyRequest{})
			},
			answer:     wire.AgentKey{KeyID: "lk_agent_x", Status: wire.KeyStatusActive, APIKey: agentKey},
			wantMethod: "POST", wantTarget: "/sdk/v1/agents/" + aid + "/keys", wantBody: "{}",
		},
		{
			name: "DeprecateAgentKey",
			call: func(ctx context.Context, a *sdk.App) (any, error) {
				return a.DeprecateAgentKey(ctx, aid, "lk_agent_x")
			},
			answer:     wire.AgentKey{KeyID: "lk_agent_x", Status: wire.KeyStatusDeprecated},
			wantMethod: "POST", wantTarget: "/sdk/v1/agents/" + aid + "/keys/lk_agent_x/deprecate", wantBody: "{}",
			check: func(t *testing.T, got any) {
				if got.(*wire.AgentKey).Status != wire.KeyStatusDeprecated {
					t.Errorf("got %+v", got)
				}
			},
		},
		{
			name: "RevokeAgentKey",
			call: func(ctx context.Context, a *sdk.App) (any, error) {
				return a.RevokeAgentKey(ctx, aid, "lk_agent_x", false)
			},
			wantMethod: "DELETE", wantTarget: "/sdk/v1/agents/" + aid + "/keys/lk_agent_x",
		},
		{
			name: "RevokeAgentKey with force",
			call: func(ctx context.Context, a *sdk.App) (any, error) {
				return a.RevokeAgentKey(ctx, aid, "lk_agent_x", true)
			},
			wantMethod: "DELETE", wantTarget: "/sdk/v1/agents/" + aid + "/keys/lk_agent_x?force=true",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := startFake(t, func(w http.ResponseWriter, _ *http.Request, _ seenRequest) {
				if tt.answer == nil {
					w.WriteHeader(http.StatusNoContent)
					return
				}
				writeJSON(w, http.StatusOK, tt.answer)
			}, appKey)
			got, err := tt.call(context.Background(), mustApp(t, appKey, sdk.WithBaseURL(fake.URL())))
			if err != nil {
				t.Fatal(err)
			}
			r := fake.requests()
			if len(r) != 1 {
				t.Fatalf("%d requests", len(r))
			}
			if r[0].Method != tt.wantMethod || r[0].Target != tt.wantTarget || string(r[0].Body) != tt.wantBody {
				t.Errorf("sent %s %s %s\nwant %s %s %s", r[0].Method, r[0].Target, r[0].Body, tt.wantMethod, tt.wantTarget, tt.wantBody)
			}
			if ct := r[0].Header.Get("Content-Type"); (tt.wantBody != "") != (ct == "application/json") {
				t.Errorf("Content-Type %q with body %q", ct, tt.wantBody)
			}
			if tt.check != nil {
				tt.check(t, got)
			}
		})
	}
}

func TestEmptyIDsAreRefusedBeforeSending(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	fake := startFake(t, nil, appKey)
	app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()))
	ctx := context.Background()
	for name, err := range map[string]error{
		"revoke grant ''":         app.RevokeGrant(ctx, ""),
		"revoke grant '..'":       app.RevokeGrant(ctx, ".."),
		"revoke delegation":       app.RevokeDelegation(ctx, "g", ""),
		"deprecate agent key":     func() error { _, err := app.DeprecateAgentKey(ctx, "a", ""); return err }(),
		"revoke agent key agent":  func() error { _, err := app.RevokeAgentKey(ctx, "", "k", true); return err }(),
		"get grant":               func() error { _, err := app.GetGrant(ctx, ""); return err }(),
		"connect session status":  func() error { _, err := app.ConnectSessionStatus(ctx, ""); return err }(),
		"create agent needs name": func() error { _, err := app.CreateAgent(ctx, wire.CreateAgentRequest{}); return err }(),
	} {
		if err == nil || !strings.Contains(err.Error(), "required") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if n := len(fake.requests()); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
}

func TestMintedKeyPrintsRedacted(t *testing.T) {
	appKey, agentKey := newKey(wire.KeyKindApp), newKey(wire.KeyKindAgent)
	tests := []struct {
		name    string
		apiKey  string
		wantErr string
	}{
		{"a well-formed agent key is kept, redacted", agentKey, ""},
		{"a missing key is an error", "", "no well-formed API key"},
		{"an app key where an agent key belongs is an error", appKey, "not an agent key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := startFake(t, func(w http.ResponseWriter, _ *http.Request, _ seenRequest) {
				writeJSON(w, http.StatusCreated, wire.AgentKey{KeyID: "lk_agent_x", APIKey: tt.apiKey})
			}, appKey)
			m, err := mustApp(t, appKey, sdk.WithBaseURL(fake.URL())).MintAgentKey(context.Background(), testAgentID, wire.MintAgentKeyRequest{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				assertNoSecret(t, err.Error(), appKey, agentKey)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if m.APIKey.Reveal() != agentKey {
				t.Fatal("Reveal lost the key")
			}
			assertNoSecret(t, fmt.Sprintf("%v %+v %#v %s", m, *m, m, m.APIKey), agentKey)
			if !strings.Contains(fmt.Sprint(m.APIKey), "REDACTED") {
				t.Errorf("key prints as %v", m.APIKey)
			}
		})
	}
}

func TestGrantsIteratesOverEveryPage(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	pages := map[string]wire.GrantList{
		"":   {Grants: []wire.Grant{{GrantID: "g1"}, {GrantID: "g2"}}, NextCursor: "p2"},
		"p2": {Grants: []wire.Grant{{GrantID: "g3"}}, NextCursor: "p3"},
		"p3": {Grants: []wire.Grant{{GrantID: "g4"}}},
	}
	fake := startFake(t, func(w http.ResponseWriter, r *http.Request, _ seenRequest) {
		if r.URL.Query().Get("provider") != "github" {
			writeError(w, wire.CodeInvalidRequest, "filter lost between pages")
			return
		}
		writeJSON(w, http.StatusOK, pages[r.URL.Query().Get("cursor")])
	}, appKey)
	app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()))

	var ids []string
	for g, err := range app.Grants(context.Background(), sdk.ListGrantsOptions{Provider: "github"}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, g.GrantID)
	}
	if strings.Join(ids, ",") != "g1,g2,g3,g4" {
		t.Fatalf("ids %v", ids)
	}

	// Stopping early fetches no further page.
	before := len(fake.requests())
	for range app.Grants(context.Background(), sdk.ListGrantsOptions{Provider: "github"}) {
		break
	}
	if n := len(fake.requests()) - before; n != 1 {
		t.Fatalf("early break fetched %d pages", n)
	}
}

func TestIteratorsYieldOneErrorAndStop(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	tests := []struct {
		name   string
		answer func(w http.ResponseWriter, cursor string)
		want   func(error) bool
	}{
		{
			name: "a Latchkey error on the second page",
			answer: func(w http.ResponseWriter, cursor string) {
				if cursor == "" {
					writeJSON(w, http.StatusOK, wire.AgentList{Agents: []wire.Agent{{AgentID: "a1"}}, NextCursor: "p2"})
					return
				}
				writeError(w, wire.CodeForbidden, "agents are app-only")
			},
			want: func(err error) bool { return errors.Is(err, sdk.ErrForbidden) },
		},
		{
			name: "a server that repeats its cursor",
			answer: func(w http.ResponseWriter, _ string) {
				writeJSON(w, http.StatusOK, wire.AgentList{Agents: []wire.Agent{{AgentID: "a1"}}, NextCursor: "same"})
			},
			want: func(err error) bool { return err != nil && strings.Contains(err.Error(), "same page cursor") },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := startFake(t, func(w http.ResponseWriter, r *http.Request, _ seenRequest) {
				tt.answer(w, r.URL.Query().Get("cursor"))
			}, appKey)
			app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()))
			var errs []error
			items := 0
			for _, err := range app.Agents(context.Background(), sdk.ListAgentsOptions{}) {
				if err != nil {
					errs = append(errs, err)
					continue
				}
				items++
			}
			if len(errs) != 1 || !tt.want(errs[0]) {
				t.Fatalf("errors %v", errs)
			}
			if items == 0 || len(fake.requests()) > 3 {
				t.Fatalf("%d items, %d requests", items, len(fake.requests()))
			}
		})
	}
}

func TestAgentHandleCallsActAsTheAgent(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	fake := startFake(t, func(w http.ResponseWriter, r *http.Request, s seenRequest) {
		if s.Auth.AgentID() != testAgentID {
			writeError(w, wire.CodeNoDelegatedGrant, "not as the agent")
			return
		}
		writeProxied(w, http.StatusOK, "text/plain", "as agent")
	}, appKey)
	ag := mustApp(t, appKey, sdk.WithBaseURL(fake.URL())).GetAgent(testAgentID)
	if ag.AgentID() != testAgentID {
		t.Fatalf("AgentID() = %q", ag.AgentID())
	}
	resp, err := ag.Proxy(context.Background(), sdk.Request{URL: "https://x.example", GrantID: "g-1"})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}
