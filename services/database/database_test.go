package database_test

import (
	"context"
	"errors"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm/schema"

	"github.com/latchkey/latchkey/migrations"
	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

func TestMigrationVersionsMatchAcrossDialects(t *testing.T) {
	list := func(d string) []string {
		fsys, err := migrations.FS(d)
		if err != nil {
			t.Fatal(err)
		}
		names, err := fs.Glob(fsys, "*.sql")
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(names)
		return names
	}
	pg, lite := list(database.Postgres), list(database.SQLite)
	if len(pg) == 0 {
		t.Fatal("no migrations embedded")
	}
	if !slices.Equal(pg, lite) {
		t.Fatalf("migration files differ:\npostgres: %v\nsqlite:   %v", pg, lite)
	}
}

// columns returns table -> sorted column names as the database reports them.
func columns(t *testing.T, db *database.DB) map[string][]string {
	t.Helper()
	tables, err := db.Gorm.Migrator().GetTables()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, tb := range tables {
		if strings.HasPrefix(tb, "goose_") || strings.HasPrefix(tb, "sqlite_") {
			continue
		}
		cols, err := db.Gorm.Migrator().ColumnTypes(tb)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cols {
			out[tb] = append(out[tb], c.Name())
		}
		sort.Strings(out[tb])
	}
	return out
}

func TestSchemaParityAcrossDialects(t *testing.T) {
	ds := testutil.Dialects(t)
	if len(ds) < 2 {
		t.Skip("PostgreSQL not reachable; parity needs both dialects (CI runs it)")
	}
	lite := columns(t, testutil.NewDB(t, database.SQLite))
	pg := columns(t, testutil.NewDB(t, database.Postgres))
	for tb, cols := range pg {
		if !slices.Equal(cols, lite[tb]) {
			t.Errorf("table %s differs:\npostgres: %v\nsqlite:   %v", tb, cols, lite[tb])
		}
	}
	for tb := range lite {
		if _, ok := pg[tb]; !ok {
			t.Errorf("table %s exists only on sqlite", tb)
		}
	}
}

func TestUpDownUp(t *testing.T) {
	for _, d := range testutil.Dialects(t) {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			db := testutil.NewEmptyDB(t, d)
			m := newMigrator(t, db)
			if _, err := m.Up(ctx); err != nil {
				t.Fatalf("first up: %v", err)
			}
			first := columns(t, db)
			if err := m.CheckCurrent(ctx); err != nil {
				t.Fatalf("after up: %v", err)
			}
			if err := m.DownTo(ctx, 0); err != nil {
				t.Fatalf("down: %v", err)
			}
			if left := columns(t, db); len(left) != 0 {
				t.Fatalf("tables left after down: %v", left)
			}
			if err := m.CheckCurrent(ctx); !errors.Is(err, database.ErrSchemaBehind) {
				t.Fatalf("after down: want ErrSchemaBehind, got %v", err)
			}
			if _, err := m.Up(ctx); err != nil {
				t.Fatalf("second up: %v", err)
			}
			second := columns(t, db)
			if len(first) != len(second) {
				t.Fatalf("up/down/up changed the schema: %d vs %d tables", len(first), len(second))
			}
			for tb, cols := range first {
				if !slices.Equal(cols, second[tb]) {
					t.Errorf("table %s changed after down/up", tb)
				}
			}
		})
	}
}

func TestRefusesSchemaNewerThanBinary(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		m := newMigrator(t, db)
		future := m.Latest() + 1
		if err := db.Gorm.Exec("INSERT INTO goose_db_version (version_id, is_applied) VALUES (?, ?)", future, true).Error; err != nil {
			t.Fatal(err)
		}
		_, err := m.Up(ctx)
		if !errors.Is(err, database.ErrSchemaTooNew) {
			t.Fatalf("Up on a newer schema: want ErrSchemaTooNew, got %v", err)
		}
		if err := m.CheckCurrent(ctx); !errors.Is(err, database.ErrSchemaTooNew) {
			t.Fatalf("CheckCurrent: want ErrSchemaTooNew, got %v", err)
		}
	})
}

// typeFamily maps a database type name to a family the Go type must match.
func typeFamily(dbType string) string {
	t := strings.ToLower(dbType)
	switch {
	case strings.Contains(t, "timestamp"), strings.Contains(t, "datetime"):
		return "time"
	case strings.Contains(t, "bool"):
		return "bool"
	case strings.Contains(t, "int"):
		return "int"
	case strings.Contains(t, "bytea"), strings.Contains(t, "blob"):
		return "bytes"
	default: // text, uuid, varchar
		return "string"
	}
}

func goFamily(f *schema.Field) string {
	switch f.DataType {
	case schema.Time:
		return "time"
	case schema.Bool:
		return "bool"
	case schema.Int, schema.Uint:
		return "int"
	case schema.Bytes:
		return "bytes"
	case schema.String:
		return "string"
	}
	return string(f.DataType)
}

func TestModelsMatchSchema(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		seen := map[string]bool{}
		for _, model := range models.All() {
			stmt := db.Gorm.Model(model).Statement
			if err := stmt.Parse(model); err != nil {
				t.Fatal(err)
			}
			table := stmt.Schema.Table
			seen[table] = true
			cols, err := db.Gorm.Migrator().ColumnTypes(table)
			if err != nil || len(cols) == 0 {
				t.Errorf("model %T: table %s missing (%v)", model, table, err)
				continue
			}
			dbCols := map[string]gormColumn{}
			for _, c := range cols {
				nullable, _ := c.Nullable()
				dbCols[c.Name()] = gormColumn{typ: c.DatabaseTypeName(), nullable: nullable}
			}
			for _, f := range stmt.Schema.Fields {
				if f.DBName == "" {
					continue
				}
				c, ok := dbCols[f.DBName]
				if !ok {
					t.Errorf("%s.%s: field %s has no column", table, f.DBName, f.Name)
					continue
				}
				if got, want := typeFamily(c.typ), goFamily(f); got != want {
					t.Errorf("%s.%s: column type %s (%s) but Go field is %s", table, f.DBName, c.typ, got, want)
				}
				isPtr := f.FieldType.Kind().String() == "ptr"
				if c.nullable && !isPtr && f.DataType != schema.Bytes {
					t.Errorf("%s.%s: column is nullable but Go field %s is not a pointer", table, f.DBName, f.Name)
				}
				if !c.nullable && isPtr {
					t.Errorf("%s.%s: Go field %s is a pointer but the column is NOT NULL", table, f.DBName, f.Name)
				}
				delete(dbCols, f.DBName)
			}
			for name := range dbCols {
				t.Errorf("%s.%s: column has no model field", table, name)
			}
		}
		tables, err := db.Gorm.Migrator().GetTables()
		if err != nil {
			t.Fatal(err)
		}
		for _, tb := range tables {
			if strings.HasPrefix(tb, "goose_") || strings.HasPrefix(tb, "sqlite_") {
				continue
			}
			if !seen[tb] {
				t.Errorf("table %s has no model", tb)
			}
		}
	})
}

type gormColumn struct {
	typ      string
	nullable bool
}

// Migration 00004 re-keys request_nonces by time first. Nonces already
// recorded must survive it both ways, or a request signed just before an
// upgrade (or a downgrade) could be replayed just after it. Going down, the
// narrower (key_id, nonce) key keeps the row kept longest.
func TestNonceRekeyingKeepsRecordedNonces(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		m := newMigrator(t, db)
		t0 := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
		for _, n := range []models.RequestNonce{
			{ExpiresAt: t0, KeyID: "lk_app_aaaaaaaaaaaaaaaa", Nonce: "nonce-one-0123456"},
			{ExpiresAt: t0.Add(time.Minute), KeyID: "lk_app_aaaaaaaaaaaaaaaa", Nonce: "nonce-one-0123456"},
			{ExpiresAt: t0, KeyID: "lk_app_aaaaaaaaaaaaaaaa", Nonce: "nonce-two-0123456"},
		} {
			if err := db.Gorm.Create(&n).Error; err != nil {
				t.Fatal(err)
			}
		}
		stored := func() string {
			var rows []models.RequestNonce
			if err := db.Gorm.Order("nonce, expires_at").Find(&rows).Error; err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, r := range rows {
				out = append(out, r.Nonce+"@"+r.ExpiresAt.UTC().Format("15:04"))
			}
			return strings.Join(out, " ")
		}
		if err := m.DownTo(ctx, 3); err != nil {
			t.Fatal(err)
		}
		want := "nonce-one-0123456@08:01 nonce-two-0123456@08:00"
		if got := stored(); got != want {
			t.Fatalf("after down: %s, want %s", got, want)
		}
		if _, err := m.Up(ctx); err != nil {
			t.Fatal(err)
		}
		if got := stored(); got != want {
			t.Fatalf("after up again: %s, want %s", got, want)
		}
	})
}

// newMigrator builds db's migrator or fails the test.
func newMigrator(t *testing.T, db *database.DB) *database.Migrator {
	t.Helper()
	m, err := database.NewMigrator(db)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
