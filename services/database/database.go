// Package database opens Latchkey's SQL database (embedded SQLite or
// PostgreSQL) and applies the embedded goose migrations.
package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/latchkey/latchkey/migrations"
)

// Dialects.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

// ErrSchemaTooNew means the database was migrated by a newer Latchkey.
var ErrSchemaTooNew = errors.New("database schema is newer than this binary knows")

// ErrSchemaBehind means migrations are pending.
var ErrSchemaBehind = errors.New("database schema has pending migrations")

// DB is an open database with its dialect.
type DB struct {
	Gorm    *gorm.DB
	SQL     *sql.DB
	Dialect string

	// stopCheckpoints ends the SQLite checkpointer and waits for it.
	stopCheckpoints func()
}

// Close stops the SQLite checkpointer and closes the connection pool.
func (d *DB) Close() error {
	if d.stopCheckpoints != nil {
		d.stopCheckpoints()
	}
	return d.SQL.Close()
}

// CheckpointInterval is how often an SQLite database's WAL is copied back
// into the database file.
const CheckpointInterval = 100 * time.Millisecond

// checkpoints copies the WAL into the database file in the background.
// SQLite's automatic checkpoint runs inside whichever commit crosses its
// threshold and syncs the database file there, so one call in a few
// hundred waited milliseconds for the others' pages; a PASSIVE checkpoint
// on its own connection waits for no writer and makes no writer wait.
// Failures are retried at the next tick (the WAL only grows meanwhile);
// the first of a run of failures is logged, and the recovery.
func (d *DB) checkpoints(every time.Duration, logger *slog.Logger) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		failing := false
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_, err := d.SQL.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)")
				switch {
				case err != nil && !failing && ctx.Err() == nil:
					logger.Warn("sqlite checkpoint failed; the WAL grows until one succeeds", "error", err)
					failing = true
				case err == nil && failing:
					logger.Info("sqlite checkpoints succeed again")
					failing = false
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// StoredTime is t as a time column compared in SQL should hold it: UTC,
// whole seconds. SQLite keeps datetimes as text whose fractional part has a
// variable length and compares them as text; with whole seconds every value
// has the same shape, so text order is time order on both dialects.
func StoredTime(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

// Options select the database.
type Options struct {
	// URL is a postgres:// URL; empty selects SQLite at SQLitePath.
	URL        string
	SQLitePath string
	// MaxOpenConns bounds the pool; 0 picks a default per dialect.
	MaxOpenConns int
	// Logger hears about background failures (SQLite checkpoints); nil
	// discards them.
	Logger *slog.Logger
}

// DialectOf reports the dialect a database URL selects.
func DialectOf(url string) string {
	if strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://") {
		return Postgres
	}
	return SQLite
}

// Open connects and checks the connection. It does not migrate.
func Open(ctx context.Context, o Options) (*DB, error) {
	cfg := &gorm.Config{
		// GORM's logger prints SQL with bound values, which may hold ciphertexts
		// or hashes; keep it silent and log at the service boundary instead.
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		NowFunc:                func() time.Time { return time.Now().UTC() },
		TranslateError:         true,
	}
	var (
		gdb     *gorm.DB
		err     error
		dialect = DialectOf(o.URL)
	)
	switch dialect {
	case Postgres:
		gdb, err = gorm.Open(postgres.Open(o.URL), cfg)
	default:
		path := o.SQLitePath
		if o.URL != "" {
			path = strings.TrimPrefix(strings.TrimPrefix(o.URL, "sqlite://"), "file:")
			if i := strings.IndexByte(path, '?'); i >= 0 {
				path = path[:i]
			}
		}
		if path == "" {
			return nil, errors.New("database: no SQLite path")
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("database: create data dir: %w", err)
		}
		gdb, err = gorm.Open(sqlite.Open(sqliteDSN(path)), cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("database: open %s: %w", dialect, redact(err, o.URL))
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	maxOpen := o.MaxOpenConns
	if maxOpen == 0 {
		maxOpen = 16
	}
	sqlDB.SetMaxOpenConns(maxOpen)
	sqlDB.SetMaxIdleConns(maxOpen)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pctx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("database: connect %s: %w", dialect, redact(err, o.URL))
	}
	db := &DB{Gorm: gdb, SQL: sqlDB, Dialect: dialect}
	if dialect == SQLite {
		logger := o.Logger
		if logger == nil {
			logger = slog.New(slog.DiscardHandler)
		}
		db.stopCheckpoints = db.checkpoints(CheckpointInterval, logger)
	}
	return db, nil
}

// sqliteDSN turns on what Latchkey relies on: foreign keys, WAL so readers do
// not block the writer, a busy timeout so concurrent writers wait instead of
// failing, and IMMEDIATE transactions so a read-then-write transaction takes
// the write lock up front instead of failing with SQLITE_BUSY on upgrade.
func sqliteDSN(path string) string {
	return "file:" + path +
		"?_pragma=foreign_keys(1)" +
		"&_pragma=journal_mode(WAL)" +
		"&_pragma=busy_timeout(10000)" +
		"&_pragma=synchronous(NORMAL)" +
		"&_pragma=wal_autocheckpoint(0)" + // DB.checkpoints does it
		"&_txlock=immediate"
}

// redact removes a database URL (which may carry a password) from an error.
func redact(err error, url string) error {
	if url == "" || err == nil {
		return err
	}
	msg := err.Error()
	if !strings.Contains(msg, url) {
		return err
	}
	return errors.New(strings.ReplaceAll(msg, url, "[database url]"))
}

// Migrator applies the embedded migrations of the database's dialect.
type Migrator struct {
	provider *goose.Provider
	latest   int64
}

// NewMigrator builds a goose provider over the embedded migrations.
func NewMigrator(db *DB) (*Migrator, error) {
	fsys, err := migrations.FS(db.Dialect)
	if err != nil {
		return nil, err
	}
	gooseDialect := goose.DialectSQLite3
	var opts []goose.ProviderOption
	if db.Dialect == Postgres {
		gooseDialect = goose.DialectPostgres
		// Replicas starting together must not run the same migration twice.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, fmt.Errorf("database: migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(gooseDialect, db.SQL, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("database: migrations: %w", err)
	}
	m := &Migrator{provider: p}
	for _, s := range p.ListSources() {
		m.latest = max(m.latest, s.Version)
	}
	return m, nil
}

// Latest is the highest migration version this binary knows.
func (m *Migrator) Latest() int64 { return m.latest }

// Current is the version recorded in the database (0 when fresh).
func (m *Migrator) Current(ctx context.Context) (int64, error) {
	v, err := m.provider.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("database: read schema version: %w", err)
	}
	return v, nil
}

// Up applies pending migrations after refusing a schema newer than known.
func (m *Migrator) Up(ctx context.Context) ([]int64, error) {
	if err := m.refuseNewer(ctx); err != nil {
		return nil, err
	}
	res, err := m.provider.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("database: migrate up: %w", err)
	}
	applied := make([]int64, 0, len(res))
	for _, r := range res {
		applied = append(applied, r.Source.Version)
	}
	return applied, nil
}

// DownTo rolls back to version (tests and emergencies only).
func (m *Migrator) DownTo(ctx context.Context, version int64) error {
	if _, err := m.provider.DownTo(ctx, version); err != nil {
		return fmt.Errorf("database: migrate down: %w", err)
	}
	return nil
}

// MigrationState is one row of `latchkey migrate status`.
type MigrationState struct {
	Version   int64      `json:"version"`
	Name      string     `json:"name"`
	Applied   bool       `json:"applied"`
	AppliedAt *time.Time `json:"applied_at,omitempty"`
}

// Status lists every known migration and whether it is applied.
func (m *Migrator) Status(ctx context.Context) ([]MigrationState, error) {
	st, err := m.provider.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("database: migration status: %w", err)
	}
	out := make([]MigrationState, 0, len(st))
	for _, s := range st {
		ms := MigrationState{Version: s.Source.Version, Name: filepath.Base(s.Source.Path), Applied: s.State == goose.StateApplied}
		if ms.Applied && !s.AppliedAt.IsZero() {
			t := s.AppliedAt
			ms.AppliedAt = &t
		}
		out = append(out, ms)
	}
	return out, nil
}

// CheckCurrent returns nil when the schema is exactly the latest known.
func (m *Migrator) CheckCurrent(ctx context.Context) error {
	cur, err := m.Current(ctx)
	if err != nil {
		return err
	}
	switch {
	case cur > m.latest:
		return fmt.Errorf("%w: database at version %d, binary knows up to %d", ErrSchemaTooNew, cur, m.latest)
	case cur < m.latest:
		return fmt.Errorf("%w: database at version %d, binary at %d", ErrSchemaBehind, cur, m.latest)
	}
	return nil
}

func (m *Migrator) refuseNewer(ctx context.Context) error {
	cur, err := m.Current(ctx)
	if err != nil {
		return err
	}
	if cur > m.latest {
		return fmt.Errorf("%w: database at version %d, binary knows up to %d; upgrade Latchkey", ErrSchemaTooNew, cur, m.latest)
	}
	return nil
}
