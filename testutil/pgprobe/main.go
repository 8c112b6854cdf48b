// Command pgprobe tells `make test` whether the PostgreSQL half of the suite
// will run, so a skipped half is said plainly rather than discovered later.
// In CI (CI=true) an unreachable PostgreSQL is an error.
package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/latchkey/latchkey/testutil"
)

func main() {
	raw := os.Getenv(testutil.EnvTestDatabaseURL)
	if raw == "" {
		raw = testutil.DefaultTestDatabaseURL
	}
	shown := "[unparseable URL]"
	if u, err := url.Parse(raw); err == nil {
		shown = u.Redacted()
	}
	err := probe(raw)
	switch {
	case err == nil:
		fmt.Printf("PostgreSQL suite: on (%s)\n", shown)
	case os.Getenv("CI") == "true":
		fmt.Fprintf(os.Stderr, "PostgreSQL suite: required in CI but %s is unreachable: %v\n", shown, err)
		os.Exit(1)
	default:
		fmt.Printf("PostgreSQL suite: SKIPPED — %s is unreachable (%v); set %s to run it\n", shown, err, testutil.EnvTestDatabaseURL)
	}
}

func probe(raw string) error {
	db, err := sql.Open("pgx", raw)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}
