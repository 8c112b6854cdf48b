package testutil

import (
	"bytes"
	"fmt"
	"os"
	"testing"

	"github.com/latchkey/latchkey/services/database"
)

// AssertNotStored fails the test when any of values appears in plaintext
// anywhere in the database: every column of every row of every table and,
// on SQLite, the raw database and WAL files (where a deleted or overwritten
// value can linger). Empty values are ignored.
func AssertNotStored(t testing.TB, db *database.DB, values ...string) {
	t.Helper()
	var needles [][]byte
	for _, v := range values {
		if v != "" {
			needles = append(needles, []byte(v))
		}
	}
	for _, table := range tables(t, db) {
		rows, err := db.SQL.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				cell, ok := v.([]byte)
				if !ok {
					cell = []byte(fmt.Sprint(v))
				}
				for _, n := range needles {
					if bytes.Contains(cell, n) {
						t.Errorf("%s.%s holds a secret value in plaintext", table, cols[i])
					}
				}
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	if db.Dialect != database.SQLite {
		return
	}
	var path string
	if err := db.SQL.QueryRow("SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&path); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{path, path + "-wal"} {
		raw, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, n := range needles {
			if bytes.Contains(raw, n) {
				t.Errorf("%s holds a secret value in plaintext", f)
			}
		}
	}
}

// tables lists the database's tables.
func tables(t testing.TB, db *database.DB) []string {
	t.Helper()
	q := "SELECT name FROM sqlite_master WHERE type = 'table'"
	if db.Dialect == database.Postgres {
		q = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
	}
	rows, err := db.SQL.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		out = append(out, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 20 {
		t.Fatalf("only %d tables found: the scan would prove nothing", len(out))
	}
	return out
}
