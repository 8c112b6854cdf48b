package sdkauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"gorm.io/gorm"

	"github.com/latchkey/latchkey/handlers/requestid"
	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/vault"
)

// ActionAuthenticate is the audit action of a refused authentication. It is
// written only when the key id belongs to an app; requests naming unknown
// keys leave no row, so they cannot fill the audit table.
const ActionAuthenticate = "sdk.authenticate"

// Defaults. DefaultCacheTTL is also the bound on how long a revocation or
// deprecation made on another replica (or by the CLI) takes to reach this
// one; docs/sdk-protocol.md promises it.
const (
	DefaultCacheTTL      = 5 * time.Second
	DefaultMaxCachedKeys = 10_000
	DefaultSweepInterval = time.Minute
	// UsageFlushInterval is how often api_keys.last_used_at is written: at
	// most once per key per interval per replica, never on the request path.
	UsageFlushInterval = time.Minute

	// maxUnverifiedDenialsPerMinute bounds audit rows for refusals that
	// anyone who knows a key id can provoke without the key (revoked key,
	// stale timestamp, bad signature, replay). Beyond it, refusals of that
	// key are counted and the count is written on the next recorded row.
	maxUnverifiedDenialsPerMinute = 60

	loadTimeout = 10 * time.Second
)

// Opener opens sealed signing keys (services/vault).
type Opener interface {
	Open(ctx context.Context, b vault.Binding, ciphertext []byte) ([]byte, error)
}

// Option configures an Authenticator.
type Option func(*Authenticator)

// WithCacheTTL sets how long key metadata and the unsealed signing key are
// reused before the database is asked again; it bounds revocation latency.
func WithCacheTTL(d time.Duration) Option {
	return func(a *Authenticator) {
		if d > 0 {
			a.ttl = d
		}
	}
}

// WithMaxCachedKeys bounds the key cache (and the agent cache) in entries.
func WithMaxCachedKeys(n int) Option {
	return func(a *Authenticator) {
		if n > 0 {
			a.maxKeys = n
		}
	}
}

// WithSweepInterval sets how often Run deletes expired nonces.
func WithSweepInterval(d time.Duration) Option {
	return func(a *Authenticator) {
		if d > 0 {
			a.sweepEvery = d
		}
	}
}

// WithWriteLock serializes the nonce store's writes with other hot-path
// writers sharing lock. On SQLite, which has one writer, two batchers that
// race for the database lock fall into its busy handler's millisecond
// sleeps; taking turns in process is far cheaper.
func WithWriteLock(lock sync.Locker) Option {
	return func(a *Authenticator) { a.nonces.lock = lock }
}

// WithLogger sets where Run reports failed sweeps and flushes.
func WithLogger(l *slog.Logger) Option {
	return func(a *Authenticator) {
		if l != nil {
			a.logger = l
		}
	}
}

// Authenticator verifies signed SDK requests (DESIGN.md §4.4). It is safe
// for concurrent use; one per process.
//
// The hot path touches the database once: the nonce INSERT. Key metadata
// and the unsealed signing key come from an in-memory cache whose entries
// live for the cache TTL, after which the key row is read again; that TTL
// is therefore how long a key revoked elsewhere keeps working here. Only
// keys that exist are cached, so requests naming random key ids cost one
// indexed read each and no memory.
type Authenticator struct {
	db     *gorm.DB
	vault  Opener
	audit  *audit.Log
	now    func() time.Time
	nonces *NonceStore
	logger *slog.Logger

	ttl        time.Duration
	maxKeys    int
	sweepEvery time.Duration

	mu   sync.RWMutex
	keys map[string]*keyEntry // by public key id
	// forgets counts Forget calls; a load caches its entry only if none
	// happened while it read the row.
	forgets uint64
	agents  map[agentRef]*agentEntry
	loads   singleflight.Group

	statsMu sync.Mutex
	stats   map[string]*keyStats // by api_keys.id; outlives cache entries
}

// New returns an Authenticator reading keys from db, opening signing keys
// with v, writing refusals to al and telling time with now (time.Now when
// nil).
func New(db *gorm.DB, v Opener, al *audit.Log, now func() time.Time, opts ...Option) *Authenticator {
	if now == nil {
		now = time.Now
	}
	a := &Authenticator{
		db:         db,
		vault:      v,
		audit:      al,
		now:        now,
		nonces:     NewNonceStore(db),
		logger:     slog.New(slog.DiscardHandler),
		ttl:        DefaultCacheTTL,
		maxKeys:    DefaultMaxCachedKeys,
		sweepEvery: DefaultSweepInterval,
		keys:       map[string]*keyEntry{},
		agents:     map[agentRef]*agentEntry{},
		stats:      map[string]*keyStats{},
	}
	for _, o := range opts {
		o(a)
	}
	return a
}

// CacheTTL is the bound on revocation latency across replicas.
func (a *Authenticator) CacheTTL() time.Duration { return a.ttl }

// Authenticate verifies an SDK request: method and target as received
// (wire.RequestTarget), its headers and the SHA-256 of its body. It follows
// DESIGN.md §4.4 in order and returns the Caller, or a *errs.CodedError with
// the wire code. Error messages never contain header values.
func (a *Authenticator) Authenticate(ctx context.Context, method, target string, h http.Header, bodySHA256 []byte) (Caller, error) {
	ah, err := ParseHeaders(h)
	if err != nil {
		return Caller{}, err
	}
	return a.AuthenticateHeaders(ctx, method, target, ah, bodySHA256)
}

// ParseHeaders is step 1 of DESIGN.md §4.4 on its own: the Latchkey-*
// headers present, each once, and well formed. Errors are *errs.CodedError
// with code malformed_auth, naming the header but never its value.
func ParseHeaders(h http.Header) (wire.AuthHeaders, error) {
	ah, err := wire.ParseAuthHeaders(h)
	if err != nil {
		return wire.AuthHeaders{}, malformed(err)
	}
	return ah, nil
}

// AuthenticateHeaders is Authenticate for headers already parsed with
// wire.ParseAuthHeaders (step 1), so the HTTP layer can refuse malformed
// requests before it reads a body.
func (a *Authenticator) AuthenticateHeaders(ctx context.Context, method, target string, h wire.AuthHeaders, bodySHA256 []byte) (Caller, error) {
	if h.KeyID == "" || !h.KeyKind.Valid() {
		return Caller{}, errs.Coded(wire.CodeMalformedAuth, "Latchkey-Key-Id header is required")
	}
	// Step 2: the key.
	k, err := a.lookup(ctx, h.KeyID)
	if err != nil {
		return Caller{}, internal(err)
	}
	if k == nil || k.kind != h.KeyKind {
		return Caller{}, errs.Coded(wire.CodeInvalidKey, "The key id is not known.")
	}
	d := denial{a: a, ctx: ctx, key: k, method: method, target: target}
	if k.status == models.KeyRevoked {
		return Caller{}, d.refuse(wire.CodeKeyRevoked, "The key has been revoked.")
	}
	// Step 3: the time window, before any cryptography, so stale requests
	// cost nothing.
	if !wire.TimestampInWindow(h.Timestamp, a.now()) {
		return Caller{}, d.refuse(wire.CodeTimestampOutOfRange,
			"Latchkey-Timestamp is more than 300 seconds from server time; check the client clock.")
	}
	// Step 4: the signature, compared in constant time.
	sts := wire.StringToSign(h.SignatureParams(method, target, bodySHA256))
	if !wire.VerifySignature(k.signingKey, sts, h.Signature) {
		return Caller{}, d.refuse(wire.CodeInvalidSignature, "The signature does not match the request.")
	}
	// Step 5: the nonce, recorded only now so nobody without the key can
	// use up a legitimate client's nonce.
	fresh, err := a.nonces.Use(ctx, h.KeyID, h.Nonce, h.Timestamp)
	if err != nil {
		return Caller{}, internal(err)
	}
	if !fresh {
		return Caller{}, d.refuse(wire.CodeReplayedRequest,
			"This request (key id, timestamp and nonce) was already accepted; sign every request, retries included, afresh.")
	}
	// From here the request provably comes from the key holder.
	d.verified, d.caller = true, h.Caller
	// Step 6.
	if k.kind == wire.KeyKindAgent && h.UserToken != "" {
		return Caller{}, d.refuse(wire.CodeAgentCannotUseUserToken, "An agent key cannot send Latchkey-User-Token.")
	}

	c := Caller{
		OrganizationID: k.orgID,
		AppID:          k.appID,
		AppName:        k.appName,
		KeyRowID:       k.rowID,
		KeyID:          k.keyID,
		KeyKind:        string(k.kind),
		KeyDeprecated:  k.status == models.KeyDeprecated,
		UserToken:      h.UserToken,
		CallerLabel:    h.Caller,
		RequestID:      requestid.From(ctx),
	}
	switch {
	case k.kind == wire.KeyKindAgent:
		if k.agentStatus != models.AgentActive {
			return Caller{}, d.refuse(wire.CodeForbidden, "The agent this key belongs to is disabled.")
		}
		// An agent key may repeat its own agent in Latchkey-Agent, nothing else.
		if h.Agent != "" && h.AgentID() != k.agentID {
			return Caller{}, d.refuse(wire.CodeInvalidRequest, msgNoSuchAgent)
		}
		c.AgentID, c.AgentName = k.agentID, k.agentName
	case h.Agent != "":
		ag, err := a.agent(ctx, k.appID, h.AgentID())
		if err != nil {
			return Caller{}, internal(err)
		}
		// Another app's agent, a missing one and a disabled one look the
		// same, so the answer says nothing about other tenants.
		if ag == nil || ag.status != models.AgentActive {
			return Caller{}, d.refuse(wire.CodeInvalidRequest, msgNoSuchAgent)
		}
		c.AgentID, c.AgentName, c.Impersonating = h.AgentID(), ag.name, true
	}
	k.stats.touch(a.now())
	return c, nil
}

const msgNoSuchAgent = "Latchkey-Agent does not name an active agent this key can act as."

// Forget drops a key from this process's cache, so a revocation or
// deprecation made here takes effect at once instead of after the TTL.
func (a *Authenticator) Forget(keyID string) {
	a.mu.Lock()
	delete(a.keys, keyID)
	// A load that read the row before this change must not put the old
	// entry back, and later lookups must not join that load.
	a.forgets++
	a.mu.Unlock()
	a.loads.Forget(keyID)
}

// ForgetAgent drops an agent from the impersonation cache (after disabling
// it, say).
func (a *Authenticator) ForgetAgent(appID, agentID string) {
	a.mu.Lock()
	delete(a.agents, agentRef{appID, agentID})
	a.mu.Unlock()
}

// denial writes the audit row of a refused authentication of a known key.
type denial struct {
	a              *Authenticator
	ctx            context.Context
	key            *keyEntry
	method, target string
	verified       bool   // the signature and nonce checked out
	caller         string // Latchkey-Caller, recorded only once verified
}

// refuse audits the refusal and returns the error for the client. Refusals
// before the signature is verified are rate limited per key (see
// maxUnverifiedDenialsPerMinute); when the audit row cannot be written the
// request fails as internal, like any other audit failure (DESIGN.md §3.9).
func (d denial) refuse(code wire.ErrorCode, msg string) error {
	refusal := errs.Coded(code, "%s", msg)
	st := d.key.stats
	reason := ""
	if !d.verified {
		if !st.allowUnverifiedDenial(d.a.now()) {
			return refusal
		}
	}
	if n := st.suppressed.Swap(0); n > 0 {
		reason = fmt.Sprintf("%d further refusals of this key in the preceding minute were not recorded one by one", n)
	}
	path, _, _ := strings.Cut(d.target, "?") // query values may be secrets
	if len(path) > 512 {
		path = path[:512]
	}
	agentID := d.key.agentID
	err := d.a.audit.Write(d.ctx, models.AuditEvent{
		OrganizationID: d.key.orgID,
		AppID:          d.key.appID,
		Action:         ActionAuthenticate,
		ActorKind:      audit.ActorKey,
		ActorID:        d.key.keyID,
		KeyID:          d.key.keyID,
		AgentID:        agentID,
		Caller:         d.caller,
		Method:         d.method,
		Path:           path,
		Outcome:        models.OutcomeDenied,
		ErrorCode:      string(code),
		Reason:         reason,
		RequestID:      requestid.From(d.ctx),
	})
	if err != nil {
		return internal(fmt.Errorf("sdkauth: audit refused authentication (%s): %w", code, err))
	}
	return refusal
}

func malformed(err error) error {
	var m *wire.MalformedAuthError
	if errors.As(err, &m) {
		// Header and Reason are fixed strings of the wire package, never the
		// value that was sent.
		return &errs.CodedError{Code: wire.CodeMalformedAuth, Message: m.Header + " header " + m.Reason, Cause: err}
	}
	return &errs.CodedError{Code: wire.CodeMalformedAuth, Message: "The authentication headers are malformed.", Cause: err}
}

func internal(err error) error {
	return &errs.CodedError{Code: wire.CodeInternal, Message: "Authentication could not be completed.", Cause: err}
}
