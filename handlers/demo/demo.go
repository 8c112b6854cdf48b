// Package demo serves the built-in demo servers of `latchkey serve --demo`:
// a demo OpenID Connect identity provider (/idp), a demo OAuth 2.0 provider
// (/oauth) and the small calendar API it protects (/api). They are real
// servers — discovery, JWKS, authorization code with PKCE, refresh-token
// rotation with reuse detection, RFC 7009 revocation — so a newcomer can walk
// the whole Connect flow on one machine, and tests can drive Latchkey's flows
// against them.
//
// The package is plain net/http on purpose: it is mounted by the HTTP edge
// (under /demo/) but knows nothing about Echo, services or models, so it can
// also run on its own in an httptest server. All state is in memory: a
// restart forgets every code and token, which Latchkey then sees as a dead
// refresh token (the grant goes to needs_reauth) — itself a useful demo.
//
// These servers are for demos and tests only. Their users have no passwords.
package demo

import (
	"crypto/rand"
	"crypto/rsa"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Defaults for Options left zero.
const (
	DefaultAccessTokenTTL  = time.Hour
	DefaultRefreshTokenTTL = 30 * 24 * time.Hour
)

// codeTTL is how long an authorization code can be redeemed. Fixed rather
// than configurable: RFC 6749 recommends at most ten minutes, a minute is
// plenty for a redirect, and tests move the clock past it.
const codeTTL = 60 * time.Second

// The OAuth provider's scopes.
const (
	ScopeCalendarRead  = "calendar.read"
	ScopeCalendarWrite = "calendar.write"
)

// Client is an OAuth client registered with one of the demo servers.
type Client struct {
	// ID is the client_id; for the identity provider it is also the aud of
	// the tokens it issues to this client.
	ID string
	// Secret is the client_secret. Every client is confidential: the demo
	// servers authenticate clients at the token and revocation endpoints,
	// with HTTP Basic or body parameters.
	Secret string
	// RedirectURIs are compared to redirect_uri exactly (no prefix or
	// wildcard matching, the way real providers should).
	RedirectURIs []string
}

// User is a demo user. There are no passwords: the login pages let anyone
// pick one.
type User struct {
	// Username is the short name ("ada"); it is the identity provider's sub.
	Username string
	Name     string
	Email    string
	// Groups is the identity provider's groups claim.
	Groups []string
}

// AccountID is the user's id at the demo OAuth provider (its userinfo
// "id"). It deliberately differs from the identity provider's subject, so a
// mix-up between the end user and the connected account shows in tests.
func (u User) AccountID() string { return "cal-" + u.Username }

// demoUsers returns the fixed demo users, fresh on every call so nobody can
// change the shared list.
func demoUsers() []User {
	return []User{
		{Username: "ada", Name: "Ada Lovelace", Email: "ada@example.com", Groups: []string{"engineering", "admins"}},
		{Username: "grace", Name: "Grace Hopper", Email: "grace@example.com", Groups: []string{"engineering"}},
		{Username: "linus", Name: "Linus Torvalds", Email: "linus@example.com", Groups: []string{"ops"}},
	}
}

// Options configure New. BaseURL is required; everything else has a default.
type Options struct {
	// BaseURL is the external URL of the mount point, e.g.
	// http://127.0.0.1:8080/demo. The issuer and every endpoint URL are
	// built from it, and its path is where pages link their forms and
	// stylesheet.
	BaseURL string
	// Clock is the time source (default time.Now).
	Clock func() time.Time
	// Rand is the source of codes, tokens and CSRF cookies (default
	// crypto/rand.Reader). A generated signing key always comes from
	// crypto/rand.
	Rand io.Reader
	// Logger receives one line per notable event (refresh-token reuse,
	// revocation). It never sees a token. Nil discards.
	Logger *slog.Logger
	// SigningKey signs the identity provider's JWTs. Nil generates a fresh
	// RSA-2048 key; pass a persisted key so tokens and cached JWKS stay
	// valid across restarts (see Server.SigningKey, EncodeSigningKeyPEM).
	SigningKey *rsa.PrivateKey
	// IDPClients are the identity provider's registered clients.
	IDPClients []Client
	// OAuthClients are the OAuth provider's registered clients.
	OAuthClients []Client
	// AccessTokenTTL is the lifetime of access tokens and ID tokens of
	// both servers (default one hour; tests use seconds).
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is the lifetime of each refresh token, renewed by
	// every rotation (default 30 days).
	RefreshTokenTTL time.Duration
}

// OAuthEndpoints are what Latchkey's provider configuration needs to talk
// to the demo OAuth provider (`admin providers configure --authorize-url …`).
type OAuthEndpoints struct {
	AuthorizeURL string
	TokenURL     string
	UserinfoURL  string
	RevokeURL    string
	// APIBaseURL is the calendar API root, e.g. http://127.0.0.1:8080/demo/api.
	APIBaseURL string
	// APIHost is the host (with port) proxied calls go to, for the
	// provider's allowed-hosts list.
	APIHost string
	// Scopes are the scopes the provider knows.
	Scopes []string
}

// Server holds the demo servers. It is safe for concurrent use.
type Server struct {
	base      *url.URL
	basePath  string // BaseURL's path without a trailing slash ("/demo")
	now       func() time.Time
	logger    *slog.Logger
	tokens    *tokenSource
	users     []User
	pages     *template.Template
	stylesURL string

	idp      *authServer
	oauth    *authServer
	jwt      *jwtSigner
	calendar *calendar
	handler  http.Handler
}

//go:embed templates/*.html assets/demo.css
var files embed.FS

// New builds the demo servers. It fails on an unusable configuration
// (malformed base URL, a client without an id, secret or valid redirect
// URI, a duplicate client id) so a bad seed shows at start.
func New(opts Options) (*Server, error) {
	base, err := parseBaseURL(opts.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	s := &Server{
		base:     base,
		basePath: strings.TrimSuffix(base.Path, "/"),
		now:      opts.Clock,
		logger:   opts.Logger,
		users:    demoUsers(),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	s.tokens = &tokenSource{r: rnd}
	accessTTL := opts.AccessTokenTTL
	if accessTTL <= 0 {
		accessTTL = DefaultAccessTokenTTL
	}
	refreshTTL := opts.RefreshTokenTTL
	if refreshTTL <= 0 {
		refreshTTL = DefaultRefreshTokenTTL
	}

	key := opts.SigningKey
	if key == nil {
		if key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, fmt.Errorf("demo: generate signing key: %w", err)
		}
	}
	if s.jwt, err = newJWTSigner(key); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}

	if s.pages, err = template.ParseFS(files, "templates/*.html"); err != nil {
		return nil, fmt.Errorf("demo: parse templates: %w", err)
	}
	s.stylesURL = s.basePath + "/assets/demo.css"

	idpClients, err := clientMap(opts.IDPClients)
	if err != nil {
		return nil, fmt.Errorf("demo: identity provider clients: %w", err)
	}
	oauthClients, err := clientMap(opts.OAuthClients)
	if err != nil {
		return nil, fmt.Errorf("demo: OAuth provider clients: %w", err)
	}
	s.idp = &authServer{
		srv:   s,
		kind:  kindIDP,
		title: "Demo Identity",
		path:  "/idp",
		scopes: []scopeInfo{
			{Name: "openid", Description: "Sign you in"},
			{Name: "profile", Description: "See your name"},
			{Name: "email", Description: "See your email address"},
			{Name: "groups", Description: "See your groups"},
			{Name: "offline_access", Description: "Stay signed in"},
		},
		requiredScope: "openid",
		clients:       idpClients,
		accessTTL:     accessTTL,
		refreshTTL:    refreshTTL,
		store:         newStore(),
	}
	s.oauth = &authServer{
		srv:   s,
		kind:  kindOAuth,
		title: "Demo Calendar",
		path:  "/oauth",
		scopes: []scopeInfo{
			{Name: ScopeCalendarRead, Description: "See the events on your calendar"},
			{Name: ScopeCalendarWrite, Description: "Add events to your calendar"},
		},
		defaultScopes: []string{ScopeCalendarRead},
		consent:       true,
		clients:       oauthClients,
		accessTTL:     accessTTL,
		refreshTTL:    refreshTTL,
		store:         newStore(),
	}
	s.calendar = newCalendar(s.users, s.now())
	s.handler = s.routes()
	return s, nil
}

// Handler serves the demo servers with paths relative to the mount point:
// /idp/…, /oauth/…, /api/…, /assets/…. Mount it with the prefix stripped,
// e.g. mux.Handle("/demo/", http.StripPrefix("/demo", srv.Handler())).
func (s *Server) Handler() http.Handler { return s.handler }

// Users returns the demo users.
func (s *Server) Users() []User {
	out := make([]User, len(s.users))
	for i, u := range s.users {
		u.Groups = slices.Clone(u.Groups)
		out[i] = u
	}
	return out
}

// Issuer is the identity provider's issuer URL (BaseURL + "/idp"); its
// discovery document is at Issuer + "/.well-known/openid-configuration".
func (s *Server) Issuer() string { return s.idp.baseURL() }

// OAuthEndpoints returns the OAuth provider's endpoint URLs and the API
// location.
func (s *Server) OAuthEndpoints() OAuthEndpoints {
	o := s.oauth.baseURL()
	return OAuthEndpoints{
		AuthorizeURL: o + "/authorize",
		TokenURL:     o + "/token",
		UserinfoURL:  o + "/userinfo",
		RevokeURL:    o + "/revoke",
		APIBaseURL:   s.externalURL("/api"),
		APIHost:      s.base.Host,
		Scopes:       []string{ScopeCalendarRead, ScopeCalendarWrite},
	}
}

// SigningKey returns the identity provider's signing key, so a caller that
// let New generate one can persist it for the next start.
func (s *Server) SigningKey() *rsa.PrivateKey { return s.jwt.key }

// externalURL is the absolute URL of a path relative to the mount point.
func (s *Server) externalURL(p string) string {
	return s.base.Scheme + "://" + s.base.Host + s.basePath + p
}

func (s *Server) userByName(name string) (User, bool) {
	for _, u := range s.users {
		if u.Username == name {
			return u, true
		}
	}
	return User{}, false
}

func parseBaseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("BaseURL is required")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("BaseURL %q must be an absolute http(s) URL without query, fragment or credentials", raw)
	}
	return u, nil
}

// clientMap validates the registered clients and indexes them by id.
func clientMap(clients []Client) (map[string]Client, error) {
	out := make(map[string]Client, len(clients))
	for _, c := range clients {
		if c.ID == "" || c.Secret == "" {
			return nil, fmt.Errorf("client %q: id and secret are required", c.ID)
		}
		if _, dup := out[c.ID]; dup {
			return nil, fmt.Errorf("client %q registered twice", c.ID)
		}
		if len(c.RedirectURIs) == 0 {
			return nil, fmt.Errorf("client %q: at least one redirect URI is required", c.ID)
		}
		for _, r := range c.RedirectURIs {
			u, err := url.Parse(r)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
				return nil, fmt.Errorf("client %q: redirect URI %q must be an absolute http(s) URL without a fragment", c.ID, r)
			}
		}
		c.RedirectURIs = slices.Clone(c.RedirectURIs)
		out[c.ID] = c
	}
	return out, nil
}
