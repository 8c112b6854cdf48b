package demo

import (
	"net/http"
	"strings"
)

// routes registers every endpoint in one place, relative to the mount
// point. Method-qualified patterns make the mux answer 405 with Allow for a
// wrong method instead of running a handler.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()

	// Identity provider (OpenID Connect).
	mux.HandleFunc("GET /idp/.well-known/openid-configuration", s.idpDiscovery)
	mux.HandleFunc("GET /idp/jwks", s.idpJWKS)
	mux.HandleFunc("GET /idp/authorize", s.idp.authorize)
	mux.HandleFunc("POST /idp/authorize", s.idp.authorize)
	mux.HandleFunc("POST /idp/token", s.idp.token)
	mux.HandleFunc("GET /idp/userinfo", s.idpUserinfo)
	mux.HandleFunc("POST /idp/userinfo", s.idpUserinfo)

	// OAuth provider.
	mux.HandleFunc("GET /oauth/authorize", s.oauth.authorize)
	mux.HandleFunc("POST /oauth/authorize", s.oauth.authorize)
	mux.HandleFunc("POST /oauth/token", s.oauth.token)
	mux.HandleFunc("POST /oauth/revoke", s.oauth.revoke)
	mux.HandleFunc("GET /oauth/userinfo", s.oauthUserinfo)

	// Calendar API, protected by the OAuth provider's access tokens.
	mux.HandleFunc("GET /api/calendar/events", s.listEvents)
	mux.HandleFunc("POST /api/calendar/events", s.createEvent)

	mux.HandleFunc("GET /assets/demo.css", s.stylesheet)

	return securityHeaders(mux)
}

// baseCSP allows no script at all and only same-origin styles; pages with a
// form that redirects elsewhere widen form-action (see authorizePageCSP).
const baseCSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'"

// securityHeaders sets the headers every demo response carries. They are
// set (not added) so that they replace whatever the mounting server set.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", baseCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		// Authorization URLs carry state and challenges, redirects carry
		// codes: nothing of them should leak through Referer.
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

func (s *Server) stylesheet(w http.ResponseWriter, r *http.Request) {
	css, err := files.ReadFile("assets/demo.css")
	if err != nil {
		http.Error(w, "stylesheet missing", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(css)
}

// noStore marks a response as never cacheable: it carries tokens, codes or
// a page with a CSRF token (RFC 6749 §5.1 requires it for token responses).
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

// isFormContent reports whether r's body is form-encoded.
func isFormContent(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.EqualFold(strings.TrimSpace(ct), "application/x-www-form-urlencoded")
}
