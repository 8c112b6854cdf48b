package handlers

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/labstack/echo/v5"

	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/errs"
)

// failingRoutes are test-only handlers that fail in the ways real handlers can.
func failingRoutes(s *Server) {
	internal := func(c *echo.Context) error {
		return fmt.Errorf("open vault: unwrap data key s3cr3t: %w", errors.New("gcm: message authentication failed"))
	}
	s.echo.GET("/test/internal", internal)
	s.echo.GET("/sdk/v1/test/internal", internal)
	s.echo.GET("/test/panic", func(c *echo.Context) error { panic("boom with s3cr3t") })
	s.echo.GET("/sdk/v1/test/panic", func(c *echo.Context) error { panic("boom with s3cr3t") })
	s.echo.GET("/sdk/v1/test/api-error", func(c *echo.Context) error {
		return NewAPIError(wire.CodeAmbiguousGrant, "Several grants match.").
			WithDetails(map[string]any{"account_identifiers": []string{"octocat", "hubot"}}).
			Wrap(errors.New("cause with s3cr3t"))
	})
	// Typed service errors, each wrapped the way a service would wrap them.
	serviceErrors := map[string]error{
		"coded": &errs.CodedError{
			Code: wire.CodeAmbiguousGrant, Message: "Several grants match; name an account.",
			Details: map[string]any{"account_identifiers": []string{"octocat", "hubot"}},
			Cause:   errors.New("token s3cr3t"),
		},
		"coded-unknown": &errs.CodedError{Code: "made_up", Message: "s3cr3t message"},
		"coded-upstream": &errs.CodedError{
			Code: wire.CodeUpstreamTimeout, Message: "The provider did not answer in time.", Cause: errors.New("dial s3cr3t"),
		},
		"validation": errs.Invalid("name", "must not be empty"),
		"not-found":  errs.ErrNotFound,
		"forbidden":  errs.ErrForbidden,
		"conflict":   errs.ErrConflict,
		"wire":       &wire.MalformedAuthError{Header: "Latchkey-Nonce", Reason: "s3cr3t"},
	}
	s.echo.GET("/sdk/v1/test/typed/:kind", func(c *echo.Context) error {
		return fmt.Errorf("service call with s3cr3t: %w", serviceErrors[c.Param("kind")])
	})
	s.echo.GET("/test/written-then-failed", func(c *echo.Context) error {
		if err := c.String(http.StatusOK, "partial"); err != nil {
			return err
		}
		return errors.New("late failure s3cr3t")
	})
}

type errorShape struct {
	Error struct {
		Code      string         `json:"code"`
		Message   string         `json:"message"`
		RequestID string         `json:"request_id"`
		Details   map[string]any `json:"details"`
	} `json:"error"`
}

func TestErrorResponses(t *testing.T) {
	const html = "text/html"
	const jsonType = "application/json"
	tests := []struct {
		name       string
		method     string
		path       string
		header     []string
		wantStatus int
		wantType   string
		wantCode   string // JSON only
		wantText   string // substring of the body
	}{
		{
			name: "unknown SDK path answers the JSON error shape with not_found", method: http.MethodGet,
			path: "/sdk/v1/nope", wantStatus: http.StatusNotFound, wantType: jsonType, wantCode: "not_found",
		},
		{
			name: "unknown SDK path with a query still answers JSON", method: http.MethodGet,
			path: "/sdk/v1/nope?limit=10", header: []string{"Accept", "*/*"}, wantStatus: http.StatusNotFound, wantType: jsonType, wantCode: "not_found",
		},
		{
			name: "SDK POST answers JSON even when it accepts HTML", method: http.MethodPost,
			path: "/sdk/v1/nope", header: []string{"Accept", "text/html"}, wantStatus: http.StatusNotFound, wantType: jsonType, wantCode: "not_found",
		},
		{
			name: "browser navigating under /sdk/ gets a page", method: http.MethodGet,
			path: "/sdk/oauth/nope", header: []string{"Accept", "text/html,application/xhtml+xml,*/*;q=0.8"},
			wantStatus: http.StatusNotFound, wantType: html, wantText: `data-testid="error-page"`,
		},
		{
			name: "unknown page path answers an HTML error page", method: http.MethodGet,
			path: "/no/such/page", header: []string{"Accept", "text/html,*/*"}, wantStatus: http.StatusNotFound, wantType: html,
			wantText: `data-testid="error-page"`,
		},
		{
			name: "unknown page path without Accept answers HTML", method: http.MethodGet,
			path: "/no/such/page", wantStatus: http.StatusNotFound, wantType: html, wantText: "Page not found",
		},
		{
			name: "page path asked for JSON answers JSON", method: http.MethodGet,
			path: "/no/such/page", header: []string{"Accept", "application/json"}, wantStatus: http.StatusNotFound, wantType: jsonType, wantCode: "not_found",
		},
		{
			name: "wrong method answers 405 method_not_allowed", method: http.MethodPost,
			path: "/healthz", header: []string{"Accept", "application/json"}, wantStatus: http.StatusMethodNotAllowed, wantType: jsonType, wantCode: "method_not_allowed",
		},
		{
			name: "wrong method on a page answers a 405 page", method: http.MethodDelete,
			path: "/", wantStatus: http.StatusMethodNotAllowed, wantType: html, wantText: "Method not allowed",
		},
		{
			name: "internal error on SDK path answers internal without its text", method: http.MethodGet,
			path: "/sdk/v1/test/internal", wantStatus: http.StatusInternalServerError, wantType: jsonType, wantCode: "internal",
		},
		{
			name: "internal error on a page answers a 500 page without its text", method: http.MethodGet,
			path: "/test/internal", wantStatus: http.StatusInternalServerError, wantType: html, wantText: "Something went wrong",
		},
		{
			name: "panic on SDK path answers internal", method: http.MethodGet,
			path: "/sdk/v1/test/panic", wantStatus: http.StatusInternalServerError, wantType: jsonType, wantCode: "internal",
		},
		{
			name: "panic on a page answers a 500 page", method: http.MethodGet,
			path: "/test/panic", wantStatus: http.StatusInternalServerError, wantType: html, wantText: `data-testid="error-page"`,
		},
		{
			name: "APIError answers its own status, code and message", method: http.MethodGet,
			path: "/sdk/v1/test/api-error", wantStatus: http.StatusConflict, wantType: jsonType, wantCode: "ambiguous_grant",
			wantText: `"account_identifiers":["octocat","hubot"]`,
		},
		{
			name: "coded service error answers its code, message and details", method: http.MethodGet,
			path: "/sdk/v1/test/typed/coded", wantStatus: http.StatusConflict, wantType: jsonType, wantCode: "ambiguous_grant",
			wantText: `"message":"Several grants match; name an account.","request_id"`,
		},
		{
			name: "coded service error with an unknown code fails closed as internal", method: http.MethodGet,
			path: "/sdk/v1/test/typed/coded-unknown", wantStatus: http.StatusInternalServerError, wantType: jsonType, wantCode: "internal",
		},
		{
			name: "coded upstream error answers its gateway status", method: http.MethodGet,
			path: "/sdk/v1/test/typed/coded-upstream", wantStatus: http.StatusGatewayTimeout, wantType: jsonType, wantCode: "upstream_timeout",
		},
		{
			name: "validation error answers invalid_request with its fields", method: http.MethodGet,
			path: "/sdk/v1/test/typed/validation", wantStatus: http.StatusBadRequest, wantType: jsonType, wantCode: "invalid_request",
			wantText: `"fields":[{"field":"name","message":"must not be empty"}]`,
		},
		{
			name: "not-found sentinel answers not_found", method: http.MethodGet,
			path: "/sdk/v1/test/typed/not-found", wantStatus: http.StatusNotFound, wantType: jsonType, wantCode: "not_found",
		},
		{
			name: "forbidden sentinel answers forbidden", method: http.MethodGet,
			path: "/sdk/v1/test/typed/forbidden", wantStatus: http.StatusForbidden, wantType: jsonType, wantCode: "forbidden",
		},
		{
			name: "conflict sentinel answers conflict", method: http.MethodGet,
			path: "/sdk/v1/test/typed/conflict", wantStatus: http.StatusConflict, wantType: jsonType, wantCode: "conflict",
		},
		{
			name: "wire error answers its code without its text", method: http.MethodGet,
			path: "/sdk/v1/test/typed/wire", wantStatus: http.StatusUnauthorized, wantType: jsonType, wantCode: "malformed_auth",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, Deps{}, failingRoutes)

			res := ts.do(t, tt.method, tt.path, headers(tt.header...))

			if res.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", res.status, tt.wantStatus, res.body)
			}
			if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, tt.wantType) {
				t.Fatalf("Content-Type = %q, want %s", ct, tt.wantType)
			}
			id := res.header.Get(HeaderRequestID)
			if id == "" {
				t.Fatal("no request id header")
			}
			if strings.Contains(res.body, "s3cr3t") || strings.Contains(res.body, "authentication failed") {
				t.Fatalf("raw error text leaked into the response: %s", res.body)
			}
			if cc := res.header.Get("Cache-Control"); cc != "no-store" {
				t.Fatalf("Cache-Control = %q, want no-store", cc)
			}
			if !varyIncludes(res.header, "Accept") {
				t.Fatalf("Vary = %q, want Accept: the body's format depends on it", res.header.Values("Vary"))
			}
			if tt.wantType == jsonType {
				got := decodeJSON[errorShape](t, res.body)
				if string(got.Error.Code) != tt.wantCode {
					t.Fatalf("code = %q, want %q", got.Error.Code, tt.wantCode)
				}
				if got.Error.RequestID != id {
					t.Fatalf("request_id = %q, header = %q", got.Error.RequestID, id)
				}
				if got.Error.Message == "" {
					t.Fatal("empty message")
				}
				if got.Error.Details == nil {
					t.Fatalf("details must be an object, body %s", res.body)
				}
			} else if !strings.Contains(res.body, id) {
				t.Fatalf("error page does not show the request id %s", id)
			}
			if tt.wantText != "" && !strings.Contains(res.body, tt.wantText) {
				t.Fatalf("body lacks %q: %s", tt.wantText, res.body)
			}
		})
	}
}

func TestInternalErrorsAreLoggedWithTheRequestID(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		wantLog string
	}{
		{name: "returned error is logged in full", path: "/test/internal", wantLog: "authentication failed"},
		{name: "panic is logged with its value and stack", path: "/test/panic", wantLog: "boom with"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, Deps{}, failingRoutes)

			res := ts.do(t, http.MethodGet, tt.path, nil)

			id := res.header.Get(HeaderRequestID)
			logs := ts.logs.String()
			if !strings.Contains(logs, tt.wantLog) {
				t.Fatalf("log lacks %q: %s", tt.wantLog, logs)
			}
			if !strings.Contains(logs, `"request_id":"`+id+`"`) {
				t.Fatalf("log lacks request id %s: %s", id, logs)
			}
		})
	}
}

func TestErrorAfterTheResponseStartedKeepsTheResponse(t *testing.T) {
	ts := newTestServer(t, Deps{}, failingRoutes)

	res := ts.do(t, http.MethodGet, "/test/written-then-failed", nil)

	if res.status != http.StatusOK || res.body != "partial" {
		t.Fatalf("got %d %q, want the handler's own 200 response", res.status, res.body)
	}
	if !strings.Contains(ts.logs.String(), "error after response started") {
		t.Fatalf("late error not logged: %s", ts.logs.String())
	}
}

func TestHeadErrorHasNoBody(t *testing.T) {
	ts := newTestServer(t, Deps{}, nil)

	res := ts.do(t, http.MethodHead, "/sdk/v1/nope", nil)

	if res.status != http.StatusNotFound {
		t.Fatalf("status = %d, want 404", res.status)
	}
	if res.body != "" {
		t.Fatalf("HEAD body = %q, want empty", res.body)
	}
}

func TestPublicErrorFillsMissingFields(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantStatus int
		wantCode   string
	}{
		{name: "bare error is internal", err: errors.New("x"), wantStatus: 500, wantCode: "internal"},
		{name: "APIError without status takes its code's status", err: &APIError{Code: wire.CodeGrantRevoked}, wantStatus: 403, wantCode: "grant_revoked"},
		{name: "APIError with an unknown code and no status is internal", err: &APIError{Code: "weird"}, wantStatus: 500, wantCode: "weird"},
		{name: "APIError without code takes the status's code", err: &APIError{Status: 404}, wantStatus: 404, wantCode: "not_found"},
		{name: "echo 413 becomes payload_too_large", err: echo.ErrStatusRequestEntityTooLarge, wantStatus: 413, wantCode: "payload_too_large"},
		{name: "echo 503 keeps its status as internal", err: echo.ErrServiceUnavailable, wantStatus: 503, wantCode: "internal"},
		{name: "echo HTTPError keeps its status but not its text", err: echo.NewHTTPError(http.StatusBadRequest, "field s3cr3t bad"), wantStatus: 400, wantCode: "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := publicError(tt.err)
			if got.Status != tt.wantStatus || string(got.Code) != tt.wantCode {
				t.Fatalf("publicError = %d %s, want %d %s", got.Status, got.Code, tt.wantStatus, tt.wantCode)
			}
			if got.Message == "" || strings.Contains(got.Message, "s3cr3t") {
				t.Fatalf("message = %q", got.Message)
			}
		})
	}
}
