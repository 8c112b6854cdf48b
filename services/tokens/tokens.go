// Package tokens keeps OAuth access tokens usable (DESIGN.md §6): it hands
// out the current access token of a credential, refreshes it shortly before
// it expires (on use and in a background sweep), makes sure one refresh per
// credential runs at a time across every replica, classifies what the token
// endpoint answers, and revokes tokens at the provider when the last grant
// on a credential goes. docs/tokens.md describes the lifecycle.
//
// Concurrency, in short: callers in one process share one refresh through
// singleflight; replicas serialise on the credential row (SELECT … FOR
// UPDATE on PostgreSQL, the IMMEDIATE write transaction on SQLite) and on
// the version column. A refresh is recorded (refresh_state = in_flight)
// and committed before the provider is called, the provider is called
// outside any transaction, and the new pair is committed before any caller
// sees the new access token. A credential left in_flight by a crashed
// replica is detected; on a provider that rotates refresh tokens its grants
// go to needs_reauth instead of being retried with a token that may be
// dead.
package tokens

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"gorm.io/gorm"

	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/catalog"
	"github.com/latchkey/latchkey/services/oauth"
	"github.com/latchkey/latchkey/services/vault"
)

// Audit actions written by this package; the strings are the contract.
const (
	// ActionTokenRefresh records one refresh attempt that reached the
	// provider (success or failure) or a refresh found interrupted.
	ActionTokenRefresh = "token.refresh"
	// ActionTokenRevoke records the revocation of a credential: the
	// provider's answer and the deletion of the credential row.
	ActionTokenRevoke = "token.revoke"
	// ActionGrantNeedsReauth records a grant moved to needs_reauth by the
	// system (invalid_grant, an interrupted rotation, an expired token that
	// cannot be refreshed).
	ActionGrantNeedsReauth = "grant.needs_reauth"
)

// Defaults of the options.
const (
	// DefaultMargin: refresh when the access token expires within it.
	DefaultMargin = 5 * time.Minute
	// DefaultStaleAfter: a refresh recorded in_flight for longer than this
	// was interrupted (its replica crashed or lost the database). It must be
	// well above DefaultRequestTimeout.
	DefaultStaleAfter = 2 * time.Minute
	// DefaultRequestTimeout bounds one token or revocation request.
	DefaultRequestTimeout = 30 * time.Second
	// DefaultSweepInterval is the background sweep's period (±20% jitter).
	DefaultSweepInterval = 30 * time.Second
	// DefaultSweepBatch bounds the credentials one sweep refreshes.
	DefaultSweepBatch = 100
	// DefaultSweepConcurrency is how many refreshes a sweep runs at once.
	DefaultSweepConcurrency = 4
	// DefaultBackoffBase and DefaultBackoffMax shape the exponential backoff
	// after transient failures: base·2^(failures-1), capped.
	DefaultBackoffBase = 30 * time.Second
	DefaultBackoffMax  = 30 * time.Minute
	// MaxRetryAfter caps a provider's Retry-After, so a bogus value cannot
	// park a credential for days.
	MaxRetryAfter = 6 * time.Hour
)

// Expiry rules for token responses (docs/tokens.md). The first token
// exchange (services/oauth) must follow the same rules, so a credential's
// expiry means the same thing whichever wrote it.
const (
	// AssumedLifetime is the expiry given to a refreshable access token
	// whose lifetime is unknown: expires_in missing on a provider whose
	// tokens expire, or present but unusable (zero, negative, not a number,
	// MaxLifetime or more). Refreshing early is cheap; trusting a value that
	// cannot be right is not.
	AssumedLifetime = time.Hour
	// MaxLifetime is the smallest expires_in treated as absurd.
	MaxLifetime = 10 * 365 * 24 * time.Hour
)

// maxResponseBytes bounds what is read of a token or revocation response.
const maxResponseBytes = 1 << 20

// ClientSource opens an app's OAuth client configuration and marks it
// broken; *oauth.Service implements it.
type ClientSource interface {
	ClientByID(ctx context.Context, appID, providerConfigID string) (oauth.ClientConfig, error)
	MarkBroken(ctx context.Context, providerConfigID, reason string) error
}

// Vault seals and opens token values; *vault.Vault implements it.
type Vault interface {
	Seal(ctx context.Context, b vault.Binding, plaintext []byte) ([]byte, error)
	Open(ctx context.Context, b vault.Binding, ciphertext []byte) ([]byte, error)
}

// Token is a credential's current access token. Its String, GoString and
// LogValue methods redact Value, so printing or logging it by accident
// shows no secret.
type Token struct {
	Value     string
	Type      string // the provider's token_type, e.g. "bearer"
	ExpiresAt *time.Time
	// Version is the credential version the token belongs to. After an
	// upstream 401, pass it to ForceAfter: the refresh then happens only if
	// nobody refreshed since this token was handed out.
	Version int64
}

func (t Token) String() string {
	exp := "never"
	if t.ExpiresAt != nil {
		exp = t.ExpiresAt.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("tokens.Token{Value:[redacted] Type:%q ExpiresAt:%s Version:%d}", t.Type, exp, t.Version)
}

// GoString keeps %#v from printing the token.
func (t Token) GoString() string { return t.String() }

// LogValue keeps slog from printing the token.
func (t Token) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("value", "[redacted]"), slog.String("type", t.Type), slog.Int64("version", t.Version)}
	if t.ExpiresAt != nil {
		attrs = append(attrs, slog.Time("expires_at", *t.ExpiresAt))
	}
	return slog.GroupValue(attrs...)
}

// Option tunes the service.
type Option func(*Service)

// WithMargin sets how long before expiry a token is refreshed.
func WithMargin(d time.Duration) Option {
	return func(s *Service) {
		if d >= 0 {
			s.margin = d
		}
	}
}

// WithStaleAfter sets after how long an in_flight refresh counts as
// interrupted.
func WithStaleAfter(d time.Duration) Option {
	return func(s *Service) {
		if d > 0 {
			s.staleAfter = d
		}
	}
}

// WithRequestTimeout bounds each token and revocation request.
func WithRequestTimeout(d time.Duration) Option {
	return func(s *Service) {
		if d > 0 {
			s.requestTimeout = d
		}
	}
}

// WithSweep sets the background sweep's period, batch size and
// concurrency; zero values keep the defaults.
func WithSweep(interval time.Duration, batch, concurrency int) Option {
	return func(s *Service) {
		if interval > 0 {
			s.sweepInterval = interval
		}
		if batch > 0 {
			s.sweepBatch = batch
		}
		if concurrency > 0 {
			s.sweepConcurrency = concurrency
		}
	}
}

// WithBackoff sets the transient-failure backoff.
func WithBackoff(base, maxDelay time.Duration) Option {
	return func(s *Service) {
		if base > 0 {
			s.backoffBase = base
		}
		if maxDelay > 0 {
			s.backoffMax = maxDelay
		}
	}
}

// WithLogger sets the logger (default: discard). Nothing logged carries a
// token or a secret.
func WithLogger(l *slog.Logger) Option {
	return func(s *Service) {
		if l != nil {
			s.log = l
		}
	}
}

// WithOnChange registers fn to run after grants were moved to needs_reauth
// or a credential was deleted, so caches of resolved grants
// (services/proxy) drop their entries.
func WithOnChange(fn func()) Option {
	return func(s *Service) {
		if fn != nil {
			s.changed = fn
		}
	}
}

// Service hands out, refreshes and revokes OAuth tokens. It is safe for
// concurrent use; build one per process.
type Service struct {
	db      *gorm.DB
	vault   Vault
	clients ClientSource
	http    *http.Client
	audit   *audit.Log
	now     func() time.Time
	log     *slog.Logger
	changed func()

	margin           time.Duration
	staleAfter       time.Duration
	requestTimeout   time.Duration
	sweepInterval    time.Duration
	sweepBatch       int
	sweepConcurrency int
	backoffBase      time.Duration
	backoffMax       time.Duration

	flights singleflight.Group

	// authStyles remembers, per provider config, which client
	// authentication an "auto" provider accepted, so later refreshes send
	// one request instead of two.
	authMu     sync.Mutex
	authStyles map[string]catalog.AuthStyle
}

// New builds the service. httpClient is used for token and revocation
// requests (build it with egress.HTTPClient so provider endpoints get the
// proxy's address checks); redirects are never followed whatever it says.
// now nil means time.Now.
func New(db *gorm.DB, v Vault, clients ClientSource, httpClient *http.Client, a *audit.Log, now func() time.Time, opts ...Option) *Service {
	if now == nil {
		now = time.Now
	}
	if httpClient == nil {
		httpClient = &http.Client{}
	}
	// A token request carries the client secret and the refresh token; a
	// 307 must not forward them anywhere.
	hc := *httpClient
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	s := &Service{
		db: db, vault: v, clients: clients, http: &hc, audit: a, now: now,
		log:              slog.New(slog.DiscardHandler),
		changed:          func() {},
		margin:           DefaultMargin,
		staleAfter:       DefaultStaleAfter,
		requestTimeout:   DefaultRequestTimeout,
		sweepInterval:    DefaultSweepInterval,
		sweepBatch:       DefaultSweepBatch,
		sweepConcurrency: DefaultSweepConcurrency,
		backoffBase:      DefaultBackoffBase,
		backoffMax:       DefaultBackoffMax,
		authStyles:       map[string]catalog.AuthStyle{},
	}
	for _, o := range opts {
		o(s)
	}
	// A live refresh must never look interrupted: its request is bounded
	// by requestTimeout (twice with "auto" client authentication), so that
	// must stay well inside staleAfter.
	if limit := s.staleAfter / 4; s.requestTimeout > limit {
		s.requestTimeout = limit
	}
	return s
}
