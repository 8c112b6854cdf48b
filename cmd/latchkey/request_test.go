package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/config"
	"github.com/latchkey/latchkey/sdk/wire"
)

// requestFake stands in for Latchkey: it verifies each request's signature
// with package wire, records it, and answers with answer.
type requestFake struct {
	srv    *httptest.Server
	mu     sync.Mutex
	seen   []seenCall
	answer func(w http.ResponseWriter, c seenCall)
}

type seenCall struct {
	Method, Target string
	Body           []byte
	Auth           wire.AuthHeaders
}

func startRequestFake(t *testing.T, apiKey string, answer func(w http.ResponseWriter, c seenCall)) *requestFake {
	t.Helper()
	key, err := wire.ParseKey(apiKey)
	if err != nil {
		t.Fatal(err)
	}
	f := &requestFake{answer: answer}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(wire.HeaderRequestID, "req-1")
		body, _ := io.ReadAll(r.Body)
		a, err := wire.ParseAuthHeaders(r.Header)
		if err != nil {
			t.Errorf("fake Latchkey: %v", err)
			writeWireError(w, wire.CodeMalformedAuth, "malformed")
			return
		}
		sum := sha256.Sum256(body)
		sts := wire.StringToSign(a.SignatureParams(r.Method, wire.RequestTarget(r), sum[:]))
		if a.KeyID != key.KeyID() || !wire.TimestampInWindow(a.Timestamp, time.Now()) || !wire.VerifySignature(key.SigningKey(), sts, a.Signature) {
			t.Errorf("fake Latchkey: request does not verify")
			writeWireError(w, wire.CodeInvalidSignature, "bad signature")
			return
		}
		c := seenCall{Method: r.Method, Target: r.RequestURI, Body: body, Auth: a}
		f.mu.Lock()
		f.seen = append(f.seen, c)
		f.mu.Unlock()
		f.answer(w, c)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *requestFake) calls() []seenCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenCall(nil), f.seen...)
}

func writeWireError(w http.ResponseWriter, code wire.ErrorCode, msg string) {
	writeWireErrorDetails(w, code, msg, nil)
}

func writeWireErrorDetails(w http.ResponseWriter, code wire.ErrorCode, msg string, details map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(wire.HTTPStatus(code))
	_ = json.NewEncoder(w).Encode(wire.ErrorBody{Error: wire.ErrorDetail{Code: code, Message: msg, RequestID: "req-1", Details: details}})
}

func mintTestKey(t *testing.T, kind wire.KeyKind) string {
	t.Helper()
	k, err := wire.GenerateKey(kind, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k.Reveal()
}

// runRequest runs `latchkey request args…` in-process.
func runRequest(env map[string]string, args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	err := run(context.Background(), append([]string{"latchkey", "request"}, args...), func(k string) string { return env[k] }, &out, &errb)
	code = exitCode(err, &errb)
	return out.String(), errb.String(), code
}

func TestRequestPrintsTheUpstreamAnswer(t *testing.T) {
	appKey := mintTestKey(t, wire.KeyKindApp)
	fake := startRequestFake(t, appKey, func(w http.ResponseWriter, _ seenCall) {
		w.Header().Set(wire.HeaderProxied, "true")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"message":"Not Found"}`)
	})
	env := map[string]string{envAPIKey: appKey + "\n", config.EnvPublicURL: fake.srv.URL}
	tests := []struct {
		name       string
		args       []string
		wantOut    string
		wantErrOut string
		wantCode   int
		wantBody   string
	}{
		{
			name:       "status line on stderr, body alone on stdout; an upstream 404 is not a failure",
			args:       []string{"--provider", "github", "--account", "octocat", "https://api.github.com/repos/x/y"},
			wantOut:    `{"message":"Not Found"}`,
			wantErrOut: "HTTP/1.1 404 Not Found\n",
			wantBody:   `{"method":"GET","url":"https://api.github.com/repos/x/y","provider":"github","account":"octocat"}`,
		},
		{
			name: "flags after the URL, a JSON body implies POST, headers and context are passed on",
			args: []string{"https://slack.com/api/chat.postMessage", "--grant", "g-1", "--json", `{"text": "hi"}`,
				"--header", "Accept: application/json, text/plain", "--context", "run_id=r-1", "--reason", "notify", "--timeout", "2s"},
			wantOut:    `{"message":"Not Found"}`,
			wantErrOut: "HTTP/1.1 404 Not Found\n",
			wantBody:   `{"method":"POST","url":"https://slack.com/api/chat.postMessage","grant_id":"g-1","headers":{"Accept":"application/json, text/plain"},"json":{"text":"hi"},"reason":"notify","context":{"run_id":"r-1"},"timeout_ms":2000}`,
		},
		{
			name:     "-X and --data send a raw body",
			args:     []string{"-X", "PUT", "--grant", "g-1", "--data", "a,b", "https://x.example/f"},
			wantOut:  `{"message":"Not Found"}`,
			wantBody: `{"method":"PUT","url":"https://x.example/f","grant_id":"g-1","body_base64":"YSxi"}`,
		},
		{
			name:    "-i prints the status line and headers on stdout",
			args:    []string{"-i", "--grant", "g-1", "https://x.example/"},
			wantOut: "HTTP/1.1 404 Not Found\n",
		},
		{
			name:     "--fail exits 1 on an upstream error status, after printing the body",
			args:     []string{"--fail", "--grant", "g-1", "https://x.example/"},
			wantOut:  `{"message":"Not Found"}`,
			wantCode: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(fake.calls())
			out, errOut, code := runRequest(env, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.wantCode, errOut)
			}
			if !strings.Contains(out, tt.wantOut) || (strings.HasPrefix(tt.wantOut, "HTTP") != strings.HasPrefix(out, "HTTP")) {
				t.Errorf("stdout %q, want %q", out, tt.wantOut)
			}
			if tt.wantErrOut != "" && errOut != tt.wantErrOut {
				t.Errorf("stderr %q, want %q", errOut, tt.wantErrOut)
			}
			calls := fake.calls()[before:]
			if len(calls) != 1 || calls[0].Target != wire.PathProxy {
				t.Fatalf("calls %v", calls)
			}
			if tt.wantBody != "" && string(calls[0].Body) != tt.wantBody {
				t.Errorf("sent\n%s\nwant\n%s", calls[0].Body, tt.wantBody)
			}
			assertNoKey(t, out+errOut, appKey)
		})
	}
}

func TestRequestLatchkeyErrorsExitOne(t *testing.T) {
	appKey := mintTestKey(t, wire.KeyKindApp)
	tests := []struct {
		name    string
		answer  func(w http.ResponseWriter, _ seenCall)
		wantErr string
	}{
		{
			name:    "a Latchkey error prints code, message and request id",
			answer:  func(w http.ResponseWriter, _ seenCall) { writeWireError(w, wire.CodeGrantNotFound, "no github grant") },
			wantErr: "latchkey: grant_not_found: no github grant (request id req-1)\n",
		},
		{
			name: "an ambiguous grant says which accounts to choose from",
			answer: func(w http.ResponseWriter, _ seenCall) {
				writeWireErrorDetails(w, wire.CodeAmbiguousGrant, "2 grants match", map[string]any{wire.DetailAccountIdentifiers: []string{"octocat", "hubot"}})
			},
			wantErr: "latchkey: ambiguous_grant: 2 grants match (request id req-1); pass --account with one of: octocat, hubot\n",
		},
		{
			name: "a call held for approval says where to approve it",
			answer: func(w http.ResponseWriter, _ seenCall) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusAccepted)
				_ = json.NewEncoder(w).Encode(wire.ApprovalEnvelope{Approval: wire.Approval{ApprovalID: "ap-1", Status: wire.ApprovalPending,
					ApprovalURL: "https://lk.example/approvals/ap-1", ExpiresAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}})
			},
			wantErr: "latchkey: call held for approval ap-1 (approve at https://lk.example/approvals/ap-1), expires 2026-01-01T00:00:00Z (request id req-1)\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := startRequestFake(t, appKey, tt.answer)
			out, errOut, code := runRequest(map[string]string{}, "--key", appKey, "--base-url", fake.srv.URL, "--provider", "github", "https://api.github.com/user")
			if code != 1 {
				t.Fatalf("exit %d, want 1", code)
			}
			if out != "" || errOut != tt.wantErr {
				t.Errorf("stdout %q stderr %q, want stderr %q", out, errOut, tt.wantErr)
			}
			assertNoKey(t, out+errOut, appKey)
		})
	}
}

func TestRequestBadInputExitsTwo(t *testing.T) {
	appKey, agentKey := mintTestKey(t, wire.KeyKindApp), mintTestKey(t, wire.KeyKindAgent)
	noServer := "http://127.0.0.1:1"
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{"no key anywhere", nil, []string{"--grant", "g", "https://x.example"}, "missing --key"},
		{"malformed key", nil, []string{"--key", appKey[:20], "--grant", "g", "https://x.example"}, "malformed API key"},
		{"no URL", map[string]string{envAPIKey: appKey}, []string{"--grant", "g"}, "want one URL"},
		{"two URLs", map[string]string{envAPIKey: appKey}, []string{"--grant", "g", "https://a.example", appKey}, "want one URL, got 2"},
		{"neither grant nor provider", map[string]string{envAPIKey: appKey}, []string{"https://x.example"}, "exactly one of --grant and --provider"},
		{"both grant and provider", map[string]string{envAPIKey: appKey}, []string{"--grant", "g", "--provider", "p", "https://x.example"}, "exactly one"},
		{"account without provider", map[string]string{envAPIKey: appKey}, []string{"--grant", "g", "--account", "a", "https://x.example"}, "--account"},
		{"data and json", map[string]string{envAPIKey: appKey}, []string{"--grant", "g", "--data", "x", "--json", "{}", "https://x.example"}, "at most one"},
		{"invalid json", map[string]string{envAPIKey: appKey}, []string{"--grant", "g", "--json", "{nope", "https://x.example"}, "not valid JSON"},
		{"header without a colon", map[string]string{envAPIKey: appKey}, []string{"--grant", "g", "--header", "Accept", "https://x.example"}, "Name: value"},
		{"unknown flag", map[string]string{envAPIKey: appKey}, []string{"--grnat", "g", "https://x.example"}, "not defined"},
		{"--agent with an agent key", map[string]string{envAPIKey: agentKey}, []string{"--agent", testAgentUUID, "--grant", "g", "https://x.example"}, "--agent needs an app key"},
		{"--user-token with an agent key", map[string]string{envAPIKey: agentKey}, []string{"me", "--user-token", "jwt"}, "--user-token needs an app key"},
		{"--user-token with --agent", map[string]string{envAPIKey: appKey}, []string{"--user-token", "jwt", "--agent", testAgentUUID, "--grant", "g", "https://x.example"}, "do not combine"},
		{"stray argument to me", map[string]string{envAPIKey: appKey}, []string{"me", "extra"}, "unexpected argument"},
		{"bad base URL", map[string]string{envAPIKey: appKey}, []string{"me", "--base-url", "latchkey:8080"}, "base URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{config.EnvPublicURL: noServer}
			for k, v := range tt.env {
				env[k] = v
			}
			out, errOut, code := runRequest(env, tt.args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr %s", code, errOut)
			}
			if !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr %q, want it to mention %q", errOut, tt.wantErr)
			}
			assertNoKey(t, out+errOut, appKey, agentKey)
		})
	}
}

const testAgentUUID = "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"

func TestRequestMeAndGrants(t *testing.T) {
	appKey := mintTestKey(t, wire.KeyKindApp)
	fake := startRequestFake(t, appKey, func(w http.ResponseWriter, c seenCall) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasPrefix(c.Target, wire.PathMe):
			_ = json.NewEncoder(w).Encode(wire.Me{Kind: wire.KeyKind(map[bool]string{true: "agent", false: "app"}[c.Auth.Agent != ""]),
				AppID: "app-1", AppName: "Digest", AgentID: c.Auth.AgentID(), KeyID: c.Auth.KeyID, KeyStatus: wire.KeyStatusActive})
		case strings.Contains(c.Target, "cursor=p2"):
			_ = json.NewEncoder(w).Encode(wire.GrantList{Grants: []wire.Grant{{GrantID: "g2", Provider: "github", Status: wire.GrantActive,
				AccountIdentifier: "hubot", Principal: wire.Principal{Kind: wire.PrincipalSystem}}}})
		default:
			_ = json.NewEncoder(w).Encode(wire.GrantList{Grants: []wire.Grant{{GrantID: "g1", Provider: "github", Status: wire.GrantActive,
				AccountIdentifier: "octocat", Principal: wire.Principal{Kind: wire.PrincipalUser, ID: "u-1"}}}, NextCursor: "p2"})
		}
	})
	env := map[string]string{envAPIKey: appKey, config.EnvPublicURL: fake.srv.URL}
	tests := []struct {
		name       string
		args       []string
		want       []string
		wantTarget string
		wantAgent  string
		wantCaller string
	}{
		{name: "me prints key: value lines", args: []string{"me"}, want: []string{"kind:", "app", "app_name:", "Digest"}, wantTarget: "/sdk/v1/me"},
		{name: "me --json prints one JSON object", args: []string{"me", "--json", "--caller", "ops-cli"}, want: []string{`"kind":"app"`, `"app_id":"app-1"`}, wantTarget: "/sdk/v1/me", wantCaller: "ops-cli"},
		{name: "me as an agent", args: []string{"me", "--agent", testAgentUUID}, want: []string{"agent_id:", testAgentUUID}, wantTarget: "/sdk/v1/me", wantAgent: testAgentUUID},
		{name: "grants prints one page and its cursor", args: []string{"grants", "--provider", "github", "--limit", "1"}, want: []string{"g1", "octocat", "user:u-1", "next_cursor: p2"}, wantTarget: "/sdk/v1/grants?provider=github&limit=1"},
		{name: "grants --all --json follows the cursor", args: []string{"grants", "--all", "--json"}, want: []string{`"grant_id":"g1"`, `"grant_id":"g2"`}, wantTarget: "/sdk/v1/grants?cursor=p2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runRequest(env, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(strings.Join(tt.args, " "), "--json") {
				var v map[string]any
				if err := json.Unmarshal([]byte(out), &v); err != nil {
					t.Errorf("not one JSON object: %q", out)
				}
			}
			calls := fake.calls()
			last := calls[len(calls)-1]
			if last.Target != tt.wantTarget || last.Auth.Agent != tt.wantAgent || last.Auth.Caller != tt.wantCaller {
				t.Errorf("last call %s agent=%q caller=%q, want %s %q %q", last.Target, last.Auth.Agent, last.Auth.Caller, tt.wantTarget, tt.wantAgent, tt.wantCaller)
			}
			assertNoKey(t, out+errOut, appKey)
		})
	}
}

func TestRequestWarnsAboutADeprecatedKey(t *testing.T) {
	appKey := mintTestKey(t, wire.KeyKindApp)
	fake := startRequestFake(t, appKey, func(w http.ResponseWriter, _ seenCall) {
		w.Header().Set(wire.HeaderKeyDeprecated, "true")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"kind":"app"}`)
	})
	_, errOut, code := runRequest(map[string]string{envAPIKey: appKey, config.EnvPublicURL: fake.srv.URL}, "me")
	if code != 0 || !strings.Contains(errOut, "is deprecated") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	assertNoKey(t, errOut, appKey)
}

func TestRequestSendsTheUserToken(t *testing.T) {
	appKey := mintTestKey(t, wire.KeyKindApp)
	fake := startRequestFake(t, appKey, func(w http.ResponseWriter, _ seenCall) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"kind":"app"}`)
	})
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln"
	out, errOut, code := runRequest(map[string]string{envAPIKey: appKey, config.EnvPublicURL: fake.srv.URL}, "me", "--user-token", jwt)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if got := fake.calls()[0].Auth.UserToken; got != jwt {
		t.Fatalf("signed user token %q", got)
	}
	assertNoKey(t, out+errOut, appKey, jwt)
}

func assertNoKey(t *testing.T, s string, secrets ...string) {
	t.Helper()
	for _, k := range secrets {
		if strings.Contains(s, k) || (strings.HasPrefix(k, "lk_") && strings.Contains(s, k[strings.LastIndex(k, "_")+1:])) {
			t.Errorf("output contains a secret:\n%s", s)
		}
	}
}
