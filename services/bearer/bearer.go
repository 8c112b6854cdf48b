// Package bearer defines the one form in which Latchkey stores a random
// bearer value (a Connect session token, a browser-binding cookie, an OAuth
// state): its lowercase hex SHA-256 (DESIGN.md §3.1). A database dump holds
// nothing a browser could present.
package bearer

import (
	"crypto/sha256"
	"encoding/hex"
)

// Hash is the stored form of raw. The values are random and high-entropy,
// so a plain, unsalted SHA-256 is enough and lets the row be found by it.
func Hash(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:])
}
