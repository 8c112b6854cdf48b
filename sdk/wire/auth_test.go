package wire

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func knownAuthReasons() []string {
	return []string{reasonAuthMissing, reasonAuthRepeated, reasonAuthKeyID, reasonAuthTimestamp,
		reasonAuthNonce, reasonAuthSignature, reasonAuthWhitespace, reasonAuthCaller,
		reasonAuthAgent}
}

const testSignatureHeader = "v1=853eb8bf0750ba2578641206ad81500ad261f9356c6fd2f2aabc7d54a33a71da"

// validAuthHeaders is a complete, well-formed header set; rows below break one
// header at a time.
func validAuthHeaders() http.Header {
	h := make(http.Header)
	h.Set(HeaderKeyID, "lk_app_k4v2m8q1x7c3z9p0")
	h.Set(HeaderTimestamp, "1767225600")
	h.Set(HeaderNonce, "Lk3nZ8qW-pR2vT7yB1xC_mN4sD6fG9hJ")
	h.Set(HeaderSignature, testSignatureHeader)
	h.Set(HeaderUserToken, "eyJhbGciOiJub25lIn0.e30.")
	h.Set(HeaderCaller, "digest-worker")
	h.Set(HeaderAgent, "6F1C2A9E-3B4D-4E5F-8A7B-9C0D1E2F3A4B")
	return h
}

func TestParseAuthHeadersAcceptsWellFormedHeaders(t *testing.T) {
	a, err := ParseAuthHeaders(validAuthHeaders())
	if err != nil {
		t.Fatal(err)
	}
	want := AuthHeaders{
		KeyID: "lk_app_k4v2m8q1x7c3z9p0", KeyKind: KeyKindApp, Timestamp: 1767225600,
		Nonce: "Lk3nZ8qW-pR2vT7yB1xC_mN4sD6fG9hJ", UserToken: "eyJhbGciOiJub25lIn0.e30.",
		Caller: "digest-worker", Agent: "6F1C2A9E-3B4D-4E5F-8A7B-9C0D1E2F3A4B",
	}
	if hexOf(a.Signature) != strings.TrimPrefix(testSignatureHeader, "v1=") {
		t.Fatalf("signature decoded to %x", a.Signature)
	}
	a.Signature = nil
	if !reflect.DeepEqual(a, want) {
		t.Fatalf("got %+v, want %+v", a, want)
	}
	if a.AgentID() != "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b" {
		t.Fatalf("AgentID() = %q, want lowercase", a.AgentID())
	}
}

func TestParseAuthHeadersOptionalHeaders(t *testing.T) {
	tests := []struct {
		name   string
		header string
		values []string
		want   func(AuthHeaders) bool
	}{
		{"absent optional headers are empty", HeaderCaller, nil, func(a AuthHeaders) bool { return a.Caller == "" }},
		{"an empty optional header counts as absent", HeaderAgent, []string{""}, func(a AuthHeaders) bool { return a.Agent == "" }},
		{"caller of exactly 200 multi-byte characters is accepted", HeaderCaller, []string{strings.Repeat("é", 200)},
			func(a AuthHeaders) bool { return a.Caller == strings.Repeat("é", 200) }},
		{"caller with inner spaces is accepted", HeaderCaller, []string{"nightly job #4"}, func(a AuthHeaders) bool { return a.Caller == "nightly job #4" }},
		{"lowercase agent UUID is accepted", HeaderAgent, []string{"6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"},
			func(a AuthHeaders) bool { return a.AgentID() == "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := validAuthHeaders()
			h.Del(HeaderUserToken)
			h.Del(HeaderCaller)
			h.Del(HeaderAgent)
			if tt.values != nil {
				h[tt.header] = tt.values
			}
			a, err := ParseAuthHeaders(h)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.want(a) {
				t.Fatalf("unexpected result %+v", a)
			}
		})
	}
}

func TestParseAuthHeadersRejectsMissingOrMalformed(t *testing.T) {
	tests := []struct {
		name   string
		header string
		values []string // nil deletes the header
		reason string
	}{
		{"missing key id", HeaderKeyID, nil, reasonAuthMissing},
		{"missing timestamp", HeaderTimestamp, nil, reasonAuthMissing},
		{"missing nonce", HeaderNonce, nil, reasonAuthMissing},
		{"missing signature", HeaderSignature, nil, reasonAuthMissing},
		{"empty key id", HeaderKeyID, []string{""}, reasonAuthMissing},
		{"empty signature", HeaderSignature, []string{""}, reasonAuthMissing},
		{"repeated key id", HeaderKeyID, []string{"lk_app_k4v2m8q1x7c3z9p0", "lk_app_k4v2m8q1x7c3z9p0"}, reasonAuthRepeated},
		{"repeated nonce", HeaderNonce, []string{"Lk3nZ8qW-pR2vT7yB1xC_mN4sD6fG9hJ", "Lk3nZ8qW-pR2vT7yB1xC_mN4sD6fG9hK"}, reasonAuthRepeated},
		{"whole API key sent as key id", HeaderKeyID, []string{testAppKey}, reasonAuthKeyID},
		{"key id with unknown kind", HeaderKeyID, []string{"lk_live_k4v2m8q1x7c3z9p0"}, reasonAuthKeyID},
		{"key id too short", HeaderKeyID, []string{"lk_app_k4v2m8q1"}, reasonAuthKeyID},
		{"timestamp of 20 digits", HeaderTimestamp, []string{"17672256000000000000"}, reasonAuthTimestamp},
		{"timestamp with plus sign", HeaderTimestamp, []string{"+1767225600"}, reasonAuthTimestamp},
		{"negative timestamp", HeaderTimestamp, []string{"-1767225600"}, reasonAuthTimestamp},
		{"timestamp with leading zero", HeaderTimestamp, []string{"01767225600"}, reasonAuthTimestamp},
		{"fractional timestamp", HeaderTimestamp, []string{"1767225600.5"}, reasonAuthTimestamp},
		{"timestamp in exponent form", HeaderTimestamp, []string{"1.7e9"}, reasonAuthTimestamp},
		{"RFC 3339 timestamp", HeaderTimestamp, []string{"2026-01-01T00:00:00Z"}, reasonAuthTimestamp},
		{"timestamp beyond int64", HeaderTimestamp, []string{"9223372036854775808"}, reasonAuthTimestamp},
		{"nonce too short", HeaderNonce, []string{"abc123"}, reasonAuthNonce},
		{"nonce too long", HeaderNonce, []string{strings.Repeat("n", 65)}, reasonAuthNonce},
		{"nonce with standard base64 characters", HeaderNonce, []string{"abcdefgh+/abcdefgh=="}, reasonAuthNonce},
		{"signature without version", HeaderSignature, []string{strings.TrimPrefix(testSignatureHeader, "v1=")}, reasonAuthSignature},
		{"signature in uppercase hex", HeaderSignature, []string{"v1=" + strings.ToUpper(strings.TrimPrefix(testSignatureHeader, "v1="))}, reasonAuthSignature},
		{"signature too short", HeaderSignature, []string{testSignatureHeader[:66]}, reasonAuthSignature},
		{"caller of 201 characters", HeaderCaller, []string{strings.Repeat("c", 201)}, reasonAuthCaller},
		{"caller with invalid UTF-8", HeaderCaller, []string{"worker\xff"}, reasonAuthCaller},
		{"caller with leading space", HeaderCaller, []string{" worker"}, reasonAuthWhitespace},
		{"repeated caller", HeaderCaller, []string{"a", "b"}, reasonAuthRepeated},
		{"user token with trailing space", HeaderUserToken, []string{"eyJhbGciOiJub25lIn0.e30. "}, reasonAuthWhitespace},
		{"repeated user token", HeaderUserToken, []string{"eyJhbGciOiJub25lIn0.e30.", "eyJhbGciOiJub25lIn0.e31."}, reasonAuthRepeated},
		{"agent given by name", HeaderAgent, []string{"research-bot"}, reasonAuthAgent},
		{"agent UUID in braces", HeaderAgent, []string{"{6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b}"}, reasonAuthAgent},
		{"agent UUID as URN", HeaderAgent, []string{"urn:uuid:6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"}, reasonAuthAgent},
		{"agent UUID without hyphens", HeaderAgent, []string{"6f1c2a9e3b4d4e5f8a7b9c0d1e2f3a4b0000"}, reasonAuthAgent},
		{"agent UUID with a non-hex digit", HeaderAgent, []string{"6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4g"}, reasonAuthAgent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := validAuthHeaders()
			if tt.values == nil {
				h.Del(tt.header)
			} else {
				h[tt.header] = tt.values
			}
			a, err := ParseAuthHeaders(h)
			if err == nil {
				t.Fatalf("accepted: %+v", a)
			}
			var mae *MalformedAuthError
			if !errors.As(err, &mae) {
				t.Fatalf("error is %T, want *MalformedAuthError", err)
			}
			if mae.Header != tt.header || mae.Reason != tt.reason {
				t.Fatalf("got header %q reason %q, want %q %q", mae.Header, mae.Reason, tt.header, tt.reason)
			}
			if mae.Code() != CodeMalformedAuth || HTTPStatus(mae.Code()) != http.StatusUnauthorized {
				t.Fatal("malformed headers must map to 401 malformed_auth")
			}
			for _, v := range tt.values {
				if len(v) >= 8 && strings.Contains(err.Error(), v) {
					t.Fatalf("error message contains the header value %q", v)
				}
			}
			if strings.Contains(err.Error(), testSecret[:12]) {
				t.Fatal("error message contains key material")
			}
		})
	}
}
