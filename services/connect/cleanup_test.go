package connect_test

import (
	"errors"
	"testing"
	"time"

	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/connect"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/testutil"
)

// Expired sessions are kept for the retention (a late poll still reads
// "expired"), then removed; live sessions are never touched.
func TestDeleteExpiredKeepsRetentionAndLiveSessions(t *testing.T) {
	for _, dialect := range testutil.Dialects(t) {
		t.Run(dialect, func(t *testing.T) {
			e := newEnv(t, dialect)
			old := e.mint(wire.ConnectSessionRequest{AllowedOrigin: appOrigin})
			e.clock.Advance(connect.DefaultLifetime + time.Hour)
			live := e.mint(wire.ConnectSessionRequest{AllowedOrigin: appOrigin})

			n, err := e.core.Connect.DeleteExpired(e.ctx, 2*time.Hour)
			if err != nil || n != 0 {
				t.Fatalf("within retention: deleted %d (%v), want 0", n, err)
			}
			if st, err := e.core.Connect.Status(e.ctx, e.caller(e.app, e.key), old.SessionID); err != nil || st.Status != wire.ConnectExpired {
				t.Fatalf("old session within retention: %+v %v", st, err)
			}
			n, err = e.core.Connect.DeleteExpired(e.ctx, 30*time.Minute)
			if err != nil || n != 1 {
				t.Fatalf("past retention: deleted %d (%v), want 1", n, err)
			}
			if _, err := e.core.Connect.Status(e.ctx, e.caller(e.app, e.key), old.SessionID); !errors.Is(err, errs.ErrNotFound) && errs.CodeOf(err) != wire.CodeNotFound {
				t.Fatalf("deleted session: %v, want not found", err)
			}
			if st, err := e.core.Connect.Status(e.ctx, e.caller(e.app, e.key), live.SessionID); err != nil || st.Status != wire.ConnectPending {
				t.Fatalf("live session: %+v %v", st, err)
			}
		})
	}
}
