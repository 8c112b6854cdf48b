package handlers

// The signed SDK API (DESIGN.md §4). Every route in sdkRoutes runs behind
// authenticateSDK, which gives handlers:
//
//   - the authenticated caller: callerOf(c), or sdkauth.CallerFrom(ctx) in
//     services;
//   - the request body, already read (bounded) and signature-checked:
//     sdkBody(c), or decodeSDKJSON(c, &v, allowEmpty) for strict JSON;
//   - one audit row per call. The middleware writes it after the handler
//     when the handler did not; a handler that answers successfully should
//     call s.recordSDKCall(c, nil) before writing its response, so that a
//     failed audit write fails the request (DESIGN.md §3.9). Handlers may
//     enrich the row first through sdkAuditEvent(c) (grant, provider, host,
//     upstream status, reason, context).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/latchkey/latchkey/handlers/requestid"
	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/sdkauth"
)

// MaxSDKBodyBytes bounds an SDK request body. The body must be read whole
// before anything else because its hash is signed.
const MaxSDKBodyBytes = 10 << 20

// maxAuditPathBytes bounds the request path copied into an audit row.
const maxAuditPathBytes = 512

// SDKAuthenticator verifies signed SDK requests (services/sdkauth).
type SDKAuthenticator interface {
	AuthenticateHeaders(ctx context.Context, method, target string, h wire.AuthHeaders, bodySHA256 []byte) (sdkauth.Caller, error)
	// Forget drops a key from the local cache after this process changed
	// its status, so the change applies here at once.
	Forget(keyID string)
}

// AuditRecorder writes one audit row and returns once it is committed
// (services/audit's Batcher, which groups concurrent calls' rows).
type AuditRecorder interface {
	Record(ctx context.Context, ev models.AuditEvent) error
}

// sdkRoute is one signed SDK endpoint. Path is absolute (most live under
// /sdk/v1, POST /sdk/oauth/connect/session does not). Action names the
// endpoint's audit rows (sdk.me, sdk.agents.create, …). AppOnly refuses
// agent callers (agent keys, and app keys acting through Latchkey-Agent)
// with forbidden.
type sdkRoute struct {
	Method  string
	Path    string
	Name    string
	Action  string
	AppOnly bool
	Handler echo.HandlerFunc
}

// sdkCall is the per-request state authenticateSDK shares with handlers.
type sdkCall struct {
	caller   sdkauth.Caller
	body     []byte
	event    models.AuditEvent
	start    time.Time
	recorded bool
}

type sdkCallKey struct{}

func sdkCallOf(c *echo.Context) *sdkCall {
	call, _ := c.Request().Context().Value(sdkCallKey{}).(*sdkCall)
	return call
}

// callerOf returns the authenticated caller. Outside authenticateSDK it
// returns an internal error, so a route registered without the middleware
// fails closed instead of acting for nobody.
func callerOf(c *echo.Context) (sdkauth.Caller, error) {
	caller, ok := sdkauth.CallerFrom(c.Request().Context())
	if !ok {
		return sdkauth.Caller{}, errors.New("handlers: SDK handler reached without authentication")
	}
	return caller, nil
}

// sdkBody is the request body authenticateSDK read and verified.
func sdkBody(c *echo.Context) []byte {
	if call := sdkCallOf(c); call != nil {
		return call.body
	}
	return nil
}

// sdkAuditEvent is the audit row this call will write, for handlers to
// enrich before recordSDKCall. Nil outside an SDK request.
func sdkAuditEvent(c *echo.Context) *models.AuditEvent {
	if call := sdkCallOf(c); call != nil {
		return &call.event
	}
	return nil
}

// authenticateSDK is the middleware of every SDK route: bound and hash the
// body, authenticate (DESIGN.md §4.4), expose the caller, flag deprecated
// keys, and see that the call leaves an audit row.
func (s *Server) authenticateSDK(route sdkRoute) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			start := time.Now()
			r := c.Request()
			// Responses to signed calls are per caller and may carry a
			// one-time key: never cache them.
			c.Response().Header().Set("Cache-Control", "no-store")
			if s.sdkAuth == nil || s.audit == nil {
				return &APIError{Status: http.StatusInternalServerError, Code: wire.CodeInternal,
					Err: errors.New("handlers: the SDK API has no authenticator or audit log configured")}
			}
			// Headers first: a request that cannot authenticate is refused
			// before its body is read.
			ah, err := sdkauth.ParseHeaders(r.Header)
			if err != nil {
				return err
			}
			body, err := readSDKBody(r)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(body)
			caller, err := s.sdkAuth.AuthenticateHeaders(r.Context(), r.Method, wire.RequestTarget(r), ah, sum[:])
			if err != nil {
				return err
			}
			if caller.KeyDeprecated {
				c.Response().Header().Set(wire.HeaderKeyDeprecated, "true")
			}

			call := &sdkCall{caller: caller, body: body, start: start, event: models.AuditEvent{
				OrganizationID: caller.OrganizationID,
				AppID:          caller.AppID,
				Action:         route.Action,
				ActorKind:      audit.ActorKey,
				ActorID:        caller.KeyID,
				KeyID:          caller.KeyID,
				AgentID:        caller.AgentID,
				Caller:         caller.CallerLabel,
				Method:         r.Method,
				// The path without the query: query values may be secrets.
				Path:      truncate(r.URL.EscapedPath(), maxAuditPathBytes),
				RequestID: requestid.From(r.Context()),
			}}
			ctx := sdkauth.WithCaller(r.Context(), caller)
			ctx = context.WithValue(ctx, sdkCallKey{}, call)
			r = r.WithContext(ctx)
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
			c.SetRequest(r)

			if route.AppOnly && caller.IsAgent() {
				err = NewAPIError(wire.CodeForbidden, "Only an app key acting as itself may call this endpoint; agent keys and Latchkey-Agent cannot.")
			} else {
				err = next(c)
			}
			if auditErr := s.recordSDKCall(c, err); auditErr != nil {
				if resp, _ := echo.UnwrapResponse(c.Response()); resp != nil && resp.Committed {
					s.logger.LogAttrs(ctx, slog.LevelError, "audit row of an answered SDK call not written",
						slog.String(requestid.LogKey, call.event.RequestID), slog.String("error", auditErr.Error()))
					return err
				}
				return auditErr
			}
			return err
		}
	}
}

// recordSDKCall writes this call's audit row once, with the outcome err
// implies (nil: success; a 5xx: error; anything else: denied). Call it with
// nil before writing a successful response. It returns an internal error
// when the row cannot be written; the handler must then fail the request.
func (s *Server) recordSDKCall(c *echo.Context, err error) error {
	call := sdkCallOf(c)
	if call == nil || call.recorded {
		return nil
	}
	call.recorded = true
	ev := call.event
	ev.LatencyMS = time.Since(call.start).Milliseconds()
	// A handler may have judged the outcome already (an upstream 5xx is
	// an upstream_error even though Latchkey itself succeeded).
	if ev.Outcome == "" {
		ev.Outcome = models.OutcomeSuccess
	}
	if err != nil {
		pub := publicError(err)
		ev.ErrorCode = string(pub.Code)
		switch {
		case pub.Code == wire.CodeUpstreamUnreachable || pub.Code == wire.CodeUpstreamTimeout:
			ev.Outcome = models.OutcomeUpstreamError
		case pub.Status >= http.StatusInternalServerError:
			ev.Outcome = models.OutcomeError
		default:
			ev.Outcome = models.OutcomeDenied
		}
	}
	if werr := s.audit.Record(c.Request().Context(), ev); werr != nil {
		return &APIError{Status: http.StatusInternalServerError, Code: wire.CodeInternal,
			Message: "The call could not be recorded in the audit log, so it was not completed.", Err: werr}
	}
	return nil
}

// readSDKBody reads the whole body, refusing more than MaxSDKBodyBytes
// (by Content-Length up front when it is declared).
func readSDKBody(r *http.Request) ([]byte, error) {
	tooLarge := NewAPIError(wire.CodePayloadTooLarge, "The request body is over the 10 MiB limit.")
	if r.ContentLength > MaxSDKBodyBytes {
		return nil, tooLarge
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxSDKBodyBytes+1))
	if err != nil {
		return nil, NewAPIError(wire.CodeInvalidRequest, "The request body could not be read.").Wrap(err)
	}
	if len(body) > MaxSDKBodyBytes {
		return nil, tooLarge
	}
	return body, nil
}

// decodeSDKJSON decodes the verified body into v strictly: application/json
// only, no unknown fields, nothing after the value. An empty body leaves v
// as it is when allowEmpty, and is invalid otherwise. Messages never quote
// the body.
func decodeSDKJSON(c *echo.Context, v any, allowEmpty bool) error {
	body := sdkBody(c)
	if len(bytes.TrimSpace(body)) == 0 {
		if allowEmpty {
			return nil
		}
		return NewAPIError(wire.CodeInvalidRequest, "A JSON request body is required.")
	}
	mt, _, err := mime.ParseMediaType(c.Request().Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return NewAPIError(wire.CodeUnsupportedMediaType, "The request body must be sent as application/json.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return NewAPIError(wire.CodeInvalidRequest,
			"The request body is not a JSON object of the documented fields and types.").Wrap(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return NewAPIError(wire.CodeInvalidRequest, "The request body has data after its JSON value.")
	}
	return nil
}

// sdkNotFound answers an authenticated request under /sdk/v1 that matched
// no route: 405 with Allow when the path exists with other methods (what
// the router would have said without the catch-all), else 404.
func (s *Server) sdkNotFound(c *echo.Context) error {
	path := c.Request().URL.Path
	var allow []string
	for _, ri := range s.echo.Router().Routes() {
		if ri.Method == echo.RouteNotFound || !routeMatches(ri.Path, path) || slices.Contains(allow, ri.Method) {
			continue
		}
		allow = append(allow, ri.Method)
	}
	if len(allow) > 0 {
		slices.Sort(allow)
		c.Response().Header().Set("Allow", strings.Join(allow, ", "))
		return NewAPIError(wire.CodeMethodNotAllowed, "This SDK endpoint does not accept that method.")
	}
	return NewAPIError(wire.CodeNotFound, "There is no SDK endpoint at this path.")
}

// routeMatches reports whether path matches an Echo route pattern, where
// ":name" matches one non-empty segment and a final "*" matches the rest.
func routeMatches(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	for i, p := range ps {
		if p == "*" && i == len(ps)-1 {
			return true
		}
		if i >= len(xs) {
			return false
		}
		if strings.HasPrefix(p, ":") {
			if xs[i] == "" {
				return false
			}
			continue
		}
		if p != xs[i] {
			return false
		}
	}
	return len(ps) == len(xs)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
