package oauth

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"gorm.io/gorm"

	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/catalog"
	"github.com/latchkey/latchkey/services/grants"
	"github.com/latchkey/latchkey/services/vault"
)

// Audit actions written by this package. grant.create is the grants
// package's; the strings are the contract.
const (
	ActionProviderConfigure = "provider.configure"
	ActionProviderBroken    = "provider.broken"
	ActionGrantCreate       = grants.ActionGrantCreate
	ActionGrantReauth       = "grant.reauth"
	ActionDelegationCreate  = "delegation.create"
)

// Defaults for options left unset.
const (
	// DefaultFlowTTL bounds one authorization-code flow, like the Connect
	// session it belongs to (DESIGN.md §3.7).
	DefaultFlowTTL = 10 * time.Minute
	// DefaultHTTPTimeout bounds one token or identity request.
	DefaultHTTPTimeout = 20 * time.Second
	// ConservativeLifetime is the expiry given to a refreshable token whose
	// expires_in is present but unusable (zero, negative, not a number, or
	// MaxTokenLifetime or more): soon enough that the refresh sweep replaces
	// it early rather than trusting a value that cannot be right.
	ConservativeLifetime = time.Hour
	// MaxTokenLifetime is the smallest expires_in treated as absurd.
	MaxTokenLifetime = 10 * 365 * 24 * time.Hour
)

// maxResponseBytes bounds token and identity responses.
const maxResponseBytes = 1 << 20

// Vault seals and opens values; *vault.Vault implements it.
type Vault interface {
	Seal(ctx context.Context, b vault.Binding, plaintext []byte) ([]byte, error)
	Open(ctx context.Context, b vault.Binding, ciphertext []byte) ([]byte, error)
}

// Service runs provider configuration, authorization-code flows and the
// storing of their results. It is safe for concurrent use.
type Service struct {
	db            *gorm.DB
	vault         Vault
	audit         *audit.Log
	catalog       *catalog.Catalog
	http          *http.Client
	redirectURI   string
	now           func() time.Time
	rand          io.Reader
	log           *slog.Logger
	allowInsecure bool
	flowTTL       time.Duration
	issuers       map[string]string
	changed       func()

	mu        sync.Mutex
	oidcByIss map[string]*oidc.Provider
}

// Option tunes the service.
type Option func(*Service)

// WithAllowInsecure permits custom providers with http URLs and loopback or
// private hosts (LATCHKEY_ALLOW_PRIVATE_UPSTREAMS: tests and the demo). The
// service, not the caller, decides this for every custom definition, and a
// stored insecure definition stops resolving when the server restarts
// without it.
func WithAllowInsecure(on bool) Option { return func(s *Service) { s.allowInsecure = on } }

// WithFlowTTL sets how long a started flow can be finished.
func WithFlowTTL(d time.Duration) Option {
	return func(s *Service) {
		if d > 0 {
			s.flowTTL = d
		}
	}
}

// WithIssuers maps provider slugs to OpenID Connect issuers. A provider
// whose identity source is id_token and that has an issuer here has its ID
// token verified with go-oidc (discovery, JWKS signature, issuer, audience,
// expiry, nonce); without one, the claims are read only when the token
// response came over TLS straight from the token endpoint.
func WithIssuers(m map[string]string) Option {
	return func(s *Service) {
		s.issuers = make(map[string]string, len(m))
		for k, v := range m {
			s.issuers[k] = v
		}
	}
}

// WithRand replaces crypto/rand as the source of flow states (tests).
func WithRand(r io.Reader) Option { return func(s *Service) { s.rand = r } }

// WithLogger receives warnings (a provider config marked broken). It never
// sees a token, code, state, verifier or secret. Nil discards.
func WithLogger(l *slog.Logger) Option {
	return func(s *Service) {
		if l != nil {
			s.log = l
		}
	}
}

// WithOnChange registers fn to run after every committed change of who may
// use what (a new or re-authorized grant, a delegation, a provider config),
// so caches of resolved grants drop their entries.
func WithOnChange(fn func()) Option { return func(s *Service) { s.changed = fn } }

// New builds the service. httpClient makes every token and identity request;
// in production it must refuse private addresses (egress.HTTPClient).
// publicURL is LATCHKEY_PUBLIC_URL; the redirect URI is publicURL +
// CallbackPath. now nil means time.Now.
func New(db *gorm.DB, v Vault, a *audit.Log, cat *catalog.Catalog, httpClient *http.Client,
	publicURL string, now func() time.Time, opts ...Option) *Service {
	if now == nil {
		now = time.Now
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	s := &Service{
		db: db, vault: v, audit: a, catalog: cat, http: httpClient,
		redirectURI: strings.TrimRight(publicURL, "/") + CallbackPath,
		now:         now,
		rand:        rand.Reader,
		log:         slog.New(slog.DiscardHandler),
		flowTTL:     DefaultFlowTTL,
		changed:     func() {},
		oidcByIss:   map[string]*oidc.Provider{},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// RedirectURI is the callback URL every provider config registers.
func (s *Service) RedirectURI() string { return s.redirectURI }

// HTTPClient is the client token and identity requests use, for the token
// service's refresh and revocation calls.
func (s *Service) HTTPClient() *http.Client { return s.http }

// ClientSecretBinding is the vault binding of a provider config's client
// secret.
func ClientSecretBinding(appID, providerConfigID string) vault.Binding {
	return vault.Binding{AppID: appID, Table: "provider_configs", RowID: providerConfigID, Column: "client_secret_ciphertext"}
}

// AccessTokenBinding is the vault binding of a credential's access token.
func AccessTokenBinding(appID, credentialID string) vault.Binding {
	return grants.AccessTokenBinding(appID, credentialID)
}

// RefreshTokenBinding is the vault binding of a credential's refresh token.
func RefreshTokenBinding(appID, credentialID string) vault.Binding {
	return grants.RefreshTokenBinding(appID, credentialID)
}

// PKCEVerifierBinding is the vault binding of a flow's PKCE verifier.
func PKCEVerifierBinding(appID, flowID string) vault.Binding {
	return vault.Binding{AppID: appID, Table: "oauth_flows", RowID: flowID, Column: "pkce_verifier_sealed"}
}

func (s *Service) seal(ctx context.Context, b vault.Binding, value string) ([]byte, error) {
	pt := []byte(value)
	defer clear(pt)
	ct, err := s.vault.Seal(ctx, b, pt)
	if err != nil {
		return nil, fmt.Errorf("oauth: seal %s.%s: %w", b.Table, b.Column, err)
	}
	return ct, nil
}

func (s *Service) open(ctx context.Context, b vault.Binding, ct []byte) (string, error) {
	pt, err := s.vault.Open(ctx, b, ct)
	if err != nil {
		return "", fmt.Errorf("oauth: open %s.%s of %s: %w", b.Table, b.Column, b.RowID, err)
	}
	v := string(pt)
	clear(pt)
	return v, nil
}

// isHex64 reports a lower-case hex SHA-256 (a browser binding).
func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// hasControl reports ASCII control characters, which would split headers
// or log lines.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}
