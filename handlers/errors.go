package handlers

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/latchkey/latchkey/handlers/requestid"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/views/pages/errorpage"
)

// APIError is an error a handler returns when it knows exactly what the
// client should see. Message and Details are shown to the client as they are,
// so they must never contain secrets or raw error text; Err is the cause,
// which is logged and never shown.
type APIError struct {
	Status  int
	Code    wire.ErrorCode
	Message string
	Details map[string]any
	Err     error
}

// NewAPIError returns an APIError whose status is the one §4.5 gives code.
func NewAPIError(code wire.ErrorCode, message string) *APIError {
	return &APIError{Status: wire.HTTPStatus(code), Code: code, Message: message}
}

func (e *APIError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s (%d): %s: %v", e.Code, e.Status, e.Message, e.Err)
	}
	return fmt.Sprintf("%s (%d): %s", e.Code, e.Status, e.Message)
}

func (e *APIError) Unwrap() error { return e.Err }

// WithDetails returns a copy of e carrying details (e.g. the matching
// account_identifiers of ambiguous_grant).
func (e *APIError) WithDetails(details map[string]any) *APIError {
	c := *e
	c.Details = details
	return &c
}

// Wrap returns a copy of e whose cause is err, for the logs only.
func (e *APIError) Wrap(err error) *APIError {
	c := *e
	c.Err = err
	return &c
}

// wireCoder is implemented by errors of the shared wire package (for example
// *wire.MalformedAuthError) that know their code but carry no client message.
type wireCoder interface {
	error
	Code() wire.ErrorCode
}

// errorBody is the one JSON error shape of DESIGN §4.5. It mirrors
// wire.ErrorBody but always sends "details", as an empty object when there is
// nothing to add, so clients never meet a missing member.
type errorBody struct {
	Error errorPayload `json:"error"`
}

type errorPayload struct {
	Code      wire.ErrorCode `json:"code"`
	Message   string         `json:"message"`
	RequestID string         `json:"request_id"`
	Details   map[string]any `json:"details"`
}

// handleError is the single Echo error handler: it turns any error into the
// JSON error shape (SDK clients, JSON callers) or an HTML error page
// (browsers), and it is the only place that logs unexpected errors.
func (s *Server) handleError(c *echo.Context, err error) {
	req := c.Request()
	ctx := req.Context()
	id := requestid.From(ctx)

	if resp, _ := echo.UnwrapResponse(c.Response()); resp != nil && resp.Committed {
		// Too late to change the status; the best we can do is leave a trace.
		s.logger.LogAttrs(ctx, slog.LevelError, "error after response started",
			slog.String(requestid.LogKey, id), slog.String("error", err.Error()))
		return
	}

	pub := publicError(err)
	if pub.Status >= http.StatusInternalServerError {
		s.logger.LogAttrs(ctx, slog.LevelError, "request failed",
			slog.String(requestid.LogKey, id),
			slog.String("route", routeLabel(c)),
			slog.Int("status", pub.Status),
			slog.String("code", string(pub.Code)),
			slog.String("error", err.Error()))
	}

	h := c.Response().Header()
	// Headers a failed handler already set describe a response that is no
	// longer being sent (a file's type, validators, caching).
	for _, k := range []string{"Content-Type", "Content-Length", "Content-Encoding", "Content-Disposition", "ETag", "Last-Modified"} {
		h.Del(k)
	}
	h.Set("Cache-Control", "no-store")
	// Accept picks JSON or HTML below, so caches must key on it.
	addVary(h, "Accept")

	var writeErr error
	switch {
	case req.Method == http.MethodHead:
		writeErr = c.NoContent(pub.Status)
	case wantsJSON(req):
		details := pub.Details
		if details == nil {
			details = map[string]any{}
		}
		writeErr = c.JSON(pub.Status, errorBody{Error: errorPayload{
			Code: pub.Code, Message: pub.Message, RequestID: id, Details: details,
		}})
	default:
		writeErr = s.render(c, pub.Status, page{
			title: errorTitle(pub.Status),
			content: errorpage.Page(errorpage.ViewModel{
				Status:    pub.Status,
				Title:     errorTitle(pub.Status),
				Message:   pub.Message,
				RequestID: id,
			}),
		})
		if writeErr != nil {
			// The error page itself failed; fall back to text that cannot fail.
			writeErr = c.String(pub.Status, http.StatusText(pub.Status)+" (request id "+id+")")
		}
	}
	if writeErr != nil {
		s.logger.LogAttrs(ctx, slog.LevelWarn, "writing error response failed",
			slog.String(requestid.LogKey, id), slog.String("error", writeErr.Error()))
	}
}

// publicError decides what the client is told about err. It never copies
// err's own text: only messages written for clients are used. The order is
// the most specific first; anything unrecognised is a 500 "internal".
func publicError(err error) *APIError {
	if apiErr, ok := errors.AsType[*APIError](err); ok {
		pub := *apiErr
		if pub.Status == 0 {
			pub.Status = wire.HTTPStatus(pub.Code)
		}
		if pub.Code == "" {
			pub.Code = codeForStatus(pub.Status)
		}
		if pub.Message == "" {
			pub.Message = defaultMessage(pub.Status)
		}
		return &pub
	}
	if coded, ok := errors.AsType[*errs.CodedError](err); ok {
		if !coded.Code.Known() {
			return internalError()
		}
		status := wire.HTTPStatus(coded.Code)
		pub := &APIError{Status: status, Code: coded.Code, Message: coded.Message, Details: coded.Details}
		if pub.Message == "" {
			pub.Message = defaultMessage(status)
		}
		return pub
	}
	if invalid, ok := errors.AsType[*errs.ValidationError](err); ok {
		// Field messages are written for people and never echo values
		// (services/errs promises that), so they can be shown.
		return &APIError{
			Status:  http.StatusBadRequest,
			Code:    wire.CodeInvalidRequest,
			Message: "Some fields are invalid.",
			Details: map[string]any{"fields": invalid.Problems},
		}
	}
	switch {
	case errors.Is(err, errs.ErrNotFound):
		return &APIError{Status: http.StatusNotFound, Code: wire.CodeNotFound, Message: defaultMessage(http.StatusNotFound)}
	case errors.Is(err, errs.ErrForbidden):
		return &APIError{Status: http.StatusForbidden, Code: wire.CodeForbidden, Message: defaultMessage(http.StatusForbidden)}
	case errors.Is(err, errs.ErrConflict):
		return &APIError{Status: http.StatusConflict, Code: wire.CodeConflict, Message: defaultMessage(http.StatusConflict)}
	}
	if coder, ok := errors.AsType[wireCoder](err); ok && coder.Code().Known() {
		status := wire.HTTPStatus(coder.Code())
		return &APIError{Status: status, Code: coder.Code(), Message: defaultMessage(status)}
	}
	// Echo's own errors (404 and 405 from the router, binding failures) carry
	// only a status; their text may quote the request, so it is not reused.
	if status := echo.StatusCode(err); status >= 400 && status < 600 {
		return &APIError{Status: status, Code: codeForStatus(status), Message: defaultMessage(status)}
	}
	return internalError()
}

func internalError() *APIError {
	return &APIError{
		Status:  http.StatusInternalServerError,
		Code:    wire.CodeInternal,
		Message: defaultMessage(http.StatusInternalServerError),
	}
}

// codeForStatus names a bare status (from Echo, or an APIError without a
// code) with the wire code that has that status; statuses no code has fall
// back to invalid_request or internal, keeping the status itself.
func codeForStatus(status int) wire.ErrorCode {
	switch status {
	case http.StatusBadRequest:
		return wire.CodeInvalidRequest
	case http.StatusForbidden:
		return wire.CodeForbidden
	case http.StatusNotFound:
		return wire.CodeNotFound
	case http.StatusMethodNotAllowed:
		return wire.CodeMethodNotAllowed
	case http.StatusConflict:
		return wire.CodeConflict
	case http.StatusRequestEntityTooLarge:
		return wire.CodePayloadTooLarge
	case http.StatusUnsupportedMediaType:
		return wire.CodeUnsupportedMediaType
	case http.StatusTooManyRequests:
		return wire.CodeRateLimited
	}
	if status < http.StatusInternalServerError {
		return wire.CodeInvalidRequest
	}
	return wire.CodeInternal
}

// defaultMessage is the human sentence for a status when nothing more
// specific was written for the client.
func defaultMessage(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "The request could not be understood."
	case http.StatusUnauthorized:
		return "Authentication is required."
	case http.StatusForbidden:
		return "You do not have access to this."
	case http.StatusNotFound:
		return "Nothing exists at this address."
	case http.StatusMethodNotAllowed:
		return "This address does not accept that method."
	case http.StatusConflict:
		return "The request conflicts with the current state."
	case http.StatusGone:
		return "This is no longer available."
	case http.StatusRequestEntityTooLarge:
		return "The request body is too large."
	case http.StatusUnsupportedMediaType:
		return "The request body has an unsupported content type."
	case http.StatusTooManyRequests:
		return "Too many requests; slow down and try again."
	case http.StatusServiceUnavailable:
		return "The service is temporarily unavailable."
	}
	if status >= http.StatusInternalServerError {
		return "Something went wrong on our side. The request id helps an operator find out what."
	}
	return "The request could not be completed."
}

// errorTitle is the heading of the HTML error page.
func errorTitle(status int) string {
	switch status {
	case http.StatusNotFound:
		return "Page not found"
	case http.StatusUnauthorized:
		return "Sign-in required"
	case http.StatusForbidden:
		return "Access denied"
	case http.StatusMethodNotAllowed:
		return "Method not allowed"
	case http.StatusTooManyRequests:
		return "Too many requests"
	}
	if status >= http.StatusInternalServerError {
		return "Something went wrong"
	}
	return http.StatusText(status)
}

// wantsJSON decides between the JSON error shape and an HTML page. The SDK
// API under /sdk/ speaks JSON; the one exception is a browser navigating
// there with GET and asking for HTML (the Connect popup lives under
// /sdk/oauth/connect). Elsewhere, a caller that prefers JSON gets JSON.
func wantsJSON(r *http.Request) bool {
	accept := strings.ToLower(r.Header.Get("Accept"))
	htmlAt := strings.Index(accept, "text/html")
	jsonAt := strings.Index(accept, "application/json")
	if jsonAt < 0 {
		jsonAt = strings.Index(accept, "+json")
	}
	prefersJSON := jsonAt >= 0 && (htmlAt < 0 || jsonAt < htmlAt)

	if strings.HasPrefix(r.URL.Path, "/sdk/") {
		browserNavigation := r.Method == http.MethodGet && htmlAt >= 0
		return prefersJSON || !browserNavigation
	}
	return prefersJSON
}
