package handlers

// The Connect popup (DESIGN.md §3.7, §5): unsigned browser routes under
// /sdk/oauth/. The session token travels only in the URL fragment and in one
// same-origin POST; from then on the browser is recognised by an HttpOnly
// cookie holding a random id whose SHA-256 the session stores (its
// "binding"). Every page and step checks that binding, every state-changing
// POST also carries a CSRF token derived from the cookie, and results go
// only to the exact origin or return URL the app registered.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v5"

	"github.com/latchkey/latchkey/handlers/requestid"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/bearer"
	"github.com/latchkey/latchkey/services/connect"
	"github.com/latchkey/latchkey/services/sdkauth"
	views "github.com/latchkey/latchkey/views/pages/connect"
)

// ConnectService runs Connect sessions (services/connect).
type ConnectService interface {
	Mint(ctx context.Context, caller sdkauth.Caller, req wire.ConnectSessionRequest) (wire.ConnectSessionResponse, error)
	Status(ctx context.Context, caller sdkauth.Caller, id string) (wire.ConnectSessionStatus, error)
	Exchange(ctx context.Context, in connect.ExchangeInput) (connect.Opened, error)
	View(ctx context.Context, sessionID, binding, only string) (connect.View, error)
	Begin(ctx context.Context, sessionID, binding, provider string) (string, error)
	Deny(ctx context.Context, sessionID, binding string) error
	Complete(ctx context.Context, in connect.CallbackInput) (connect.Result, error)
}

// Paths of the popup's own steps; the popup itself is wire.PathConnectPopup
// and the provider callback oauth.CallbackPath.
const (
	connectExchangePath = wire.PathConnectPopup + "/exchange"
	connectSessionPath  = wire.PathConnectPopup + "/s/:session_id"
	connectProviderPath = connectSessionPath + "/providers/:provider"
	connectScriptAsset  = "js/connect-popup.js"
)

// Cookies of the popup. Both live under /sdk/oauth/ only, so no other page
// ever receives them, and only a little longer than the session (the
// grace).
const (
	// connectCookie holds 256 random bits; the session stores their
	// SHA-256 as its browser binding.
	connectCookie = "latchkey_connect"
	// connectModeCookie is "redirect" when the popup was opened without an
	// opener (phones, the redirect launcher): results then go back to the
	// return URL. It is not a secret and steers delivery only between the
	// app's registered destinations.
	connectModeCookie  = "latchkey_connect_mode"
	connectCookiePath  = "/sdk/oauth/"
	connectCookieLen   = 43 // base64url of 32 bytes
	connectModeRedir   = "redirect"
	connectModePopup   = "popup"
	connectCookieGrace = 5 * time.Minute
	// maxConnectBody bounds the exchange's JSON and the consent form.
	maxConnectBody = 4 << 10
)

// connectCSRFLabel separates the CSRF MAC from the binding hash, which is
// computed from the same cookie value.
const connectCSRFLabel = "latchkey-connect-csrf-v1\x00"

// connectPopup serves the page the launcher opens. It knows nothing of the
// session: the token is in the fragment, which never reaches the server.
func (s *Server) connectPopup(c *echo.Context) error {
	exchange, err := s.reverse(routeConnectExchange)
	if err != nil {
		return err
	}
	return s.renderConnect(c, http.StatusOK, "Opening", "", views.Loading(views.LoadingViewModel{ExchangeURL: exchange}))
}

// exchangeRequest is the popup script's POST.
type exchangeRequest struct {
	SessionToken string `json:"session_token"`
	// Mode is "popup" when the page has a window.opener, "redirect" when
	// it was opened as a full page.
	Mode string `json:"mode"`
}

// exchangeResponse tells the script where to go next.
type exchangeResponse struct {
	Next string `json:"next"`
}

// connectExchange trades the fragment's token for the binding cookie, once.
// Errors are JSON (the script shows them); a failure the app should hear
// about carries its delivery in details.
func (s *Server) connectExchange(c *echo.Context) error {
	s.connectHeaders(c)
	r := c.Request()
	if !s.sameOrigin(r) {
		return NewAPIError(wire.CodeForbidden, "The exchange must come from the Connect page itself.")
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return NewAPIError(wire.CodeUnsupportedMediaType, "The request body must be sent as application/json.")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxConnectBody+1))
	if err != nil || len(body) > maxConnectBody {
		return NewAPIError(wire.CodeInvalidRequest, "The request body could not be read.")
	}
	var req exchangeRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || (req.Mode != "" && req.Mode != connectModePopup && req.Mode != connectModeRedir) {
		return NewAPIError(wire.CodeInvalidRequest, "The request body must be {\"session_token\": …, \"mode\": \"popup\"|\"redirect\"}.")
	}
	cookieValue, err := newConnectCookieValue()
	if err != nil {
		return err
	}
	opened, err := s.connect.Exchange(r.Context(), connect.ExchangeInput{Token: req.SessionToken, Binding: bearer.Hash(cookieValue)})
	if err != nil {
		return s.exchangeFailure(err, req.Mode == connectModeRedir)
	}
	// The cookie outlives the session a little, so a callback that comes
	// back late is told "expired" (and tells the app) rather than
	// "another browser".
	maxAge := int(time.Until(opened.ExpiresAt.Add(connectCookieGrace)).Seconds())
	if maxAge < 1 {
		maxAge = 1
	}
	s.setConnectCookie(c, connectCookie, cookieValue, maxAge)
	if req.Mode == connectModeRedir {
		s.setConnectCookie(c, connectModeCookie, connectModeRedir, maxAge)
	} else {
		s.setConnectCookie(c, connectModeCookie, "", -1)
	}
	next, err := s.reverse(routeConnectPicker, opened.SessionID)
	if len(opened.Providers) == 1 {
		// One provider: no choice to make, straight to its consent.
		next, err = s.reverse(routeConnectConsent, opened.SessionID, opened.Providers[0])
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, exchangeResponse{Next: next})
}

// exchangeFailure answers a failed exchange with the JSON error shape. When
// the app should hear about it (an expired session), details name the
// exact origin to post to, or the return URL to go to in the redirect flow.
func (s *Server) exchangeFailure(err error, redirectMode bool) error {
	f, ok := errors.AsType[*connect.Failure](err)
	if !ok {
		return err
	}
	// Exchange fails only with not_found, invalid_request, expired or
	// used, which all have an error status.
	status := connectFailureStatus(f.Code)
	details := map[string]any{}
	if f.Delivery.TargetOrigin != "" && !redirectMode {
		details["target_origin"] = f.Delivery.TargetOrigin
	}
	if f.Delivery.ReturnURL != "" && (redirectMode || f.Delivery.TargetOrigin == "") {
		details["redirect_url"] = errorReturnURL(f.Delivery.ReturnURL, f.Code, f.Description)
	}
	return &APIError{Status: status, Code: wire.ErrorCode(f.Code), Message: f.Description, Details: details, Err: f}
}

// connectPicker lists the session's providers.
func (s *Server) connectPicker(c *echo.Context) error {
	s.connectHeaders(c)
	ctx := c.Request().Context()
	id := c.Param("session_id")
	v, err := s.connect.View(ctx, id, s.connectBinding(c), "")
	if err != nil {
		return s.connectFailed(c, err)
	}
	if len(v.Providers) == 1 {
		u, err := s.reverse(routeConnectConsent, v.SessionID, v.Providers[0].Slug)
		if err != nil {
			return err
		}
		return c.Redirect(http.StatusSeeOther, u)
	}
	vm := views.PickerViewModel{Brand: brandOf(v), EndUser: v.EndUser}
	for _, p := range v.Providers {
		u, err := s.reverse(routeConnectConsent, v.SessionID, p.Slug)
		if err != nil {
			return err
		}
		vm.Providers = append(vm.Providers, views.Provider{
			Slug: p.Slug, Name: p.Name, Logo: templ.SafeURL(p.LogoDataURI), ConsentURL: templ.SafeURL(u),
		})
	}
	return s.renderConnect(c, http.StatusOK, "Choose an account", "", views.Picker(vm))
}

// connectConsent shows the consent screen for one provider.
func (s *Server) connectConsent(c *echo.Context) error {
	s.connectHeaders(c)
	ctx := c.Request().Context()
	id, provider := c.Param("session_id"), c.Param("provider")
	v, err := s.connect.View(ctx, id, s.connectBinding(c), provider)
	if err != nil {
		return s.connectFailed(c, err)
	}
	p := v.Providers[0]
	action, err := s.reverse(routeConnectDecide, v.SessionID, p.Slug)
	if err != nil {
		return err
	}
	vm := views.ConsentViewModel{
		Brand:        brandOf(v),
		ProviderSlug: p.Slug,
		ProviderName: p.Name,
		ProviderLogo: templ.SafeURL(p.LogoDataURI),
		Scopes:       p.Scopes,
		Agent:        v.Agent,
		EndUser:      v.EndUser,
		Action:       templ.SafeURL(action),
		CSRF:         connectCSRF(s.connectCookieValue(c), v.SessionID),
	}
	if len(v.Allowed) > 1 {
		back, err := s.reverse(routeConnectPicker, v.SessionID)
		if err != nil {
			return err
		}
		vm.BackURL = templ.SafeURL(back)
	}
	// Approving answers with a redirect to the provider, and browsers hold
	// a form's redirects to the page's form-action too.
	csp := contentSecurityPolicy
	if p.AuthorizeOrigin != "" {
		csp = strings.Replace(csp, "form-action 'self'", "form-action 'self' "+p.AuthorizeOrigin, 1)
	}
	return s.renderConnect(c, http.StatusOK, "Connect "+p.Name, csp, views.Consent(vm))
}

// connectDecide takes the consent form: approve starts the provider's
// authorization (302 to it), deny ends the session with access_denied.
func (s *Server) connectDecide(c *echo.Context) error {
	s.connectHeaders(c)
	r := c.Request()
	id, provider := c.Param("session_id"), c.Param("provider")
	if !s.sameOrigin(r) {
		return s.connectFailed(c, &connect.Failure{Code: connect.CodeInvalidRequest,
			Description: "This form was sent from another site.", Cause: errors.New("handlers: cross-origin consent post")})
	}
	r.Body = http.MaxBytesReader(c.Response(), r.Body, maxConnectBody)
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" || r.ParseForm() != nil {
		return s.connectFailed(c, &connect.Failure{Code: connect.CodeInvalidRequest,
			Description: connect.Describe(connect.CodeInvalidRequest), Cause: errors.New("handlers: unreadable consent form")})
	}
	cookieValue := s.connectCookieValue(c)
	want := connectCSRF(cookieValue, id)
	got := r.PostForm.Get("csrf")
	if cookieValue == "" || len(r.PostForm["csrf"]) != 1 || !hmac.Equal([]byte(got), []byte(want)) {
		return s.connectFailed(c, &connect.Failure{Code: connect.CodeInvalidRequest,
			Description: "This form expired or was sent from another page. Start again from the application.",
			Cause:       errors.New("handlers: consent CSRF token missing or wrong")})
	}
	binding := bearer.Hash(cookieValue)
	ctx := r.Context()
	switch r.PostForm.Get("decision") {
	case "approve":
		u, err := s.connect.Begin(ctx, id, binding, provider)
		if err != nil {
			return s.connectFailed(c, err)
		}
		return c.Redirect(http.StatusFound, u)
	case "deny":
		return s.connectFailed(c, s.connect.Deny(ctx, id, binding))
	}
	return s.connectFailed(c, &connect.Failure{Code: connect.CodeInvalidRequest,
		Description: connect.Describe(connect.CodeInvalidRequest), Cause: errors.New("handlers: unknown consent decision")})
}

// connectCallback is the redirect URI of every provider config: it
// finishes the flow for the browser that started it and delivers the
// result.
func (s *Server) connectCallback(c *echo.Context) error {
	s.connectHeaders(c)
	q := c.Request().URL.Query()
	res, err := s.connect.Complete(c.Request().Context(), connect.CallbackInput{
		State:            q.Get("state"),
		Code:             q.Get("code"),
		Error:            q.Get("error"),
		ErrorDescription: q.Get("error_description"),
		Binding:          s.connectBinding(c),
	})
	if err != nil {
		return s.connectFailed(c, err)
	}
	redirectMode := s.connectRedirectMode(c)
	s.clearConnectCookies(c)
	grants := res.Grants
	if u := res.Delivery.ReturnURL; u != "" && len(grants) > 0 && (redirectMode || res.Delivery.TargetOrigin == "") {
		return c.Redirect(http.StatusFound, successReturnURL(u, grants[0]))
	}
	vm := views.ResultViewModel{
		Success: true,
		Data:    views.ResultData{Message: views.Message{Type: views.MessageSuccess, Grants: grants}},
	}
	if len(grants) > 0 {
		vm.ProviderName, vm.AccountIdentifier = grants[0].ProviderName, grants[0].AccountIdentifier
	}
	if !redirectMode {
		vm.Data.TargetOrigin = res.Delivery.TargetOrigin
	}
	return s.renderConnect(c, http.StatusOK, "Connected", "", views.Result(vm))
}

// connectFailed ends a Connect page in its error page, or, in the redirect
// flow, back at the app's return URL with the error. Only a *Failure with
// a delivery (the session is over and this browser speaks for it) reaches
// the app; any other error is shown here alone.
func (s *Server) connectFailed(c *echo.Context, err error) error {
	f, ok := errors.AsType[*connect.Failure](err)
	if !ok || f.Code == connect.CodeInternal {
		// Only Latchkey's own failures are logged: the rest are users and
		// providers saying no. Service errors never carry a token or a
		// cookie value (services/connect and services/oauth promise it).
		ctx := c.Request().Context()
		s.logger.LogAttrs(ctx, slog.LevelError, "connect step failed",
			slog.String(requestid.LogKey, requestid.From(ctx)), slog.String("route", routeLabel(c)), slog.String("error", err.Error()))
	}
	if !ok {
		f = &connect.Failure{Code: connect.CodeInternal, Description: connect.Describe(connect.CodeInternal)}
	}
	d := f.Delivery
	redirectMode := s.connectRedirectMode(c)
	if d != (connect.Delivery{}) {
		// The session is over; its cookies are of no further use.
		s.clearConnectCookies(c)
	}
	if d.ReturnURL != "" && (redirectMode || d.TargetOrigin == "") {
		return c.Redirect(http.StatusFound, errorReturnURL(d.ReturnURL, f.Code, f.Description))
	}
	vm := views.ResultViewModel{
		ErrorCode:        f.Code,
		ErrorDescription: f.Description,
		Data: views.ResultData{Message: views.Message{
			Type: views.MessageError, Error: f.Code, ErrorDescription: f.Description,
		}},
	}
	if !redirectMode {
		vm.Data.TargetOrigin = d.TargetOrigin
	}
	return s.renderConnect(c, connectFailureStatus(f.Code), "Not connected", "", views.Result(vm))
}

// connectFailureStatus is the HTTP status of an error page. A decision or
// the provider's answer ends the flow normally (200); Latchkey refusing a
// request gets the status its SDK error code has (wire.HTTPStatus), and the
// two refusals only Connect makes get theirs.
func connectFailureStatus(code string) int {
	switch code {
	case connect.CodeBrowserMismatch:
		return http.StatusForbidden
	case connect.CodeStateMismatch:
		return http.StatusBadRequest
	}
	if c := wire.ErrorCode(code); c.Known() {
		return wire.HTTPStatus(c)
	}
	return http.StatusOK
}

// successReturnURL is the return URL with the redirect flow's success
// parameters (DESIGN.md §5), keeping the URL's own query.
func successReturnURL(base string, g views.Grant) string {
	return withQuery(base, map[string]string{
		"alter_connect_success": "true",
		"grant_id":              g.GrantID,
		"provider":              g.Provider,
		"provider_name":         g.ProviderName,
		"account_identifier":    g.AccountIdentifier,
		"timestamp":             g.Timestamp,
		"operation":             g.Operation,
		"scopes":                strings.Join(g.Scopes, ","),
		"status":                g.Status,
	})
}

// errorReturnURL is the return URL with the redirect flow's error
// parameters.
func errorReturnURL(base, code, description string) string {
	return withQuery(base, map[string]string{
		"alter_connect_error": "true",
		"error_code":          code,
		"error_description":   description,
	})
}

func withQuery(base string, params map[string]string) string {
	u, err := url.Parse(base)
	if err != nil {
		// Registered URLs were parsed when they were registered.
		return base
	}
	q := u.Query()
	for k, v := range params {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// renderConnect sends a Connect page in the popup's shell (or only its
// content to htmx). Pages are per-browser and carry a CSRF token: never
// cached. csp replaces the default policy when set.
func (s *Server) renderConnect(c *echo.Context, status int, title, csp string, content templ.Component) error {
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	if csp != "" {
		h.Set("Content-Security-Policy", csp)
	}
	addVary(h, "HX-Request", "HX-Boosted", "HX-Request-Type")
	component := content
	if !wantsPartial(c.Request()) {
		component = views.Shell(views.Meta{
			Title:         title,
			StylesheetURL: s.stylesheetURL,
			ScriptURL:     s.connectScriptURL,
			IconURL:       s.iconURL,
		}, content)
	}
	var buf bytes.Buffer
	if err := component.Render(c.Request().Context(), &buf); err != nil {
		return err
	}
	return c.HTMLBlob(status, buf.Bytes())
}

// connectHeaders are set on every Connect response. The opener policy is
// spelled out because the popup must keep its window.opener to post the
// result: a same-origin policy (a tempting global hardening) would sever it
// and the app would only ever see the window close.
func (s *Server) connectHeaders(c *echo.Context) {
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Cross-Origin-Opener-Policy", "unsafe-none")
}

// sameOrigin refuses requests a browser marks as coming from another site.
// Fetch metadata decides when the browser sends it. Otherwise a real Origin
// must be ours; "null" (what browsers send for a form post from a page with
// Referrer-Policy: no-referrer, as ours are) and no Origin at all are left
// to the CSRF token (consent) or the unguessable session token (exchange).
func (s *Server) sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		return true
	}
	if s.publicURL != nil && origin == s.publicURL.Scheme+"://"+s.publicURL.Host {
		return true
	}
	scheme := "http"
	if r.TLS != nil || s.secure {
		scheme = "https"
	}
	return origin == scheme+"://"+r.Host
}

// newConnectCookieValue is 256 random bits, base64url.
func newConnectCookieValue() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// connectCookieValue is the browser's Connect cookie, or "" when it has
// none that could be ours.
func (s *Server) connectCookieValue(c *echo.Context) string {
	ck, err := c.Cookie(connectCookie)
	if err != nil || len(ck.Value) != connectCookieLen {
		return ""
	}
	if _, err := base64.RawURLEncoding.DecodeString(ck.Value); err != nil {
		return ""
	}
	return ck.Value
}

// connectBinding is the SHA-256 of the browser's Connect cookie, or "".
func (s *Server) connectBinding(c *echo.Context) string {
	v := s.connectCookieValue(c)
	if v == "" {
		return ""
	}
	return bearer.Hash(v)
}

// connectRedirectMode reports whether this browser opened Connect as a
// full page rather than a popup.
func (s *Server) connectRedirectMode(c *echo.Context) bool {
	ck, err := c.Cookie(connectModeCookie)
	return err == nil && ck.Value == connectModeRedir
}

// connectCSRF is the consent form's token: a MAC of the session id keyed by
// the cookie value. Only a page served to the cookie's browser can know it,
// and it reveals nothing about the cookie (or its binding hash).
func connectCSRF(cookieValue, sessionID string) string {
	if cookieValue == "" {
		return ""
	}
	m := hmac.New(sha256.New, []byte(cookieValue))
	m.Write([]byte(connectCSRFLabel + sessionID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// setConnectCookie sets (maxAge > 0) or deletes (maxAge < 0) a Connect
// cookie. SameSite=Lax, not Strict: the provider's redirect back to the
// callback is a cross-site top-level navigation that must carry it.
func (s *Server) setConnectCookie(c *echo.Context, name, value string, maxAge int) {
	c.SetCookie(&http.Cookie{
		Name:     name,
		Value:    value,
		Path:     connectCookiePath,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   s.secure,
		SameSite: http.SameSiteLaxMode,
	})
}

func (s *Server) clearConnectCookies(c *echo.Context) {
	s.setConnectCookie(c, connectCookie, "", -1)
	s.setConnectCookie(c, connectModeCookie, "", -1)
}

// brandOf is the app's branding for the pages.
func brandOf(v connect.View) views.Brand {
	return views.Brand{AppName: v.AppName, Color: v.BrandColor}
}
