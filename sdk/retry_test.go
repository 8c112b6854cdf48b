package sdk_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/latchkey/latchkey/sdk"
	"github.com/latchkey/latchkey/sdk/wire"
)

// recordSleeps replaces the retry wait and records what was asked for.
type recordSleeps struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (r *recordSleeps) option() sdk.Option {
	return sdk.WithSleepForTest(func(ctx context.Context, d time.Duration) error {
		r.mu.Lock()
		r.waits = append(r.waits, d)
		r.mu.Unlock()
		return ctx.Err()
	})
}

func (r *recordSleeps) list() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.waits...)
}

func TestLatchkeyRefusalsAreRetriedOnlyWhenSafe(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	unavailable := func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "draining")
	}
	ok := func(w http.ResponseWriter) { writeProxied(w, http.StatusOK, "application/json", "{}") }
	rateLimited := func(retryAfter string) func(w http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", retryAfter)
			writeError(w, wire.CodeRateLimited, "slow down")
		}
	}
	me := func(ctx context.Context, a *sdk.App) error { _, err := a.Me(ctx); return err }
	proxy := func(ctx context.Context, a *sdk.App) error {
		resp, err := a.Proxy(ctx, sdk.Request{Method: "POST", URL: "https://slack.com/api/chat.postMessage", Provider: "slack"})
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	tests := []struct {
		name         string
		answers      []func(http.ResponseWriter) // one per attempt; the last repeats
		call         func(context.Context, *sdk.App) error
		policy       sdk.RetryPolicy
		wantAttempts int
		wantErr      error
		wantMinWait  time.Duration // the first wait, at least
	}{
		{name: "503 then success on GET", answers: []func(http.ResponseWriter){unavailable, ok}, call: me, wantAttempts: 2},
		{name: "503 then success on a proxy POST Latchkey never processed", answers: []func(http.ResponseWriter){unavailable, ok}, call: proxy, wantAttempts: 2},
		{name: "429 honours Retry-After", answers: []func(http.ResponseWriter){rateLimited("7"), ok}, call: proxy, wantAttempts: 2, wantMinWait: 7 * time.Second},
		{name: "429 with a Retry-After beyond the bound is returned, not waited for", answers: []func(http.ResponseWriter){rateLimited("3600")}, call: proxy, wantAttempts: 1, wantErr: sdk.ErrRateLimited},
		{name: "503 every time gives up after MaxAttempts", answers: []func(http.ResponseWriter){unavailable}, call: me, wantAttempts: 3},
		{name: "MaxAttempts 1 disables retries", answers: []func(http.ResponseWriter){unavailable}, call: me, policy: sdk.RetryPolicy{MaxAttempts: 1}, wantAttempts: 1},
		{name: "a proxied upstream 503 is the caller's answer, never retried", answers: []func(http.ResponseWriter){func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "1")
			writeProxied(w, http.StatusServiceUnavailable, "text/plain", "upstream down")
		}}, call: proxy, wantAttempts: 1},
		{name: "a proxied upstream 429 is never retried", answers: []func(http.ResponseWriter){func(w http.ResponseWriter) {
			writeProxied(w, http.StatusTooManyRequests, "text/plain", "upstream limit")
		}}, call: proxy, wantAttempts: 1},
		{name: "internal errors are not retried", answers: []func(http.ResponseWriter){func(w http.ResponseWriter) { writeError(w, wire.CodeInternal, "oops") }}, call: me, wantAttempts: 1, wantErr: sdk.ErrInternal},
		{name: "upstream timeout on proxy is not retried", answers: []func(http.ResponseWriter){func(w http.ResponseWriter) { writeError(w, wire.CodeUpstreamTimeout, "slow upstream") }}, call: proxy, wantAttempts: 1, wantErr: sdk.ErrUpstreamTimeout},
		{name: "timestamp out of range is surfaced, not retried", answers: []func(http.ResponseWriter){func(w http.ResponseWriter) {
			writeError(w, wire.CodeTimestampOutOfRange, "check your clock")
		}}, call: me, wantAttempts: 1, wantErr: sdk.ErrTimestampOutOfRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			fake := startFake(t, func(w http.ResponseWriter, _ *http.Request, _ seenRequest) {
				i := int(n.Add(1)) - 1
				tt.answers[min(i, len(tt.answers)-1)](w)
			}, appKey)
			var sleeps recordSleeps
			app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()), sdk.WithRetry(tt.policy), sleeps.option())
			err := tt.call(context.Background(), app)
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			reqs := fake.requests()
			if len(reqs) != tt.wantAttempts {
				t.Fatalf("%d attempts, want %d", len(reqs), tt.wantAttempts)
			}
			if len(sleeps.list()) != tt.wantAttempts-1 {
				t.Errorf("waited %d times for %d attempts", len(sleeps.list()), tt.wantAttempts)
			}
			if tt.wantMinWait > 0 && sleeps.list()[0] < tt.wantMinWait {
				t.Errorf("waited %v, want at least %v", sleeps.list()[0], tt.wantMinWait)
			}
			// The fake refuses a reused nonce; check explicitly as well.
			seen := map[string]bool{}
			for _, r := range reqs {
				if seen[r.Auth.Nonce] {
					t.Errorf("nonce %s reused on retry", r.Auth.Nonce)
				}
				seen[r.Auth.Nonce] = true
				if string(r.Body) != string(reqs[0].Body) {
					t.Errorf("retry changed the body")
				}
			}
		})
	}
}

func TestRateLimitBeyondTheBoundCarriesRetryAfter(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	fake := startFake(t, func(w http.ResponseWriter, _ *http.Request, _ seenRequest) {
		w.Header().Set("Retry-After", "120")
		writeError(w, wire.CodeRateLimited, "slow down")
	}, appKey)
	app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()))
	_, err := app.Me(context.Background())
	var e *sdk.Error
	if !errors.As(err, &e) || e.RetryAfter != 2*time.Minute {
		t.Fatalf("err = %v (RetryAfter %v)", err, e.RetryAfter)
	}
}

// flakyTransport fails the first failures round trips with err, recording
// the nonce each attempt was signed with, then passes through.
type flakyTransport struct {
	failures int
	err      error
	mu       sync.Mutex
	nonces   []string
}

func (f *flakyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	f.nonces = append(f.nonces, r.Header.Get(wire.HeaderNonce))
	fail := len(f.nonces) <= f.failures
	f.mu.Unlock()
	if fail {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, f.err
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestTransportErrorsAreRetriedOnlyBeforeSendingOrOnGET(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	dialRefused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	tests := []struct {
		name         string
		err          error
		method       string
		wantAttempts int
		wantOK       bool
	}{
		{"connection refused on POST is retried: nothing was sent", dialRefused, "POST", 2, true},
		{"connection refused on DELETE is retried", dialRefused, "DELETE", 2, true},
		{"reset after sending a POST is not retried: it may have run", reset, "POST", 1, false},
		{"reset after sending a DELETE is not retried", reset, "DELETE", 1, false},
		{"reset on GET is retried: reading changes nothing", reset, "GET", 2, true},
		{"unexpected EOF on GET is retried", io.ErrUnexpectedEOF, "GET", 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := startFake(t, func(w http.ResponseWriter, _ *http.Request, _ seenRequest) {
				writeProxied(w, http.StatusOK, "application/json", "{}")
			}, appKey)
			tr := &flakyTransport{failures: 1, err: tt.err}
			var sleeps recordSleeps
			app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()), sdk.WithHTTPClient(&http.Client{Transport: tr}), sleeps.option())
			ctx := context.Background()
			var err error
			switch tt.method {
			case "POST":
				var resp *http.Response
				resp, err = app.Proxy(ctx, sdk.Request{URL: "https://x.example", GrantID: "g-1"})
				if err == nil {
					resp.Body.Close()
				}
			case "DELETE":
				err = app.RevokeGrant(ctx, "g-1")
			case "GET":
				_, err = app.Me(ctx)
			}
			if (err == nil) != tt.wantOK {
				t.Fatalf("err = %v, want ok=%v", err, tt.wantOK)
			}
			if !tt.wantOK && !errors.Is(err, tt.err) {
				t.Errorf("err %v does not wrap the transport error", err)
			}
			if len(tr.nonces) != tt.wantAttempts {
				t.Fatalf("%d attempts, want %d", len(tr.nonces), tt.wantAttempts)
			}
			if tt.wantAttempts == 2 && tr.nonces[0] == tr.nonces[1] {
				t.Error("retry reused the nonce")
			}
		})
	}
}

func TestConnectionRefusedGivesUpAfterMaxAttempts(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	var sleeps recordSleeps
	app := mustApp(t, newKey(wire.KeyKindApp), sdk.WithBaseURL("http://"+addr), sdk.WithRetry(sdk.RetryPolicy{MaxAttempts: 4}), sleeps.option())
	_, err = app.Proxy(context.Background(), sdk.Request{URL: "https://x.example", GrantID: "g-1"})
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("err = %v, want connection refused", err)
	}
	if n := len(sleeps.list()); n != 3 {
		t.Fatalf("waited %d times, want 3 (4 attempts)", n)
	}
	for i, w := range sleeps.list() {
		if w <= 0 || w > 2*time.Second {
			t.Errorf("wait %d = %v, outside the default backoff", i, w)
		}
	}
}

func TestRetriesRespectTheContext(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	unavailable := func(w http.ResponseWriter, _ *http.Request, _ seenRequest) {
		w.Header().Set("Retry-After", "10")
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	t.Run("cancelled while waiting", func(t *testing.T) {
		fake := startFake(t, unavailable, appKey)
		ctx, cancel := context.WithCancel(context.Background())
		app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()), sdk.WithSleepForTest(func(ctx context.Context, _ time.Duration) error {
			cancel()
			<-ctx.Done()
			return ctx.Err()
		}))
		if _, err := app.Me(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if n := len(fake.requests()); n != 1 {
			t.Fatalf("%d attempts after cancel", n)
		}
	})
	t.Run("deadline before the wait ends returns the last answer at once", func(t *testing.T) {
		fake := startFake(t, unavailable, appKey)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var sleeps recordSleeps
		app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()), sleeps.option())
		_, err := app.Me(ctx)
		var e *sdk.Error
		if !errors.As(err, &e) || e.Status != http.StatusServiceUnavailable || e.RetryAfter != 10*time.Second {
			t.Fatalf("err = %v", err)
		}
		if len(sleeps.list()) != 0 {
			t.Fatalf("waited %v past the deadline", sleeps.list())
		}
	})
	t.Run("real wait is cut short by cancellation", func(t *testing.T) {
		fake := startFake(t, unavailable, appKey)
		ctx, cancel := context.WithCancel(context.Background())
		app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()))
		time.AfterFunc(50*time.Millisecond, cancel)
		start := time.Now()
		if _, err := app.Me(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %v", d)
		}
	})
}

func TestRetryAfterAsHTTPDate(t *testing.T) {
	appKey := newKey(wire.KeyKindApp)
	now := time.Now().UTC().Truncate(time.Second)
	var n atomic.Int32
	fake := startFake(t, func(w http.ResponseWriter, _ *http.Request, _ seenRequest) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", now.Add(4*time.Second).Format(http.TimeFormat))
			writeError(w, wire.CodeRateLimited, "later")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{})
	}, appKey)
	var sleeps recordSleeps
	app := mustApp(t, appKey, sdk.WithBaseURL(fake.URL()), sdk.WithClock(func() time.Time { return now }), sleeps.option())
	if _, err := app.Me(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w := sleeps.list(); len(w) != 1 || w[0] < 4*time.Second {
		t.Fatalf("waits %v, want one of at least 4s", w)
	}
}
