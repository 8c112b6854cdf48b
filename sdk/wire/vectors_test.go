package wire

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func loadTestVectors(t *testing.T) []Vector {
	t.Helper()
	f, err := os.Open("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vs, err := LoadVectors(f)
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// TestVectorsCoverTheRequiredCases guards against the vector file losing a
// case other implementations rely on.
func TestVectorsCoverTheRequiredCases(t *testing.T) {
	vs := loadTestVectors(t)
	cases := []struct {
		name  string
		match func(Vector) bool
	}{
		{"app key GET with a query string and no body", func(v Vector) bool {
			return strings.HasPrefix(v.KeyID, "lk_app_") && v.Method == "GET" && strings.Contains(v.Target, "?") && v.Body == ""
		}},
		{"app key POST /sdk/v1/proxy with JSON body, user token and caller", func(v Vector) bool {
			return strings.HasPrefix(v.KeyID, "lk_app_") && v.Method == "POST" && v.Target == PathProxy &&
				strings.HasPrefix(v.Body, "{") && v.UserToken != "" && v.Caller != ""
		}},
		{"agent key POST with empty body", func(v Vector) bool {
			return strings.HasPrefix(v.KeyID, "lk_agent_") && v.Method == "POST" && v.Body == ""
		}},
		{"app key acting as an agent", func(v Vector) bool {
			return strings.HasPrefix(v.KeyID, "lk_app_") && v.Agent != ""
		}},
	}
	for _, c := range cases {
		found := false
		for _, v := range vs {
			found = found || c.match(v)
		}
		if !found {
			t.Errorf("no vector for: %s", c.name)
		}
	}
}

// TestVectors checks every piece of the Go implementation against values
// computed by openssl and sha256sum (testdata/vectors.sh).
func TestVectors(t *testing.T) {
	for _, v := range loadTestVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			key, err := ParseKey(v.APIKey)
			if err != nil {
				t.Fatal(err)
			}
			if key.KeyID() != v.KeyID {
				t.Fatalf("KeyID = %q, want %q", key.KeyID(), v.KeyID)
			}
			sk := SigningKey(v.APIKey)
			if hex.EncodeToString(sk) != v.SigningKeyHex {
				t.Fatalf("signing key = %x, want %s", sk, v.SigningKeyHex)
			}
			sts := StringToSign(v.Params())
			if sts != v.StringToSign {
				t.Fatalf("string to sign:\n%s\nwant:\n%s", sts, v.StringToSign)
			}
			if got := Sign(sk, sts); got != v.Signature {
				t.Fatalf("signature = %s, want %s", got, v.Signature)
			}
			sig, _ := hex.DecodeString(v.Signature)
			if !VerifySignature(sk, v.StringToSign, sig) {
				t.Fatal("vector signature does not verify")
			}
		})
	}
}

// TestSignerReproducesVectors drives the SDK-side Signer with the vector's
// clock and a randomness source that yields the vector's nonce, then runs
// the server-side parse and verify on the headers it produced.
func TestSignerReproducesVectors(t *testing.T) {
	for _, v := range loadTestVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			nonceBytes, err := base64.RawURLEncoding.DecodeString(v.Nonce)
			if err != nil {
				t.Fatalf("vector nonce is not 32 base64url characters: %v", err)
			}
			key := mustParseKey(t, v.APIKey)
			s, err := NewSigner(key, func() time.Time { return time.Unix(v.Timestamp, 0) }, bytes.NewReader(nonceBytes))
			if err != nil {
				t.Fatal(err)
			}
			req, err := http.NewRequest(v.Method, "https://latchkey.example"+v.Target, strings.NewReader(v.Body))
			if err != nil {
				t.Fatal(err)
			}
			for name, val := range map[string]string{HeaderUserToken: v.UserToken, HeaderCaller: v.Caller, HeaderAgent: v.Agent} {
				if val != "" {
					req.Header.Set(name, val)
				}
			}
			if err := s.Sign(req); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{
				HeaderKeyID:     v.KeyID,
				HeaderTimestamp: strconv.FormatInt(v.Timestamp, 10),
				HeaderNonce:     v.Nonce,
				HeaderSignature: "v1=" + v.Signature,
			}
			for name, val := range want {
				if got := req.Header.Get(name); got != val {
					t.Errorf("%s = %q, want %q", name, got, val)
				}
			}

			a, err := ParseAuthHeaders(req.Header)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256([]byte(v.Body))
			sts := StringToSign(a.SignatureParams(req.Method, RequestTarget(req), sum[:]))
			if sts != v.StringToSign {
				t.Fatalf("server-side string to sign:\n%s\nwant:\n%s", sts, v.StringToSign)
			}
			sk, _ := hex.DecodeString(v.SigningKeyHex)
			if !VerifySignature(sk, sts, a.Signature) {
				t.Fatal("server-side verification failed")
			}
		})
	}
}

// TestProtocolDocShowsTheVectors keeps the worked examples in
// docs/sdk-protocol.md identical to vectors.json.
func TestProtocolDocShowsTheVectors(t *testing.T) {
	doc, err := os.ReadFile("../../docs/sdk-protocol.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range loadTestVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			for _, want := range []string{v.APIKey, v.SigningKeyHex, v.Nonce, v.Signature, v.Target,
				strings.ReplaceAll(v.StringToSign, "\n", `\n`)} {
				if !bytes.Contains(doc, []byte(want)) {
					t.Errorf("doc does not show %q", want)
				}
			}
		})
	}
}
