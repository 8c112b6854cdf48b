// Package identity knows who an app's end users are: it stores each app's
// OIDC identity provider (DESIGN.md §1), verifies the end-user JWTs that
// SDK calls carry in Latchkey-User-Token against the issuer's discovery
// document and JWKS, and keeps the end_users / end_user_groups tables in step
// with the verified claims (just-in-time provisioning).
//
// Verification runs on every JWT-bearing SDK call, so the hot path is kept
// free of network and database work: the app's IdP row, the go-oidc provider
// (discovery document and remote key set) and the "this user with these
// claims was written recently" fact are cached in memory with short TTLs.
// Nothing here is required for correctness across replicas: every cache
// only delays, by at most its TTL, a change made on another replica.
package identity

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"gorm.io/gorm"

	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/vault"
)

// Audit actions written by this package. They live here rather than in
// services/audit only because that package is owned elsewhere; the strings
// are the contract.
const (
	ActionIdPSet         = "idp.set"
	ActionEndUserCreate  = "end_user.create"
	ActionEndUserGroups  = "end_user.groups"
	ActionEndUserProfile = "end_user.profile"
)

// Defaults for the Service's tunables.
const (
	// DefaultLeeway is the clock skew tolerated on exp and nbf. go-oidc has
	// none of its own for exp, and IdP clocks drift by seconds, not minutes.
	DefaultLeeway = 30 * time.Second
	// DefaultConfigTTL bounds how long a replica keeps verifying with an IdP
	// configuration another replica has changed (the same bound the vault
	// uses for its active-key cache).
	DefaultConfigTTL = 30 * time.Second
	// DefaultSeenTTL is how long a verified (user, claims) pair is trusted to
	// be in the database already, so repeated calls skip every read and
	// write. It also bounds how stale the returned Status can be.
	DefaultSeenTTL = 30 * time.Second
	// DefaultLastSeenEvery throttles last_seen_at updates: it is a
	// "roughly when" column, not worth a write per request.
	DefaultLastSeenEvery = 5 * time.Minute
	// DefaultDiscoveryRetry is how long a failed discovery is remembered, so
	// an unreachable issuer costs one outbound request per interval instead
	// of one per SDK call.
	DefaultDiscoveryRetry = 5 * time.Second
	// DefaultProviderMaxAge is how long a discovery document is used before
	// it is fetched again (keys are refetched by go-oidc on an unknown kid;
	// this catches a moved jwks_uri).
	DefaultProviderMaxAge = 24 * time.Hour
	// DefaultDiscoveryTimeout bounds one discovery request.
	DefaultDiscoveryTimeout = 10 * time.Second
	// DefaultMaxSeen bounds the seen cache's size (entries).
	DefaultMaxSeen = 10000
)

// Limits on what a token may carry. They bound parsing and database work a
// single request can cause.
const (
	MaxTokenBytes    = 16 << 10
	MaxGroups        = 500
	MaxGroupNameLen  = 256
	MaxSubjectLen    = 255
	maxEmailLen      = 254
	maxDisplayLen    = 200
	maxClaimNameLen  = 256
	maxIssuerLen     = 2048
	maxAudienceLen   = 512
	maxClientIDLen   = 512
	maxClientSecret  = 4096
	defaultUserClaim = "sub"
)

// Sealer seals the IdP client secret.
type Sealer interface {
	Seal(ctx context.Context, b vault.Binding, plaintext []byte) ([]byte, error)
}

// Option tunes a Service.
type Option func(*Service)

// WithLeeway sets the clock skew tolerated on exp and nbf.
func WithLeeway(d time.Duration) Option { return func(s *Service) { s.leeway = d } }

// WithConfigTTL sets how long an app's IdP configuration is cached.
func WithConfigTTL(d time.Duration) Option { return func(s *Service) { s.configTTL = d } }

// WithSeenTTL sets how long a verified user is trusted to be stored already.
func WithSeenTTL(d time.Duration) Option { return func(s *Service) { s.seenTTL = d } }

// WithDiscoveryRetry sets how long a failed discovery is remembered.
func WithDiscoveryRetry(d time.Duration) Option { return func(s *Service) { s.discoveryRetry = d } }

// WithMaxSeen bounds the seen cache.
func WithMaxSeen(n int) Option { return func(s *Service) { s.maxSeen = n } }

// Service manages identity providers and end users. Safe for concurrent use.
type Service struct {
	db     *gorm.DB
	vault  Sealer
	audit  *audit.Log
	client *http.Client
	now    func() time.Time

	leeway           time.Duration
	configTTL        time.Duration
	seenTTL          time.Duration
	lastSeenEvery    time.Duration
	discoveryRetry   time.Duration
	discoveryTimeout time.Duration
	providerMaxAge   time.Duration
	maxSeen          int

	mu        sync.Mutex
	configs   map[string]configEntry    // app id → IdP row (or its absence)
	providers map[string]*providerEntry // issuer → discovery result
	failures  map[string]failure        // issuer → last discovery failure
	verifiers map[string]*verifierEntry // app id → verifier for its issuer+audience
	seen      map[string]map[string]seenEntry
	seenCount int
	flights   singleflight.Group // one discovery per issuer at a time
}

// New builds the service. client makes the discovery and JWKS requests
// (nil: a client with a 10 s timeout); now is the clock (nil: time.Now).
func New(db *gorm.DB, v Sealer, a *audit.Log, client *http.Client, now func() time.Time, opts ...Option) *Service {
	if now == nil {
		now = time.Now
	}
	if client == nil {
		client = &http.Client{Timeout: DefaultDiscoveryTimeout}
	}
	s := &Service{
		db: db, vault: v, audit: a, client: client, now: now,
		leeway:           DefaultLeeway,
		configTTL:        DefaultConfigTTL,
		seenTTL:          DefaultSeenTTL,
		lastSeenEvery:    DefaultLastSeenEvery,
		discoveryRetry:   DefaultDiscoveryRetry,
		discoveryTimeout: DefaultDiscoveryTimeout,
		providerMaxAge:   DefaultProviderMaxAge,
		maxSeen:          DefaultMaxSeen,
		configs:          map[string]configEntry{},
		providers:        map[string]*providerEntry{},
		failures:         map[string]failure{},
		verifiers:        map[string]*verifierEntry{},
		seen:             map[string]map[string]seenEntry{},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// EndUser is a verified or app-asserted end user.
//
// Status may be models.EndUserDisabled: Verify still succeeds for a disabled
// user (the token is genuine), and grant resolution refuses to act for
// them. Keeping the two apart lets the wallet and audit still name the user.
type EndUser struct {
	ID          string
	AppID       string
	Issuer      string // empty for app-asserted users
	Subject     string
	Source      string // models.EndUserSourceIdP or models.EndUserSourceAppAsserted
	Email       string
	DisplayName string
	Groups      []string // sorted; nil for app-asserted users
	Status      string
}

// invalidateApp forgets everything cached for an app after its IdP changed
// on this replica.
func (s *Service) invalidateApp(appID string, issuers ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.configs, appID)
	delete(s.verifiers, appID)
	s.seenCount -= len(s.seen[appID])
	delete(s.seen, appID)
	for _, iss := range issuers {
		// Re-running "idp set" is also how an operator tells Latchkey the
		// issuer changed (moved jwks_uri, came back up): rediscover.
		delete(s.providers, iss)
		delete(s.failures, iss)
	}
}

var errRetry = errors.New("identity: concurrent change, retry")
