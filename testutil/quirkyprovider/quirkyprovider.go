// Package quirkyprovider is a fake OAuth 2.0 provider on a loopback port for
// Latchkey's token refresh and revocation tests. It behaves like a strict
// real provider by default — rotating refresh tokens with reuse detection
// that revokes the whole token family, an RFC 7009 revocation endpoint, an
// API that answers 401 for expired tokens — and each test can switch on the
// quirks real providers have: no refresh_token in a response, expires_in as
// a string, missing or absurd, invalid_grant, invalid_client, 429 with
// Retry-After, 5xx, and a slow token endpoint that blocks until released.
//
//	p := quirkyprovider.New(t)
//	tok := p.IssueInitial("octocat")          // a token pair, no browser
//	p.SetExpiresIn(quirkyprovider.ExpiresString)
//	p.FailNext(1, quirkyprovider.RateLimited("30"))
//	… exercise Latchkey against p.TokenURL(), p.APIURL() …
//	if p.TokenCallsFor("refresh_token") != 1 { … }
//
// It is imported only by tests. Tokens are kept in plaintext: this is a
// fixture, and tests compare them.
package quirkyprovider

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// Defaults of a new provider.
const (
	DefaultClientID     = "quirky-client"
	DefaultClientSecret = "quirky-secret"
	DefaultSubject      = "user-1"
	DefaultAccessTTL    = time.Hour
	DefaultScope        = "read write"
)

// tenYears is the "absurd" expires_in: larger than any sane token lifetime,
// still a valid JSON number.
const tenYears = 10 * 365 * 24 * time.Hour

// ExpiresIn selects how token responses write expires_in. It changes only
// the response field: the token's real lifetime (SetAccessTTL) is what the
// API endpoint enforces.
type ExpiresIn int

const (
	// ExpiresNumber writes the lifetime in seconds as a JSON number (default).
	ExpiresNumber ExpiresIn = iota
	// ExpiresString writes it as a JSON string, "3600" (PayPal does this).
	ExpiresString
	// ExpiresMissing leaves expires_in out.
	ExpiresMissing
	// ExpiresZero writes 0.
	ExpiresZero
	// ExpiresNegative writes minus the lifetime, e.g. -3600.
	ExpiresNegative
	// ExpiresTenYears writes ten years in seconds.
	ExpiresTenYears
)

// Fault is an error answer of the token endpoint, injected with SetFault or
// FailNext. It replaces the normal processing of the request entirely.
type Fault struct {
	// Status is the HTTP status.
	Status int
	// Error is the OAuth error code for a JSON body
	// {"error": …, "error_description": …}; empty sends a plain-text body,
	// the way a proxy or an overloaded provider answers.
	Error       string
	Description string
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter string
}

// InvalidGrant is a 400 invalid_grant: the refresh token is dead (revoked
// by the user, expired, rotated elsewhere).
func InvalidGrant() Fault {
	return Fault{Status: http.StatusBadRequest, Error: "invalid_grant", Description: "The refresh token is invalid."}
}

// InvalidClient is a 401 invalid_client: the OAuth app's credentials no
// longer work (secret rotated, app deleted).
func InvalidClient() Fault {
	return Fault{Status: http.StatusUnauthorized, Error: "invalid_client", Description: "Client authentication failed."}
}

// RateLimited is a 429 with Retry-After (seconds or an HTTP date).
func RateLimited(retryAfter string) Fault {
	return Fault{Status: http.StatusTooManyRequests, RetryAfter: retryAfter}
}

// ServerError is a 5xx with a plain-text body.
func ServerError(status int) Fault { return Fault{Status: status} }

// Tokens is a token pair the provider issued.
type Tokens struct {
	AccessToken  string
	RefreshToken string
	// ExpiresAt is when the access token really expires (provider clock).
	ExpiresAt time.Time
	Subject   string
	Scope     string
}

// TokenRequest is one request the token endpoint received, for assertions
// about what the client sent.
type TokenRequest struct {
	GrantType string
	// ClientAuth is how the client authenticated: "basic", "post" or "none".
	ClientAuth string
	// Form is the request body without client_secret.
	Form url.Values
}

// Option configures New.
type Option func(*config)

type config struct {
	clientID, clientSecret string
	now                    func() time.Time
	tls                    bool
	accessTTL              time.Duration
}

// WithClient sets the client credentials the provider accepts.
func WithClient(id, secret string) Option {
	return func(c *config) { c.clientID, c.clientSecret = id, secret }
}

// WithClock sets the provider's clock (token expiry).
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithTLS serves https with httptest's certificate; use Client().
func WithTLS() Option { return func(c *config) { c.tls = true } }

// WithAccessTTL sets the access-token lifetime (also SetAccessTTL).
func WithAccessTTL(d time.Duration) Option { return func(c *config) { c.accessTTL = d } }

type family struct {
	subject string
	scope   string
	revoked bool
}

type refreshToken struct {
	fam        *family
	rotatedOut bool
}

type accessToken struct {
	fam     *family
	expires time.Time
}

type authCode struct {
	subject, redirectURI, challenge, scope string
	used                                   bool
}

// Provider is a running fake provider. It is safe for concurrent use.
type Provider struct {
	srv          *httptest.Server
	clientID     string
	clientSecret string
	now          func() time.Time
	done         chan struct{} // closed by Close: releases blocked requests
	closeOnce    sync.Once

	mu             sync.Mutex
	accessTTL      time.Duration
	expiresIn      ExpiresIn
	rotate         bool
	reuseDetection bool
	omitRefresh    bool
	fault          *Fault
	faultLeft      int // 0: until cleared
	delay          time.Duration
	gate           <-chan struct{}
	refresh        map[string]*refreshToken
	access         map[string]*accessToken
	codes          map[string]*authCode
	revoked        []string
	requests       []TokenRequest
	byGrant        map[string]int64

	tokenCalls    atomic.Int64
	revokeCalls   atomic.Int64
	apiCalls      atomic.Int64
	reuseDetected atomic.Int64
	blocked       atomic.Int64
}

// New starts a provider that stops when the test ends.
func New(t testing.TB, opts ...Option) *Provider {
	t.Helper()
	c := config{clientID: DefaultClientID, clientSecret: DefaultClientSecret, now: time.Now, accessTTL: DefaultAccessTTL}
	for _, o := range opts {
		o(&c)
	}
	p := &Provider{
		clientID: c.clientID, clientSecret: c.clientSecret, now: c.now,
		done:      make(chan struct{}),
		accessTTL: c.accessTTL, rotate: true, reuseDetection: true,
		refresh: map[string]*refreshToken{}, access: map[string]*accessToken{},
		codes: map[string]*authCode{}, byGrant: map[string]int64{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", p.serveAuthorize)
	mux.HandleFunc("POST /token", p.serveToken)
	mux.HandleFunc("POST /revoke", p.serveRevoke)
	mux.HandleFunc("GET /userinfo", p.serveUserinfo)
	mux.HandleFunc("/api/", p.serveAPI)
	if c.tls {
		p.srv = httptest.NewTLSServer(mux)
	} else {
		p.srv = httptest.NewServer(mux)
	}
	t.Cleanup(p.Close)
	return p
}

// URL is the provider's base URL.
func (p *Provider) URL() string { return p.srv.URL }

// Client is an HTTP client that reaches the provider (and trusts its
// certificate under WithTLS).
func (p *Provider) Client() *http.Client { return p.srv.Client() }

// Close releases every blocked token request and stops the server. It is
// safe to call more than once.
func (p *Provider) Close() {
	p.closeOnce.Do(func() { close(p.done) })
	p.srv.Close()
}

// Endpoint URLs.
func (p *Provider) AuthorizeURL() string { return p.srv.URL + "/authorize" }
func (p *Provider) TokenURL() string     { return p.srv.URL + "/token" }
func (p *Provider) RevokeURL() string    { return p.srv.URL + "/revoke" }
func (p *Provider) UserinfoURL() string  { return p.srv.URL + "/userinfo" }

// APIURL is the root of the protected API: any path below it answers 200
// for a valid token and 401 otherwise.
func (p *Provider) APIURL() string { return p.srv.URL + "/api" }

// Endpoint is the provider as an oauth2.Endpoint.
func (p *Provider) Endpoint() oauth2.Endpoint {
	return oauth2.Endpoint{AuthURL: p.AuthorizeURL(), TokenURL: p.TokenURL()}
}

// ClientID and ClientSecret are the credentials the provider accepts.
func (p *Provider) ClientID() string     { return p.clientID }
func (p *Provider) ClientSecret() string { return p.clientSecret }

// ---- behaviour setters ----

// SetExpiresIn selects how responses write expires_in.
func (p *Provider) SetExpiresIn(m ExpiresIn) { p.with(func() { p.expiresIn = m }) }

// SetAccessTTL sets the real lifetime of access tokens issued from now on.
func (p *Provider) SetAccessTTL(d time.Duration) { p.with(func() { p.accessTTL = d }) }

// SetRotation turns refresh-token rotation on (default) or off. Off, a
// refresh answers with the same refresh token, which stays valid.
func (p *Provider) SetRotation(on bool) { p.with(func() { p.rotate = on }) }

// SetReuseDetection turns reuse detection on (default) or off. On, using a
// rotated-out refresh token revokes every token of its family; off, it is
// just invalid_grant.
func (p *Provider) SetReuseDetection(on bool) { p.with(func() { p.reuseDetection = on }) }

// SetOmitRefreshToken makes token responses carry no refresh_token. The
// refresh token the client used stays valid (nothing was rotated), so a
// client that keeps the old one keeps working.
func (p *Provider) SetOmitRefreshToken(on bool) { p.with(func() { p.omitRefresh = on }) }

// SetFault makes every token request fail with f until ClearFault.
func (p *Provider) SetFault(f Fault) { p.with(func() { p.fault, p.faultLeft = &f, 0 }) }

// FailNext makes the next n token requests fail with f, then behave again.
func (p *Provider) FailNext(n int, f Fault) {
	if n <= 0 {
		p.ClearFault()
		return
	}
	p.with(func() { p.fault, p.faultLeft = &f, n })
}

// ClearFault ends SetFault or FailNext.
func (p *Provider) ClearFault() { p.with(func() { p.fault, p.faultLeft = nil, 0 }) }

// SetTokenDelay makes the token endpoint wait d before answering (it gives
// up early when the client goes away).
func (p *Provider) SetTokenDelay(d time.Duration) { p.with(func() { p.delay = d }) }

// SetTokenGate makes every token request wait for a receive from gate
// before it is processed: send one value to release one request, close the
// channel to release all (and every later one). nil removes the gate for
// later requests. Requests are counted before they wait, and Blocked
// reports how many are waiting — for single-flight ("thundering herd")
// tests.
func (p *Provider) SetTokenGate(gate <-chan struct{}) { p.with(func() { p.gate = gate }) }

// ExpireAccessTokens makes every access token issued so far expired, as if
// their lifetime had passed; refresh tokens are untouched.
func (p *Provider) ExpireAccessTokens() {
	p.with(func() {
		past := p.now().Add(-time.Second)
		for _, a := range p.access {
			a.expires = past
		}
	})
}

// RevokeFamilyOf revokes, provider-side, the family of a refresh or access
// token — as when the user disconnects the app at the provider.
func (p *Provider) RevokeFamilyOf(token string) {
	p.with(func() {
		if f := p.familyOf(token); f != nil {
			f.revoked = true
		}
	})
}

// ---- observations ----

// TokenCalls counts requests that reached the token endpoint.
func (p *Provider) TokenCalls() int64 { return p.tokenCalls.Load() }

// TokenCallsFor counts token requests by grant_type ("refresh_token",
// "authorization_code"; "" for requests without one).
func (p *Provider) TokenCallsFor(grantType string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byGrant[grantType]
}

// TokenRequests returns the token requests received, oldest first.
func (p *Provider) TokenRequests() []TokenRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]TokenRequest, len(p.requests))
	for i, r := range p.requests {
		r.Form = cloneValues(r.Form)
		out[i] = r
	}
	return out
}

// Blocked is the number of token requests waiting at the gate.
func (p *Provider) Blocked() int64 { return p.blocked.Load() }

// AwaitBlocked waits until at least n token requests wait at the gate.
func (p *Provider) AwaitBlocked(ctx context.Context, n int64) error {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for p.Blocked() < n {
		select {
		case <-ctx.Done():
			return fmt.Errorf("quirkyprovider: %d of %d requests blocked: %w", p.Blocked(), n, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// ReuseDetected counts refresh requests that presented a rotated-out
// refresh token (whether or not reuse detection is on).
func (p *Provider) ReuseDetected() int64 { return p.reuseDetected.Load() }

// RevokeCalls counts requests to the revocation endpoint.
func (p *Provider) RevokeCalls() int64 { return p.revokeCalls.Load() }

// APICalls counts requests to the API.
func (p *Provider) APICalls() int64 { return p.apiCalls.Load() }

// Revoked returns the tokens revoked through the revocation endpoint, in
// order (each as the client sent it).
func (p *Provider) Revoked() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.revoked)
}

// WasRevoked reports whether token was sent to the revocation endpoint.
func (p *Provider) WasRevoked(token string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Contains(p.revoked, token)
}

// AccessTokenValid reports whether the API would accept token now.
func (p *Provider) AccessTokenValid(token string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.access[token]
	return a != nil && !a.fam.revoked && p.now().Before(a.expires)
}

// RefreshTokenValid reports whether a refresh with token would succeed
// (faults aside).
func (p *Provider) RefreshTokenValid(token string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.refresh[token]
	return r != nil && !r.fam.revoked && !r.rotatedOut
}

// ---- seeding ----

// IssueInitial creates a token pair for sub (DefaultSubject when empty) as
// if the user had just connected, without a browser or a token request.
func (p *Provider) IssueInitial(sub string) Tokens {
	if sub == "" {
		sub = DefaultSubject
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	f := &family{subject: sub, scope: DefaultScope}
	at, rt := p.newAccess(f), randomToken("rt_")
	p.refresh[rt] = &refreshToken{fam: f}
	return Tokens{AccessToken: at, RefreshToken: rt, ExpiresAt: p.access[at].expires, Subject: sub, Scope: f.scope}
}

// ---- handlers ----

// serveAuthorize approves at once, for sub = login_hint (or the default
// subject): the quirks live at the token endpoint, the consent screen is
// the demo server's business.
func (p *Provider) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || !redirect.IsAbs() || q.Get("client_id") != p.clientID {
		http.Error(w, "unknown client or bad redirect_uri", http.StatusBadRequest)
		return
	}
	back := redirect.Query()
	back.Set("state", q.Get("state"))
	if q.Get("response_type") != "code" {
		back.Set("error", "unsupported_response_type")
	} else if m := q.Get("code_challenge_method"); m != "" && m != "S256" {
		back.Set("error", "invalid_request")
	} else {
		sub := q.Get("login_hint")
		if sub == "" {
			sub = DefaultSubject
		}
		scope := q.Get("scope")
		if scope == "" {
			scope = DefaultScope
		}
		code := randomToken("code_")
		p.with(func() {
			p.codes[code] = &authCode{subject: sub, redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge"), scope: scope}
		})
		back.Set("code", code)
	}
	redirect.RawQuery = back.Encode()
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

func (p *Provider) serveToken(w http.ResponseWriter, r *http.Request) {
	p.tokenCalls.Add(1)
	w.Header().Set("Cache-Control", "no-store")
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "unreadable body")
		return
	}
	grant := r.PostForm.Get("grant_type")
	auth := "none"
	if _, _, ok := r.BasicAuth(); ok {
		auth = "basic"
	} else if r.PostForm.Has("client_secret") {
		auth = "post"
	}
	form := cloneValues(r.PostForm)
	form.Del("client_secret")
	p.with(func() {
		p.byGrant[grant]++
		p.requests = append(p.requests, TokenRequest{GrantType: grant, ClientAuth: auth, Form: form})
	})

	if !p.wait(r.Context()) {
		return
	}
	if f := p.takeFault(); f != nil {
		writeFault(w, *f)
		return
	}
	if !p.clientOK(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="quirky"`)
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	switch grant {
	case "refresh_token":
		p.refreshGrant(w, r.PostForm.Get("refresh_token"))
	case "authorization_code":
		p.codeGrant(w, r.PostForm)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "")
	}
}

// wait applies the gate and the delay; false means the client went away
// or the provider is closing.
func (p *Provider) wait(ctx context.Context) bool {
	p.mu.Lock()
	gate, delay := p.gate, p.delay
	p.mu.Unlock()
	if gate != nil {
		p.blocked.Add(1)
		select {
		case <-gate:
		case <-ctx.Done():
			p.blocked.Add(-1)
			return false
		case <-p.done:
			p.blocked.Add(-1)
			return false
		}
		p.blocked.Add(-1)
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return false
		case <-p.done:
			return false
		}
	}
	return true
}

func (p *Provider) takeFault() *Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fault == nil {
		return nil
	}
	f := *p.fault
	if p.faultLeft > 0 {
		p.faultLeft--
		if p.faultLeft == 0 {
			p.fault = nil
		}
	}
	return &f
}

func (p *Provider) clientOK(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if ok {
		var err error
		if id, err = url.QueryUnescape(id); err != nil {
			return false
		}
		if secret, err = url.QueryUnescape(secret); err != nil {
			return false
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	return id == p.clientID && subtle.ConstantTimeCompare([]byte(secret), []byte(p.clientSecret)) == 1
}

func (p *Provider) refreshGrant(w http.ResponseWriter, token string) {
	p.mu.Lock()
	rt := p.refresh[token]
	switch {
	case rt == nil:
		p.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown refresh token")
		return
	case rt.rotatedOut:
		// Counted even when the family is already revoked: a herd of
		// refreshes with one token shows up as herd-1 reuses.
		p.reuseDetected.Add(1)
		if p.reuseDetection {
			rt.fam.revoked = true
		}
		p.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "refresh token already used")
		return
	case rt.fam.revoked:
		p.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "refresh token revoked")
		return
	}
	at := p.newAccess(rt.fam)
	next := token
	if p.rotate && !p.omitRefresh {
		next = randomToken("rt_")
		p.refresh[next] = &refreshToken{fam: rt.fam}
		rt.rotatedOut = true
	}
	body := p.tokenBody(at, next, rt.fam.scope)
	p.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

func (p *Provider) codeGrant(w http.ResponseWriter, form url.Values) {
	p.mu.Lock()
	c := p.codes[form.Get("code")]
	if c == nil || c.used || c.redirectURI != form.Get("redirect_uri") ||
		(c.challenge != "" && !pkceOK(form.Get("code_verifier"), c.challenge)) {
		if c != nil {
			c.used = true
		}
		p.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "bad code, redirect_uri or code_verifier")
		return
	}
	c.used = true
	f := &family{subject: c.subject, scope: c.scope}
	at, rt := p.newAccess(f), ""
	if !p.omitRefresh {
		rt = randomToken("rt_")
		p.refresh[rt] = &refreshToken{fam: f}
	}
	body := p.tokenBody(at, rt, f.scope)
	p.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

// tokenBody builds the response with the configured quirks. Callers hold mu.
func (p *Provider) tokenBody(at, rt, scope string) map[string]any {
	body := map[string]any{"access_token": at, "token_type": "bearer", "scope": scope}
	if rt != "" && !p.omitRefresh {
		body["refresh_token"] = rt
	}
	secs := int64(p.accessTTL / time.Second)
	switch p.expiresIn {
	case ExpiresNumber:
		body["expires_in"] = secs
	case ExpiresString:
		body["expires_in"] = strconv.FormatInt(secs, 10)
	case ExpiresMissing:
	case ExpiresZero:
		body["expires_in"] = 0
	case ExpiresNegative:
		body["expires_in"] = -secs
	case ExpiresTenYears:
		body["expires_in"] = int64(tenYears / time.Second)
	}
	return body
}

// newAccess issues an access token of the family. Callers hold mu.
func (p *Provider) newAccess(f *family) string {
	at := randomToken("at_")
	p.access[at] = &accessToken{fam: f, expires: p.now().Add(p.accessTTL)}
	return at
}

// familyOf finds the family of a refresh or access token. Callers hold mu.
func (p *Provider) familyOf(token string) *family {
	if r := p.refresh[token]; r != nil {
		return r.fam
	}
	if a := p.access[token]; a != nil {
		return a.fam
	}
	return nil
}

// serveRevoke is RFC 7009: client authentication, then 200 whether or not
// the token was known. Revoking either token of a pair revokes the family.
func (p *Provider) serveRevoke(w http.ResponseWriter, r *http.Request) {
	p.revokeCalls.Add(1)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "unreadable body")
		return
	}
	if !p.clientOK(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="quirky"`)
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	p.with(func() {
		p.revoked = append(p.revoked, tok)
		if f := p.familyOf(tok); f != nil {
			f.revoked = true
		}
	})
	w.WriteHeader(http.StatusOK)
}

// bearer validates the request's access token, answering 401 itself.
func (p *Provider) bearer(w http.ResponseWriter, r *http.Request) (string, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="quirky"`)
		oauthError(w, http.StatusUnauthorized, "unauthorized", "missing bearer token")
		return "", false
	}
	p.mu.Lock()
	a := p.access[tok]
	var reason, sub string
	switch {
	case a == nil:
		reason = "unknown token"
	case a.fam.revoked:
		reason = "token revoked"
	case !p.now().Before(a.expires):
		reason = "token expired"
	default:
		sub = a.fam.subject
	}
	p.mu.Unlock()
	if reason != "" {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="quirky", error="invalid_token", error_description=%q`, reason))
		oauthError(w, http.StatusUnauthorized, "invalid_token", reason)
		return "", false
	}
	return sub, true
}

func (p *Provider) serveUserinfo(w http.ResponseWriter, r *http.Request) {
	sub, ok := p.bearer(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": sub, "email": sub + "@example.com", "name": sub})
}

// serveAPI answers any method and path under /api/ with who the token
// belongs to and what was asked, so proxy tests can check both.
func (p *Provider) serveAPI(w http.ResponseWriter, r *http.Request) {
	p.apiCalls.Add(1)
	sub, ok := p.bearer(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"sub": sub, "method": r.Method, "path": r.URL.Path})
}

// ---- helpers ----

func (p *Provider) with(fn func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fn()
}

func writeFault(w http.ResponseWriter, f Fault) {
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	if f.Error == "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(f.Status)
		_, _ = fmt.Fprintf(w, "%d %s\n", f.Status, http.StatusText(f.Status))
		return
	}
	if f.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="quirky"`)
	}
	oauthError(w, f.Status, f.Error, f.Description)
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	body := map[string]string{"error": code}
	if desc != "" {
		body["error_description"] = desc
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func pkceOK(verifier, challenge string) bool {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:]) == challenge
}

// randomToken returns prefix and 128 random bits (rand.Text never fails).
func randomToken(prefix string) string {
	return prefix + rand.Text()
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}
