package sdkauth

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/database"
)

// NonceRetention is how long past its request's timestamp a nonce is kept:
// the ±300 s window plus a margin for replicas whose clocks disagree. A
// replica whose clock runs up to NonceClockMargin behind the sweeper's still
// accepts a timestamp the sweeper already considers stale; the nonce row
// must outlive that, or a replay could slip through on the slow replica.
const (
	NonceClockMargin = 60 * time.Second
	NonceRetention   = wire.TimestampTolerance + NonceClockMargin
)

// maxNonceBatch bounds one INSERT: three parameters a row stays far below
// SQLite's and PostgreSQL's parameter limits.
const maxNonceBatch = 500

// nonceBatchTimeout bounds one batch INSERT. The batch runs on behalf of
// several requests, so it cannot follow any single request's context.
const nonceBatchTimeout = 10 * time.Second

// NonceStore remembers each request's (key id, timestamp, nonce) in
// request_nonces so that a signed request is accepted at most once, across
// every replica that shares the database: the table's primary key is the
// arbiter, not any process. The timestamp belongs to the identity because it
// is signed: a replay repeats it, while a key holder who signs the same
// nonce at another second has sent another request (the rule of OAuth 1.0,
// RFC 5849 §3.3). Rows keyed by time first append at the end of the key
// rather than land on random pages (docs/sdk-protocol.md).
//
// Concurrent calls are grouped: while one INSERT is in flight, the requests
// that arrive queue up and the next INSERT carries all of them, so a busy
// replica pays one statement and one commit for many requests (group
// commit) instead of one each. A lone request goes straight through; nobody
// waits on a timer.
type NonceStore struct {
	db *gorm.DB
	// lock, when set, is held around each INSERT (see WithWriteLock).
	lock sync.Locker

	mu      sync.Mutex
	pending []*nonceReq
	busy    bool // a batch is in flight; its leader hands over or clears this
}

type nonceReq struct {
	keyID, nonce string
	expires      time.Time
	fresh        bool
	err          error
	// wake receives false when the result is ready, or true when this
	// request must lead the next batch.
	wake chan bool
}

// NewNonceStore returns a store over db.
func NewNonceStore(db *gorm.DB) *NonceStore {
	return &NonceStore{db: db}
}

// Use records the nonce of a request signed at ts (Unix seconds) and
// reports whether it was fresh. false means the same key id, timestamp and
// nonce were already recorded: a replay.
//
// The verdict comes from INSERT … ON CONFLICT DO NOTHING RETURNING on both
// dialects: the rows the database actually inserted are the fresh ones.
// Nothing is read first (which would race) and no driver error text is
// parsed.
func (n *NonceStore) Use(ctx context.Context, keyID, nonce string, ts int64) (bool, error) {
	r := &nonceReq{keyID: keyID, nonce: nonce, expires: database.StoredTime(time.Unix(ts, 0).Add(NonceRetention)),
		wake: make(chan bool, 1)}
	n.mu.Lock()
	n.pending = append(n.pending, r)
	if n.busy {
		n.mu.Unlock()
		// No select on ctx: a waiter that left could be handed the lead
		// and strand the queue. The wait is bounded by nonceBatchTimeout.
		if lead := <-r.wake; !lead {
			return r.fresh, r.err
		}
		n.mu.Lock()
	} else {
		n.busy = true
	}
	batch := n.pending
	if len(batch) > maxNonceBatch {
		batch = batch[:maxNonceBatch]
	}
	n.pending = append([]*nonceReq(nil), n.pending[len(batch):]...)
	n.mu.Unlock()

	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), nonceBatchTimeout)
	n.insert(bctx, batch)
	cancel()
	for _, o := range batch {
		if o != r {
			o.wake <- false
		}
	}

	n.mu.Lock()
	if len(n.pending) > 0 {
		n.pending[0].wake <- true // busy stays set: leadership moves on
	} else {
		n.busy = false
	}
	n.mu.Unlock()
	return r.fresh, r.err
}

// insert records a batch and sets every request's verdict. A request that
// appears twice in one batch (a replay racing its original inside this
// process) is inserted once; the later copy is the replay.
func (n *NonceStore) insert(ctx context.Context, batch []*nonceReq) {
	type ident struct {
		keyID, nonce string
		expires      int64 // Unix seconds
	}
	first := make(map[ident]*nonceReq, len(batch))
	var sb strings.Builder
	args := make([]any, 0, 3*len(batch))
	ph := database.NewPlaceholders(n.db.Dialector.Name())
	sb.WriteString("INSERT INTO request_nonces (key_id, nonce, expires_at) VALUES ")
	for _, r := range batch {
		p := ident{r.keyID, r.nonce, r.expires.Unix()}
		if _, dup := first[p]; dup {
			continue
		}
		first[p] = r
		if len(args) > 0 {
			sb.WriteString(", ")
		}
		ph.Row(&sb, 3)
		args = append(args, r.keyID, r.nonce, r.expires)
	}
	sb.WriteString(" ON CONFLICT (expires_at, key_id, nonce) DO NOTHING RETURNING key_id, nonce, expires_at")

	fail := func(err error) {
		for _, r := range batch {
			r.fresh, r.err = false, fmt.Errorf("sdkauth: record nonce: %w", err)
		}
	}
	if n.lock != nil {
		n.lock.Lock()
		defer n.lock.Unlock()
	}
	// database/sql, not GORM: see database.Placeholders.
	sqlDB, err := n.db.DB()
	if err != nil {
		fail(err)
		return
	}
	rows, err := sqlDB.QueryContext(ctx, sb.String(), args...)
	if err != nil {
		fail(err)
		return
	}
	defer rows.Close()
	var inserted []*nonceReq
	for rows.Next() {
		var p ident
		var expires time.Time
		if err := rows.Scan(&p.keyID, &p.nonce, &expires); err != nil {
			fail(err)
			return
		}
		p.expires = expires.Unix()
		if r := first[p]; r != nil {
			inserted = append(inserted, r)
		}
	}
	if err := rows.Err(); err != nil {
		fail(err)
		return
	}
	for _, r := range inserted {
		r.fresh = true
	}
}

// Sweep deletes the nonces whose retention ended before now and reports how
// many. Rows still inside their retention are kept whatever their age.
func (n *NonceStore) Sweep(ctx context.Context, now time.Time) (int64, error) {
	res := n.db.WithContext(ctx).Exec("DELETE FROM request_nonces WHERE expires_at < ?", database.StoredTime(now))
	if res.Error != nil {
		return 0, fmt.Errorf("sdkauth: sweep nonces: %w", res.Error)
	}
	return res.RowsAffected, nil
}
