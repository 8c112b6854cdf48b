package wire

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseKey: ParseKey never panics, accepts only the exact format, and an
// error is always one of the fixed messages, so it cannot echo the input.
func FuzzParseKey(f *testing.F) {
	for _, s := range []string{
		testAppKey, testAgentKey, "", "lk_app_", "lk_agent_", testAppKey + "\n",
		"lk_app_k4v2m8q1x7c3z9p0", "lk_app_k4v2m8q1x7c3z9p0-" + testSecret,
		"lk_app_k4v2m8q1x7c3z9p0_" + testSecret[:42] + "é",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKey(s)
		if err != nil {
			var kfe *KeyFormatError
			if !errors.As(err, &kfe) || !slices.Contains(knownKeyReasons(), kfe.Reason) {
				t.Fatalf("unexpected error %T %v", err, err)
			}
			if err.Error() != "wire: malformed API key: "+kfe.Reason {
				t.Fatalf("error message %q is not the fixed one", err.Error())
			}
			if !k.IsZero() {
				t.Fatal("non-zero key alongside an error")
			}
			return
		}
		if k.Reveal() != s {
			t.Fatal("Reveal does not return the parsed text")
		}
		secret := s[len(k.KeyID())+1:]
		if len(secret) != secretLength || !allIn(secret, secretAlphabet) {
			t.Fatal("accepted a malformed secret")
		}
		if kind, err := ParseKeyID(k.KeyID()); err != nil || kind != k.Kind() {
			t.Fatal("KeyID of a parsed key does not parse back")
		}
		if strings.Contains(k.String(), secret) {
			t.Fatal("String reveals the secret")
		}
	})
}

// FuzzParseAuthHeaders: ParseAuthHeaders never panics; an error is a
// MalformedAuthError with a fixed header name and reason; success implies
// every documented constraint holds.
func FuzzParseAuthHeaders(f *testing.F) {
	f.Add("lk_app_k4v2m8q1x7c3z9p0", "1767225600", "Lk3nZ8qW-pR2vT7yB1xC_mN4sD6fG9hJ", testSignatureHeader, "jwt", "worker", "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b")
	f.Add("lk_agent_r5t8w1y4b7n0c3f6", "0", strings.Repeat("-", 16), testSignatureHeader, "", "", "")
	f.Add(testAppKey, "+1", "short", "v1=", " x", strings.Repeat("é", 201), "{uuid}")
	f.Add("lk_app_k4v2m8q1x7c3z9p0", "9223372036854775807", strings.Repeat("Z", 64), testSignatureHeader, "a b", "\xff", "6F1C2A9E-3B4D-4E5F-8A7B-9C0D1E2F3A4B")
	headerNames := []string{HeaderKeyID, HeaderTimestamp, HeaderNonce, HeaderSignature, HeaderUserToken, HeaderCaller, HeaderAgent}
	f.Fuzz(func(t *testing.T, keyID, ts, nonce, sig, userToken, caller, agent string) {
		h := make(http.Header)
		for i, v := range []string{keyID, ts, nonce, sig, userToken, caller, agent} {
			h[headerNames[i]] = []string{v}
		}
		a, err := ParseAuthHeaders(h)
		if err != nil {
			var mae *MalformedAuthError
			if !errors.As(err, &mae) || !slices.Contains(headerNames, mae.Header) || !slices.Contains(knownAuthReasons(), mae.Reason) {
				t.Fatalf("unexpected error %T %v", err, err)
			}
			if err.Error() != "wire: malformed "+mae.Header+" header: "+mae.Reason {
				t.Fatalf("error message %q is not the fixed one", err.Error())
			}
			return
		}
		if kind, err := ParseKeyID(a.KeyID); err != nil || kind != a.KeyKind {
			t.Fatal("accepted a malformed key id")
		}
		if strconv.FormatInt(a.Timestamp, 10) != ts || a.Timestamp < 0 {
			t.Fatal("accepted a non-canonical timestamp")
		}
		if !ValidNonce(a.Nonce) || len(a.Signature) != 32 {
			t.Fatal("accepted a malformed nonce or signature")
		}
		if !utf8.ValidString(a.Caller) || utf8.RuneCountInString(a.Caller) > MaxCallerLength {
			t.Fatal("accepted a malformed caller")
		}
		if a.Agent != "" && !validUUID(a.Agent) {
			t.Fatal("accepted a malformed agent")
		}
		if a.UserToken != userToken || a.Caller != caller || a.Agent != agent {
			t.Fatal("optional headers were altered")
		}
	})
}
