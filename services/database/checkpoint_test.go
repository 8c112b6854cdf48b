package database_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/latchkey/latchkey/services/database"
)

// Committed rows reach the SQLite database file itself while the server
// runs, moved there by the background checkpointer rather than by
// whichever commit happens to cross SQLite's threshold (which is off).
func TestSQLiteWALIsCheckpointedInTheBackground(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "latchkey.db")
	db, err := database.Open(ctx, database.Options{SQLitePath: path})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var auto int
	if err := db.SQL.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&auto); err != nil || auto != 0 {
		t.Fatalf("automatic checkpoints: %d (%v), want 0: commits would still checkpoint", auto, err)
	}
	if _, err := db.SQL.ExecContext(ctx, "CREATE TABLE t (n integer NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	const rows = 200
	for i := 0; i < rows; i++ {
		if _, err := db.SQL.ExecContext(ctx, "INSERT INTO t (n) VALUES (?)", i); err != nil {
			t.Fatal(err)
		}
	}
	// Read a copy of the database file alone, without its WAL: it holds
	// the rows only once a checkpoint has copied them in.
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := rowsInFileAlone(ctx, t, path)
		if err == nil && got == rows {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("database file alone holds %d rows (%v) %s after the writes, want %d", got, err, 5*time.Second, rows)
		}
		time.Sleep(2 * database.CheckpointInterval)
	}
}

func rowsInFileAlone(ctx context.Context, t *testing.T, path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	cp := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(cp, b, 0o600); err != nil {
		return 0, err
	}
	db, err := database.Open(ctx, database.Options{SQLitePath: cp})
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int
	err = db.SQL.QueryRowContext(ctx, "SELECT count(*) FROM t").Scan(&n)
	return n, err
}
