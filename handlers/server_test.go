package handlers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer lets the test read what the server logged from its goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// stubReadiness is our own interface, so a stub is the honest test double.
type stubReadiness struct{ err error }

func (r stubReadiness) Ready(context.Context) error { return r.err }

type testServer struct {
	*httptest.Server
	srv  *Server
	logs *syncBuffer
}

// newTestServer starts the real handler stack behind a real listener. extra
// runs before the listener starts; it registers test-only routes (failing
// handlers and the like) without putting them in routes.go.
func newTestServer(t *testing.T, deps Deps, extra func(s *Server)) *testServer {
	t.Helper()
	logs := &syncBuffer{}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := New(deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if extra != nil {
		extra(srv)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return &testServer{Server: ts, srv: srv, logs: logs}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (ts *testServer) do(t *testing.T, method, path string, header http.Header) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, ts.URL+path, nil)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return response{status: res.StatusCode, header: res.Header, body: string(body)}
}

func headers(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func decodeJSON[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return v
}

func TestHealthzAnswersOKWhileAlive(t *testing.T) {
	// Even a replica whose dependencies are down is alive.
	ts := newTestServer(t, Deps{Readiness: stubReadiness{err: errors.New("db down")}}, nil)

	res := ts.do(t, http.MethodGet, "/healthz", nil)

	if res.status != http.StatusOK {
		t.Fatalf("status = %d, want 200", res.status)
	}
	if got := decodeJSON[map[string]string](t, res.body); got["status"] != "ok" || len(got) != 1 {
		t.Fatalf("body = %v, want {status: ok}", got)
	}
	if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q", ct)
	}
}

type reasonError struct{ reason string }

func (e reasonError) Error() string {
	return "dial tcp 10.0.0.7:5432 user=latchkey: connection refused"
}
func (e reasonError) Reason() string { return e.reason }

type blockingReadiness struct{}

func (blockingReadiness) Ready(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestReadyz(t *testing.T) {
	tests := []struct {
		name       string
		readiness  Readiness
		wantStatus int
		wantBody   map[string]string
	}{
		{
			name:       "ready dependency answers ready",
			readiness:  stubReadiness{},
			wantStatus: http.StatusOK,
			wantBody:   map[string]string{"status": "ready"},
		},
		{
			name:       "no readiness configured answers ready",
			readiness:  nil,
			wantStatus: http.StatusOK,
			wantBody:   map[string]string{"status": "ready"},
		},
		{
			name:       "failing dependency answers 503 without its raw error text",
			readiness:  stubReadiness{err: errors.New("password=s3cr3t host=db: refused")},
			wantStatus: http.StatusServiceUnavailable,
			wantBody:   map[string]string{"status": "not_ready", "reason": "dependency check failed"},
		},
		{
			name:       "failing dependency with a reason answers that reason",
			readiness:  stubReadiness{err: reasonError{reason: "database unreachable"}},
			wantStatus: http.StatusServiceUnavailable,
			wantBody:   map[string]string{"status": "not_ready", "reason": "database unreachable"},
		},
		{
			name:       "NotReady shows its reason and hides its cause",
			readiness:  stubReadiness{err: NotReady("schema not current", errors.New("goose: s3cr3t"))},
			wantStatus: http.StatusServiceUnavailable,
			wantBody:   map[string]string{"status": "not_ready", "reason": "schema not current"},
		},
		{
			name:       "wrapped reason is still found",
			readiness:  stubReadiness{err: errors.Join(errors.New("check"), reasonError{reason: "migrations pending"})},
			wantStatus: http.StatusServiceUnavailable,
			wantBody:   map[string]string{"status": "not_ready", "reason": "migrations pending"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, Deps{Readiness: tt.readiness}, nil)

			res := ts.do(t, http.MethodGet, "/readyz", nil)

			if res.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d", res.status, tt.wantStatus)
			}
			got := decodeJSON[map[string]string](t, res.body)
			if len(got) != len(tt.wantBody) {
				t.Fatalf("body = %v, want %v", got, tt.wantBody)
			}
			for k, v := range tt.wantBody {
				if got[k] != v {
					t.Fatalf("body[%q] = %q, want %q (body %v)", k, got[k], v, got)
				}
			}
			if strings.Contains(res.body, "s3cr3t") || strings.Contains(res.body, "10.0.0.7") {
				t.Fatalf("readiness error text leaked: %s", res.body)
			}
			if cc := res.header.Get("Cache-Control"); cc != "no-store" {
				t.Fatalf("Cache-Control = %q, want no-store", cc)
			}
		})
	}
}

func TestReadyzTimesOutAHungDependency(t *testing.T) {
	ts := newTestServer(t, Deps{Readiness: blockingReadiness{}}, func(s *Server) {
		s.readyTimeout = 20 * time.Millisecond
	})

	res := ts.do(t, http.MethodGet, "/readyz", nil)

	if res.status != http.StatusServiceUnavailable {
		t.Fatalf("status = %d, want 503", res.status)
	}
	if got := decodeJSON[map[string]string](t, res.body); got["reason"] != "readiness check timed out" {
		t.Fatalf("reason = %q", got["reason"])
	}
}

func TestNewRejectsAMalformedPublicURL(t *testing.T) {
	tests := []struct {
		name      string
		publicURL string
		wantErr   bool
	}{
		{name: "empty public URL is allowed", publicURL: "", wantErr: false},
		{name: "http URL is accepted", publicURL: "http://127.0.0.1:8080", wantErr: false},
		{name: "https URL is accepted", publicURL: "https://vault.example.com", wantErr: false},
		{name: "relative URL is refused", publicURL: "/latchkey", wantErr: true},
		{name: "other scheme is refused", publicURL: "ftp://vault.example.com", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Deps{PublicURL: tt.publicURL})
			if (err != nil) != tt.wantErr {
				t.Fatalf("New err = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func TestSecureCookiesFollowThePublicURL(t *testing.T) {
	tests := []struct {
		name      string
		deps      Deps
		wantHSTS  bool
		wantSecur bool
	}{
		{name: "https public URL makes cookies secure and sends HSTS", deps: Deps{PublicURL: "https://vault.example.com"}, wantHSTS: true, wantSecur: true},
		{name: "http public URL leaves cookies plain and sends no HSTS", deps: Deps{PublicURL: "http://127.0.0.1:8080"}, wantHSTS: false, wantSecur: false},
		{name: "explicit Secure wins over an http public URL", deps: Deps{PublicURL: "http://vault.internal", Secure: true}, wantHSTS: true, wantSecur: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, tt.deps, nil)

			res := ts.do(t, http.MethodGet, "/healthz", nil)

			if got := res.header.Get("Strict-Transport-Security") != ""; got != tt.wantHSTS {
				t.Fatalf("HSTS present = %v, want %v", got, tt.wantHSTS)
			}
			if got := ts.srv.SecureCookies(); got != tt.wantSecur {
				t.Fatalf("SecureCookies = %v, want %v", got, tt.wantSecur)
			}
		})
	}
}
