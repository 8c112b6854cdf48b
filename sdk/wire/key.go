package wire

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// KeyKind says whom an API key belongs to.
type KeyKind string

// The two kinds of API key. The kind is part of the key text, so a key's
// holder can tell an app key from an agent key without asking the server.
const (
	KeyKindApp   KeyKind = "app"
	KeyKindAgent KeyKind = "agent"
)

// KeyStatus is the lifecycle state of an API key (active → deprecated → revoked).
type KeyStatus string

// Key statuses. A deprecated key still authenticates; responses to it carry
// Latchkey-Key-Deprecated: true so the holder knows to rotate.
const (
	KeyStatusActive     KeyStatus = "active"
	KeyStatusDeprecated KeyStatus = "deprecated"
	KeyStatusRevoked    KeyStatus = "revoked"
)

// Key format constants (DESIGN.md §4.1).
const (
	keyPrefix      = "lk_"
	idLength       = 16 // characters of [a-z0-9] after lk_app_ / lk_agent_
	secretLength   = 43 // characters of [A-Za-z0-9] after the id and "_"
	idAlphabet     = "abcdefghijklmnopqrstuvwxyz0123456789"
	secretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

	// SigningKeyLabel is the HMAC message that derives a signing key from an
	// API key. Versioned so a future derivation cannot collide with this one.
	SigningKeyLabel = "latchkey-signing-v1"

	redactedSecret = "REDACTED"
)

// Valid reports whether k is one of the defined kinds.
func (k KeyKind) Valid() bool {
	return k == KeyKindApp || k == KeyKindAgent
}

// prefix is the key-id prefix for the kind, e.g. "lk_app_".
func (k KeyKind) prefix() string {
	return keyPrefix + string(k) + "_"
}

// APIKey is a parsed, well-formed API key.
//
// The secret is held inside a closure on purpose. fmt prints a value held in
// an unexported struct field without calling its methods, and for a bad verb
// such as %s it dereferences pointers too; a func value, however, is only
// ever printed as an address. So neither APIKey's own methods nor a struct
// that embeds it can put the secret into a log line by accident. Use Reveal
// for the one legitimate display (the response that mints the key) and for
// signing.
//
// APIKey is deliberately not comparable with ==; compare Reveal() results
// with crypto/subtle if you must. The zero APIKey is "no key" (IsZero).
type APIKey struct {
	kind   KeyKind
	id     string
	secret func() string
}

func newAPIKey(kind KeyKind, id, secret string) APIKey {
	return APIKey{kind: kind, id: id, secret: func() string { return secret }}
}

// KeyFormatError reports why a string is not a well-formed API key or key id.
// It deliberately carries only a fixed reason, never the rejected text, since
// that text is usually a secret pasted into the wrong place.
type KeyFormatError struct {
	Reason string
}

func (e *KeyFormatError) Error() string {
	return "wire: malformed API key: " + e.Reason
}

// Reasons reported by KeyFormatError. They are fixed strings so that tests
// can prove no input ever reaches an error message.
const (
	reasonKeyWhitespace = "has leading or trailing whitespace"
	reasonKeyPrefix     = "must start with lk_app_ or lk_agent_"
	reasonKeyLength     = "has the wrong length"
	reasonKeyID         = "id must be 16 characters of [a-z0-9]"
	reasonKeySeparator  = "id and secret must be separated by _"
	reasonKeySecret     = "secret must be 43 characters of [A-Za-z0-9]"
	reasonKeyKind       = "unknown key kind"
)

// GenerateKey mints a new API key of the given kind. The id and secret are
// drawn from rand (crypto/rand.Reader when nil) by rejection sampling, so
// every character of the alphabet is equally likely.
func GenerateKey(kind KeyKind, rand io.Reader) (APIKey, error) {
	if !kind.Valid() {
		return APIKey{}, &KeyFormatError{Reason: reasonKeyKind}
	}
	rand = orCryptoRand(rand)
	id, err := randomString(rand, idAlphabet, idLength)
	if err != nil {
		return APIKey{}, fmt.Errorf("wire: generate key id: %w", err)
	}
	secret, err := randomString(rand, secretAlphabet, secretLength)
	if err != nil {
		return APIKey{}, fmt.Errorf("wire: generate key secret: %w", err)
	}
	return newAPIKey(kind, id, secret), nil
}

// ParseKey parses s strictly: no surrounding whitespace, a known prefix, and
// exact lengths and alphabets. Errors are *KeyFormatError and never contain s.
func ParseKey(s string) (APIKey, error) {
	if strings.TrimSpace(s) != s {
		return APIKey{}, &KeyFormatError{Reason: reasonKeyWhitespace}
	}
	kind, rest, ok := cutKindPrefix(s)
	if !ok {
		return APIKey{}, &KeyFormatError{Reason: reasonKeyPrefix}
	}
	if len(rest) != idLength+1+secretLength {
		return APIKey{}, &KeyFormatError{Reason: reasonKeyLength}
	}
	id, sep, secret := rest[:idLength], rest[idLength], rest[idLength+1:]
	if !allIn(id, idAlphabet) {
		return APIKey{}, &KeyFormatError{Reason: reasonKeyID}
	}
	if sep != '_' {
		return APIKey{}, &KeyFormatError{Reason: reasonKeySeparator}
	}
	if !allIn(secret, secretAlphabet) {
		return APIKey{}, &KeyFormatError{Reason: reasonKeySecret}
	}
	return newAPIKey(kind, id, secret), nil
}

// ParseKeyID checks that s is a well-formed public key id (lk_app_<id> or
// lk_agent_<id>) and returns its kind. Errors are *KeyFormatError.
func ParseKeyID(s string) (KeyKind, error) {
	kind, rest, ok := cutKindPrefix(s)
	if !ok {
		return "", &KeyFormatError{Reason: reasonKeyPrefix}
	}
	if len(rest) != idLength || !allIn(rest, idAlphabet) {
		return "", &KeyFormatError{Reason: reasonKeyID}
	}
	return kind, nil
}

func cutKindPrefix(s string) (KeyKind, string, bool) {
	for _, kind := range []KeyKind{KeyKindApp, KeyKindAgent} {
		if rest, ok := strings.CutPrefix(s, kind.prefix()); ok {
			return kind, rest, true
		}
	}
	return "", "", false
}

// SigningKey derives the request-signing key from the full API key text:
// HMAC-SHA256(key = apiKey, message = "latchkey-signing-v1"). The server
// stores only this value (sealed), never the API key.
func SigningKey(apiKey string) []byte {
	mac := hmac.New(sha256.New, []byte(apiKey))
	mac.Write([]byte(SigningKeyLabel))
	return mac.Sum(nil)
}

// IsZero reports whether k is the zero APIKey (no key).
func (k APIKey) IsZero() bool { return k.secret == nil }

// Kind is the key's kind, or "" for the zero key.
func (k APIKey) Kind() KeyKind { return k.kind }

// KeyID is the public part of the key, e.g. lk_app_<id>, sent in the
// Latchkey-Key-Id header. It is "" for the zero key.
func (k APIKey) KeyID() string {
	if k.IsZero() {
		return ""
	}
	return k.kind.prefix() + k.id
}

// Reveal returns the full API key text. Call it only to display a freshly
// minted key once, or to derive the signing key.
func (k APIKey) Reveal() string {
	if k.IsZero() {
		return ""
	}
	return k.KeyID() + "_" + k.secret()
}

// SigningKey is SigningKey(k.Reveal()). It returns nil for the zero key.
func (k APIKey) SigningKey() []byte {
	if k.IsZero() {
		return nil
	}
	return SigningKey(k.Reveal())
}

// String returns the key with its secret replaced, e.g.
// lk_app_k4v2m8q1x7c3z9p0_REDACTED; the key id is public and useful in logs.
func (k APIKey) String() string {
	if k.IsZero() {
		return "[no api key]"
	}
	return k.KeyID() + "_" + redactedSecret
}

// GoString keeps %#v redacted too.
func (k APIKey) GoString() string {
	return fmt.Sprintf("wire.APIKey(%q)", k.String())
}

// Format makes every fmt verb (%v, %+v, %#v, %s, %q, %x, …) operate on the
// redacted form, so no verb can reach the secret.
func (k APIKey) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, k.GoString())
		return
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), k.String())
}

// LogValue keeps slog output (text and JSON handlers) redacted.
func (k APIKey) LogValue() slog.Value {
	return slog.StringValue(k.String())
}

// MarshalText redacts: encoding/json and other text encoders would otherwise
// see an empty object or, worse, whatever a future field holds. Marshal
// Reveal() explicitly where the full key must be shown.
func (k APIKey) MarshalText() ([]byte, error) {
	return []byte(k.String()), nil
}

// randomString draws n characters of alphabet from r without modulo bias:
// bytes at or above the largest multiple of len(alphabet) are discarded.
func randomString(r io.Reader, alphabet string, n int) (string, error) {
	limit := 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/4)
	// A real CSPRNG rejects well under 10% of bytes for our alphabets; a
	// source that keeps producing rejected bytes is broken, not unlucky.
	for attempt := 0; len(out) < n; attempt++ {
		if attempt == 64 {
			return "", fmt.Errorf("wire: randomness source keeps producing out-of-range bytes")
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("wire: read randomness: %w", err)
		}
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			out = append(out, alphabet[int(b)%len(alphabet)])
			if len(out) == n {
				break
			}
		}
	}
	return string(out), nil
}

func allIn(s, alphabet string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(alphabet, s[i]) < 0 {
			return false
		}
	}
	return true
}

func orCryptoRand(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}
