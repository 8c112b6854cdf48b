package demo

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"time"
)

// tokenSource makes the random strings the servers hand out. The mutex is
// there because an injected test reader need not be safe for concurrent use.
type tokenSource struct {
	mu sync.Mutex
	r  io.Reader
}

// newToken returns prefix followed by 256 random bits, base64url. The prefix
// makes a leaked demo token recognizable at a glance (and by scanners).
func (t *tokenSource) newToken(prefix string) (string, error) {
	b := make([]byte, 32)
	t.mu.Lock()
	_, err := io.ReadFull(t.r, b)
	t.mu.Unlock()
	if err != nil {
		return "", fmt.Errorf("demo: read random: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// hashToken is how codes and tokens are stored: a memory dump (or a debug
// print of the store) must not hand out usable credentials.
func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// Token prefixes.
const (
	prefixCode    = "demo_code_"
	prefixAccess  = "demo_at_"
	prefixRefresh = "demo_rt_"
	prefixFamily  = "fam_"
)

// codeRetention is how long a redeemed or expired code is remembered, so a
// replay is still recognized as one and revokes what the code produced.
const codeRetention = 10 * time.Minute

// sweepEvery bounds how often the store drops expired entries; sweeping is
// linear in the store's size, so it is not done on every request.
const sweepEvery = time.Minute

// authCode is one authorization code, stored under its hash.
type authCode struct {
	clientID    string
	redirectURI string
	challenge   string // S256 code_challenge
	nonce       string
	user        User
	scopes      []string
	authTime    time.Time
	expires     time.Time
	used        bool
	familyID    string // the tokens it was exchanged for, revoked on replay
}

// family is one authorization grant: everything issued from one code,
// through every refresh-token rotation. Reuse of a rotated-out refresh token
// or replay of the code revokes the whole family (RFC 9700 §4.14.2).
type family struct {
	id             string
	clientID       string
	user           User
	scopes         []string
	authTime       time.Time
	current        string // hash of the only refresh token that still works
	refreshExpires time.Time
	revoked        bool
	revokedAt      time.Time
	refreshHashes  []string
	accessHashes   []string
}

// accessToken is an opaque access token of the OAuth provider.
type accessToken struct {
	familyID string
	scopes   []string
	expires  time.Time
}

// store is one server's in-memory state. Its fields are guarded by mu.
type store struct {
	mu        sync.Mutex
	codes     map[string]*authCode    // code hash → code
	families  map[string]*family      // family id → family
	refresh   map[string]string       // refresh-token hash → family id
	access    map[string]*accessToken // access-token hash → token
	lastSweep time.Time
}

func newStore() *store {
	return &store{
		codes:    map[string]*authCode{},
		families: map[string]*family{},
		refresh:  map[string]string{},
		access:   map[string]*accessToken{},
	}
}

// revokeFamily makes every token of the family unusable. The family stays
// (marked) so later presentations are answered consistently until a sweep.
// Callers hold mu.
func (st *store) revokeFamily(f *family, now time.Time) {
	if !f.revoked {
		f.revoked, f.revokedAt = true, now
	}
	for _, h := range f.accessHashes {
		delete(st.access, h)
	}
	f.accessHashes = nil
}

// dropFamily forgets a family and its tokens. Callers hold mu.
func (st *store) dropFamily(f *family) {
	for _, h := range f.refreshHashes {
		delete(st.refresh, h)
	}
	for _, h := range f.accessHashes {
		delete(st.access, h)
	}
	delete(st.families, f.id)
}

// sweep drops expired codes, tokens and dead families so a long-running demo
// does not grow without bound. Callers hold mu.
func (st *store) sweep(now time.Time) {
	if now.Sub(st.lastSweep) < sweepEvery {
		return
	}
	st.lastSweep = now
	for h, c := range st.codes {
		if now.After(c.expires.Add(codeRetention)) {
			delete(st.codes, h)
		}
	}
	for h, a := range st.access {
		if !now.Before(a.expires) {
			delete(st.access, h)
		}
	}
	for _, f := range st.families {
		// A revoked family is kept for a while so that its tokens are still
		// answered "revoked" (and logged as such) right after revocation.
		if !now.Before(f.refreshExpires) || (f.revoked && now.After(f.revokedAt.Add(codeRetention))) {
			st.dropFamily(f)
		}
	}
}
