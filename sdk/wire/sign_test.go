package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func sha256HexOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestStringToSignLineByLine(t *testing.T) {
	body := []byte(`{"a":1}`)
	bodySum := sha256.Sum256(body)
	base := SignatureParams{
		KeyID:     "lk_app_k4v2m8q1x7c3z9p0",
		Timestamp: 1767225600,
		Nonce:     "Lk3nZ8qW-pR2vT7yB1xC_mN4sD6fG9hJ",
		Method:    "post",
		Target:    "/sdk/v1/proxy?x=1",
		Body:      body,
		UserToken: "jwt",
		Caller:    "worker",
		Agent:     "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b",
	}
	tests := []struct {
		name   string
		mutate func(*SignatureParams)
		want   []string
	}{
		{
			name:   "every field present, method uppercased",
			mutate: func(*SignatureParams) {},
			want: []string{
				"LATCHKEY-HMAC-SHA256-V1", "lk_app_k4v2m8q1x7c3z9p0", "1767225600",
				"Lk3nZ8qW-pR2vT7yB1xC_mN4sD6fG9hJ", "POST", "/sdk/v1/proxy?x=1",
				sha256HexOf(`{"a":1}`), sha256HexOf("jwt"), sha256HexOf("worker"),
				sha256HexOf("6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"),
			},
		},
		{
			name: "absent body and headers hash as the empty string",
			mutate: func(p *SignatureParams) {
				p.Method, p.Body, p.UserToken, p.Caller, p.Agent = "GET", nil, "", "", ""
			},
			want: []string{
				"LATCHKEY-HMAC-SHA256-V1", "lk_app_k4v2m8q1x7c3z9p0", "1767225600",
				"Lk3nZ8qW-pR2vT7yB1xC_mN4sD6fG9hJ", "GET", "/sdk/v1/proxy?x=1",
				emptySHA256, emptySHA256, emptySHA256, emptySHA256,
			},
		},
		{
			name: "a precomputed body digest replaces the body",
			mutate: func(p *SignatureParams) {
				p.Body, p.BodySHA256 = []byte("ignored"), bodySum[:]
			},
			want: []string{
				"LATCHKEY-HMAC-SHA256-V1", "lk_app_k4v2m8q1x7c3z9p0", "1767225600",
				"Lk3nZ8qW-pR2vT7yB1xC_mN4sD6fG9hJ", "POST", "/sdk/v1/proxy?x=1",
				sha256HexOf(`{"a":1}`), sha256HexOf("jwt"), sha256HexOf("worker"),
				sha256HexOf("6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"),
			},
		},
		{
			name:   "only ASCII letters are uppercased in the method",
			mutate: func(p *SignatureParams) { p.Method = "pAtCh-ı" },
			want: []string{
				"LATCHKEY-HMAC-SHA256-V1", "lk_app_k4v2m8q1x7c3z9p0", "1767225600",
				"Lk3nZ8qW-pR2vT7yB1xC_mN4sD6fG9hJ", "PATCH-ı", "/sdk/v1/proxy?x=1",
				sha256HexOf(`{"a":1}`), sha256HexOf("jwt"), sha256HexOf("worker"),
				sha256HexOf("6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base
			tt.mutate(&p)
			sts := StringToSign(p)
			if strings.HasSuffix(sts, "\n") {
				t.Fatal("string to sign must not end with a newline")
			}
			got := strings.Split(sts, "\n")
			if len(got) != 10 {
				t.Fatalf("got %d lines, want 10", len(got))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("line %d = %q, want %q", i+1, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestSignAndVerify(t *testing.T) {
	sk := SigningKey(testAppKey)
	p := SignatureParams{
		KeyID: "lk_app_k4v2m8q1x7c3z9p0", Timestamp: 1767225600, Nonce: "Lk3nZ8qW-pR2vT7yB1xC_mN4sD6fG9hJ",
		Method: "POST", Target: "/sdk/v1/proxy", Body: []byte(`{"a":1}`),
		UserToken: "jwt", Caller: "worker", Agent: "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b",
	}
	sigHex := Sign(sk, StringToSign(p))
	if len(sigHex) != 64 || strings.ToLower(sigHex) != sigHex {
		t.Fatalf("signature %q is not 64 lowercase hex characters", sigHex)
	}
	sig, err := ParseSignatureHeader(SignatureHeaderValue(sigHex))
	if err != nil {
		t.Fatal(err)
	}
	if !VerifySignature(sk, StringToSign(p), sig) {
		t.Fatal("signature does not verify against its own string to sign")
	}

	tamper := []struct {
		name   string
		key    []byte
		mutate func(*SignatureParams)
	}{
		{"altered body fails", sk, func(p *SignatureParams) { p.Body = []byte(`{"a":2}`) }},
		{"body with an added trailing newline fails", sk, func(p *SignatureParams) { p.Body = append(p.Body, '\n') }},
		{"altered target fails", sk, func(p *SignatureParams) { p.Target = "/sdk/v1/token" }},
		{"altered query fails", sk, func(p *SignatureParams) { p.Target += "?limit=1000" }},
		{"altered method fails", sk, func(p *SignatureParams) { p.Method = "PUT" }},
		{"altered timestamp fails", sk, func(p *SignatureParams) { p.Timestamp++ }},
		{"altered nonce fails", sk, func(p *SignatureParams) { p.Nonce = "Lk3nZ8qW-pR2vT7yB1xC_mN4sD6fG9hK" }},
		{"altered key id fails", sk, func(p *SignatureParams) { p.KeyID = "lk_app_k4v2m8q1x7c3z9p1" }},
		{"removed user token fails", sk, func(p *SignatureParams) { p.UserToken = "" }},
		{"altered caller fails", sk, func(p *SignatureParams) { p.Caller = "someone-else" }},
		{"added agent fails", sk, func(p *SignatureParams) { p.Agent = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d" }},
		{"different signing key fails", SigningKey(testAgentKey), func(*SignatureParams) {}},
	}
	for _, tt := range tamper {
		t.Run(tt.name, func(t *testing.T) {
			q := p
			q.Body = bytes.Clone(p.Body)
			tt.mutate(&q)
			if VerifySignature(tt.key, StringToSign(q), sig) {
				t.Fatal("tampered request verified")
			}
		})
	}
	t.Run("truncated signature fails", func(t *testing.T) {
		if VerifySignature(sk, StringToSign(p), sig[:31]) {
			t.Fatal("truncated signature verified")
		}
	})
	t.Run("empty signature fails", func(t *testing.T) {
		if VerifySignature(sk, StringToSign(p), nil) {
			t.Fatal("empty signature verified")
		}
	})
}

func TestParseSignatureHeader(t *testing.T) {
	good := strings.Repeat("0123456789abcdef", 4)
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"v1= and 64 lowercase hex", "v1=" + good, true},
		{"uppercase hex", "v1=" + strings.ToUpper(good), false},
		{"no prefix", good, false},
		{"other version", "v2=" + good, false},
		{"uppercase prefix", "V1=" + good, false},
		{"63 hex", "v1=" + good[1:], false},
		{"65 hex", "v1=" + good + "0", false},
		{"non-hex", "v1=" + good[:63] + "g", false},
		{"base64 instead of hex", "v1=ASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4mrze8=", false},
		{"empty", "", false},
		{"trailing space", "v1=" + good + " ", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, err := ParseSignatureHeader(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
			if tt.ok && len(sig) != 32 {
				t.Fatalf("decoded %d bytes, want 32", len(sig))
			}
			var mae *MalformedAuthError
			if !tt.ok && (!errors.As(err, &mae) || mae.Header != HeaderSignature) {
				t.Fatalf("error %v is not a MalformedAuthError for %s", err, HeaderSignature)
			}
		})
	}
}

func TestNonce(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		n, err := NewNonce(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(n) != 32 || !ValidNonce(n) {
			t.Fatalf("nonce %q is not 32 valid characters", n)
		}
		if seen[n] {
			t.Fatal("duplicate nonce")
		}
		seen[n] = true
	}
	if _, err := NewNonce(failingReader{}); err == nil {
		t.Fatal("failing randomness must be reported")
	}
}

func TestValidNonce(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"16 characters is the minimum", strings.Repeat("a", 16), true},
		{"64 characters is the maximum", strings.Repeat("Z", 64), true},
		{"every allowed symbol", "azAZ09_-azAZ09_-", true},
		{"15 characters is too short", strings.Repeat("a", 15), false},
		{"65 characters is too long", strings.Repeat("a", 65), false},
		{"standard base64 plus", "abcdefgh+bcdefgh", false},
		{"standard base64 slash", "abcdefgh/bcdefgh", false},
		{"padding", "abcdefghabcdefg=", false},
		{"space", "abcdefgh bcdefgh", false},
		{"non-ASCII", "abcdefghébcdefgh", false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ValidNonce(tt.in) != tt.ok {
				t.Fatalf("ValidNonce(%q) = %v", tt.in, !tt.ok)
			}
		})
	}
}

func TestTimestampInWindow(t *testing.T) {
	now := time.Unix(1767225600, 999_000_000)
	tests := []struct {
		name string
		ts   int64
		ok   bool
	}{
		{"now", 1767225600, true},
		{"300 s behind", 1767225300, true},
		{"300 s ahead", 1767225900, true},
		{"301 s behind", 1767225299, false},
		{"301 s ahead", 1767225901, false},
		{"zero", 0, false},
		{"max int64 does not overflow into the window", 1<<63 - 1, false},
		{"min int64 does not overflow into the window", -1 << 63, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if TimestampInWindow(tt.ts, now) != tt.ok {
				t.Fatalf("TimestampInWindow(%d) = %v", tt.ts, !tt.ok)
			}
		})
	}
}

// verifyingServer is the server side of the protocol reduced to its
// signature checks, used to prove that what the Signer signs is what a real
// net/http server sees.
func verifyingServer(t *testing.T, signingKey []byte, got chan<- error) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- func() error {
			a, err := ParseAuthHeaders(r.Header)
			if err != nil {
				return err
			}
			h := sha256.New()
			if _, err := io.Copy(h, r.Body); err != nil {
				return err
			}
			sts := StringToSign(a.SignatureParams(r.Method, RequestTarget(r), h.Sum(nil)))
			if !VerifySignature(signingKey, sts, a.Signature) {
				return errors.New("signature does not verify on the server; string to sign:\n" + sts)
			}
			return nil
		}()
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestSignerRoundTripThroughHTTPServer(t *testing.T) {
	app := mustParseKey(t, testAppKey)
	agent := mustParseKey(t, testAgentKey)
	tests := []struct {
		name    string
		key     APIKey
		method  string
		path    string
		body    string
		headers map[string]string
	}{
		{"app GET with query", app, "GET", "/sdk/v1/grants?provider=github&limit=10", "", nil},
		{"app GET with encoded query and path", app, "GET", "/sdk/v1/grants/a%2Fb?q=a+b&r=%C3%A9%20x", "", nil},
		{"app POST with body, user token and caller", app, "POST", "/sdk/v1/proxy", `{"method":"GET","url":"https://api.github.com/user"}`,
			map[string]string{HeaderUserToken: "eyJhbGciOiJub25lIn0.e30.", HeaderCaller: "digest-worker/1.4 ✓"}},
		{"agent POST with empty body", agent, "POST", "/sdk/v1/token", "", map[string]string{HeaderCaller: "research-bot"}},
		{"app acting as agent", app, "POST", "/sdk/v1/proxy", "{}\n", map[string]string{HeaderAgent: "6F1C2A9E-3B4D-4E5F-8A7B-9C0D1E2F3A4B"}},
		{"agent DELETE", agent, "DELETE", "/sdk/v1/grants/0b7e4f52-8c1d-4a9e-b3f6-2d5c7a9e1f04", "", nil},
		{"empty path is sent and signed as /", app, "GET", "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan error, 1)
			srv := verifyingServer(t, tt.key.SigningKey(), got)

			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, body)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			s, err := NewSigner(tt.key, time.Now, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Sign(req); err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if err := <-got; err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestBodyAlteredAfterSigningFailsVerification(t *testing.T) {
	key := mustParseKey(t, testAppKey)
	got := make(chan error, 1)
	srv := verifyingServer(t, key.SigningKey(), got)

	req, err := http.NewRequest("POST", srv.URL+"/sdk/v1/proxy", strings.NewReader(`{"url":"https://api.github.com/user"}`))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := NewSigner(key, time.Now, nil)
	if err := s.Sign(req); err != nil {
		t.Fatal(err)
	}
	altered := `{"url":"https://api.github.com/orgs"}`
	req.Body = io.NopCloser(strings.NewReader(altered))
	req.ContentLength = int64(len(altered))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-got; err == nil {
		t.Fatal("a body altered after signing verified")
	}
}

func TestSignerRestoresTheBody(t *testing.T) {
	const body = `{"a":1}`
	req, _ := http.NewRequest("POST", "https://latchkey.example/sdk/v1/proxy", strings.NewReader(body))
	s, _ := NewSigner(mustParseKey(t, testAppKey), time.Now, nil)
	if err := s.Sign(req); err != nil {
		t.Fatal(err)
	}
	for i, read := range []func() (io.ReadCloser, error){
		func() (io.ReadCloser, error) { return req.Body, nil },
		req.GetBody,
		req.GetBody,
	} {
		rc, err := read()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		if string(b) != body {
			t.Fatalf("read %d got %q, want %q", i, b, body)
		}
	}
	if req.ContentLength != int64(len(body)) {
		t.Fatalf("ContentLength = %d", req.ContentLength)
	}
}

func TestSignerSetsAllHeaders(t *testing.T) {
	key := mustParseKey(t, testAgentKey)
	now := time.Unix(1767226000, 0)
	s, _ := NewSigner(key, func() time.Time { return now }, nil)
	req, _ := http.NewRequest("GET", "https://latchkey.example/sdk/v1/me", nil)
	if err := s.Sign(req); err != nil {
		t.Fatal(err)
	}
	a, err := ParseAuthHeaders(req.Header)
	if err != nil {
		t.Fatal(err)
	}
	if a.KeyID != key.KeyID() || a.KeyKind != KeyKindAgent || a.Timestamp != now.Unix() || len(a.Nonce) != 32 {
		t.Fatalf("headers not as expected: %+v", a)
	}
	if s.KeyID() != key.KeyID() {
		t.Fatal("Signer.KeyID mismatch")
	}
}

func TestSignerRefusesHeadersTheServerWouldReject(t *testing.T) {
	tests := []struct {
		name   string
		header string
		values []string
	}{
		{"caller longer than 200 characters", HeaderCaller, []string{strings.Repeat("é", 201)}},
		{"caller with a trailing space (HTTP strips it, so it could never verify)", HeaderCaller, []string{"worker "}},
		{"user token with a leading tab", HeaderUserToken, []string{"\tjwt"}},
		{"agent that is not a UUID", HeaderAgent, []string{"research-bot"}},
		{"caller repeated", HeaderCaller, []string{"a", "b"}},
	}
	s, _ := NewSigner(mustParseKey(t, testAppKey), time.Now, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "https://latchkey.example/sdk/v1/me", nil)
			req.Header[tt.header] = tt.values
			err := s.Sign(req)
			var mae *MalformedAuthError
			if !errors.As(err, &mae) || mae.Header != tt.header {
				t.Fatalf("err = %v, want a MalformedAuthError for %s", err, tt.header)
			}
			if req.Header.Get(HeaderSignature) != "" {
				t.Fatal("request was signed anyway")
			}
		})
	}
	if _, err := NewSigner(APIKey{}, nil, nil); err == nil {
		t.Fatal("NewSigner must refuse the zero key")
	}
}

func TestRequestTarget(t *testing.T) {
	tests := []struct {
		name string
		req  func() *http.Request
		want string
	}{
		{"client request uses the URL's path and query", func() *http.Request {
			r, _ := http.NewRequest("GET", "https://h.example/sdk/v1/grants?limit=10&provider=git%20hub", nil)
			return r
		}, "/sdk/v1/grants?limit=10&provider=git%20hub"},
		{"client request keeps an encoded slash in the path", func() *http.Request {
			r, _ := http.NewRequest("GET", "https://h.example/a%2Fb", nil)
			return r
		}, "/a%2Fb"},
		{"server request uses RequestURI verbatim", func() *http.Request {
			return httptest.NewRequest("GET", "/sdk/v1/grants?b=2&a=1&a=0", nil)
		}, "/sdk/v1/grants?b=2&a=1&a=0"},
		{"server request in absolute form is reduced to path and query", func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.RequestURI = "http://h.example/sdk/v1/me?x=1"
			r.URL, _ = url.ParseRequestURI(r.RequestURI)
			return r
		}, "/sdk/v1/me?x=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RequestTarget(tt.req()); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
