package handlers

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/egress"
	"github.com/latchkey/latchkey/services/proxy"
	"github.com/latchkey/latchkey/services/sdkauth"
)

// SDKProxy runs proxied calls and retrieve mode (services/proxy).
type SDKProxy interface {
	Proxy(ctx context.Context, caller sdkauth.Caller, req wire.ProxyRequest, info *proxy.Info) (*egress.Response, error)
	Token(ctx context.Context, caller sdkauth.Caller, req wire.TokenRequest, info *proxy.Info) (wire.TokenResponse, error)
}

// fillProxyAudit copies what the call learned into its audit row. The
// upstream path replaces the SDK path: it is what the operator wants to see,
// and like the SDK path it never includes the query string.
func fillProxyAudit(c *echo.Context, info *proxy.Info) {
	ev := sdkAuditEvent(c)
	if ev == nil {
		return
	}
	ev.GrantID, ev.Provider = info.GrantID, info.Provider
	ev.PrincipalKind, ev.PrincipalID = info.PrincipalKind, info.PrincipalID
	ev.Host = truncate(info.Host, 255)
	if info.Path != "" {
		ev.Path = truncate(info.Path, maxAuditPathBytes)
	}
	ev.Reason = truncate(info.Reason, proxy.MaxReasonBytes)
	ev.Context = audit.EncodeContext(info.Context)
}

// sdkProxy answers POST /sdk/v1/proxy. The response is the upstream's own:
// status, headers (minus hop-by-hop and the ones egress never relays) and a
// streamed body, plus Latchkey-Proxied and Latchkey-Grant-Id. The audit row
// is committed before the first byte is relayed, so no answered call lacks
// its row; when it cannot be written the caller gets a Latchkey error instead.
func (s *Server) sdkProxy(c *echo.Context) error {
	caller, err := callerOf(c)
	if err != nil {
		return err
	}
	var req wire.ProxyRequest
	if err := decodeSDKJSON(c, &req, false); err != nil {
		return err
	}
	info := &proxy.Info{}
	resp, err := s.proxy.Proxy(c.Request().Context(), caller, req, info)
	fillProxyAudit(c, info)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if ev := sdkAuditEvent(c); ev != nil {
		ev.UpstreamStatus = resp.StatusCode
		if resp.StatusCode >= http.StatusInternalServerError {
			ev.Outcome = models.OutcomeUpstreamError
		}
	}
	if err := s.recordSDKCall(c, nil); err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(wire.HeaderProxied, "true")
	h.Set(wire.HeaderGrantID, info.GrantID)
	// The upstream decides caching of its own answer.
	h.Del("Cache-Control")
	if _, err := resp.Relay(c.Response()); err != nil {
		// The status is out: abort so the caller sees a truncated stream,
		// never a short body that looks complete.
		panic(http.ErrAbortHandler)
	}
	return nil
}

// sdkToken answers POST /sdk/v1/token (retrieve mode, off unless the app
// enabled it): the access token and how to inject it.
func (s *Server) sdkToken(c *echo.Context) error {
	caller, err := callerOf(c)
	if err != nil {
		return err
	}
	var req wire.TokenRequest
	if err := decodeSDKJSON(c, &req, false); err != nil {
		return err
	}
	info := &proxy.Info{}
	tok, err := s.proxy.Token(c.Request().Context(), caller, req, info)
	fillProxyAudit(c, info)
	if err != nil {
		return err
	}
	if err := s.recordSDKCall(c, nil); err != nil {
		return err
	}
	c.Response().Header().Set(wire.HeaderGrantID, tok.GrantID)
	return c.JSON(http.StatusOK, tok)
}
