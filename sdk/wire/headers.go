package wire

import (
	"encoding/base64"
	"fmt"
	"io"
	"time"
)

// Request headers an SDK sends (DESIGN.md §4.2). The first four are required
// on every SDK request.
const (
	HeaderKeyID     = "Latchkey-Key-Id"
	HeaderTimestamp = "Latchkey-Timestamp"
	HeaderNonce     = "Latchkey-Nonce"
	HeaderSignature = "Latchkey-Signature"
	HeaderUserToken = "Latchkey-User-Token"
	HeaderCaller    = "Latchkey-Caller"
	HeaderAgent     = "Latchkey-Agent"
)

// Response headers the server adds (DESIGN.md §4.4–4.6).
const (
	// HeaderRequestID is on every response, errors included.
	HeaderRequestID = "Latchkey-Request-Id"
	// HeaderKeyDeprecated is "true" on every response to a deprecated key.
	HeaderKeyDeprecated = "Latchkey-Key-Deprecated"
	// HeaderProxied is "true" only on a response relayed from the upstream;
	// an error produced by Latchkey itself never carries it.
	HeaderProxied = "Latchkey-Proxied"
	// HeaderGrantID names the grant a proxied call used.
	HeaderGrantID = "Latchkey-Grant-Id"
)

// Limits from DESIGN.md §4.2–4.4.
const (
	// TimestampTolerance is how far Latchkey-Timestamp may be from server time.
	TimestampTolerance = 300 * time.Second
	// MaxCallerLength is the most characters (runes) Latchkey-Caller may hold.
	MaxCallerLength = 200
	// MinNonceLength and MaxNonceLength bound Latchkey-Nonce.
	MinNonceLength = 16
	MaxNonceLength = 64

	// nonceBytes of randomness encode to exactly 32 base64url characters
	// (192 bits, comfortably above the 128 the protocol requires).
	nonceBytes = 24
)

// NewNonce returns 32 characters of [A-Za-z0-9_-] carrying 192 random bits
// from rand (crypto/rand.Reader when nil). Unpadded base64url is used because
// its 64-symbol alphabet maps 6 bits per character with no bias.
func NewNonce(rand io.Reader) (string, error) {
	var b [nonceBytes]byte
	if _, err := io.ReadFull(orCryptoRand(rand), b[:]); err != nil {
		return "", fmt.Errorf("wire: read nonce randomness: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// ValidNonce reports whether s is 16–64 characters of [A-Za-z0-9_-]. It
// cannot check randomness; the server's replay check is what makes a reused
// nonce fail.
func ValidNonce(s string) bool {
	if len(s) < MinNonceLength || len(s) > MaxNonceLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// TimestampInWindow reports whether the Unix time ts is within
// ±TimestampTolerance of now (DESIGN.md §4.4 step 3).
func TimestampInWindow(ts int64, now time.Time) bool {
	n := now.Unix()
	tol := int64(TimestampTolerance / time.Second)
	// Compare against bounds derived from now rather than computing now-ts,
	// which could overflow for an adversarial ts.
	return ts >= n-tol && ts <= n+tol
}
