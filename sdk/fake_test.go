package sdk_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/sdk/wire"
)

// fakeLatchkey plays Latchkey's SDK edge. It verifies every request exactly
// as DESIGN.md §4.4 says the server does — with package wire, over the
// request-target and body bytes it received — and refuses a reused nonce.
// A request that fails verification is answered with the protocol error and
// recorded as a failure, which the test helper turns into a test error.
type fakeLatchkey struct {
	srv  *httptest.Server
	keys map[string][]byte // key id → signing key
	now  func() time.Time

	mu       sync.Mutex
	nonces   map[string]bool
	seen     []seenRequest
	failures []string
	handler  func(w http.ResponseWriter, r *http.Request, s seenRequest)
}

// seenRequest is one verified request as it arrived.
type seenRequest struct {
	Method string
	Target string
	Body   []byte
	Auth   wire.AuthHeaders
	Header http.Header
}

// newFakeLatchkey starts a fake that knows apiKeys. The handler answers
// verified requests; nil answers 200 {}.
func newFakeLatchkey(handler func(w http.ResponseWriter, r *http.Request, s seenRequest), apiKeys ...string) *fakeLatchkey {
	f := &fakeLatchkey{keys: map[string][]byte{}, now: time.Now, nonces: map[string]bool{}, handler: handler}
	for _, k := range apiKeys {
		key, err := wire.ParseKey(k)
		if err != nil {
			panic(err)
		}
		f.keys[key.KeyID()] = key.SigningKey()
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	return f
}

// startFake is newFakeLatchkey for tests: closed at the end, and any request
// that failed verification fails the test.
func startFake(t *testing.T, handler func(w http.ResponseWriter, r *http.Request, s seenRequest), apiKeys ...string) *fakeLatchkey {
	t.Helper()
	f := newFakeLatchkey(handler, apiKeys...)
	t.Cleanup(func() {
		f.srv.Close()
		for _, msg := range f.failureList() {
			t.Errorf("fake Latchkey refused a request: %s", msg)
		}
	})
	return f
}

func (f *fakeLatchkey) URL() string { return f.srv.URL }

func (f *fakeLatchkey) requests() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRequest(nil), f.seen...)
}

func (f *fakeLatchkey) failureList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.failures...)
}

func (f *fakeLatchkey) refuse(w http.ResponseWriter, code wire.ErrorCode, why string) {
	f.mu.Lock()
	f.failures = append(f.failures, string(code)+": "+why)
	f.mu.Unlock()
	writeError(w, code, why)
}

func (f *fakeLatchkey) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(wire.HeaderRequestID, "req-"+strconv.Itoa(len(f.requests())+1))
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.refuse(w, wire.CodeInvalidRequest, "read body: "+err.Error())
		return
	}
	a, err := wire.ParseAuthHeaders(r.Header)
	if err != nil {
		f.refuse(w, wire.CodeMalformedAuth, err.Error())
		return
	}
	sk, ok := f.keys[a.KeyID]
	if !ok {
		f.refuse(w, wire.CodeInvalidKey, "unknown key id "+a.KeyID)
		return
	}
	if !wire.TimestampInWindow(a.Timestamp, f.now()) {
		f.refuse(w, wire.CodeTimestampOutOfRange, "timestamp out of window")
		return
	}
	sum := sha256.Sum256(body)
	sts := wire.StringToSign(a.SignatureParams(r.Method, wire.RequestTarget(r), sum[:]))
	if !wire.VerifySignature(sk, sts, a.Signature) {
		f.refuse(w, wire.CodeInvalidSignature, "signature does not match "+r.Method+" "+r.RequestURI)
		return
	}
	f.mu.Lock()
	replayed := f.nonces[a.KeyID+" "+a.Nonce]
	f.nonces[a.KeyID+" "+a.Nonce] = true
	f.mu.Unlock()
	if replayed {
		f.refuse(w, wire.CodeReplayedRequest, "nonce reused")
		return
	}
	if a.KeyKind == wire.KeyKindAgent && a.UserToken != "" {
		writeError(w, wire.CodeAgentCannotUseUserToken, "agent keys cannot send a user token")
		return
	}
	s := seenRequest{Method: r.Method, Target: r.RequestURI, Body: body, Auth: a, Header: r.Header.Clone()}
	f.mu.Lock()
	f.seen = append(f.seen, s)
	h := f.handler
	f.mu.Unlock()
	r.Body = io.NopCloser(bytes.NewReader(body))
	if h == nil {
		writeJSON(w, http.StatusOK, map[string]any{})
		return
	}
	h(w, r, s)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code wire.ErrorCode, msg string) {
	writeErrorDetails(w, code, msg, nil)
}

func writeErrorDetails(w http.ResponseWriter, code wire.ErrorCode, msg string, details map[string]any) {
	writeJSON(w, wire.HTTPStatus(code), wire.ErrorBody{Error: wire.ErrorDetail{
		Code: code, Message: msg, RequestID: w.Header().Get(wire.HeaderRequestID), Details: details,
	}})
}

// writeProxied answers as Latchkey relaying an upstream response.
func writeProxied(w http.ResponseWriter, status int, contentType, body string) {
	w.Header().Set(wire.HeaderProxied, "true")
	w.Header().Set(wire.HeaderGrantID, "0b7e4f52-8c1d-4a9e-b3f6-2d5c7a9e1f04")
	if contentType != "" {
		w.Header().Set("Content-Type", contentType)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// newKey mints a throwaway key of kind.
func newKey(kind wire.KeyKind) string {
	k, err := wire.GenerateKey(kind, nil)
	if err != nil {
		panic(fmt.Sprintf("generate key: %v", err))
	}
	return k.Reveal()
}
