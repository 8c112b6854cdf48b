package wire

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"
)

// testAppKey and testAgentKey come from testdata/vectors.json.
const (
	testAppKey   = "lk_app_k4v2m8q1x7c3z9p0_TestVectorAppKey0DoNotUse0aBcDeFgHiJkLmNoPq"
	testAgentKey = "lk_agent_r5t8w1y4b7n0c3f6_TestVectorAgentKey0DoNotUse0pQrStUvWxYz1234"
	testSecret   = "TestVectorAppKey0DoNotUse0aBcDeFgHiJkLmNoPq"
)

func knownKeyReasons() []string {
	return []string{reasonKeyWhitespace, reasonKeyPrefix, reasonKeyLength, reasonKeyID,
		reasonKeySeparator, reasonKeySecret, reasonKeyKind}
}

// cycleReader yields 0, 1, …, 255, 0, 1, … forever.
type cycleReader struct{ next byte }

func (r *cycleReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.next
		r.next++
	}
	return len(p), nil
}

// constReader yields one byte value forever.
type constReader byte

func (r constReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("entropy pool on fire") }

func TestGenerateKey(t *testing.T) {
	tests := []struct {
		name    string
		kind    KeyKind
		pattern string
	}{
		{"app key has lk_app_ prefix, 16-char id, 43-char secret", KeyKindApp, `^lk_app_[a-z0-9]{16}_[A-Za-z0-9]{43}$`},
		{"agent key has lk_agent_ prefix, 16-char id, 43-char secret", KeyKindAgent, `^lk_agent_[a-z0-9]{16}_[A-Za-z0-9]{43}$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			re := regexp.MustCompile(tt.pattern)
			k, err := GenerateKey(tt.kind, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !re.MatchString(k.Reveal()) {
				t.Fatalf("generated key does not match %s", tt.pattern)
			}
			if k.Kind() != tt.kind {
				t.Fatalf("Kind() = %q, want %q", k.Kind(), tt.kind)
			}
			if want := tt.kind.prefix() + k.Reveal()[len(tt.kind.prefix()):len(tt.kind.prefix())+idLength]; k.KeyID() != want {
				t.Fatalf("KeyID() = %q, want %q", k.KeyID(), want)
			}
			parsed, err := ParseKey(k.Reveal())
			if err != nil {
				t.Fatalf("generated key does not parse: %v", err)
			}
			if parsed.Reveal() != k.Reveal() || parsed.Kind() != k.Kind() {
				t.Fatal("parse(generate) does not round-trip")
			}
			if kind, err := ParseKeyID(k.KeyID()); err != nil || kind != tt.kind {
				t.Fatalf("ParseKeyID(KeyID()) = %q, %v", kind, err)
			}
		})
	}
}

func TestGenerateKeyIsUnique(t *testing.T) {
	ids := make(map[string]bool)
	secrets := make(map[string]bool)
	for range 2000 {
		k, err := GenerateKey(KeyKindApp, nil)
		if err != nil {
			t.Fatal(err)
		}
		id, secret := k.KeyID(), k.secret()
		if ids[id] || secrets[secret] {
			t.Fatal("duplicate key id or secret in 2000 generated keys")
		}
		ids[id], secrets[secret] = true, true
	}
}

func TestGenerateKeyErrors(t *testing.T) {
	tests := []struct {
		name string
		kind KeyKind
		rand interface{ Read([]byte) (int, error) }
	}{
		{"unknown kind is refused", KeyKind("live"), nil},
		{"empty kind is refused", KeyKind(""), nil},
		{"failing randomness is reported", KeyKindApp, failingReader{}},
		{"a source stuck on rejected bytes is reported instead of looping", KeyKindApp, constReader(0xff)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := GenerateKey(tt.kind, tt.rand)
			if err == nil {
				t.Fatal("want an error")
			}
			if !k.IsZero() {
				t.Fatal("want the zero key alongside an error")
			}
		})
	}
}

func TestRandomStringHasNoModuloBias(t *testing.T) {
	tests := []struct {
		name     string
		alphabet string
	}{
		{"id alphabet of 36", idAlphabet},
		{"secret alphabet of 62", secretAlphabet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Over whole cycles of 0..255, only the accepted bytes below the
			// largest multiple of the alphabet size count, so with rejection
			// sampling every character appears exactly equally often; plain
			// modulo would favour the first 256%len characters.
			perCycle := 256 - 256%len(tt.alphabet)
			const cycles = 4
			s, err := randomString(&cycleReader{}, tt.alphabet, perCycle*cycles)
			if err != nil {
				t.Fatal(err)
			}
			counts := make(map[rune]int)
			for _, c := range s {
				counts[c]++
			}
			want := perCycle / len(tt.alphabet) * cycles
			for _, c := range tt.alphabet {
				if counts[c] != want {
					t.Fatalf("character %q drawn %d times, want %d", c, counts[c], want)
				}
			}
		})
	}
}

func TestRandomStringSkipsOutOfRangeBytes(t *testing.T) {
	src := append([]byte{252, 253, 254, 255}, bytes.Repeat([]byte{1}, 64)...)
	s, err := randomString(bytes.NewReader(src), idAlphabet, 16)
	if err != nil {
		t.Fatal(err)
	}
	if s != strings.Repeat("b", 16) {
		t.Fatalf("got %q, want the rejected bytes skipped", s)
	}
}

func TestParseKeyAcceptsBothKinds(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		kind  KeyKind
		keyID string
	}{
		{"app key", testAppKey, KeyKindApp, "lk_app_k4v2m8q1x7c3z9p0"},
		{"agent key", testAgentKey, KeyKindAgent, "lk_agent_r5t8w1y4b7n0c3f6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKey(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if k.Kind() != tt.kind || k.KeyID() != tt.keyID || k.Reveal() != tt.in {
				t.Fatalf("got kind %q id %q", k.Kind(), k.KeyID())
			}
		})
	}
}

func TestParseKeyRejectsMalformed(t *testing.T) {
	id := "k4v2m8q1x7c3z9p0"
	tests := []struct {
		name   string
		in     string
		reason string
	}{
		{"empty string", "", reasonKeyPrefix},
		{"unknown prefix", "lk_live_" + id + "_" + testSecret, reasonKeyPrefix},
		{"uppercase prefix", "LK_APP_" + id + "_" + testSecret, reasonKeyPrefix},
		{"missing lk_", "app_" + id + "_" + testSecret, reasonKeyPrefix},
		{"key id alone", "lk_app_" + id, reasonKeyLength},
		{"id one short", "lk_app_" + id[1:] + "_" + testSecret, reasonKeyLength},
		{"secret one short", "lk_app_" + id + "_" + testSecret[1:], reasonKeyLength},
		{"secret one long", "lk_app_" + id + "_" + testSecret + "x", reasonKeyLength},
		{"key repeated", testAppKey + testAppKey, reasonKeyLength},
		{"id with uppercase", "lk_app_K4v2m8q1x7c3z9p0_" + testSecret, reasonKeyID},
		{"id with symbol", "lk_app_k4v2m8q1x7c3z9p-_" + testSecret, reasonKeyID},
		{"id shifted by a longer secret", "lk_app_" + id[1:] + "_" + testSecret + "x", reasonKeyID},
		{"dash instead of separator", "lk_app_" + id + "-" + testSecret, reasonKeySeparator},
		{"secret with underscore", "lk_app_" + id + "_" + testSecret[:42] + "_", reasonKeySecret},
		{"secret with dash", "lk_app_" + id + "_-" + testSecret[1:], reasonKeySecret},
		{"secret with non-ASCII of the same byte length", "lk_app_" + id + "_é" + testSecret[2:], reasonKeySecret},
		{"secret with NUL", "lk_app_" + id + "_\x00" + testSecret[1:], reasonKeySecret},
		{"trailing newline", testAppKey + "\n", reasonKeyWhitespace},
		{"leading space", " " + testAppKey, reasonKeyWhitespace},
		{"Bearer prefix", "Bearer " + testAppKey, reasonKeyPrefix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKey(tt.in)
			if err == nil {
				t.Fatal("want an error")
			}
			if !k.IsZero() {
				t.Fatal("want the zero key alongside an error")
			}
			var kfe *KeyFormatError
			if !errors.As(err, &kfe) {
				t.Fatalf("error is %T, want *KeyFormatError", err)
			}
			if kfe.Reason != tt.reason {
				t.Fatalf("reason %q, want %q", kfe.Reason, tt.reason)
			}
			msg := err.Error()
			if tt.in != "" && strings.Contains(msg, tt.in) {
				t.Fatal("error message contains the input")
			}
			for _, part := range []string{testSecret, testSecret[:10], id} {
				if strings.Contains(msg, part) {
					t.Fatalf("error message contains key material %q", part)
				}
			}
		})
	}
}

func TestParseKeyID(t *testing.T) {
	tests := []struct {
		name string
		in   string
		kind KeyKind
		ok   bool
	}{
		{"app key id", "lk_app_k4v2m8q1x7c3z9p0", KeyKindApp, true},
		{"agent key id", "lk_agent_r5t8w1y4b7n0c3f6", KeyKindAgent, true},
		{"full api key is not a key id", testAppKey, "", false},
		{"id too short", "lk_app_k4v2m8q1x7c3z9p", "", false},
		{"id too long", "lk_app_k4v2m8q1x7c3z9p00", "", false},
		{"uppercase id", "lk_app_K4V2M8Q1X7C3Z9P0", "", false},
		{"unknown kind", "lk_user_k4v2m8q1x7c3z9p0", "", false},
		{"empty", "", "", false},
		{"trailing underscore", "lk_app_k4v2m8q1x7c3z9p0_", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, err := ParseKeyID(tt.in)
			if (err == nil) != tt.ok || kind != tt.kind {
				t.Fatalf("ParseKeyID = %q, %v; want kind %q ok %v", kind, err, tt.kind, tt.ok)
			}
			if err != nil && strings.Contains(err.Error(), "k4v2m8q1") {
				t.Fatal("error message contains the input")
			}
		})
	}
}

func TestSigningKey(t *testing.T) {
	app, agent := mustParseKey(t, testAppKey), mustParseKey(t, testAgentKey)
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		// Expected values computed by openssl (see testdata/vectors.sh).
		{"app key derivation matches openssl", SigningKey(testAppKey), "21b98336687d8739fefa6f1b202122a3a011dda48b49e0a1b3b14b36907b9fea"},
		{"agent key derivation matches openssl", SigningKey(testAgentKey), "4fb25e3ff415a8acffb388f66d92e1bc61056ea76b13835e2ae5ed22ec465991"},
		{"APIKey method equals the function", app.SigningKey(), "21b98336687d8739fefa6f1b202122a3a011dda48b49e0a1b3b14b36907b9fea"},
		{"agent APIKey method equals the function", agent.SigningKey(), "4fb25e3ff415a8acffb388f66d92e1bc61056ea76b13835e2ae5ed22ec465991"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hexOf(tt.got); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
	if (APIKey{}).SigningKey() != nil {
		t.Fatal("zero key must have no signing key")
	}
}

func mustParseKey(t testing.TB, s string) APIKey {
	t.Helper()
	k, err := ParseKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
