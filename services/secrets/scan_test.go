package secrets_test

import (
	"context"
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
		testutil.AssertNotStored(t, db, first, rotated)
	})
}
