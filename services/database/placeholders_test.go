package database_test

import (
	"strings"
	"testing"

	"github.com/latchkey/latchkey/services/database"
)

// A batch statement numbers its PostgreSQL parameters across rows; a
// numbering that restarted per row would bind every row to the first
// row's values.
func TestPlaceholdersNumberAcrossRows(t *testing.T) {
	for _, tt := range []struct {
		dialect, want string
	}{
		{database.Postgres, "($1, $2, $3), ($4, $5, $6)"},
		{database.SQLite, "(?, ?, ?), (?, ?, ?)"},
	} {
		t.Run(tt.dialect, func(t *testing.T) {
			var sb strings.Builder
			ph := database.NewPlaceholders(tt.dialect)
			ph.Row(&sb, 3)
			sb.WriteString(", ")
			ph.Row(&sb, 3)
			if got := sb.String(); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
