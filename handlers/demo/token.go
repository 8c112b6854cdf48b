package demo

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// tokenResponse is RFC 6749 §5.1 (plus id_token for the IdP).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope"`
	IDToken      string `json:"id_token,omitempty"`
}

// oauthError is an RFC 6749 §5.2 error response.
type oauthError struct {
	status      int
	code        string
	description string
	// basic asks for HTTP Basic in WWW-Authenticate, as §5.2 requires for
	// a 401 invalid_client.
	basic bool
}

func invalidRequest(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_request", description: desc}
}

func invalidGrant(desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_grant", description: desc}
}

func invalidClient(desc string) *oauthError {
	return &oauthError{status: http.StatusUnauthorized, code: "invalid_client", description: desc, basic: true}
}

func serverError() *oauthError {
	return &oauthError{status: http.StatusInternalServerError, code: "server_error", description: "The server could not issue tokens."}
}

func writeOAuthError(w http.ResponseWriter, e *oauthError) {
	if e.basic {
		w.Header().Set("WWW-Authenticate", `Basic realm="latchkey-demo", charset="UTF-8"`)
	}
	writeJSON(w, e.status, map[string]string{"error": e.code, "error_description": e.description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// readTokenForm reads a token or revocation request body strictly: POST,
// form-encoded, nothing in the query, every parameter at most once.
func readTokenForm(w http.ResponseWriter, r *http.Request) (url.Values, *oauthError) {
	if !isFormContent(r) {
		return nil, invalidRequest("The body must be application/x-www-form-urlencoded.")
	}
	if r.URL.RawQuery != "" {
		return nil, invalidRequest("Parameters belong in the body, not the query.")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return nil, invalidRequest("The body could not be read.")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return nil, invalidRequest(k + " is repeated.")
		}
	}
	return r.PostForm, nil
}

// authenticateClient accepts client_secret_basic or client_secret_post,
// never both at once (RFC 6749 §2.3).
func (a *authServer) authenticateClient(r *http.Request, form url.Values) (Client, *oauthError) {
	id, secret, basic := r.BasicAuth()
	if basic {
		// §2.3.1: the credentials are form-urlencoded before Basic encoding.
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil {
			return Client{}, invalidClient("Malformed client credentials.")
		}
		if form.Has("client_secret") {
			return Client{}, invalidRequest("Use one client authentication method, not two.")
		}
		if bodyID := form.Get("client_id"); bodyID != "" && bodyID != id {
			return Client{}, invalidRequest("client_id does not match the authenticated client.")
		}
	} else {
		id, secret = form.Get("client_id"), form.Get("client_secret")
	}
	if id == "" || secret == "" {
		return Client{}, invalidClient("Client authentication is required.")
	}
	c, ok := a.clients[id]
	if !ok || !secretsEqual(c.Secret, secret) {
		return Client{}, invalidClient("Unknown client or wrong secret.")
	}
	return c, nil
}

// secretsEqual compares in constant time; hashing first hides the length.
func secretsEqual(want, got string) bool {
	w, g := sha256.Sum256([]byte(want)), sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(w[:], g[:]) == 1
}

func (a *authServer) token(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	form, oerr := readTokenForm(w, r)
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	client, oerr := a.authenticateClient(r, form)
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	var resp tokenResponse
	switch gt := form.Get("grant_type"); gt {
	case "authorization_code":
		resp, oerr = a.redeemCode(r, client, form)
	case "refresh_token":
		resp, oerr = a.refresh(r, client, form)
	case "":
		oerr = invalidRequest("grant_type is required.")
	default:
		oerr = &oauthError{status: http.StatusBadRequest, code: "unsupported_grant_type",
			description: "Supported grant types: authorization_code, refresh_token."}
	}
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (a *authServer) redeemCode(r *http.Request, client Client, form url.Values) (tokenResponse, *oauthError) {
	code, redirectURI, verifier := form.Get("code"), form.Get("redirect_uri"), form.Get("code_verifier")
	switch {
	case code == "":
		return tokenResponse{}, invalidRequest("code is required.")
	case redirectURI == "":
		return tokenResponse{}, invalidRequest("redirect_uri is required.")
	case verifier == "":
		return tokenResponse{}, invalidRequest("PKCE is required: code_verifier is missing.")
	case !validVerifier(verifier):
		return tokenResponse{}, invalidRequest("code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~].")
	case len(code) > maxTokenLen:
		return tokenResponse{}, invalidGrant("Unknown code.")
	}
	fresh, err := a.newTokenSet()
	if err != nil {
		return tokenResponse{}, serverError()
	}

	now := a.srv.now()
	st := a.store
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sweep(now)
	c := st.codes[hashToken(code)]
	if c == nil || c.clientID != client.ID {
		// Another client's code is "unknown" to this one, and left alone.
		return tokenResponse{}, invalidGrant("Unknown code.")
	}
	if c.used {
		// A replayed code may mean it was stolen: whatever it produced is
		// revoked (RFC 6749 §4.1.2).
		if f := st.families[c.familyID]; f != nil {
			st.revokeFamily(f, now)
		}
		a.log(r, "demo: authorization code replayed; tokens issued from it revoked",
			slog.String("client_id", client.ID), slog.String("user", c.user.Username))
		return tokenResponse{}, invalidGrant("The code was already used.")
	}
	// Any attempt consumes the code, so a wrong verifier cannot be retried.
	c.used = true
	if !now.Before(c.expires) {
		return tokenResponse{}, invalidGrant("The code expired.")
	}
	if c.redirectURI != redirectURI {
		return tokenResponse{}, invalidGrant("redirect_uri does not match the authorization request.")
	}
	if !verifierMatches(verifier, c.challenge) {
		return tokenResponse{}, invalidGrant("code_verifier does not match code_challenge.")
	}
	f := &family{id: fresh.familyID, clientID: client.ID, user: c.user, scopes: c.scopes, authTime: c.authTime}
	st.families[f.id] = f
	c.familyID = f.id
	resp, err := a.issue(f, c.scopes, c.nonce, fresh, now)
	if err != nil {
		st.dropFamily(f)
		return tokenResponse{}, serverError()
	}
	return resp, nil
}

func (a *authServer) refresh(r *http.Request, client Client, form url.Values) (tokenResponse, *oauthError) {
	rt := form.Get("refresh_token")
	if rt == "" {
		return tokenResponse{}, invalidRequest("refresh_token is required.")
	}
	if len(rt) > maxTokenLen {
		return tokenResponse{}, invalidGrant("Unknown refresh token.")
	}
	fresh, err := a.newTokenSet()
	if err != nil {
		return tokenResponse{}, serverError()
	}

	now := a.srv.now()
	st := a.store
	st.mu.Lock()
	defer st.mu.Unlock()
	st.sweep(now)
	h := hashToken(rt)
	f := st.families[st.refresh[h]]
	if f == nil || f.clientID != client.ID {
		return tokenResponse{}, invalidGrant("Unknown refresh token.")
	}
	if f.revoked {
		return tokenResponse{}, invalidGrant("The refresh token was revoked.")
	}
	if h != f.current {
		// Reuse of a rotated-out refresh token: either the client lost a
		// response or someone else has the token. Both parties are cut off
		// (RFC 9700 §4.14.2); the client must send the user through
		// authorization again.
		st.revokeFamily(f, now)
		a.log(r, "demo: rotated refresh token reused; every token of the grant revoked",
			slog.String("client_id", client.ID), slog.String("user", f.user.Username))
		return tokenResponse{}, invalidGrant("The refresh token was already used; the grant is revoked.")
	}
	if !now.Before(f.refreshExpires) {
		return tokenResponse{}, invalidGrant("The refresh token expired.")
	}
	scopes := f.scopes
	if raw := form.Get("scope"); raw != "" {
		// §6: a refresh may narrow the scope, never widen it.
		scopes = nil
		for _, s := range f.scopes {
			if slices.Contains(strings.Fields(raw), s) {
				scopes = append(scopes, s)
			}
		}
		for _, s := range strings.Fields(raw) {
			if !slices.Contains(f.scopes, s) {
				return tokenResponse{}, &oauthError{status: http.StatusBadRequest, code: "invalid_scope",
					description: "A refresh cannot add scopes."}
			}
		}
	}
	resp, err := a.issue(f, scopes, "", fresh, now)
	if err != nil {
		return tokenResponse{}, serverError()
	}
	a.log(r, "demo: refresh token rotated", slog.String("client_id", client.ID), slog.String("user", f.user.Username))
	return resp, nil
}

// tokenSet is the random material one token response needs, drawn before
// the store is locked and changed, so a failing random source changes
// nothing.
type tokenSet struct {
	familyID string
	access   string // opaque access token, or the JWT id (jti) for the IdP
	refresh  string
}

func (a *authServer) newTokenSet() (tokenSet, error) {
	var t tokenSet
	var err error
	if t.familyID, err = a.srv.tokens.newToken(prefixFamily); err != nil {
		return t, err
	}
	if t.access, err = a.srv.tokens.newToken(prefixAccess); err != nil {
		return t, err
	}
	if t.refresh, err = a.srv.tokens.newToken(prefixRefresh); err != nil {
		return t, err
	}
	return t, nil
}

// issue mints an access token (and for the IdP an ID token) and rotates the
// family's refresh token. Callers hold the store's lock.
func (a *authServer) issue(f *family, scopes []string, nonce string, fresh tokenSet, now time.Time) (tokenResponse, error) {
	resp := tokenResponse{
		TokenType: "Bearer",
		ExpiresIn: int64(a.accessTTL / time.Second),
		Scope:     strings.Join(scopes, " "),
	}
	switch a.kind {
	case kindIDP:
		at, err := a.srv.jwt.sign(a.srv.accessClaims(f, scopes, fresh.access, now, a.accessTTL), typAccessToken)
		if err != nil {
			return tokenResponse{}, err
		}
		claims := a.srv.userClaims(f.user, f.clientID, now, a.accessTTL)
		claims["azp"] = f.clientID
		claims["auth_time"] = f.authTime.Unix()
		claims["sid"] = f.id
		claims["at_hash"] = atHash(at)
		if nonce != "" {
			claims["nonce"] = nonce
		}
		idt, err := a.srv.jwt.sign(claims, typJWT)
		if err != nil {
			return tokenResponse{}, err
		}
		resp.AccessToken, resp.IDToken = at, idt
	default:
		h := hashToken(fresh.access)
		a.store.access[h] = &accessToken{familyID: f.id, scopes: scopes, expires: now.Add(a.accessTTL)}
		f.accessHashes = append(f.accessHashes, h)
		resp.AccessToken = fresh.access
	}
	h := hashToken(fresh.refresh)
	a.store.refresh[h] = f.id
	f.refreshHashes = append(f.refreshHashes, h)
	f.current = h
	f.refreshExpires = now.Add(a.refreshTTL)
	resp.RefreshToken = fresh.refresh
	return resp, nil
}

// ---- revocation endpoint (RFC 7009) ----

func (a *authServer) revoke(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	form, oerr := readTokenForm(w, r)
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	client, oerr := a.authenticateClient(r, form)
	if oerr != nil {
		writeOAuthError(w, oerr)
		return
	}
	tok := form.Get("token")
	if tok == "" {
		writeOAuthError(w, invalidRequest("token is required."))
		return
	}
	switch form.Get("token_type_hint") {
	case "", "access_token", "refresh_token":
	default:
		writeOAuthError(w, &oauthError{status: http.StatusBadRequest, code: "unsupported_token_type",
			description: "token_type_hint must be access_token or refresh_token."})
		return
	}
	now := a.srv.now()
	st := a.store
	st.mu.Lock()
	h := hashToken(tok)
	famID, ok := st.refresh[h]
	if !ok {
		if at := st.access[h]; at != nil {
			famID, ok = at.familyID, true
		}
	}
	// Either token revokes the whole grant, the way Google does: after
	// Latchkey revokes a credential nothing issued for it keeps working.
	// Unknown tokens and other clients' tokens are answered 200 too
	// (§2.2), so the endpoint reveals nothing about tokens it does not
	// hold for this client.
	if f := st.families[famID]; ok && f != nil && f.clientID == client.ID && !f.revoked {
		st.revokeFamily(f, now)
		st.mu.Unlock()
		a.log(r, "demo: grant revoked by the client", slog.String("client_id", client.ID), slog.String("user", f.user.Username))
	} else {
		st.mu.Unlock()
	}
	w.WriteHeader(http.StatusOK)
}

// ---- access tokens of the OAuth provider ----

// grantInfo is what a valid access token stands for.
type grantInfo struct {
	user     User
	clientID string
	scopes   []string
}

// Why an access token was refused, reported in WWW-Authenticate.
var (
	errTokenUnknown = errors.New("the access token is not valid")
	errTokenExpired = errors.New("the access token expired")
	errTokenRevoked = errors.New("the access token was revoked")
)

// validateAccess checks an opaque OAuth-provider access token.
func (a *authServer) validateAccess(tok string) (grantInfo, error) {
	if len(tok) > maxTokenLen {
		return grantInfo{}, errTokenUnknown
	}
	now := a.srv.now()
	st := a.store
	st.mu.Lock()
	defer st.mu.Unlock()
	at := st.access[hashToken(tok)]
	if at == nil {
		return grantInfo{}, errTokenUnknown
	}
	f := st.families[at.familyID]
	if f == nil || f.revoked {
		return grantInfo{}, errTokenRevoked
	}
	if !now.Before(at.expires) {
		return grantInfo{}, errTokenExpired
	}
	return grantInfo{user: f.user, clientID: f.clientID, scopes: at.scopes}, nil
}

// familyActive reports whether an IdP session (the sid of its JWTs) is
// still alive.
func (a *authServer) familyActive(id string) bool {
	st := a.store
	st.mu.Lock()
	defer st.mu.Unlock()
	f := st.families[id]
	return f != nil && !f.revoked
}
