package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/sdk"
	"github.com/latchkey/latchkey/sdk/wire"
)

func TestProxyReturnsTheUpstreamAnswerWhateverItsStatus(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	for _, status := range []int{http.StatusOK, http.StatusNotFound, http.StatusUnauthorized, http.StatusInternalServerError} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			fake := startFake(t, func(w http.ResponseWriter, _ *http.Request, _ seenRequest) {
				writeProxied(w, status, "application/json", `{"message":"upstream says hi"}`)
			}, appKey)
			app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()))
			resp, err := app.Proxy(context.Background(), sdk.Request{URL: "https://api.github.com/repos/x/y", Provider: "github"})
			if err != nil {
				t.Fatalf("upstream %d became an error: %v", status, err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != status || string(body) != `{"message":"upstream says hi"}` {
				t.Errorf("got %d %s", resp.StatusCode, body)
			}
			if resp.Header.Get(wire.HeaderGrantID) == "" {
				t.Error("Latchkey-Grant-Id not passed through")
			}
		})
	}
}

func TestProxyTellsLatchkeysNotFoundFromTheUpstreams(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	fake := startFake(t, func(w http.ResponseWriter, _ *http.Request, _ seenRequest) {
		writeError(w, wire.CodeGrantNotFound, "no grant for github")
	}, appKey)
	app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()))
	resp, err := app.Proxy(context.Background(), sdk.Request{URL: "https://api.github.com/user", Provider: "github"})
	if resp != nil || !errors.Is(err, sdk.ErrGrantNotFound) {
		t.Fatalf("resp=%v err=%v, want ErrGrantNotFound", resp, err)
	}
}

func TestProxySuccessWithoutTheProxiedHeaderIsNotPassedOff(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	fake := startFake(t, func(w http.ResponseWriter, _ *http.Request, _ seenRequest) {
		writeJSON(w, http.StatusOK, map[string]any{"looks": "fine"})
	}, appKey)
	app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()))
	resp, err := app.Proxy(context.Background(), sdk.Request{URL: "https://api.github.com/user", Provider: "github"})
	var e *sdk.Error
	if resp != nil || !errors.As(err, &e) || !strings.Contains(e.Message, wire.HeaderProxied) {
		t.Fatalf("resp=%v err=%v", resp, err)
	}
}

func TestCallsHeldForApprovalReturnApprovalPendingError(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	expires := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	fake := startFake(t, func(w http.ResponseWriter, _ *http.Request, _ seenRequest) {
		writeJSON(w, http.StatusAccepted, wire.ApprovalEnvelope{Approval: wire.Approval{
			ApprovalID: "ap-42", Status: wire.ApprovalPending, ApprovalURL: "https://lk.example/wallet/approvals/ap-42",
			Reason: "post to #general", ExpiresAt: expires,
		}})
	}, appKey)
	app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()))
	calls := map[string]func() error{
		"proxy": func() error {
			_, err := app.Proxy(context.Background(), sdk.Request{Method: "POST", URL: "https://slack.com/api/chat.postMessage", Provider: "slack"})
			return err
		},
		"token": func() error {
			_, err := app.Token(context.Background(), sdk.TokenRequest{Provider: "slack"})
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			err := call()
			var pending *sdk.ApprovalPendingError
			if !errors.As(err, &pending) {
				t.Fatalf("err = %T %v", err, err)
			}
			if pending.ApprovalID != "ap-42" || pending.ApprovalURL != "https://lk.example/wallet/approvals/ap-42" ||
				!pending.ExpiresAt.Equal(expires) || pending.Reason != "post to #general" || pending.RequestID == "" {
				t.Errorf("got %+v", pending)
			}
		})
	}
}

func TestProxyRequestBecomesTheDocumentedJSON(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	tests := []struct {
		name string
		req  sdk.Request
		want string
	}{
		{
			name: "method defaults to GET, empty fields omitted",
			req:  sdk.Request{URL: "https://api.github.com/user", GrantID: "g-1"},
			want: `{"method":"GET","url":"https://api.github.com/user","grant_id":"g-1"}`,
		},
		{
			name: "JSON value, reason, context and timeout",
			req: sdk.Request{Method: "POST", URL: "https://slack.com/api/chat.postMessage", Provider: "slack", Account: "T1",
				JSON: map[string]any{"channel": "C1"}, Reason: "notify", Context: map[string]string{"run_id": "r-1"}, Timeout: 1500*time.Millisecond + 1},
			want: `{"method":"POST","url":"https://slack.com/api/chat.postMessage","provider":"slack","account":"T1","json":{"channel":"C1"},"reason":"notify","context":{"run_id":"r-1"},"timeout_ms":1501}`,
		},
		{
			name: "pre-encoded JSON is sent as JSON",
			req:  sdk.Request{Method: "POST", URL: "https://x.example/", GrantID: "g-1", JSON: json.RawMessage(`{"a": [1, 2]}`)},
			want: `{"method":"POST","url":"https://x.example/","grant_id":"g-1","json":{"a":[1,2]}}`,
		},
		{
			name: "raw body goes as standard base64 with the caller's headers",
			req: sdk.Request{Method: "PUT", URL: "https://x.example/f", GrantID: "g-1", Body: []byte("a,b\n\xff"),
				Headers: map[string]string{"Content-Type": "text/csv"}},
			want: `{"method":"PUT","url":"https://x.example/f","grant_id":"g-1","headers":{"Content-Type":"text/csv"},"body_base64":"YSxiCv8="}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := startFake(t, func(w http.ResponseWriter, _ *http.Request, _ seenRequest) {
				writeProxied(w, http.StatusNoContent, "", "")
			}, appKey)
			resp, err := mustApp(t, appKey, sdk.WithBaseURL(fake.URL())).Proxy(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := fake.requests()[0]
			if string(got.Body) != tt.want {
				t.Errorf("body\n%s\nwant\n%s", got.Body, tt.want)
			}
			if ct := got.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestInvalidProxyRequestsFailBeforeSending(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	tests := []struct {
		name    string
		req     sdk.Request
		wantErr string
	}{
		{"no URL", sdk.Request{GrantID: "g"}, "URL is required"},
		{"no grant selection", sdk.Request{URL: "https://x.example"}, "exactly one of GrantID and Provider"},
		{"both grant id and provider", sdk.Request{URL: "https://x.example", GrantID: "g", Provider: "p"}, "not both"},
		{"account without provider", sdk.Request{URL: "https://x.example", GrantID: "g", Account: "a"}, "Account narrows Provider"},
		{"JSON and Body", sdk.Request{URL: "https://x.example", GrantID: "g", JSON: 1, Body: []byte("x")}, "at most one of JSON and Body"},
		{"negative timeout", sdk.Request{URL: "https://x.example", GrantID: "g", Timeout: -time.Second}, "Timeout"},
		{"unencodable JSON", sdk.Request{URL: "https://x.example", GrantID: "g", JSON: func() {}}, "encode JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := startFake(t, nil, appKey)
			_, err := mustApp(t, appKey, sdk.WithBaseURL(fake.URL())).Proxy(context.Background(), tt.req)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if len(fake.requests()) != 0 {
				t.Fatal("sent anyway")
			}
		})
	}
}

func TestTokenReturnsTheRetrieveModeAnswer(t *testing.T) {
	agentKey := newKey(wire.KeyKindAgent)
	fake := startFake(t, func(w http.ResponseWriter, _ *http.Request, _ seenRequest) {
		writeJSON(w, http.StatusOK, wire.TokenResponse{AccessToken: "gho_x", TokenType: "bearer", GrantID: "g-1",
			Injection: wire.Injection{In: "header", Name: "Authorization", Format: "Bearer {token}"}})
	}, agentKey)
	ag := mustAgent(t, agentKey, sdk.WithBaseURL(fake.URL()))
	tok, err := ag.Token(context.Background(), sdk.TokenRequest{GrantID: "g-1", Reason: "clone", Context: map[string]string{"tool": "git"}})
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != "gho_x" || tok.Injection.Format != "Bearer {token}" {
		t.Errorf("got %+v", tok)
	}
	got := fake.requests()[0]
	if got.Target != wire.PathToken || string(got.Body) != `{"grant_id":"g-1","reason":"clone","context":{"tool":"git"}}` {
		t.Errorf("sent %s %s", got.Target, got.Body)
	}
}
