// Package testutil gives tests real databases on both dialects, seed helpers
// and a real Latchkey server on a loopback port. It is imported only by tests.
package testutil

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // admin connection for CREATE/DROP DATABASE

	"github.com/latchkey/latchkey/services/database"
)

// EnvTestDatabaseURL points the PostgreSQL suite at a server. Its database
// part is ignored: every test package creates and drops its own databases.
const EnvTestDatabaseURL = "LATCHKEY_TEST_DATABASE_URL"

// DefaultTestDatabaseURL is the local server used when the variable is unset.
const DefaultTestDatabaseURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// pg caches, per test binary, whether PostgreSQL is reachable and a migrated
// template database that per-test databases are cloned from (much faster
// than migrating each one).
type pgState struct {
	once     sync.Once
	adminURL string
	template string
	err      error
	mu       sync.Mutex // CREATE DATABASE … TEMPLATE needs the template idle
}

// One per test binary: the reachability probe and the template must be
// shared by every test in the package, and test binaries have no other home.
var pg pgState

// Dialects lists the dialects this test run covers. SQLite always; PostgreSQL
// when reachable. In CI (CI=true) an unreachable PostgreSQL fails the test
// instead of skipping it.
func Dialects(t testing.TB) []string {
	t.Helper()
	if err := pgReady(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL is required in CI but unusable: %v", err)
		}
		return []string{database.SQLite}
	}
	return []string{database.SQLite, database.Postgres}
}

// ForEachDialect runs fn as a subtest on every dialect, each with a fresh,
// migrated database.
func ForEachDialect(t *testing.T, fn func(t *testing.T, db *database.DB)) {
	t.Helper()
	for _, d := range Dialects(t) {
		t.Run(d, func(t *testing.T) {
			fn(t, NewDB(t, d))
		})
	}
}

// NewDB returns a fresh, migrated database of the dialect, removed after the test.
func NewDB(t testing.TB, dialect string) *database.DB {
	t.Helper()
	return openDB(t, dialect, true)
}

// NewEmptyDB returns a fresh database with no schema at all.
func NewEmptyDB(t testing.TB, dialect string) *database.DB {
	t.Helper()
	return openDB(t, dialect, false)
}

// DatabaseURL returns a URL for a fresh migrated database, for tests that
// start the server as a separate process. SQLite returns "" plus a data dir.
func NewDatabaseURL(t testing.TB, dialect string) string {
	t.Helper()
	if dialect == database.SQLite {
		return "sqlite://" + filepath.Join(t.TempDir(), "latchkey.db")
	}
	return newPGDatabase(t, true)
}

func openDB(t testing.TB, dialect string, migrated bool) *database.DB {
	t.Helper()
	ctx := context.Background()
	var opts database.Options
	switch dialect {
	case database.SQLite:
		opts.SQLitePath = filepath.Join(t.TempDir(), "latchkey.db")
	case database.Postgres:
		if err := pgReady(); err != nil {
			t.Fatalf("PostgreSQL unusable: %v", err)
		}
		opts.URL = newPGDatabase(t, migrated)
		opts.MaxOpenConns = 8
	default:
		t.Fatalf("unknown dialect %q", dialect)
	}
	db, err := database.Open(ctx, opts)
	if err != nil {
		t.Fatalf("open %s: %v", dialect, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if migrated && dialect == database.SQLite {
		m, err := database.NewMigrator(db)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Up(ctx); err != nil {
			t.Fatalf("migrate: %v", err)
		}
	}
	return db
}

func pgReady() error {
	pg.once.Do(func() {
		u := os.Getenv(EnvTestDatabaseURL)
		if u == "" {
			u = DefaultTestDatabaseURL
		}
		pg.adminURL = u
		admin, err := sql.Open("pgx", u)
		if err != nil {
			pg.err = err
			return
		}
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := admin.PingContext(ctx); err != nil {
			pg.err = fmt.Errorf("connect %s: %w", redactURL(u), err)
			return
		}
		// Build the migrated template once per test binary.
		name := "lk_tmpl_" + randomSuffix()
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
			pg.err = fmt.Errorf("create template: %w", err)
			return
		}
		db, err := database.Open(context.Background(), database.Options{URL: withDatabase(u, name), MaxOpenConns: 2})
		if err != nil {
			pg.err = err
			return
		}
		m, err := database.NewMigrator(db)
		if err == nil {
			_, err = m.Up(context.Background())
		}
		_ = db.Close()
		if err != nil {
			pg.err = fmt.Errorf("migrate template: %w", err)
			return
		}
		pg.template = name
	})
	return pg.err
}

// Main runs a test binary's tests, drops its PostgreSQL template and exits
// with their result. Every package that uses the databases calls it:
//
//	func TestMain(m *testing.M) { testutil.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	DropTemplate()
	os.Exit(code)
}

// DropTemplate removes the template database; call it from TestMain after
// m.Run (Main does).
func DropTemplate() {
	if pg.template == "" {
		return
	}
	admin, err := sql.Open("pgx", pg.adminURL)
	if err != nil {
		return
	}
	defer admin.Close()
	_, _ = admin.Exec("DROP DATABASE IF EXISTS " + pg.template + " WITH (FORCE)")
}

func newPGDatabase(t testing.TB, migrated bool) string {
	t.Helper()
	if err := pgReady(); err != nil {
		t.Fatalf("PostgreSQL unusable: %v", err)
	}
	admin, err := sql.Open("pgx", pg.adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := "lk_test_" + randomSuffix()
	stmt := "CREATE DATABASE " + name
	if migrated {
		stmt += " TEMPLATE " + pg.template
	}
	pg.mu.Lock()
	_, err = admin.Exec(stmt)
	pg.mu.Unlock()
	if err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		a, err := sql.Open("pgx", pg.adminURL)
		if err != nil {
			return
		}
		defer a.Close()
		_, _ = a.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
	})
	return withDatabase(pg.adminURL, name)
}

func withDatabase(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = "/" + name
	return u.String()
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "[unparseable url]"
	}
	return u.Redacted()
}

func randomSuffix() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return strings.ToLower(hex.EncodeToString(b))
}
