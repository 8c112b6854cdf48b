package secrets_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/secrets"
	"github.com/latchkey/latchkey/testutil"
)

// TestDatabaseNeverHoldsTheValue creates, rotates and grants secrets, then
// reads every column of every row of every table (and, for SQLite, the raw
// database and WAL files) looking for the plaintext values.
func TestDatabaseNeverHoldsTheValue(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		ctx := context.Background()
		first, rotated := value, "lkTEST-rotated-"+strings.Repeat("q7", 12)
		id := w.createSecret(w.app, "stripe", first)
		for _, p := range []string{"system", "user:alice", "group:eng", "agent:" + w.agent} {
			if _, err := w.svc.Grant(ctx, secrets.GrantInput{AppID: w.app, SecretID: id, Principal: p, Actor: actor}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.svc.Rotate(ctx, w.app, id, rotated, actor); err != nil {
			t.Fatal(err)
		}
		needles := [][]byte{[]byte(first), []byte(rotated)}

		for table, cells := range dump(t, db) {
			for _, cell := range cells {
				for _, n := range needles {
					if bytes.Contains(cell, n) {
						t.Fatalf("table %s holds a secret value in plaintext", table)
					}
				}
			}
		}
		if db.Dialect == database.SQLite {
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
						t.Fatalf("%s holds a secret value in plaintext", f)
					}
				}
			}
		}
	})
}

// dump returns the bytes of every cell of every table.
func dump(t *testing.T, db *database.DB) map[string][][]byte {
	t.Helper()
	q := "SELECT name FROM sqlite_master WHERE type = 'table'"
	if db.Dialect == database.Postgres {
		q = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
	}
	rows, err := db.SQL.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	if len(tables) < 20 {
		t.Fatalf("only %d tables found", len(tables))
	}
	out := map[string][][]byte{}
	for _, table := range tables {
		rows, err := db.SQL.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for _, v := range vals {
				if b, ok := v.([]byte); ok {
					out[table] = append(out[table], b)
				} else {
					out[table] = append(out[table], []byte(fmt.Sprint(v)))
				}
			}
		}
		rows.Close()
	}
	return out
}
