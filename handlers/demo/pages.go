package demo

import (
	"bytes"
	"crypto/subtle"
	"net/http"
	"net/url"
)

// csrfCookie holds the double-submit token of the login and consent forms.
// With SameSite=Lax a cross-site form post arrives without it, so another
// site cannot approve a grant in the user's name.
const csrfCookie = "latchkey_demo_csrf"

// hiddenField is one form field that carries the authorization request.
type hiddenField struct {
	Name  string
	Value string
}

// pageData is everything the page templates show.
type pageData struct {
	Title      string
	Stylesheet string
	Server     string // "Demo Identity", "Demo Calendar"
	ClientID   string
	Action     string
	Hidden     []hiddenField
	CSRF       string
	Users      []User
	User       User
	Scopes     []scopeInfo
	ErrorCode  string
	ErrorText  string
}

// csrfToken returns the browser's CSRF token, setting a new cookie when it
// has none (or a malformed one).
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) (string, error) {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == len(prefixCSRF)+43 {
		return c.Value, nil
	}
	tok, err := s.tokens.newToken(prefixCSRF)
	if err != nil {
		return "", err
	}
	path := s.basePath + "/"
	http.SetCookie(w, &http.Cookie{
		Name: csrfCookie, Value: tok, Path: path,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.base.Scheme == "https",
	})
	return tok, nil
}

const prefixCSRF = "csrf_"

// checkCSRF compares the form's token with the cookie's, in constant time.
func (s *Server) checkCSRF(r *http.Request, form url.Values) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || c.Value == "" {
		return false
	}
	got, err := one(form, "csrf")
	if err != nil || got == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(got)) == 1
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, a *authServer, q authzRequest) {
	csrf, err := s.csrfToken(w, r)
	if err != nil {
		s.errorPage(w, http.StatusInternalServerError, "server_error", "Could not start the sign-in.")
		return
	}
	s.render(w, http.StatusOK, "login", authorizePageCSP(q.redirectURI), pageData{
		Title: "Sign in — " + a.title, Server: a.title, ClientID: q.client.ID,
		Action: s.basePath + a.path + "/authorize", Hidden: q.hiddenFields(), CSRF: csrf,
		Users: s.Users(),
	})
}

func (s *Server) renderConsent(w http.ResponseWriter, r *http.Request, a *authServer, q authzRequest, u User) {
	csrf, err := s.csrfToken(w, r)
	if err != nil {
		s.errorPage(w, http.StatusInternalServerError, "server_error", "Could not show the consent page.")
		return
	}
	s.render(w, http.StatusOK, "consent", authorizePageCSP(q.redirectURI), pageData{
		Title: "Allow access — " + a.title, Server: a.title, ClientID: q.client.ID,
		Action: s.basePath + a.path + "/authorize", Hidden: q.hiddenFields(), CSRF: csrf,
		User: u, Scopes: a.scopeInfos(q.scopes),
	})
}

// errorPage shows an error that must not be sent to a redirect URI.
func (s *Server) errorPage(w http.ResponseWriter, status int, code, text string) {
	noStore(w)
	s.render(w, status, "error", baseCSP, pageData{
		Title: "Demo sign-in error", ErrorCode: code, ErrorText: text,
	})
}

func (s *Server) render(w http.ResponseWriter, status int, name, csp string, d pageData) {
	d.Stylesheet = s.stylesURL
	var buf bytes.Buffer
	if err := s.pages.ExecuteTemplate(&buf, name, d); err != nil {
		http.Error(w, "demo: page failed to render", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Security-Policy", csp)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// authorizePageCSP lets the login and consent forms lead to the client's
// redirect URI: browsers apply form-action to the redirect that follows a
// form post, so 'self' alone would block the way back to the client.
func authorizePageCSP(redirectURI string) string {
	u, err := url.Parse(redirectURI)
	if err != nil || u.Host == "" {
		return baseCSP
	}
	return "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' " + u.Scheme + "://" + u.Host +
		"; frame-ancestors 'none'; base-uri 'none'"
}

// scopeInfos describes the given scopes for the consent page.
func (a *authServer) scopeInfos(names []string) []scopeInfo {
	var out []scopeInfo
	for _, s := range a.scopes {
		for _, n := range names {
			if s.Name == n {
				out = append(out, s)
			}
		}
	}
	return out
}
