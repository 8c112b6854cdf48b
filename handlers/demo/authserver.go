package demo

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// serverKind tells the two authorization servers apart where they differ:
// the identity provider issues JWTs (and ID tokens) without a consent step;
// the OAuth provider issues opaque tokens after consent.
type serverKind int

const (
	kindIDP serverKind = iota + 1
	kindOAuth
)

func (k serverKind) String() string {
	if k == kindIDP {
		return "idp"
	}
	return "oauth"
}

// scopeInfo is a scope and how the consent page describes it.
type scopeInfo struct {
	Name        string
	Description string
}

// Limits on request sizes and parameter lengths: generous for any honest
// client, small enough that nobody fills the demo's memory.
const (
	maxFormBytes    = 64 << 10
	maxStateLen     = 1024
	maxNonceLen     = 512
	maxTokenLen     = 4096
	challengeLength = 43 // base64url of a SHA-256 digest, unpadded
)

// authServer is the authorization-server half shared by the identity
// provider and the OAuth provider: authorize, token, revoke.
type authServer struct {
	srv           *Server
	kind          serverKind
	title         string
	path          string // relative to the mount point: "/idp", "/oauth"
	scopes        []scopeInfo
	requiredScope string   // must be requested ("openid" for the IdP)
	defaultScopes []string // used when the request names none
	consent       bool
	clients       map[string]Client
	accessTTL     time.Duration
	refreshTTL    time.Duration
	store         *store
}

// baseURL is the server's external URL; for the IdP it is the issuer.
func (a *authServer) baseURL() string { return a.srv.externalURL(a.path) }

func (a *authServer) log(r *http.Request, msg string, attrs ...slog.Attr) {
	attrs = append([]slog.Attr{slog.String("server", a.kind.String())}, attrs...)
	a.srv.logger.LogAttrs(r.Context(), slog.LevelInfo, msg, attrs...)
}

// ---- authorization endpoint ----

// authzRequest is an authorization request that passed validation.
type authzRequest struct {
	client      Client
	redirectURI string
	state       string
	challenge   string
	nonce       string
	scopes      []string
}

// hiddenFields carries the validated request through the login and consent
// forms; every POST re-validates it from scratch.
func (q authzRequest) hiddenFields() []hiddenField {
	f := []hiddenField{
		{"response_type", "code"},
		{"client_id", q.client.ID},
		{"redirect_uri", q.redirectURI},
		{"scope", strings.Join(q.scopes, " ")},
		{"state", q.state},
		{"code_challenge", q.challenge},
		{"code_challenge_method", "S256"},
	}
	if q.nonce != "" {
		f = append(f, hiddenField{"nonce", q.nonce})
	}
	return f
}

// authzError is a failed authorization request. Until the client and its
// redirect URI are known good the error is shown on a page (sending it to an
// unverified redirect URI would make the server an open redirector);
// afterwards it goes back to the client (RFC 6749 §4.1.2.1).
type authzError struct {
	onPage      bool
	code        string
	description string
	redirectURI string
	state       string
}

// authorize serves the login page (GET), and on POST either the consent page
// or the redirect back to the client with a code or an error.
func (a *authServer) authorize(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	params := r.URL.Query()
	if r.Method == http.MethodPost {
		if !isFormContent(r) {
			a.srv.errorPage(w, http.StatusUnsupportedMediaType, "invalid_request", "The form must be sent form-encoded.")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			a.srv.errorPage(w, http.StatusBadRequest, "invalid_request", "The form could not be read.")
			return
		}
		// Only the body counts on POST, so a query string cannot smuggle a
		// second value past the duplicate check.
		params = r.PostForm
	}
	q, aerr := a.parseAuthorize(params)
	if aerr != nil {
		if aerr.onPage {
			a.srv.errorPage(w, http.StatusBadRequest, aerr.code, aerr.description)
			return
		}
		a.redirectError(w, r, aerr.redirectURI, aerr.state, aerr.code, aerr.description)
		return
	}
	if r.Method != http.MethodPost {
		a.srv.renderLogin(w, r, a, q)
		return
	}

	if !a.srv.checkCSRF(r, params) {
		a.srv.errorPage(w, http.StatusForbidden, "invalid_request",
			"This form expired or was sent from another site. Start again from the application.")
		return
	}
	name, err := one(params, "user")
	if err != nil || name == "" {
		a.srv.errorPage(w, http.StatusBadRequest, "invalid_request", "Pick a demo user.")
		return
	}
	user, ok := a.srv.userByName(name)
	if !ok {
		a.srv.errorPage(w, http.StatusBadRequest, "invalid_request", "There is no such demo user.")
		return
	}
	if !a.consent {
		a.issueCode(w, r, q, user)
		return
	}
	decision, err := one(params, "decision")
	if err != nil {
		a.srv.errorPage(w, http.StatusBadRequest, "invalid_request", "The decision is ambiguous.")
		return
	}
	switch decision {
	case "":
		a.srv.renderConsent(w, r, a, q, user)
	case "approve":
		a.issueCode(w, r, q, user)
	case "deny":
		a.log(r, "demo: authorization denied", slog.String("client_id", q.client.ID), slog.String("user", user.Username))
		a.redirectError(w, r, q.redirectURI, q.state, "access_denied", "The user denied the request.")
	default:
		a.srv.errorPage(w, http.StatusBadRequest, "invalid_request", "Unknown decision.")
	}
}

// parseAuthorize validates an authorization request strictly: every
// parameter at most once (RFC 6749 §3.1), a registered client, an exactly
// registered redirect URI, response_type=code, PKCE with S256, a state, and
// known scopes.
func (a *authServer) parseAuthorize(p url.Values) (authzRequest, *authzError) {
	page := func(code, desc string) *authzError { return &authzError{onPage: true, code: code, description: desc} }

	clientID, err := one(p, "client_id")
	if err != nil || clientID == "" {
		return authzRequest{}, page("invalid_request", "client_id is missing or repeated.")
	}
	client, ok := a.clients[clientID]
	if !ok {
		return authzRequest{}, page("invalid_client", "This application is not registered with "+a.title+".")
	}
	redirectURI, err := one(p, "redirect_uri")
	if err != nil || redirectURI == "" {
		return authzRequest{}, page("invalid_request", "redirect_uri is missing or repeated.")
	}
	if !slices.Contains(client.RedirectURIs, redirectURI) {
		return authzRequest{}, page("invalid_request", "redirect_uri is not registered for this application.")
	}

	// From here on errors go back to the (now trusted) redirect URI.
	back := func(state, code, desc string) *authzError {
		return &authzError{code: code, description: desc, redirectURI: redirectURI, state: state}
	}
	state, err := one(p, "state")
	if err != nil {
		return authzRequest{}, back("", "invalid_request", "state is repeated.")
	}
	// The demo insists on state: a client that forgets it has no CSRF
	// protection on its callback, and Latchkey must never be that client.
	if state == "" {
		return authzRequest{}, back("", "invalid_request", "state is required.")
	}
	if len(state) > maxStateLen {
		return authzRequest{}, back("", "invalid_request", "state is too long.")
	}
	q := authzRequest{client: client, redirectURI: redirectURI, state: state}

	for _, name := range []string{"response_type", "code_challenge", "code_challenge_method", "scope", "nonce", "response_mode"} {
		if len(p[name]) > 1 {
			return authzRequest{}, back(state, "invalid_request", name+" is repeated.")
		}
	}
	switch rt := p.Get("response_type"); rt {
	case "code":
	case "":
		return authzRequest{}, back(state, "invalid_request", "response_type is required.")
	default:
		return authzRequest{}, back(state, "unsupported_response_type", "Only response_type=code is supported.")
	}
	if rm := p.Get("response_mode"); rm != "" && rm != "query" {
		return authzRequest{}, back(state, "invalid_request", "Only response_mode=query is supported.")
	}
	switch m := p.Get("code_challenge_method"); m {
	case "S256":
	case "":
		return authzRequest{}, back(state, "invalid_request", "PKCE is required: send code_challenge with code_challenge_method=S256.")
	default:
		return authzRequest{}, back(state, "invalid_request", "Only code_challenge_method=S256 is supported.")
	}
	q.challenge = p.Get("code_challenge")
	if q.challenge == "" {
		return authzRequest{}, back(state, "invalid_request", "PKCE is required: code_challenge is missing.")
	}
	if !validChallenge(q.challenge) {
		return authzRequest{}, back(state, "invalid_request", "code_challenge must be the base64url SHA-256 of the verifier.")
	}
	scopes, bad := a.parseScopes(p.Get("scope"))
	if bad != "" {
		return authzRequest{}, back(state, "invalid_scope", bad)
	}
	q.scopes = scopes
	if a.kind == kindIDP {
		q.nonce = p.Get("nonce")
		if len(q.nonce) > maxNonceLen {
			return authzRequest{}, back(state, "invalid_request", "nonce is too long.")
		}
	}
	return q, nil
}

// parseScopes returns the requested scopes in the server's canonical order,
// or a description of what is wrong with them.
func (a *authServer) parseScopes(raw string) ([]string, string) {
	requested := strings.Fields(raw)
	if len(requested) == 0 {
		requested = a.defaultScopes
	}
	var out []string
	for _, s := range a.scopes {
		if slices.Contains(requested, s.Name) {
			out = append(out, s.Name)
		}
	}
	for _, r := range requested {
		if !slices.Contains(out, r) {
			return nil, "Unknown scope " + quoteShort(r) + "."
		}
	}
	if a.requiredScope != "" && !slices.Contains(out, a.requiredScope) {
		return nil, "The " + a.requiredScope + " scope is required."
	}
	if len(out) == 0 {
		return nil, "No scope requested."
	}
	return out, ""
}

// issueCode stores a fresh single-use code and sends the browser back to
// the client with it.
func (a *authServer) issueCode(w http.ResponseWriter, r *http.Request, q authzRequest, user User) {
	code, err := a.srv.tokens.newToken(prefixCode)
	if err != nil {
		a.srv.errorPage(w, http.StatusInternalServerError, "server_error", "Could not issue a code.")
		return
	}
	now := a.srv.now()
	st := a.store
	st.mu.Lock()
	st.sweep(now)
	st.codes[hashToken(code)] = &authCode{
		clientID: q.client.ID, redirectURI: q.redirectURI, challenge: q.challenge, nonce: q.nonce,
		user: user, scopes: q.scopes, authTime: now, expires: now.Add(codeTTL),
	}
	st.mu.Unlock()
	a.log(r, "demo: authorization code issued", slog.String("client_id", q.client.ID), slog.String("user", user.Username))
	a.redirect(w, r, q.redirectURI, url.Values{"code": {code}, "state": {q.state}})
}

func (a *authServer) redirectError(w http.ResponseWriter, r *http.Request, redirectURI, state, code, desc string) {
	v := url.Values{"error": {code}, "error_description": {desc}}
	if state != "" {
		v.Set("state", state)
	}
	a.redirect(w, r, redirectURI, v)
}

// redirect sends the browser to the client's redirect URI with params added
// to whatever query it was registered with, plus iss (RFC 9207) so a client
// talking to several servers can tell which one answered.
func (a *authServer) redirect(w http.ResponseWriter, r *http.Request, redirectURI string, params url.Values) {
	u, err := url.Parse(redirectURI) // validated by New
	if err != nil {
		a.srv.errorPage(w, http.StatusInternalServerError, "server_error", "The redirect URI is broken.")
		return
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	q.Set("iss", a.baseURL())
	u.RawQuery = q.Encode()
	status := http.StatusFound
	if r.Method == http.MethodPost {
		// 303 makes the browser follow with GET, never re-POST the form.
		status = http.StatusSeeOther
	}
	http.Redirect(w, r, u.String(), status)
}

// ---- PKCE and parameter helpers ----

func validChallenge(c string) bool {
	if len(c) != challengeLength {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	return err == nil && len(b) == sha256.Size
}

// validVerifier checks RFC 7636 §4.1: 43–128 unreserved characters.
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

func verifierMatches(verifier, challenge string) bool {
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	return subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) == 1
}

var errRepeated = errors.New("parameter repeated")

// one returns a parameter that may appear at most once.
func one(v url.Values, name string) (string, error) {
	switch vs := v[name]; len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	default:
		return "", errRepeated
	}
}

// quoteShort quotes a client-supplied value for an error description,
// cut short so an error page cannot be made to echo a novel.
func quoteShort(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return strconv.Quote(s)
}
