// Package connect runs Connect sessions (DESIGN.md §3.7, §4.6, §5): an app
// backend mints a short-lived, single-use session for one end user; the
// browser exchanges the session token once for a binding to itself; the end
// user picks a provider and approves a consent screen; the OAuth flow runs
// through services/oauth; and the result (grants, or a stable error code)
// is recorded on the session and handed back for delivery to the exact
// origin or return URL the app registered.
//
// The package knows nothing of HTTP: the browser binding arrives as the
// SHA-256 of a cookie the HTTP edge keeps, and results leave as values the
// edge renders or redirects with.
package connect

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/identity"
	"github.com/latchkey/latchkey/services/oauth"
	"github.com/latchkey/latchkey/services/tenancy"
)

// Audit actions written by this package. They live here rather than in
// services/audit because that package is owned elsewhere; the strings are
// the contract.
const (
	ActionSessionCreate   = "connect.session.create"
	ActionSessionOpen     = "connect.session.open"
	ActionSessionComplete = "connect.session.complete"
	ActionSessionFail     = "connect.session.fail"
)

// DefaultLifetime is how long a minted session can be used (DESIGN.md §3.7).
const DefaultLifetime = 10 * time.Minute

// TokenPrefix starts every session token, so secret scanners and people can
// tell one apart from other random strings.
const TokenPrefix = "lkcs_"

// tokenBytes is the session token's entropy: 256 bits.
const tokenBytes = 32

// Limits on what a mint request may carry.
const (
	MaxProviders     = 50
	maxSlugLen       = 64
	MaxMetadataKeys  = 20
	maxMetadataKey   = 64
	maxMetadataValue = 256
	maxURLLen        = 2048
)

// OAuth is what Connect needs from services/oauth.
type OAuth interface {
	Start(ctx context.Context, in oauth.StartInput) (string, error)
	Finish(ctx context.Context, in oauth.FinishInput) (oauth.Connected, error)
	Save(ctx context.Context, in oauth.SaveInput) (oauth.Saved, error)
	Client(ctx context.Context, appID, provider string) (oauth.ClientConfig, error)
}

// Identity verifies end-user JWTs and records app-asserted end users
// (services/identity).
type Identity interface {
	Verify(ctx context.Context, appID, rawJWT string) (identity.EndUser, error)
	AssertEndUser(ctx context.Context, appID, subject, email, displayName string) (identity.EndUser, error)
}

// Tenancy loads apps and their registered Connect URLs (services/tenancy).
type Tenancy interface {
	App(ctx context.Context, appID string) (models.App, error)
	GetURLs(ctx context.Context, appID string) (tenancy.URLs, error)
}

// Agents loads an app's agents (services/agents).
type Agents interface {
	Get(ctx context.Context, appID, agentID string) (models.Agent, error)
}

// Auditor writes audit rows inside the caller's transaction (audit.Log).
type Auditor interface {
	InTx(ctx context.Context, tx *gorm.DB, ev models.AuditEvent) error
}

// Options tune a Service.
type Options struct {
	// PublicURL is LATCHKEY_PUBLIC_URL; connect_url is built from it.
	PublicURL string
	// Lifetime of a minted session; zero uses DefaultLifetime.
	Lifetime time.Duration
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
	// Rand is the source of session tokens; nil uses crypto/rand.
	Rand io.Reader
}

// Service mints, polls and drives Connect sessions. Safe for concurrent use.
type Service struct {
	db       *gorm.DB
	oauth    OAuth
	identity Identity
	tenancy  Tenancy
	agents   Agents
	audit    Auditor
	public   string
	lifetime time.Duration
	now      func() time.Time
	rand     io.Reader
}

// New builds the service. It fails when the public URL is unusable, since
// every connect_url would then be wrong.
func New(db *gorm.DB, o OAuth, id Identity, t Tenancy, ag Agents, a Auditor, opts Options) (*Service, error) {
	u, err := url.Parse(opts.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("connect: public URL %q must be an absolute http or https URL", opts.PublicURL)
	}
	s := &Service{
		db: db, oauth: o, identity: id, tenancy: t, agents: ag, audit: a,
		public:   strings.TrimSuffix(u.String(), "/"),
		lifetime: opts.Lifetime,
		now:      opts.Now,
		rand:     opts.Rand,
	}
	if s.lifetime <= 0 {
		s.lifetime = DefaultLifetime
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	return s, nil
}

// newToken returns TokenPrefix followed by 256 random bits, base64url.
func (s *Service) newToken() (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return "", fmt.Errorf("connect: random token: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// wellFormedToken rejects anything that cannot be a session token before
// it reaches the database.
func wellFormedToken(tok string) bool {
	body, ok := strings.CutPrefix(tok, TokenPrefix)
	if !ok || len(body) != base64.RawURLEncoding.EncodedLen(tokenBytes) {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(body)
	return err == nil
}

// sameHash compares two hex hashes in constant time; an empty one never
// matches, so an unbound session cannot be "matched" by a missing cookie.
func sameHash(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// errNoSession is the cause of a not_found Failure: the id or token names
// no session this caller may see.
var errNoSession = errors.New("connect: no such session")

// DeleteExpired removes sessions whose lifetime ended more than retention
// ago (their OAuth flows go with them). Keeping them a while lets an app
// that polls late still read "expired" instead of not_found.
func (s *Service) DeleteExpired(ctx context.Context, retention time.Duration) (int64, error) {
	res := s.db.WithContext(ctx).Where("expires_at < ?", s.now().UTC().Add(-retention)).Delete(&models.ConnectSession{})
	if res.Error != nil {
		return 0, fmt.Errorf("connect: delete expired sessions: %w", res.Error)
	}
	return res.RowsAffected, nil
}
