// Package handlers is Latchkey's HTTP edge: routing, middleware, decoding,
// error mapping and rendering of views. Echo stays inside this package; the
// rest of the server sees only an http.Handler.
package handlers

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/latchkey/latchkey/handlers/requestid"
	"github.com/latchkey/latchkey/static"
)

// HeaderRequestID is sent on every response (DESIGN §4.5) so a user, an SDK
// or an operator can quote it and find the matching log lines.
const HeaderRequestID = "Latchkey-Request-Id"

// defaultDocsURL is where the landing page sends readers when the operator did
// not configure their own documentation mirror.
const defaultDocsURL = "https://github.com/latchkey/latchkey/tree/main/docs"

// Readiness reports whether this replica can take traffic (database reachable,
// schema migrated, keeper usable). Ready returns nil when it can. Only an
// error built with NotReady (or any error with a `Reason() string` method)
// shows its reason on /readyz; the text of any other error is only logged.
type Readiness interface {
	Ready(ctx context.Context) error
}

// Deps is everything the HTTP edge needs, passed in once at start.
type Deps struct {
	// Logger receives request and error logs. Nil discards them.
	Logger *slog.Logger
	// Readiness backs /readyz. Nil means the process is ready whenever it is
	// alive, which suits tests and tools that have no dependencies.
	Readiness Readiness
	// PublicURL is the external base URL (LATCHKEY_PUBLIC_URL). When it is
	// https, cookies are Secure and HSTS is sent, whatever Secure says.
	PublicURL string
	// Secure forces Secure cookies and HSTS, for TLS terminated in front of a
	// public URL that is not written as https.
	Secure bool
	// DocsURL is linked from the landing page. Empty uses the project docs.
	DocsURL string
	// Assets are the files served under /static/. Nil uses the embedded
	// static.FS; tests may pass their own.
	Assets fs.FS

	// The signed SDK API. Its routes are registered only when SDKAuth and
	// Audit are set; an endpoint whose own service is missing answers 500.
	SDKAuth SDKAuthenticator
	Audit   AuditRecorder
	Agents  SDKAgents
	APIKeys SDKKeys
	// Grants, Identity, Secrets and Proxy back the credential endpoints
	// (proxy, token, grants, managed-secret grants); those routes exist only
	// when all four are set.
	Grants   SDKGrants
	Identity SDKIdentity
	Secrets  SDKSecrets
	Proxy    SDKProxy
	// Connect backs the Connect popup (browser routes under /sdk/oauth/)
	// and the SDK's Connect session endpoints; none of them exist without
	// it.
	Connect ConnectService
	// Demo, when set (latchkey serve --demo only), is served under /demo/:
	// the demo identity provider, OAuth provider, calendar API and host
	// app. It sets its own content security policy.
	Demo http.Handler
}

// Server is the HTTP edge. It implements http.Handler.
type Server struct {
	echo      *echo.Echo
	logger    *slog.Logger
	readiness Readiness
	// readyTimeout bounds each readiness check; tests shorten it.
	readyTimeout time.Duration
	publicURL    *url.URL
	secure       bool
	docsURL      string
	assets       *assetStore
	// The asset URLs are computed once: they carry the content hash
	// hash that lets browsers cache them for a year.
	stylesheetURL string
	scriptURL     string
	iconURL       string

	sdkAuth  SDKAuthenticator
	audit    AuditRecorder
	agents   SDKAgents
	apiKeys  SDKKeys
	grants   SDKGrants
	identity SDKIdentity
	secrets  SDKSecrets
	proxy    SDKProxy

	connect ConnectService
	demo    http.Handler
	// connectScriptURL is the popup's own script (static/js/connect-popup.js).
	connectScriptURL string
}

// New builds the server with all routes registered. It fails when the
// configuration is unusable (a malformed public URL, missing built assets),
// so a broken build is caught at start rather than on the first request.
func New(deps Deps) (*Server, error) {
	s := &Server{
		logger:       deps.Logger,
		readiness:    deps.Readiness,
		readyTimeout: defaultReadyTimeout,
		secure:       deps.Secure,
		docsURL:      deps.DocsURL,
		sdkAuth:      deps.SDKAuth,
		audit:        deps.Audit,
		agents:       deps.Agents,
		apiKeys:      deps.APIKeys,
		grants:       deps.Grants,
		identity:     deps.Identity,
		secrets:      deps.Secrets,
		proxy:        deps.Proxy,
		demo:         deps.Demo,
		connect:      deps.Connect,
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.readiness == nil {
		s.readiness = alwaysReady{}
	}
	if s.docsURL == "" {
		s.docsURL = defaultDocsURL
	}
	if deps.PublicURL != "" {
		u, err := url.Parse(deps.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("handlers: public URL %q must be an absolute http or https URL", deps.PublicURL)
		}
		s.publicURL = u
		if u.Scheme == "https" {
			s.secure = true
		}
	}

	assetFS := deps.Assets
	if assetFS == nil {
		assetFS = static.FS
	}
	assets, err := loadAssets(assetFS)
	if err != nil {
		return nil, fmt.Errorf("handlers: %w", err)
	}
	s.assets = assets
	if s.stylesheetURL, err = assets.url(stylesheetAsset); err != nil {
		return nil, fmt.Errorf("handlers: %w", err)
	}
	if s.scriptURL, err = assets.url(scriptAsset); err != nil {
		return nil, fmt.Errorf("handlers: %w", err)
	}
	if s.iconURL, err = assets.url(iconAsset); err != nil {
		return nil, fmt.Errorf("handlers: %w", err)
	}
	if s.connect != nil {
		if s.connectScriptURL, err = assets.url(connectScriptAsset); err != nil {
			return nil, fmt.Errorf("handlers: %w", err)
		}
	}

	s.echo = echo.NewWithConfig(echo.Config{
		Logger:           s.logger,
		HTTPErrorHandler: s.handleError,
		// The default router would let a second registration of the same
		// method and path silently replace the first; refuse it instead.
		Router: echo.NewRouter(echo.RouterConfig{AllowOverwritingRoute: false}),
	})
	// Order matters: the id comes first so everything after it can log it;
	// security headers are set before any handler can fail; the logger sits
	// outside recovery so a panic is still logged with its final status.
	s.echo.Use(s.assignRequestID, s.setSecurityHeaders, s.logRequests, s.recoverPanics)

	if err := s.registerRoutes(); err != nil {
		return nil, fmt.Errorf("handlers: %w", err)
	}
	return s, nil
}

// ServeHTTP makes Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.echo.ServeHTTP(w, r)
}

// SecureCookies reports whether cookies must carry the Secure attribute.
func (s *Server) SecureCookies() bool {
	return s.secure
}

// RequestIDFrom returns the id of the request ctx belongs to, or "" outside a
// request. Packages that handlers import (services) should use
// requestid.From directly, which is the same function without the cycle.
func RequestIDFrom(ctx context.Context) string {
	return requestid.From(ctx)
}

// reverse returns the path of a named route, filling its parameters in order.
func (s *Server) reverse(name string, params ...any) (string, error) {
	p, err := s.echo.Router().Routes().Reverse(name, params...)
	if err != nil {
		return "", fmt.Errorf("reverse route %q: %w", name, err)
	}
	return p, nil
}

type alwaysReady struct{}

func (alwaysReady) Ready(context.Context) error { return nil }
