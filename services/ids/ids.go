// Package ids makes and checks the UUIDs Latchkey uses as row ids.
package ids

import (
	"fmt"

	"github.com/google/uuid"
)

// New returns a UUIDv7, so ids sort by creation (listings page by id).
func New() (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("ids: new id: %w", err)
	}
	return id.String(), nil
}

// Canonical reports whether s is a UUID in its 36-character form and
// returns it lower-cased, so both dialects compare the same spelling and
// PostgreSQL never sees a malformed uuid literal.
func Canonical(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return "", false
	}
	return u.String(), true
}
