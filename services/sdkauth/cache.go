package sdkauth

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/apikeys"
)

// keyEntry is what the hot path needs to know about one key. It is never
// modified after it is cached; a reload replaces it.
type keyEntry struct {
	rowID, keyID          string
	appID, orgID, appName string
	kind                  wire.KeyKind
	status                string
	// The agent of an agent key, read joined on the key's own app, so an
	// agent key can never name another app's agent. agentStatus is "" when
	// the agent row is missing, which refuses the key.
	agentID, agentName, agentStatus string
	// signingKey is the unsealed signing key; nil for a revoked key, which
	// never gets as far as a signature check.
	signingKey []byte
	loadedAt   time.Time
	stats      *keyStats
}

type agentRef struct{ appID, agentID string }

type agentEntry struct {
	name, status string
	loadedAt     time.Time
}

// fresh reports whether an entry loaded at t may still be used at now. A
// clock that went backwards counts as stale rather than as "younger".
func (a *Authenticator) fresh(t, now time.Time) bool {
	age := now.Sub(t)
	return age >= 0 && age < a.ttl
}

// lookup returns the key with that public id, nil when there is none.
func (a *Authenticator) lookup(ctx context.Context, keyID string) (*keyEntry, error) {
	a.mu.RLock()
	e := a.keys[keyID]
	a.mu.RUnlock()
	if e != nil && a.fresh(e.loadedAt, a.now()) {
		return e, nil
	}
	// One database read per key per expiry, however many requests arrive
	// at once. The load outlives any single caller's cancellation because
	// other callers may be waiting on it.
	v, err, _ := a.loads.Do(keyID, func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loadTimeout)
		defer cancel()
		return a.load(lctx, keyID)
	})
	if err != nil {
		return nil, err
	}
	return v.(*keyEntry), nil
}

type keyRow struct {
	ID                   string
	KeyID                string
	AppID                string
	AgentID              *string
	Kind                 string
	Status               string
	SigningKeyCiphertext []byte
	OrganizationID       string
	AppName              string
	AgentName            *string
	AgentStatus          *string
}

func (a *Authenticator) load(ctx context.Context, keyID string) (*keyEntry, error) {
	a.mu.RLock()
	forgets := a.forgets
	a.mu.RUnlock()
	var rows []keyRow
	err := a.db.WithContext(ctx).Raw(`
SELECT k.id, k.key_id, k.app_id, k.agent_id, k.kind, k.status, k.signing_key_ciphertext,
       a.organization_id, a.name AS app_name, g.name AS agent_name, g.status AS agent_status
FROM api_keys k
JOIN apps a ON a.id = k.app_id
LEFT JOIN agents g ON g.id = k.agent_id AND g.app_id = k.app_id
WHERE k.key_id = ?`, keyID).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("sdkauth: load key: %w", err)
	}
	if len(rows) == 0 {
		// Not cached: a negative cache would be memory an attacker fills
		// with random key ids.
		a.Forget(keyID)
		return (*keyEntry)(nil), nil
	}
	r := rows[0]
	e := &keyEntry{
		rowID:    r.ID,
		keyID:    r.KeyID,
		appID:    r.AppID,
		orgID:    r.OrganizationID,
		appName:  r.AppName,
		kind:     wire.KeyKind(r.Kind),
		status:   r.Status,
		loadedAt: a.now(),
		stats:    a.statsFor(r.ID),
	}
	if r.AgentID != nil {
		e.agentID = *r.AgentID
		if r.AgentName != nil && r.AgentStatus != nil {
			e.agentName, e.agentStatus = *r.AgentName, *r.AgentStatus
		}
	}
	if e.status != models.KeyRevoked {
		// The binding names the key's own app and row: a ciphertext copied
		// to another row or app does not open, so a key row can never be
		// made to authenticate for a tenant it was not minted in.
		sk, err := a.vault.Open(ctx, apikeys.SigningKeyBinding(r.AppID, r.ID), r.SigningKeyCiphertext)
		if err != nil {
			return nil, fmt.Errorf("sdkauth: open signing key of %s: %w", r.KeyID, err)
		}
		e.signingKey = sk
	}

	now := a.now()
	a.mu.Lock()
	if len(a.keys) >= a.maxKeys {
		evictKeys(a.keys, a.maxKeys, func(e *keyEntry) bool { return !a.fresh(e.loadedAt, now) })
	}
	// Cached only if no Forget happened while the row was read: otherwise
	// this entry may predate a revocation made in this process.
	if a.forgets == forgets {
		a.keys[keyID] = e
	}
	a.mu.Unlock()
	return e, nil
}

// agent returns an agent of the app for Latchkey-Agent, nil when the app
// has no such agent. Only agents that exist are cached.
func (a *Authenticator) agent(ctx context.Context, appID, agentID string) (*agentEntry, error) {
	ref := agentRef{appID, agentID}
	now := a.now()
	a.mu.RLock()
	e := a.agents[ref]
	a.mu.RUnlock()
	if e != nil && a.fresh(e.loadedAt, now) {
		return e, nil
	}
	var rows []struct{ Name, Status string }
	err := a.db.WithContext(ctx).Raw(
		"SELECT name, status FROM agents WHERE id = ? AND app_id = ?", agentID, appID).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("sdkauth: load agent: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(rows) == 0 {
		delete(a.agents, ref)
		return nil, nil
	}
	e = &agentEntry{name: rows[0].Name, status: rows[0].Status, loadedAt: now}
	if len(a.agents) >= a.maxKeys {
		evictKeys(a.agents, a.maxKeys, func(e *agentEntry) bool { return !a.fresh(e.loadedAt, now) })
	}
	a.agents[ref] = e
	return e, nil
}

// evictKeys makes room in a full cache: stale entries go first, then
// arbitrary ones (Go's map order), until a quarter of the capacity is free.
// Only real keys and agents are cached, so this is a safety net, not a
// policy anyone should hit.
func evictKeys[K comparable, V any](m map[K]V, max int, stale func(V) bool) {
	for k, v := range m {
		if stale(v) {
			delete(m, k)
		}
	}
	for k := range m {
		if len(m) <= max*3/4 {
			return
		}
		delete(m, k)
	}
}

// keyStats is per-key bookkeeping that must survive cache reloads: the last
// successful use (flushed to api_keys.last_used_at off the request path)
// and the rate limit on audit rows for unverified refusals.
type keyStats struct {
	lastUsed   atomic.Int64 // Unix seconds of the latest successful authentication
	flushed    atomic.Int64 // the lastUsed value last written
	denyMinute atomic.Int64 // Unix minute the denies counter belongs to
	denies     atomic.Int64
	suppressed atomic.Int64 // unverified refusals not audited one by one
}

func (a *Authenticator) statsFor(rowID string) *keyStats {
	a.statsMu.Lock()
	defer a.statsMu.Unlock()
	st := a.stats[rowID]
	if st == nil {
		st = &keyStats{}
		a.stats[rowID] = st
	}
	return st
}

func (st *keyStats) touch(now time.Time) {
	st.lastUsed.Store(now.Unix())
}

// allowUnverifiedDenial reports whether another unverified refusal may be
// audited in the current minute; if not, it is counted as suppressed.
func (st *keyStats) allowUnverifiedDenial(now time.Time) bool {
	minute := now.Unix() / 60
	if w := st.denyMinute.Load(); w != minute && st.denyMinute.CompareAndSwap(w, minute) {
		st.denies.Store(0)
	}
	if st.denies.Add(1) <= maxUnverifiedDenialsPerMinute {
		return true
	}
	st.suppressed.Add(1)
	return false
}
