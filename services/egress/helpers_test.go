package egress

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/errs"
)

// testHost is a name httptest's certificate covers (*.example.com), so TLS
// verifies for real while the test resolver points it at loopback.
const (
	testHost  = "api.example.com"
	otherHost = "other.example.com"
	testToken = "tok-7c1f-super-secret"
)

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func mustAllow(t testing.TB, entries ...string) AllowList {
	t.Helper()
	l, err := ParseAllowList(entries)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// mapResolver answers from a fixed table; unknown names do not exist.
type mapResolver map[string][]netip.Addr

func (m mapResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := m[strings.ToLower(host)]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// upstream is a real TLS server on loopback that counts the TCP connections
// it accepts and records the requests it serves.
type upstream struct {
	*httptest.Server
	port     string
	newConns atomic.Int64

	mu       sync.Mutex
	requests []*http.Request
}

type upstreamOpt func(*httptest.Server)

func withHTTP2(s *httptest.Server) { s.EnableHTTP2 = true }

func newUpstream(t testing.TB, h http.HandlerFunc, opts ...upstreamOpt) *upstream {
	t.Helper()
	u := &upstream{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.requests = append(u.requests, r.Clone(context.Background()))
		u.mu.Unlock()
		if h != nil {
			h(w, r)
		}
	}))
	// Handshake failures are what some tests provoke; keep them off stderr.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			u.newConns.Add(1)
		}
	}
	for _, o := range opts {
		o(srv)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	u.Server = srv
	_, u.port, _ = net.SplitHostPort(srv.Listener.Addr().String())
	return u
}

func (u *upstream) url(host, pathAndQuery string) string {
	return "https://" + host + ":" + u.port + pathAndQuery
}

func (u *upstream) entry(host string) string { return host + ":" + u.port }

func (u *upstream) got() []*http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*http.Request(nil), u.requests...)
}

func (u *upstream) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(u.Certificate())
	return p
}

// newTestEgress builds an Egress in AllowPrivate mode (loopback upstreams
// are the only ones a test can run) that trusts httptest's CA and resolves
// the test names to 127.0.0.1.
func newTestEgress(t testing.TB, u *upstream, mod func(*Options)) *Egress {
	t.Helper()
	opts := Options{
		AllowPrivate: true,
		RootCAs:      u.pool(),
		Resolver: mapResolver{
			testHost:  addrs("127.0.0.1"),
			otherHost: addrs("127.0.0.1"),
		},
	}
	if mod != nil {
		mod(&opts)
	}
	e := New(opts)
	t.Cleanup(e.Close)
	return e
}

func baseCall(t testing.TB, u *upstream, pathAndQuery string) Call {
	return Call{
		Method:       http.MethodGet,
		URL:          u.url(testHost, pathAndQuery),
		AllowedHosts: mustAllow(t, u.entry(testHost)),
		Injection:    Bearer(),
		Secret:       testToken,
	}
}

func wantCode(t testing.TB, err error, want wire.ErrorCode) {
	t.Helper()
	if got := errs.CodeOf(err); got != want {
		t.Fatalf("error code = %q (%v), want %q", got, err, want)
	}
}

// relayServer is a minimal stand-in for the proxy handler: Do, then Relay,
// aborting the connection when the stream fails after the status was sent.
func relayServer(t testing.TB, e *Egress, call Call) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := e.Do(r.Context(), call)
		if err != nil {
			code := errs.CodeOf(err)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(wire.HTTPStatus(code))
			_, _ = w.Write([]byte(`{"error":{"code":"` + string(code) + `"}}`))
			return
		}
		defer resp.Body.Close()
		w.Header().Set(wire.HeaderProxied, "true")
		if _, err := resp.Relay(w); err != nil {
			panic(http.ErrAbortHandler)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func isCoded(err error, code wire.ErrorCode) bool {
	var ce *errs.CodedError
	return errors.As(err, &ce) && ce.Code == code
}

func itoa(n int) string { return strconv.Itoa(n) }
