package testutil

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/latchkey/latchkey/services/database"
)

// Reopen opens a second, independent connection pool to the database db is
// connected to, closed after the test. Tests use it to stand in for another
// replica: nothing is shared with db but the database itself.
func Reopen(t testing.TB, db *database.DB) *database.DB {
	t.Helper()
	ctx := context.Background()
	var opts database.Options
	switch db.Dialect {
	case database.SQLite:
		var rows []struct {
			Seq  int
			Name string
			File string
		}
		if err := db.Gorm.Raw("PRAGMA database_list").Scan(&rows).Error; err != nil {
			t.Fatalf("reopen: list sqlite databases: %v", err)
		}
		for _, r := range rows {
			if r.Name == "main" {
				opts.SQLitePath = filepath.Clean(r.File)
			}
		}
		if opts.SQLitePath == "" {
			t.Fatal("reopen: sqlite database has no file")
		}
	case database.Postgres:
		var name string
		if err := db.Gorm.Raw("SELECT current_database()").Scan(&name).Error; err != nil {
			t.Fatalf("reopen: current database: %v", err)
		}
		raw := os.Getenv(EnvTestDatabaseURL)
		if raw == "" {
			raw = DefaultTestDatabaseURL
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("reopen: parse test database url: %v", err)
		}
		u.Path = "/" + name
		opts.URL = u.String()
		opts.MaxOpenConns = 8
	default:
		t.Fatalf("reopen: unknown dialect %q", db.Dialect)
	}
	other, err := database.Open(ctx, opts)
	if err != nil {
		t.Fatalf("reopen %s: %v", db.Dialect, err)
	}
	t.Cleanup(func() { _ = other.Close() })
	return other
}
