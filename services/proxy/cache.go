package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"time"
)

// DefaultCacheTTL bounds how long a resolved grant and its open credential
// are reused without asking the database again. It is also the longest a
// revocation made on another replica (or by the admin CLI) takes to reach
// this one; changes made through this process drop the cache at once.
const DefaultCacheTTL = 2 * time.Second

// maxCacheEntries bounds memory: only successful resolutions are cached, so
// an attacker cannot grow it with misses, but many distinct callers could.
const maxCacheEntries = 10000

// Cache remembers recent successful authorizations. Resolution and
// credential opening are most of a proxied call's database work; within the
// TTL a hot grant costs none of it. A zero TTL disables the cache.
type Cache struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]cacheEntry
	gen     uint64 // bumped by Invalidate; entries of older generations are dead
}

type cacheEntry struct {
	a       authorized
	expires time.Time
	gen     uint64
}

// NewCache builds a cache. now nil means time.Now.
func NewCache(ttl time.Duration, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	return &Cache{ttl: ttl, now: now, entries: map[string]cacheEntry{}}
}

// Invalidate drops every entry: called after any change of grants,
// delegations or managed secrets made through this process.
func (c *Cache) Invalidate() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.gen++
	clear(c.entries)
	c.mu.Unlock()
}

func (c *Cache) get(key string) (authorized, bool) {
	if c == nil || c.ttl <= 0 {
		return authorized{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || e.gen != c.gen || !c.now().Before(e.expires) {
		if ok {
			delete(c.entries, key)
		}
		return authorized{}, false
	}
	return e.a, true
}

// generation is read before resolving, so a result computed across an
// Invalidate is not stored as fresh.
func (c *Cache) generation() uint64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func (c *Cache) put(key string, gen uint64, a authorized) {
	if c == nil || c.ttl <= 0 {
		return
	}
	// Never keep a credential past its own expiry.
	exp := c.now().Add(c.ttl)
	if a.credential.ExpiresAt != nil && a.credential.ExpiresAt.Before(exp) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.entries) >= maxCacheEntries {
		now := c.now()
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxCacheEntries {
			clear(c.entries)
		}
	}
	c.entries[key] = cacheEntry{a: a, expires: exp, gen: gen}
}

// cacheKey names one caller's selection. The end user enters through the
// hash of the user token: the same token verifies to the same user and
// groups (identity caches that too), and the token itself is never kept.
func cacheKey(appID, agentID string, impersonating bool, userToken string, sel Selection) string {
	var b strings.Builder
	b.WriteString(appID)
	b.WriteByte('|')
	b.WriteString(agentID)
	if impersonating {
		b.WriteString("|i")
	}
	b.WriteByte('|')
	if userToken != "" {
		h := sha256.Sum256([]byte(userToken))
		b.WriteString(hex.EncodeToString(h[:]))
	}
	b.WriteByte('|')
	b.WriteString(sel.GrantID)
	b.WriteByte('|')
	b.WriteString(sel.Provider)
	b.WriteByte('|')
	b.WriteString(sel.Account)
	return b.String()
}
