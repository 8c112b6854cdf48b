package sdkauth

import (
	"context"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/services/database"
)

// Sweep deletes nonces whose retention has ended. Run calls it
// periodically; every replica may run it, deletes are idempotent.
func (a *Authenticator) Sweep(ctx context.Context) (int64, error) {
	return a.nonces.Sweep(ctx, a.now())
}

// FlushUsage writes api_keys.last_used_at for keys used since the last
// flush: one UPDATE per key at most, batched off the request path. The
// condition keeps the column from moving backwards when replicas flush in
// a different order.
func (a *Authenticator) FlushUsage(ctx context.Context) error {
	type pending struct {
		rowID string
		st    *keyStats
		used  int64
	}
	var todo []pending
	idleBefore := a.now().Add(-10 * UsageFlushInterval).Unix()
	a.statsMu.Lock()
	for rowID, st := range a.stats {
		used := st.lastUsed.Load()
		switch {
		case used > st.flushed.Load():
			todo = append(todo, pending{rowID, st, used})
		case used < idleBefore && st.suppressed.Load() == 0:
			// Idle keys leave the table so it tracks live keys only.
			delete(a.stats, rowID)
		}
	}
	a.statsMu.Unlock()

	for _, p := range todo {
		t := database.StoredTime(time.Unix(p.used, 0))
		err := a.db.WithContext(ctx).Exec(
			"UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
			t, p.rowID, t).Error
		if err != nil {
			return fmt.Errorf("sdkauth: record key use: %w", err)
		}
		p.st.flushed.Store(p.used)
	}
	return nil
}

// Run sweeps expired nonces and flushes key usage until ctx ends, then
// flushes usage one last time. Failures are logged and retried on the next
// tick: neither job is on the request path, and the nonce table only grows
// for as long as sweeping fails.
func (a *Authenticator) Run(ctx context.Context) error {
	sweep := time.NewTicker(a.sweepEvery)
	defer sweep.Stop()
	usage := time.NewTicker(UsageFlushInterval)
	defer usage.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := a.FlushUsage(fctx); err != nil {
				a.logger.Warn("final key usage flush failed", "error", err)
			}
			return nil
		case <-sweep.C:
			if n, err := a.Sweep(ctx); err != nil {
				a.logger.Warn("nonce sweep failed", "error", err)
			} else if n > 0 {
				a.logger.Debug("expired nonces swept", "deleted", n)
			}
		case <-usage.C:
			if err := a.FlushUsage(ctx); err != nil {
				a.logger.Warn("key usage flush failed", "error", err)
			}
		}
	}
}
