package handlers

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/testutil"
)

func TestSDKServerAcceptsEveryTestVector(t *testing.T) {
	f, err := os.Open("../sdk/wire/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	vectors, err := wire.LoadVectors(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newSDKEnv(t, db)
		app, _ := e.app("vectors")
		var agentID string
		for _, v := range vectors {
			if v.Agent != "" {
				agentID = strings.ToLower(v.Agent)
			}
		}
		now := time.Now().UTC()
		if err := db.Gorm.Create(&models.Agent{ID: agentID, AppID: app.ID, Name: "vector-agent", Status: models.AgentActive,
			CreatedAt: now, UpdatedAt: now}).Error; err != nil {
			t.Fatal(err)
		}
		stored := map[string]bool{}
		for _, v := range vectors {
			if !stored[v.KeyID] {
				e.vectorKey(app.ID, agentID, v)
				stored[v.KeyID] = true
			}
		}
		for _, v := range vectors {
			t.Run(v.Name, func(t *testing.T) {
				e.clock.Set(time.Unix(v.Timestamp, 0))
				var body *bytes.Reader
				if v.Body != "" {
					body = bytes.NewReader([]byte(v.Body))
				}
				req, err := http.NewRequest(v.Method, e.ts.URL+v.Target, nilIfEmpty(body))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(wire.HeaderKeyID, v.KeyID)
				req.Header.Set(wire.HeaderTimestamp, fmt.Sprint(v.Timestamp))
				req.Header.Set(wire.HeaderNonce, v.Nonce)
				req.Header.Set(wire.HeaderSignature, wire.SignatureHeaderValue(v.Signature))
				for name, val := range map[string]string{wire.HeaderUserToken: v.UserToken, wire.HeaderCaller: v.Caller, wire.HeaderAgent: v.Agent} {
					if val != "" {
						req.Header.Set(name, val)
					}
				}
				res := e.send(e.ts, req)
				// The endpoint behind the vector may not exist yet or may
				// refuse the call for its own reasons; authentication must
				// not be one of them.
				if authCodes[res.code] {
					t.Fatalf("vector refused by authentication: %d %s", res.status, res.body)
				}
				rows := e.auditRows("request_id = ?", res.requestID)
				if len(rows) == 0 {
					t.Fatal("the call left no audit row")
				}
				for _, ev := range rows {
					if ev.KeyID != v.KeyID || ev.AppID != app.ID || authCodes[wire.ErrorCode(ev.ErrorCode)] {
						t.Fatalf("audit row %+v", ev)
					}
					kind, _ := wire.ParseKeyID(v.KeyID)
					if (kind == wire.KeyKindAgent || v.Agent != "") && ev.AgentID != agentID {
						t.Fatalf("audit row names agent %q, want %q", ev.AgentID, agentID)
					}
				}
			})
		}
	})
}

func nilIfEmpty(r *bytes.Reader) interface {
	Read([]byte) (int, error)
} {
	if r == nil {
		return nil
	}
	return r
}

func TestSDKRefusesBadRequests(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newSDKEnv(t, db)
		appA, appKey := e.app("app-a")
		appB, _ := e.app("app-b")
		agent := e.agent(appA.ID, "research-bot")
		foreign := e.agent(appB.ID, "foreign-bot")
		revoked := e.mint(appA.ID, "")
		if _, err := e.keys.Revoke(t.Context(), revokeInput(appA.ID, "", revoked.KeyID, false)); err != nil {
			t.Fatal(err)
		}
		unknown, err := wire.GenerateKey(wire.KeyKindApp, nil)
		if err != nil {
			t.Fatal(err)
		}

		tests := []struct {
			name       string
			req        sdkReq
			skew       time.Duration // client clock minus server clock
			replay     bool          // send the signed request twice; judge the second
			wantStatus int
			wantCode   wire.ErrorCode
		}{
			{name: "no auth headers at all", req: sdkReq{method: "GET", target: "/sdk/v1/me"},
				wantStatus: 401, wantCode: wire.CodeMalformedAuth},
			{name: "missing nonce", req: sdkReq{key: appKey.APIKey, method: "GET", target: "/sdk/v1/me",
				mutate: func(r *http.Request) { r.Header.Del(wire.HeaderNonce) }},
				wantStatus: 401, wantCode: wire.CodeMalformedAuth},
			{name: "timestamp with a leading zero", req: sdkReq{key: appKey.APIKey, method: "GET", target: "/sdk/v1/me",
				mutate: func(r *http.Request) { r.Header.Set(wire.HeaderTimestamp, "0"+r.Header.Get(wire.HeaderTimestamp)) }},
				wantStatus: 401, wantCode: wire.CodeMalformedAuth},
			{name: "unknown key", req: sdkReq{key: unknown, method: "GET", target: "/sdk/v1/me"},
				wantStatus: 401, wantCode: wire.CodeInvalidKey},
			{name: "revoked key", req: sdkReq{key: revoked.APIKey, method: "GET", target: "/sdk/v1/me"},
				wantStatus: 401, wantCode: wire.CodeKeyRevoked},
			{name: "client clock 301 s behind", req: sdkReq{key: appKey.APIKey, method: "GET", target: "/sdk/v1/me"},
				skew: -301 * time.Second, wantStatus: 401, wantCode: wire.CodeTimestampOutOfRange},
			{name: "client clock 301 s ahead", req: sdkReq{key: appKey.APIKey, method: "GET", target: "/sdk/v1/me"},
				skew: 301 * time.Second, wantStatus: 401, wantCode: wire.CodeTimestampOutOfRange},
			{name: "wrong signature", req: sdkReq{key: appKey.APIKey, method: "GET", target: "/sdk/v1/me",
				mutate: func(r *http.Request) { r.Header.Set(wire.HeaderSignature, "v1="+strings.Repeat("0", 64)) }},
				wantStatus: 401, wantCode: wire.CodeInvalidSignature},
			{name: "body altered after signing", req: sdkReq{key: appKey.APIKey, method: "POST", target: "/sdk/v1/agents",
				body: []byte(`{"name":"good-bot"}`), mutate: func(r *http.Request) {
					b := []byte(`{"name":"evil-bot"}`)
					r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
				}},
				wantStatus: 401, wantCode: wire.CodeInvalidSignature},
			{name: "query altered after signing", req: sdkReq{key: appKey.APIKey, method: "GET", target: "/sdk/v1/agents?limit=1",
				mutate: func(r *http.Request) { r.URL.RawQuery = "limit=2" }},
				wantStatus: 401, wantCode: wire.CodeInvalidSignature},
			{name: "replayed nonce", req: sdkReq{key: appKey.APIKey, method: "GET", target: "/sdk/v1/me"}, replay: true,
				wantStatus: 401, wantCode: wire.CodeReplayedRequest},
			{name: "agent key with a user token", req: sdkReq{key: agent.Key.APIKey, method: "GET", target: "/sdk/v1/me",
				header: headers(wire.HeaderUserToken, "eyJhbGciOiJub25lIn0.e30.sig")},
				wantStatus: 400, wantCode: wire.CodeAgentCannotUseUserToken},
			{name: "Latchkey-Agent naming another app's agent", req: sdkReq{key: appKey.APIKey, method: "GET", target: "/sdk/v1/me",
				header: headers(wire.HeaderAgent, foreign.Agent.ID)},
				wantStatus: 400, wantCode: wire.CodeInvalidRequest},
			{name: "agent key calling agent management", req: sdkReq{key: agent.Key.APIKey, method: "GET", target: "/sdk/v1/agents"},
				wantStatus: 403, wantCode: wire.CodeForbidden},
			{name: "app key acting as an agent calling agent management", req: sdkReq{key: appKey.APIKey, method: "POST",
				target: "/sdk/v1/agents", body: []byte(`{"name":"sneaky-bot"}`), header: headers(wire.HeaderAgent, agent.Agent.ID)},
				wantStatus: 403, wantCode: wire.CodeForbidden},
			{name: "body over 10 MiB", req: sdkReq{key: appKey.APIKey, method: "POST", target: "/sdk/v1/agents",
				body: bytes.Repeat([]byte(" "), MaxSDKBodyBytes+1)},
				wantStatus: 413, wantCode: wire.CodePayloadTooLarge},
			{name: "chunked body over 10 MiB", req: sdkReq{key: appKey.APIKey, method: "POST", target: "/sdk/v1/agents",
				body: []byte(`{}`), mutate: func(r *http.Request) {
					r.Body = io.NopCloser(bytes.NewReader(bytes.Repeat([]byte(" "), MaxSDKBodyBytes+1)))
					r.ContentLength, r.GetBody = -1, nil
				}},
				wantStatus: 413, wantCode: wire.CodePayloadTooLarge},
			{name: "unsigned request to an unknown SDK path", req: sdkReq{method: "GET", target: "/sdk/v1/no-such-endpoint"},
				wantStatus: 401, wantCode: wire.CodeMalformedAuth},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				server := e.clock.Now()
				e.clock.Set(server.Add(tt.skew))
				req := e.signed(e.ts, tt.req)
				e.clock.Set(server)
				if tt.replay {
					if first := e.send(e.ts, resend(req, nil)); first.status != 200 {
						t.Fatalf("first use: %d %s", first.status, first.body)
					}
				}
				res := e.send(e.ts, req)
				if res.status != tt.wantStatus || res.code != tt.wantCode {
					t.Fatalf("got %d %q, want %d %q: %s", res.status, res.code, tt.wantStatus, tt.wantCode, res.body)
				}
				if res.requestID == "" {
					t.Fatal("no Latchkey-Request-Id")
				}
				for _, ev := range e.auditRows("request_id = ?", res.requestID) {
					if ev.Outcome == models.OutcomeSuccess {
						t.Fatalf("a refused request left a success row: %+v", ev)
					}
				}
			})
		}
	})
}

func TestSDKAgentKeyCallingAgentManagementIsAuditedAsDenied(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newSDKEnv(t, db)
		app, _ := e.app("app-a")
		agent := e.agent(app.ID, "research-bot")
		res := e.call(e.ts, sdkReq{key: agent.Key.APIKey, method: "GET", target: "/sdk/v1/agents",
			header: headers(wire.HeaderCaller, "nightly-run")})
		if res.code != wire.CodeForbidden {
			t.Fatalf("got %d %s", res.status, res.body)
		}
		rows := e.auditRows("request_id = ?", res.requestID)
		if len(rows) != 1 {
			t.Fatalf("want one audit row, got %+v", rows)
		}
		ev := rows[0]
		if ev.Action != actionSDKAgentsList || ev.Outcome != models.OutcomeDenied || ev.ErrorCode != string(wire.CodeForbidden) ||
			ev.KeyID != agent.Key.KeyID || ev.AgentID != agent.Agent.ID || ev.Caller != "nightly-run" {
			t.Fatalf("audit row %+v", ev)
		}
	})
}

func TestSDKMe(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newSDKEnv(t, db)
		app, appKey := e.app("app-a")
		agent := e.agent(app.ID, "research-bot")
		tests := []struct {
			name string
			req  sdkReq
			want wire.Me
		}{
			{"app key", sdkReq{key: appKey.APIKey},
				wire.Me{Kind: wire.KeyKindApp, AppID: app.ID, AppName: app.Name, KeyID: appKey.KeyID, KeyStatus: wire.KeyStatusActive}},
			{"agent key", sdkReq{key: agent.Key.APIKey},
				wire.Me{Kind: wire.KeyKindAgent, AppID: app.ID, AppName: app.Name, AgentID: agent.Agent.ID, AgentName: "research-bot",
					KeyID: agent.Key.KeyID, KeyStatus: wire.KeyStatusActive}},
			{"app key acting as its agent", sdkReq{key: appKey.APIKey, header: headers(wire.HeaderAgent, agent.Agent.ID)},
				wire.Me{Kind: wire.KeyKindAgent, AppID: app.ID, AppName: app.Name, AgentID: agent.Agent.ID, AgentName: "research-bot",
					KeyID: appKey.KeyID, KeyStatus: wire.KeyStatusActive}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tt.req.method, tt.req.target = "GET", wire.PathMe
				if tt.req.header == nil {
					tt.req.header = http.Header{}
				}
				tt.req.header.Set(wire.HeaderCaller, "me-test")
				res := e.call(e.ts, tt.req)
				if res.status != 200 {
					t.Fatalf("got %d %s", res.status, res.body)
				}
				if got := decodeJSON[wire.Me](t, res.body); got != tt.want {
					t.Fatalf("me\n got %+v\nwant %+v", got, tt.want)
				}
				if res.header.Get(wire.HeaderKeyDeprecated) != "" {
					t.Fatal("active key flagged deprecated")
				}
				if res.header.Get("Cache-Control") != "no-store" {
					t.Fatalf("Cache-Control %q", res.header.Get("Cache-Control"))
				}
				rows := e.auditRows("request_id = ?", res.requestID)
				if len(rows) != 1 {
					t.Fatalf("want one audit row, got %d", len(rows))
				}
				ev := rows[0]
				if ev.Action != actionSDKMe || ev.Outcome != models.OutcomeSuccess || ev.KeyID != tt.want.KeyID ||
					ev.AgentID != tt.want.AgentID || ev.Caller != "me-test" || ev.AppID != app.ID ||
					ev.OrganizationID != app.OrganizationID || ev.Path != wire.PathMe || ev.Method != "GET" {
					t.Fatalf("audit row %+v", ev)
				}
			})
		}
	})
}

func TestSDKDeprecatedKeyWorksAndEveryResponseSaysSo(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newSDKEnv(t, db)
		app, appKey := e.app("app-a")
		if _, err := e.keys.Deprecate(t.Context(), keyRef(app.ID, "", appKey.KeyID), testActor); err != nil {
			t.Fatal(err)
		}
		res := e.call(e.ts, sdkReq{key: appKey.APIKey, method: "GET", target: wire.PathMe})
		if res.status != 200 || res.header.Get(wire.HeaderKeyDeprecated) != "true" {
			t.Fatalf("got %d, deprecated header %q", res.status, res.header.Get(wire.HeaderKeyDeprecated))
		}
		if me := decodeJSON[wire.Me](t, res.body); me.KeyStatus != wire.KeyStatusDeprecated {
			t.Fatalf("key_status %q", me.KeyStatus)
		}
		// Errors too.
		res = e.call(e.ts, sdkReq{key: appKey.APIKey, method: "GET", target: wire.PathAgents + "/" + uuid.NewString()})
		if res.code != wire.CodeNotFound || res.header.Get(wire.HeaderKeyDeprecated) != "true" {
			t.Fatalf("got %d %q, deprecated header %q", res.status, res.code, res.header.Get(wire.HeaderKeyDeprecated))
		}
	})
}

func TestSDKUnknownPathsAndMethodsAreAuthenticatedFirst(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newSDKEnv(t, db)
		_, appKey := e.app("app-a")
		res := e.call(e.ts, sdkReq{key: appKey.APIKey, method: "GET", target: "/sdk/v1/no-such-endpoint?x=1"})
		if res.status != 404 || res.code != wire.CodeNotFound {
			t.Fatalf("got %d %s", res.status, res.body)
		}
		rows := e.auditRows("request_id = ?", res.requestID)
		if len(rows) != 1 || rows[0].Action != actionSDKNotFound || rows[0].Outcome != models.OutcomeDenied ||
			rows[0].Path != "/sdk/v1/no-such-endpoint" {
			t.Fatalf("audit rows %+v", rows)
		}

		// A known path with another method is still 405, after authentication.
		if res := e.call(e.ts, sdkReq{method: "PUT", target: wire.PathMe}); res.code != wire.CodeMalformedAuth {
			t.Fatalf("unsigned PUT: %d %s", res.status, res.body)
		}
		res = e.call(e.ts, sdkReq{key: appKey.APIKey, method: "PUT", target: wire.PathMe})
		if res.status != 405 || res.code != wire.CodeMethodNotAllowed || res.header.Get("Allow") != "GET" {
			t.Fatalf("signed PUT: %d %s (Allow %q)", res.status, res.body, res.header.Get("Allow"))
		}
		res = e.call(e.ts, sdkReq{key: appKey.APIKey, method: "PATCH", target: wire.PathAgents + "/" + uuid.NewString() + "/keys/lk_agent_aaaaaaaaaaaaaaaa"})
		if res.status != 405 || res.header.Get("Allow") != "DELETE" {
			t.Fatalf("signed PATCH on a key: %d %s (Allow %q)", res.status, res.body, res.header.Get("Allow"))
		}
	})
}

func TestSDKReplayIsRefusedAcrossTwoServerInstances(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newSDKEnv(t, db)
		_, appKey := e.app("app-a")
		servers := []*testServer{e.ts, e.server(testutil.Reopen(t, db))}

		signed := e.signed(servers[0], sdkReq{key: appKey.APIKey, method: "GET", target: wire.PathMe})

		const n = 16
		statuses := make([]sdkResp, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ts := servers[i%2]
				req, err := http.NewRequest("GET", ts.URL+wire.PathMe, nil)
				if err != nil {
					t.Error(err)
					return
				}
				req.Header = signed.Header.Clone()
				<-start
				statuses[i] = e.send(ts, req)
			}()
		}
		close(start)
		wg.Wait()
		ok := 0
		for _, r := range statuses {
			switch {
			case r.status == 200:
				ok++
			case r.code == wire.CodeReplayedRequest:
			default:
				t.Errorf("unexpected %d %s", r.status, r.body)
			}
		}
		if ok != 1 {
			t.Fatalf("%d of %d identical requests accepted across two instances, want exactly 1", ok, n)
		}
	})
}

func TestSDKAPIIsAbsentWithoutAnAuthenticator(t *testing.T) {
	ts := newTestServer(t, Deps{}, nil)
	res := ts.do(t, "GET", wire.PathMe, nil)
	if res.status != http.StatusNotFound {
		t.Fatalf("got %d %s", res.status, res.body)
	}
}
