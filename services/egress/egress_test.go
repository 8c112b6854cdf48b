package egress

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/errs"
)

// generous bounds a wait that only fails when something is broken; no test
// asserts on elapsed time.
const generous = 10 * time.Second

func doAndRead(t testing.TB, e *Egress, call Call) (*Response, []byte) {
	t.Helper()
	resp, err := e.Do(context.Background(), call)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, body
}

func TestDoInjectsTheCredentialExactlyOnce(t *testing.T) {
	tests := []struct {
		name  string
		inj   string
		query string
		check func(t *testing.T, r *http.Request)
	}{
		{name: "bearer header", inj: "header:Authorization:Bearer {secret}", check: func(t *testing.T, r *http.Request) {
			if got := r.Header.Values("Authorization"); !slices.Equal(got, []string{"Bearer " + testToken}) {
				t.Fatalf("Authorization = %q", got)
			}
		}},
		{name: "custom header", inj: "header:X-Api-Key:{secret}", check: func(t *testing.T, r *http.Request) {
			if got := r.Header.Values("X-Api-Key"); !slices.Equal(got, []string{testToken}) {
				t.Fatalf("X-Api-Key = %q", got)
			}
			if r.Header.Get("Authorization") != "" {
				t.Fatal("unexpected Authorization header")
			}
		}},
		{name: "basic with a fixed user", inj: "basic:svc:{secret}", check: func(t *testing.T, r *http.Request) {
			user, pass, ok := r.BasicAuth()
			if !ok || user != "svc" || pass != testToken || len(r.Header.Values("Authorization")) != 1 {
				t.Fatalf("basic auth = %q %q %v (%d headers)", user, pass, ok, len(r.Header.Values("Authorization")))
			}
		}},
		{name: "basic with the secret as user", inj: "basic:{secret}:", check: func(t *testing.T, r *http.Request) {
			user, pass, ok := r.BasicAuth()
			if !ok || user != testToken || pass != "" {
				t.Fatalf("basic auth = %q %q %v", user, pass, ok)
			}
		}},
		{name: "query parameter after the caller's", inj: "query:api_key:{secret}", query: "?q=a%20b&page=2", check: func(t *testing.T, r *http.Request) {
			if got := r.URL.Query()["api_key"]; !slices.Equal(got, []string{testToken}) {
				t.Fatalf("api_key = %q", got)
			}
			if r.URL.RawQuery != "q=a%20b&page=2&api_key="+testToken {
				t.Fatalf("query = %q; the caller's part must be untouched", r.URL.RawQuery)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUpstream(t, nil)
			e := newTestEgress(t, u, nil)
			inj, err := ParseInjection(tt.inj)
			if err != nil {
				t.Fatal(err)
			}
			call := baseCall(t, u, "/v1/thing"+tt.query)
			call.Injection = inj
			call.Header = map[string]string{"Accept": "application/json"}
			resp, _ := doAndRead(t, e, call)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d", resp.StatusCode)
			}
			got := u.got()
			if len(got) != 1 {
				t.Fatalf("upstream saw %d requests, want 1", len(got))
			}
			tt.check(t, got[0])
		})
	}
}

func TestDoRefusesCallerAttemptsToSetTheCredential(t *testing.T) {
	tests := []struct {
		name   string
		inj    string
		header map[string]string
		query  string
	}{
		{name: "Authorization", inj: "header:Authorization:Bearer {secret}", header: map[string]string{"Authorization": "Bearer evil"}},
		{name: "authorization lower case", inj: "header:Authorization:Bearer {secret}", header: map[string]string{"authorization": "Bearer evil"}},
		{name: "AUTHORIZATION upper case", inj: "header:Authorization:Bearer {secret}", header: map[string]string{"AUTHORIZATION": "Bearer evil"}},
		{name: "custom header, same case", inj: "header:X-Api-Key:{secret}", header: map[string]string{"X-Api-Key": "evil"}},
		{name: "custom header, lower case", inj: "header:X-Api-Key:{secret}", header: map[string]string{"x-api-key": "evil"}},
		{name: "custom header, mixed case", inj: "header:X-Api-Key:{secret}", header: map[string]string{"X-API-KEY": "evil"}},
		{name: "Authorization with a custom-header rule", inj: "header:X-Api-Key:{secret}", header: map[string]string{"authorization": "Bearer evil"}},
		{name: "Authorization with a basic rule", inj: "basic:svc:{secret}", header: map[string]string{"Authorization": "Basic ZXZpbA=="}},
		{name: "query parameter", inj: "query:api_key:{secret}", query: "?api_key=evil"},
		{name: "query parameter, upper case", inj: "query:api_key:{secret}", query: "?API_KEY=evil"},
		{name: "query parameter, percent-encoded", inj: "query:api_key:{secret}", query: "?api%5Fkey=evil"},
		{name: "query parameter after a semicolon", inj: "query:api_key:{secret}", query: "?a=1;api_key=evil"},
		{name: "malformed query", inj: "query:api_key:{secret}", query: "?a=%zz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUpstream(t, nil)
			e := newTestEgress(t, u, nil)
			inj, err := ParseInjection(tt.inj)
			if err != nil {
				t.Fatal(err)
			}
			call := baseCall(t, u, "/v1"+tt.query)
			call.Injection = inj
			call.Header = tt.header
			_, err = e.Do(context.Background(), call)
			wantCode(t, err, wire.CodeInvalidRequest)
			if n := u.newConns.Load(); n != 0 {
				t.Fatalf("upstream saw %d connections, want none", n)
			}
		})
	}
}

func TestDoRefusesForbiddenCallerHeaders(t *testing.T) {
	tests := []struct {
		name   string
		header map[string]string
	}{
		{"Proxy-Authorization", map[string]string{"Proxy-Authorization": "Basic x"}},
		{"Cookie", map[string]string{"Cookie": "session=x"}},
		{"cookie lower case", map[string]string{"cookie": "session=x"}},
		{"Host", map[string]string{"Host": "evil.example.com"}},
		{"Proxy-Connection", map[string]string{"Proxy-Connection": "keep-alive"}},
		{"any Proxy-*", map[string]string{"proxy-anything": "x"}},
		{"Connection", map[string]string{"Connection": "close"}},
		{"Keep-Alive", map[string]string{"Keep-Alive": "timeout=5"}},
		{"TE", map[string]string{"TE": "trailers"}},
		{"Trailer", map[string]string{"Trailer": "X-Foo"}},
		{"Transfer-Encoding", map[string]string{"Transfer-Encoding": "chunked"}},
		{"Upgrade", map[string]string{"Upgrade": "websocket"}},
		{"Content-Length", map[string]string{"Content-Length": "5"}},
		{"Latchkey-Key-Id", map[string]string{"Latchkey-Key-Id": "lk_app_x"}},
		{"Latchkey-User-Token lower case", map[string]string{"latchkey-user-token": "jwt"}},
		{"any Latchkey-*", map[string]string{"LATCHKEY-ANYTHING": "x"}},
		{"name with a space", map[string]string{"X Bad": "x"}},
		{"name with a colon", map[string]string{"X-Bad:": "x"}},
		{"empty name", map[string]string{"": "x"}},
		{"value with CRLF", map[string]string{"X-Ok": "a\r\nX-Injected: 1"}},
		{"value with NUL", map[string]string{"X-Ok": "a\x00b"}},
		{"duplicate in two cases", map[string]string{"Accept": "a", "accept": "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUpstream(t, nil)
			e := newTestEgress(t, u, nil)
			call := baseCall(t, u, "/")
			call.Header = tt.header
			_, err := e.Do(context.Background(), call)
			wantCode(t, err, wire.CodeInvalidRequest)
			if n := u.newConns.Load(); n != 0 {
				t.Fatalf("upstream saw %d connections, want none", n)
			}
			if strings.Contains(err.Error(), "a\r\n") || strings.Contains(err.Error(), "session=x") {
				t.Fatalf("error echoes a header value: %v", err)
			}
		})
	}
}

func TestDoSendsOrdinaryHeadersAndNothingOfLatchkey(t *testing.T) {
	u := newUpstream(t, nil)
	e := newTestEgress(t, u, nil)
	call := baseCall(t, u, "/")
	call.Header = map[string]string{"accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
	doAndRead(t, e, call)
	call.Header = map[string]string{"User-Agent": "digest-bot/1.0"}
	doAndRead(t, e, call)

	got := u.got()
	if len(got) != 2 {
		t.Fatalf("upstream saw %d requests", len(got))
	}
	first, second := got[0].Header, got[1].Header
	if first.Get("Accept") != "application/vnd.github+json" || first.Get("X-Github-Api-Version") != "2022-11-28" {
		t.Fatalf("caller headers not forwarded: %v", first)
	}
	if first.Get("User-Agent") != DefaultUserAgent {
		t.Fatalf("User-Agent = %q, want the default when the caller gives none", first.Get("User-Agent"))
	}
	if second.Get("User-Agent") != "digest-bot/1.0" {
		t.Fatalf("User-Agent = %q, want the caller's", second.Get("User-Agent"))
	}
	for _, h := range []http.Header{first, second} {
		for name := range h {
			if hasPrefixFold(name, "Latchkey-") || name == "Cookie" || isHopByHop(name) || name == "Accept-Encoding" {
				t.Errorf("upstream received %s", name)
			}
		}
	}
}

func TestDoMethods(t *testing.T) {
	tests := []struct {
		method string
		want   wire.ErrorCode
	}{
		{"GET", ""}, {"head", ""}, {"Post", ""}, {"PUT", ""}, {"PATCH", ""}, {"DELETE", ""}, {"OPTIONS", ""},
		{"TRACE", wire.CodeInvalidRequest},
		{"CONNECT", wire.CodeInvalidRequest},
		{"PROPFIND", wire.CodeInvalidRequest},
		{"", wire.CodeInvalidRequest},
		{"G ET", wire.CodeInvalidRequest},
		{"GET\r\n", wire.CodeInvalidRequest},
		{"poſt", wire.CodeInvalidRequest}, // ſ upper-cases to S in Unicode
	}
	u := newUpstream(t, nil)
	e := newTestEgress(t, u, nil)
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			call := baseCall(t, u, "/")
			call.Method = tt.method
			resp, err := e.Do(context.Background(), call)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Do: %v", err)
				}
				resp.Body.Close()
				return
			}
			wantCode(t, err, tt.want)
		})
	}
}

func TestDoReturnsRedirectsWithoutFollowing(t *testing.T) {
	elsewhere := newUpstream(t, nil)
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.url(otherHost, "/steal"), http.StatusFound)
	})
	e := newTestEgress(t, u, nil)
	call := baseCall(t, u, "/start")
	// Even a Location on the allow-list is not followed.
	call.AllowedHosts = mustAllow(t, u.entry(testHost), elsewhere.entry(otherHost))

	resp, _ := doAndRead(t, e, call)
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("status = %d, want 302", resp.StatusCode)
	}
	if loc := resp.Header.Get("Location"); loc != elsewhere.url(otherHost, "/steal") {
		t.Fatalf("Location = %q", loc)
	}
	if n := len(elsewhere.got()); n != 0 || elsewhere.newConns.Load() != 0 {
		t.Fatalf("the redirect target was contacted (%d requests)", n)
	}
}

// With query injection the secret is in the upstream URL; an upstream that
// echoes that URL in a header (a redirect keeping the query, Link,
// Content-Location) must not hand the caller the secret.
func TestDoRedactsTheSecretFromRelayedHeaders(t *testing.T) {
	const secret = "s3cr3t/+value="
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "<"+r.URL.String()+">; rel=self")
		w.Header().Set("X-Echo", "raw "+secret)
		http.Redirect(w, r, r.URL.Path+"/?"+r.URL.RawQuery, http.StatusMovedPermanently)
	})
	e := newTestEgress(t, u, nil)
	call := baseCall(t, u, "/v1/items")
	inj, err := ParseInjection("query:api_key:{secret}")
	if err != nil {
		t.Fatal(err)
	}
	call.Injection, call.Secret = inj, Secret(secret)
	resp, _ := doAndRead(t, e, call)
	if resp.StatusCode != http.StatusMovedPermanently {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	for name, vv := range resp.Header {
		for _, v := range vv {
			for _, form := range []string{secret, url.QueryEscape(secret), url.PathEscape(secret)} {
				if strings.Contains(v, form) {
					t.Errorf("header %s relays the secret: %q", name, v)
				}
			}
		}
	}
	if loc := resp.Header.Get("Location"); !strings.Contains(loc, "api_key=[redacted]") {
		t.Fatalf("Location = %q, want the secret redacted", loc)
	}
}

func TestDoStripsHopByHopHeadersBothWays(t *testing.T) {
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Connection", "X-Conn-Scoped")
		h.Set("X-Conn-Scoped", "1")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("Proxy-Authenticate", "Basic")
		h.Set("Upgrade", "h2c")
		h.Set("Set-Cookie", "session=abc")
		h.Set("Alt-Svc", `h3=":443"`)
		h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		h.Set("Latchkey-Proxied", "forged")
		h.Set("latchkey-grant-id", "forged")
		h.Set("X-Ratelimit-Remaining", "4999")
		h.Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	})
	e := newTestEgress(t, u, nil)
	resp, body := doAndRead(t, e, baseCall(t, u, "/"))
	if string(body) != "{}" {
		t.Fatalf("body = %q", body)
	}
	for _, name := range []string{"Connection", "X-Conn-Scoped", "Keep-Alive", "Proxy-Authenticate", "Upgrade",
		"Set-Cookie", "Alt-Svc", "Strict-Transport-Security", "Latchkey-Proxied", "Latchkey-Grant-Id", "Transfer-Encoding"} {
		if v := resp.Header.Values(name); len(v) != 0 {
			t.Errorf("response header %s relayed: %q", name, v)
		}
	}
	if resp.Header.Get("X-Ratelimit-Remaining") != "4999" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("end-to-end headers lost: %v", resp.Header)
	}
	req := u.got()[0]
	for name := range req.Header {
		if isHopByHop(name) {
			t.Errorf("upstream received hop-by-hop header %s", name)
		}
	}
}

func TestRelayStreamsBeforeTheUpstreamFinishes(t *testing.T) {
	release := make(chan struct{})
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "first-chunk\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "rest")
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	e := newTestEgress(t, u, nil)
	relay := relayServer(t, e, baseCall(t, u, "/stream"))

	resp, err := http.Get(relay.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get(wire.HeaderProxied) != "true" {
		t.Fatal("relayed response lacks Latchkey-Proxied")
	}
	first := make(chan string, 1)
	go func() {
		buf := make([]byte, len("first-chunk\n"))
		_, err := io.ReadFull(resp.Body, buf)
		if err != nil {
			first <- "error: " + err.Error()
			return
		}
		first <- string(buf)
	}()
	select {
	case got := <-first:
		if got != "first-chunk\n" {
			t.Fatalf("first bytes = %q", got)
		}
	case <-time.After(generous):
		t.Fatal("the first bytes did not reach the caller while the upstream was still sending: the relay buffers")
	}
	close(release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "rest" {
		t.Fatalf("rest = %q, %v", rest, err)
	}
}

func TestDoRequestBodyLimits(t *testing.T) {
	const limit = 1 << 10
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Got-Type", r.Header.Get("Content-Type"))
		_, _ = w.Write(b)
	})
	e := newTestEgress(t, u, func(o *Options) { o.MaxRequestBytes = limit })

	t.Run("body within the limit arrives intact", func(t *testing.T) {
		payload := bytes.Repeat([]byte("x"), limit)
		call := baseCall(t, u, "/")
		call.Method = http.MethodPost
		call.Body, call.ContentLength, call.ContentType = bytes.NewReader(payload), int64(len(payload)), "application/json"
		resp, body := doAndRead(t, e, call)
		if !bytes.Equal(body, payload) || resp.Header.Get("X-Got-Type") != "application/json" {
			t.Fatalf("echo = %d bytes, type %q", len(body), resp.Header.Get("X-Got-Type"))
		}
	})
	t.Run("the caller's Content-Type wins", func(t *testing.T) {
		call := baseCall(t, u, "/")
		call.Method = http.MethodPost
		call.Header = map[string]string{"content-type": "text/csv"}
		call.Body, call.ContentLength, call.ContentType = strings.NewReader("a,b"), 3, "application/json"
		resp, _ := doAndRead(t, e, call)
		if got := resp.Header.Get("X-Got-Type"); got != "text/csv" {
			t.Fatalf("Content-Type = %q", got)
		}
	})
	t.Run("declared length over the limit is refused before connecting", func(t *testing.T) {
		before := u.newConns.Load()
		call := baseCall(t, u, "/")
		call.Method = http.MethodPost
		call.Body, call.ContentLength = bytes.NewReader(make([]byte, limit+1)), limit+1
		_, err := e.Do(context.Background(), call)
		wantCode(t, err, wire.CodePayloadTooLarge)
		if u.newConns.Load() != before {
			t.Fatal("a connection was opened for a body known to be too large")
		}
	})
	t.Run("streamed body over the limit is cut off", func(t *testing.T) {
		call := baseCall(t, u, "/")
		call.Method = http.MethodPut
		call.Body = io.LimitReader(zeros{}, 4*limit) // length unknown
		_, err := e.Do(context.Background(), call)
		wantCode(t, err, wire.CodePayloadTooLarge)
	})
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestDoResponseSizeLimit(t *testing.T) {
	const limit = 1 << 10
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		n := 4 * limit
		if r.URL.Path == "/declared" {
			w.Header().Set("Content-Length", itoa(n))
		}
		chunk := bytes.Repeat([]byte("y"), 256)
		for sent := 0; sent < n; sent += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	})
	e := newTestEgress(t, u, func(o *Options) { o.MaxResponseBytes = limit })

	t.Run("declared length over the limit is refused before relaying", func(t *testing.T) {
		_, err := e.Do(context.Background(), baseCall(t, u, "/declared"))
		wantCode(t, err, wire.CodeUpstreamUnreachable)
		if !errors.Is(err, ErrResponseTooLarge) {
			t.Fatalf("err = %v, want ErrResponseTooLarge as cause", err)
		}
	})
	t.Run("HEAD may declare any length", func(t *testing.T) {
		call := baseCall(t, u, "/declared")
		call.Method = http.MethodHead
		resp, body := doAndRead(t, e, call)
		if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.Header.Get("Content-Length") != itoa(4*limit) {
			t.Fatalf("HEAD: %d, %d body bytes, Content-Length %q", resp.StatusCode, len(body), resp.Header.Get("Content-Length"))
		}
	})
	t.Run("streamed body over the limit fails the read", func(t *testing.T) {
		resp, err := e.Do(context.Background(), baseCall(t, u, "/chunked"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if !errors.Is(err, ErrResponseTooLarge) || len(got) != limit {
			t.Fatalf("read %d bytes, err %v; want exactly %d then ErrResponseTooLarge", len(got), err, limit)
		}
	})
	t.Run("the relayed stream is aborted, not ended cleanly", func(t *testing.T) {
		relay := relayServer(t, e, baseCall(t, u, "/chunked"))
		resp, err := http.Get(relay.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err == nil {
			t.Fatalf("caller read %d bytes and a clean end; want a truncated stream", len(got))
		}
		if len(got) > limit {
			t.Fatalf("caller received %d bytes, more than the %d limit", len(got), limit)
		}
	})
}

func TestDoTimeouts(t *testing.T) {
	done := make(chan struct{})
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow-body" {
			_, _ = io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-done:
		}
	})
	t.Cleanup(func() { close(done) })
	e := newTestEgress(t, u, nil)

	t.Run("no headers in time", func(t *testing.T) {
		call := baseCall(t, u, "/slow-headers")
		call.Timeout = 50 * time.Millisecond
		_, err := e.Do(context.Background(), call)
		wantCode(t, err, wire.CodeUpstreamTimeout)
	})
	t.Run("the timeout covers the body", func(t *testing.T) {
		call := baseCall(t, u, "/slow-body")
		call.Timeout = 200 * time.Millisecond
		resp, err := e.Do(context.Background(), call)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, err = io.ReadAll(resp.Body)
		wantCode(t, err, wire.CodeUpstreamTimeout)
	})
	t.Run("negative timeout", func(t *testing.T) {
		call := baseCall(t, u, "/")
		call.Timeout = -time.Second
		_, err := e.Do(context.Background(), call)
		wantCode(t, err, wire.CodeInvalidRequest)
	})
	t.Run("a canceled caller is not an upstream error", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := e.Do(ctx, baseCall(t, u, "/slow-headers"))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

func TestDoUnreachableUpstreams(t *testing.T) {
	u := newUpstream(t, nil)

	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, port, _ := net.SplitHostPort(addr)
		e := newTestEgress(t, u, nil)
		call := baseCall(t, u, "/")
		call.URL = "https://" + testHost + ":" + port + "/"
		call.AllowedHosts = mustAllow(t, testHost+":"+port)
		_, err = e.Do(context.Background(), call)
		wantCode(t, err, wire.CodeUpstreamUnreachable)
	})
	t.Run("name does not resolve", func(t *testing.T) {
		e := newTestEgress(t, u, nil)
		call := baseCall(t, u, "/")
		call.URL = u.url("missing.example.com", "/")
		call.AllowedHosts = mustAllow(t, u.entry("missing.example.com"))
		_, err := e.Do(context.Background(), call)
		wantCode(t, err, wire.CodeUpstreamUnreachable)
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		e := newTestEgress(t, u, func(o *Options) { o.RootCAs = nil })
		_, err := e.Do(context.Background(), baseCall(t, u, "/"))
		wantCode(t, err, wire.CodeUpstreamUnreachable)
		if len(u.got()) != 0 {
			t.Fatal("a request reached an upstream whose certificate failed verification")
		}
	})
	t.Run("certificate for another name", func(t *testing.T) {
		e := newTestEgress(t, u, func(o *Options) {
			o.Resolver = mapResolver{"api.example.net": addrs("127.0.0.1")}
		})
		call := baseCall(t, u, "/")
		call.URL = u.url("api.example.net", "/")
		call.AllowedHosts = mustAllow(t, u.entry("api.example.net"))
		_, err := e.Do(context.Background(), call)
		wantCode(t, err, wire.CodeUpstreamUnreachable)
	})
	t.Run("TLS older than 1.2", func(t *testing.T) {
		old := newUpstream(t, nil, func(s *httptest.Server) {
			s.TLS = &tls.Config{MaxVersion: tls.VersionTLS11}
		})
		e := newTestEgress(t, old, nil)
		_, err := e.Do(context.Background(), baseCall(t, old, "/"))
		wantCode(t, err, wire.CodeUpstreamUnreachable)
	})
	t.Run("plain HTTP server behind an https URL", func(t *testing.T) {
		plain := httptest.NewServer(http.NotFoundHandler())
		t.Cleanup(plain.Close)
		_, port, _ := net.SplitHostPort(plain.Listener.Addr().String())
		e := newTestEgress(t, u, nil)
		call := baseCall(t, u, "/")
		call.URL = "https://" + testHost + ":" + port + "/"
		call.AllowedHosts = mustAllow(t, testHost+":"+port)
		_, err := e.Do(context.Background(), call)
		wantCode(t, err, wire.CodeUpstreamUnreachable)
	})
}

func TestStrictModeRefusesSpecialAddressesAtDialTime(t *testing.T) {
	u := newUpstream(t, nil)
	tests := []struct {
		name    string
		resolve []string
	}{
		{"rebinding to loopback", []string{"127.0.0.1"}},
		{"cloud metadata", []string{"169.254.169.254"}},
		{"IPv4-mapped private", []string{"::ffff:10.0.0.1"}},
		{"IPv4-mapped loopback", []string{"::ffff:127.0.0.1"}},
		{"IPv6 loopback", []string{"::1"}},
		{"NAT64 of loopback", []string{"64:ff9b::7f00:1"}},
		{"ULA", []string{"fd00::1"}},
		{"public first, loopback second", []string{"8.8.8.8", "127.0.0.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			e := New(Options{
				RootCAs:  u.pool(),
				Resolver: mapResolver{"rebind.example.com": addrs(tt.resolve...)},
				Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
			})
			t.Cleanup(e.Close)
			call := baseCall(t, u, "/")
			call.URL = u.url("rebind.example.com", "/")
			call.AllowedHosts = mustAllow(t, u.entry("rebind.example.com"))
			_, err := e.Do(context.Background(), call)
			wantCode(t, err, wire.CodeHostNotAllowed)
			var ce *errs.CodedError
			errors.As(err, &ce)
			if strings.Contains(ce.Message, tt.resolve[len(tt.resolve)-1]) {
				t.Fatalf("the caller-facing message reveals the resolved address: %q", ce.Message)
			}
			if !strings.Contains(logs.String(), "refused") {
				t.Fatalf("the refusal was not logged: %s", logs.String())
			}
			if n := u.newConns.Load(); n != 0 {
				t.Fatalf("upstream saw %d connections", n)
			}
		})
	}
}

func TestStrictDialerRefusesSpecialAddressesEvenWithoutTheResolverCheck(t *testing.T) {
	// The resolver check runs first; this proves the socket Control hook
	// alone also stops a connection to loopback.
	u := newUpstream(t, nil)
	e := New(Options{})
	t.Cleanup(e.Close)
	for _, addr := range []string{u.Listener.Addr().String(), "[::ffff:127.0.0.1]:" + u.port} {
		conn, err := e.dialer.DialContext(context.Background(), "tcp", addr)
		if err == nil {
			conn.Close()
			t.Fatalf("dialer connected to %s", addr)
		}
		var refused *refusedAddrError
		if !errors.As(err, &refused) {
			t.Fatalf("dial %s: %v, want a refusal", addr, err)
		}
	}
	if n := u.newConns.Load(); n != 0 {
		t.Fatalf("upstream saw %d connections", n)
	}
}

func TestPlainHTTPOnlyWithAllowPrivate(t *testing.T) {
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.Header.Get("Authorization"))
	}))
	t.Cleanup(plain.Close)
	_, port, _ := net.SplitHostPort(plain.Listener.Addr().String())
	call := Call{
		Method: "GET", URL: "http://127.0.0.1:" + port + "/",
		AllowedHosts: mustAllow(t, "127.0.0.1:"+port), Injection: Bearer(), Secret: testToken,
	}

	private := New(Options{AllowPrivate: true})
	t.Cleanup(private.Close)
	_, body := doAndRead(t, private, call)
	if string(body) != "Bearer "+testToken {
		t.Fatalf("body = %q", body)
	}

	strict := New(Options{})
	t.Cleanup(strict.Close)
	_, err := strict.Do(context.Background(), call)
	wantCode(t, err, wire.CodeInvalidRequest)
}

func TestDoReusesConnections(t *testing.T) {
	for _, tt := range []struct {
		name      string
		opts      []upstreamOpt
		wantProto string
	}{
		{"HTTP/1.1", nil, "HTTP/1.1"},
		{"HTTP/2", []upstreamOpt{withHTTP2}, "HTTP/2.0"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, `{"ok":true}`)
			}, tt.opts...)
			e := newTestEgress(t, u, nil)
			for range 50 {
				resp, _ := doAndRead(t, e, baseCall(t, u, "/"))
				if resp.Proto != tt.wantProto {
					t.Fatalf("proto = %s, want %s", resp.Proto, tt.wantProto)
				}
			}
			if n := u.newConns.Load(); n > 2 {
				t.Fatalf("50 sequential calls opened %d connections; want reuse", n)
			}
		})
	}
}

func TestDoKeepsConnectionsForConcurrentCallsToOneHost(t *testing.T) {
	// Each round holds all calls at the upstream until every one has
	// arrived, so over HTTP/1.1 a round needs `concurrency` connections at
	// once. The second round must find them all in the idle pool: with
	// net/http's default of 2 idle connections per host it would reopen 30.
	const concurrency = 32
	var (
		mu      sync.Mutex
		arrive  chan struct{}
		release chan struct{}
	)
	u := newUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		a, rel := arrive, release
		mu.Unlock()
		a <- struct{}{}
		select {
		case <-rel:
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, "ok")
	})
	e := newTestEgress(t, u, nil)

	var pooled, poolRefused atomic.Int64
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		PutIdleConn: func(err error) {
			if err == nil {
				pooled.Add(1)
			} else {
				poolRefused.Add(1)
			}
		},
	})
	round := func() {
		t.Helper()
		mu.Lock()
		arrive, release = make(chan struct{}, concurrency), make(chan struct{})
		a, rel := arrive, release
		mu.Unlock()
		errc := make(chan error, concurrency)
		var wg sync.WaitGroup
		for range concurrency {
			wg.Go(func() {
				resp, err := e.Do(ctx, baseCall(t, u, "/"))
				if err != nil {
					errc <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
		}
		for i := range concurrency {
			select {
			case <-a:
			case err := <-errc:
				t.Fatal(err)
			case <-time.After(generous):
				t.Fatalf("only %d of %d calls reached the upstream", i, concurrency)
			}
		}
		close(rel)
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Fatal(err)
		}
	}
	waitPooled := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(generous)
		for pooled.Load()+poolRefused.Load() < want && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if n := poolRefused.Load(); n != 0 {
			t.Fatalf("the idle pool refused %d connections", n)
		}
	}

	round()
	waitPooled(concurrency)
	opened := u.newConns.Load()
	if opened != concurrency {
		t.Fatalf("first round opened %d connections, want %d", opened, concurrency)
	}
	round()
	if n := u.newConns.Load() - opened; n != 0 {
		t.Fatalf("second round opened %d new connections; the pool should have kept all %d", n, concurrency)
	}
}

func TestErrorsAndLogsNeverContainTheCredential(t *testing.T) {
	u := newUpstream(t, nil)
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	inj, err := ParseInjection("query:api_key:{secret}")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]func(*Options, *Call){
		"unresolvable host": func(o *Options, c *Call) {
			c.URL = u.url("missing.example.com", "/")
			c.AllowedHosts = mustAllow(t, u.entry("missing.example.com"))
		},
		"untrusted certificate": func(o *Options, c *Call) { o.RootCAs = nil },
		"timeout": func(o *Options, c *Call) {
			c.Timeout = time.Nanosecond
		},
		"success": func(*Options, *Call) {},
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			opts := Options{
				AllowPrivate: true, RootCAs: u.pool(), Logger: logger,
				Resolver: mapResolver{testHost: addrs("127.0.0.1")},
			}
			call := baseCall(t, u, "/")
			call.Injection = inj
			mod(&opts, &call)
			e := New(opts)
			t.Cleanup(e.Close)
			resp, err := e.Do(context.Background(), call)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return
			}
			if strings.Contains(err.Error(), testToken) {
				t.Fatalf("error contains the credential: %v", err)
			}
		})
	}
	if strings.Contains(logs.String(), testToken) {
		t.Fatalf("logs contain the credential:\n%s", logs.String())
	}
}

func TestDoRefusesAMissingOrUnusableCredential(t *testing.T) {
	u := newUpstream(t, nil)
	e := newTestEgress(t, u, nil)
	tests := []struct {
		name string
		mod  func(*Call)
	}{
		{"no injection rule", func(c *Call) { c.Injection = Injection{} }},
		{"empty secret", func(c *Call) { c.Secret = "" }},
		{"secret with a newline in a header", func(c *Call) { c.Secret = "tok\r\nX-Evil: 1" }},
		{"secret with a colon as Basic user", func(c *Call) {
			c.Injection = Injection{Kind: InjectBasic, Username: Placeholder}
			c.Secret = "user:pass"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			call := baseCall(t, u, "/")
			tt.mod(&call)
			_, err := e.Do(context.Background(), call)
			wantCode(t, err, wire.CodeInternal)
			if strings.Contains(err.Error(), "X-Evil") || strings.Contains(err.Error(), "user:pass") {
				t.Fatalf("error quotes the secret: %v", err)
			}
			if n := u.newConns.Load(); n != 0 {
				t.Fatalf("upstream saw %d connections", n)
			}
		})
	}
}

func TestDoTimeoutIsCapped(t *testing.T) {
	e := New(Options{MaxTimeout: time.Second, DefaultTimeout: time.Hour})
	t.Cleanup(e.Close)
	for _, tt := range []struct{ in, want time.Duration }{
		{0, time.Second}, {time.Hour, time.Second}, {time.Millisecond, time.Millisecond},
	} {
		got, err := e.callTimeout(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("callTimeout(%v) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func BenchmarkEgress(b *testing.B) {
	for _, bb := range []struct {
		name string
		opts []upstreamOpt
	}{
		{"HTTP1", nil},
		{"HTTP2", []upstreamOpt{withHTTP2}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			u := newUpstream(b, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"id":1,"name":"latchkey","private":false}`)
			}, bb.opts...)
			e := newTestEgress(b, u, nil)
			call := baseCall(b, u, "/repos?per_page=5")
			call.Header = map[string]string{"Accept": "application/json"}
			b.Run("sequential", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					resp, err := e.Do(context.Background(), call)
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
			b.Run("parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						resp, err := e.Do(context.Background(), call)
						if err != nil {
							b.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				})
			})
		})
	}
}
