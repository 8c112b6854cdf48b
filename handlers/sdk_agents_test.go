package handlers

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/testutil"
)

func TestSDKCreateAgentShowsItsKeyOnceAndAuditsTheChange(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newSDKEnv(t, db)
		app, appKey := e.app("app-a")
		res := e.call(e.ts, sdkReq{key: appKey.APIKey, method: "POST", target: wire.PathAgents,
			body: []byte(`{"name":"research-bot","display_name":"Research bot"}`), header: headers(wire.HeaderCaller, "provisioner")})
		if res.status != http.StatusCreated {
			t.Fatalf("got %d %s", res.status, res.body)
		}
		created := decodeJSON[wire.CreateAgentResponse](t, res.body)
		ag := created.Agent
		if ag.Name != "research-bot" || ag.DisplayName != "Research bot" || ag.AppID != app.ID || uuid.Validate(ag.AgentID) != nil {
			t.Fatalf("agent %+v", ag)
		}
		apiKey, err := wire.ParseKey(created.Key.APIKey)
		if err != nil || apiKey.Kind() != wire.KeyKindAgent || apiKey.KeyID() != created.Key.KeyID {
			t.Fatalf("the new key is not a usable agent key: %v", err)
		}
		if len(ag.Keys) != 1 || ag.Keys[0].KeyID != created.Key.KeyID || ag.Keys[0].APIKey != "" {
			t.Fatalf("agent keys %+v", ag.Keys)
		}

		// The key works at once and is who it says it is.
		me := e.call(e.ts, sdkReq{key: apiKey, method: "GET", target: wire.PathMe})
		if me.status != 200 || decodeJSON[wire.Me](t, me.body).AgentID != ag.AgentID {
			t.Fatalf("me with the new key: %d %s", me.status, me.body)
		}

		// Never shown again.
		got := e.call(e.ts, sdkReq{key: appKey.APIKey, method: "GET", target: wire.PathAgents + "/" + ag.AgentID})
		if got.status != 200 || strings.Contains(got.body, created.Key.APIKey) || strings.Contains(got.body, `"api_key"`) {
			t.Fatalf("get agent: %d %s", got.status, got.body)
		}

		// The call row, and the access-change rows in the same transaction,
		// attributed to the key and the caller label.
		actions := map[string]models.AuditEvent{}
		for _, ev := range e.auditRows("request_id = ?", res.requestID) {
			actions[ev.Action] = ev
		}
		for _, action := range []string{actionSDKAgentsCreate, audit.ActionAgentCreate, audit.ActionKeyMint} {
			ev, ok := actions[action]
			if !ok {
				t.Fatalf("no %s row; have %v", action, actions)
			}
			if ev.ActorKind != audit.ActorKey || ev.ActorID != appKey.KeyID || ev.Caller != "provisioner" ||
				ev.AppID != app.ID || ev.Outcome != models.OutcomeSuccess {
				t.Fatalf("%s row %+v", action, ev)
			}
		}
		if actions[audit.ActionKeyMint].KeyID != created.Key.KeyID || actions[audit.ActionAgentCreate].AgentID != ag.AgentID {
			t.Fatalf("change rows do not name what changed: %+v", actions)
		}
		if blob := fmt.Sprint(e.auditRows("1 = 1")); strings.Contains(blob, created.Key.APIKey) {
			t.Fatal("the API key reached the audit table")
		}
	})
}

func TestSDKAgentRequestsAreDecodedStrictly(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newSDKEnv(t, db)
		app, appKey := e.app("app-a")
		agent := e.agent(app.ID, "taken")
		keyPath := wire.PathAgents + "/" + agent.Agent.ID + "/keys"
		tests := []struct {
			name        string
			target      string
			body        string
			contentType string
			wantStatus  int
			wantCode    wire.ErrorCode
		}{
			{"unknown field", wire.PathAgents, `{"name":"a-bot","admin":true}`, "", 400, wire.CodeInvalidRequest},
			{"trailing data", wire.PathAgents, `{"name":"a-bot"} {"name":"b-bot"}`, "", 400, wire.CodeInvalidRequest},
			{"trailing garbage", wire.PathAgents, `{"name":"a-bot"}x`, "", 400, wire.CodeInvalidRequest},
			{"wrong type", wire.PathAgents, `{"name":7}`, "", 400, wire.CodeInvalidRequest},
			{"not JSON", wire.PathAgents, `name=a-bot`, "application/x-www-form-urlencoded", 415, wire.CodeUnsupportedMediaType},
			{"empty body where one is required", wire.PathAgents, ``, "", 400, wire.CodeInvalidRequest},
			{"invalid name", wire.PathAgents, `{"name":"Not A Name!"}`, "", 400, wire.CodeInvalidRequest},
			{"name already taken", wire.PathAgents, `{"name":"taken"}`, "", 409, wire.CodeConflict},
			{"mint with an unknown field", keyPath, `{"labels":"x"}`, "", 400, wire.CodeInvalidRequest},
			{"mint with an over-long label", keyPath, `{"label":"` + strings.Repeat("x", 101) + `"}`, "", 400, wire.CodeInvalidRequest},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				req := sdkReq{key: appKey.APIKey, method: "POST", target: tt.target, body: []byte(tt.body)}
				if tt.contentType != "" {
					req.mutate = func(r *http.Request) { r.Header.Set("Content-Type", tt.contentType) }
				}
				res := e.call(e.ts, req)
				if res.status != tt.wantStatus || res.code != tt.wantCode {
					t.Fatalf("got %d %q, want %d %q: %s", res.status, res.code, tt.wantStatus, tt.wantCode, res.body)
				}
				for _, ev := range e.auditRows("request_id = ?", res.requestID) {
					if ev.Outcome == models.OutcomeSuccess {
						t.Fatalf("refused request left a success row %+v", ev)
					}
				}
			})
		}
	})
}

func TestSDKListAgentsPagesByName(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newSDKEnv(t, db)
		app, appKey := e.app("app-a")
		other, _ := e.app("app-b")
		names := []string{"echo", "alpha", "delta", "bravo", "charlie"}
		for _, n := range names {
			e.agent(app.ID, n)
		}
		e.agent(other.ID, "zulu") // another app's: never listed

		var got []string
		cursor := ""
		for page := 0; ; page++ {
			target := wire.PathAgents + "?limit=2"
			if cursor != "" {
				target += "&cursor=" + cursor
			}
			res := e.call(e.ts, sdkReq{key: appKey.APIKey, method: "GET", target: target})
			if res.status != 200 {
				t.Fatalf("page %d: %d %s", page, res.status, res.body)
			}
			list := decodeJSON[wire.AgentList](t, res.body)
			for _, ag := range list.Agents {
				got = append(got, ag.Name)
				if len(ag.Keys) != 1 || ag.Keys[0].Status != wire.KeyStatusActive {
					t.Fatalf("agent %s keys %+v", ag.Name, ag.Keys)
				}
			}
			if list.NextCursor == "" {
				break
			}
			cursor = list.NextCursor
			if page > 5 {
				t.Fatal("pagination does not end")
			}
		}
		want := slices.Clone(names)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("listed %v, want %v", got, want)
		}

		for _, bad := range []string{"?limit=0", "?limit=201", "?limit=ten", "?cursor=%21%21"} {
			res := e.call(e.ts, sdkReq{key: appKey.APIKey, method: "GET", target: wire.PathAgents + bad})
			if res.status != 400 || res.code != wire.CodeInvalidRequest {
				t.Fatalf("%s: got %d %s", bad, res.status, res.body)
			}
		}
	})
}

func TestSDKAnotherAppsAgentIsNotFound(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newSDKEnv(t, db)
		_, appKey := e.app("app-a")
		other, _ := e.app("app-b")
		foreign := e.agent(other.ID, "foreign-bot")
		extra := e.mint(other.ID, foreign.Agent.ID)
		agentPath := wire.PathAgents + "/" + foreign.Agent.ID
		keyPath := agentPath + "/keys/" + extra.KeyID
		tests := []struct {
			name, method, target string
			body                 []byte
		}{
			{"get", "GET", agentPath, nil},
			{"get, upper-case id", "GET", wire.PathAgents + "/" + strings.ToUpper(foreign.Agent.ID), nil},
			{"get a malformed id", "GET", wire.PathAgents + "/not-a-uuid", nil},
			{"get an id that never existed", "GET", wire.PathAgents + "/" + uuid.NewString(), nil},
			{"mint", "POST", agentPath + "/keys", []byte(`{}`)},
			{"deprecate", "POST", keyPath + "/deprecate", []byte(`{}`)},
			{"revoke", "DELETE", keyPath + "?force=true", nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res := e.call(e.ts, sdkReq{key: appKey.APIKey, method: tt.method, target: tt.target, body: tt.body})
				if res.status != 404 || res.code != wire.CodeNotFound {
					t.Fatalf("got %d %s", res.status, res.body)
				}
			})
		}
		var k models.APIKey
		if err := db.Gorm.Where("key_id = ?", extra.KeyID).Take(&k).Error; err != nil || k.Status != models.KeyActive {
			t.Fatalf("the other app's key changed: %+v %v", k, err)
		}
	})
}

func TestSDKAgentKeyLifecycle(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newSDKEnv(t, db)
		app, appKey := e.app("app-a")
		agent := e.agent(app.ID, "research-bot")
		first := agent.Key
		base := wire.PathAgents + "/" + agent.Agent.ID + "/keys"
		as := func(method, target string, body []byte) sdkResp {
			return e.call(e.ts, sdkReq{key: appKey.APIKey, method: method, target: target, body: body})
		}

		// Mint a second key, labelled.
		res := as("POST", base, []byte(`{"label":"rotation 2026-03"}`))
		if res.status != http.StatusCreated {
			t.Fatalf("mint: %d %s", res.status, res.body)
		}
		second := decodeJSON[wire.AgentKey](t, res.body)
		secondKey, err := wire.ParseKey(second.APIKey)
		if err != nil || second.Label != "rotation 2026-03" || second.Status != wire.KeyStatusActive {
			t.Fatalf("minted %+v (%v)", second, err)
		}
		// An empty body mints too.
		if res := as("POST", base, nil); res.status != http.StatusCreated {
			t.Fatalf("mint without a body: %d %s", res.status, res.body)
		}

		// Deprecate the first: it still works, flagged.
		res = as("POST", base+"/"+first.KeyID+"/deprecate", []byte(`{}`))
		if res.status != 200 || decodeJSON[wire.AgentKey](t, res.body).Status != wire.KeyStatusDeprecated {
			t.Fatalf("deprecate: %d %s", res.status, res.body)
		}
		me := e.call(e.ts, sdkReq{key: first.APIKey, method: "GET", target: wire.PathMe})
		if me.status != 200 || me.header.Get(wire.HeaderKeyDeprecated) != "true" {
			t.Fatalf("deprecated key: %d, header %q", me.status, me.header.Get(wire.HeaderKeyDeprecated))
		}

		// Revoke the first while others remain: no force needed, and it
		// stops working on this replica at once.
		res = as("DELETE", base+"/"+first.KeyID, nil)
		if res.status != 200 || decodeJSON[wire.AgentKey](t, res.body).Status != wire.KeyStatusRevoked {
			t.Fatalf("revoke: %d %s", res.status, res.body)
		}
		if me := e.call(e.ts, sdkReq{key: first.APIKey, method: "GET", target: wire.PathMe}); me.code != wire.CodeKeyRevoked {
			t.Fatalf("revoked key: %d %s", me.status, me.body)
		}
		// Revoking again changes nothing and still answers.
		if res := as("DELETE", base+"/"+first.KeyID, nil); res.status != 200 {
			t.Fatalf("revoke again: %d %s", res.status, res.body)
		}
		// Deprecating a revoked key is a conflict.
		if res := as("POST", base+"/"+first.KeyID+"/deprecate", nil); res.code != wire.CodeConflict {
			t.Fatalf("deprecate revoked: %d %s", res.status, res.body)
		}

		// Revoke down to the last usable key: that one needs force.
		list := decodeJSON[wire.Agent](t, as("GET", wire.PathAgents+"/"+agent.Agent.ID, nil).body)
		var usable []string
		for _, k := range list.Keys {
			if k.Status != wire.KeyStatusRevoked {
				usable = append(usable, k.KeyID)
			}
		}
		if len(usable) != 2 {
			t.Fatalf("usable keys %v", usable)
		}
		if res := as("DELETE", base+"/"+usable[0], nil); res.status != 200 {
			t.Fatalf("revoke: %d %s", res.status, res.body)
		}
		last := usable[1]
		res = as("DELETE", base+"/"+last, nil)
		if res.status != 409 || res.code != wire.CodeConflict || !strings.Contains(res.body, "force=true") {
			t.Fatalf("revoking the last key without force: %d %s", res.status, res.body)
		}
		if res := as("DELETE", base+"/"+last+"?force=maybe", nil); res.code != wire.CodeInvalidRequest {
			t.Fatalf("force=maybe: %d %s", res.status, res.body)
		}
		res = as("DELETE", base+"/"+last+"?force=true", nil)
		if res.status != 200 {
			t.Fatalf("forced revoke: %d %s", res.status, res.body)
		}
		rows := e.auditRows("request_id = ? AND action = ?", res.requestID, audit.ActionKeyRevoke)
		if len(rows) != 1 || rows[0].KeyID != last || rows[0].Reason != "forced: last usable key" || rows[0].ActorID != appKey.KeyID {
			t.Fatalf("forced revoke audit %+v", rows)
		}
		if last == second.KeyID {
			if me := e.call(e.ts, sdkReq{key: secondKey, method: "GET", target: wire.PathMe}); me.code != wire.CodeKeyRevoked {
				t.Fatalf("revoked key: %d %s", me.status, me.body)
			}
		}
	})
}
