package handlers

import (
	"net/http"
	"strings"
	"testing"

	"github.com/labstack/echo/v5"
)

// echoRequestID is a test route that reports the id a service would see.
func echoRequestID(s *Server) {
	s.echo.GET("/test/request-id", func(c *echo.Context) error {
		return c.String(http.StatusOK, RequestIDFrom(c.Request().Context()))
	})
	failingRoutes(s)
}

func TestEveryResponseCarriesRequestIDAndSecurityHeaders(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int
	}{
		{name: "page", method: http.MethodGet, path: "/", wantStatus: http.StatusOK},
		{name: "probe", method: http.MethodGet, path: "/healthz", wantStatus: http.StatusOK},
		{name: "static asset", method: http.MethodGet, path: "/static/css/app.css", wantStatus: http.StatusOK},
		{name: "unknown SDK path", method: http.MethodGet, path: "/sdk/v1/nope", wantStatus: http.StatusNotFound},
		{name: "unknown page", method: http.MethodGet, path: "/nope", wantStatus: http.StatusNotFound},
		{name: "wrong method", method: http.MethodPut, path: "/healthz", wantStatus: http.StatusMethodNotAllowed},
		{name: "internal error", method: http.MethodGet, path: "/test/internal", wantStatus: http.StatusInternalServerError},
		{name: "panic", method: http.MethodGet, path: "/test/panic", wantStatus: http.StatusInternalServerError},
	}
	want := map[string]string{
		"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"X-Frame-Options":         "DENY",
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, Deps{}, failingRoutes)

			res := ts.do(t, tt.method, tt.path, nil)

			if res.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d", res.status, tt.wantStatus)
			}
			if len(res.header.Get(HeaderRequestID)) != 26 {
				t.Fatalf("request id = %q", res.header.Get(HeaderRequestID))
			}
			for k, v := range want {
				if got := res.header.Get(k); got != v {
					t.Fatalf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestRequestIDReachesTheHandlerContext(t *testing.T) {
	ts := newTestServer(t, Deps{}, echoRequestID)

	first := ts.do(t, http.MethodGet, "/test/request-id", nil)
	second := ts.do(t, http.MethodGet, "/test/request-id", nil)

	if first.body == "" || first.body != first.header.Get(HeaderRequestID) {
		t.Fatalf("context id %q, header id %q", first.body, first.header.Get(HeaderRequestID))
	}
	if first.body == second.body {
		t.Fatalf("two requests shared id %q", first.body)
	}
}

func TestClientSuppliedRequestIDIsNotAdopted(t *testing.T) {
	ts := newTestServer(t, Deps{}, echoRequestID)

	res := ts.do(t, http.MethodGet, "/test/request-id", headers(HeaderRequestID, "forged-id", "X-Request-Id", "forged"))

	if id := res.header.Get(HeaderRequestID); strings.Contains(id, "forged") || res.body != id {
		t.Fatalf("client id adopted: header %q, context %q", id, res.body)
	}
}

func TestRequestLogHoldsRouteNotSecrets(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		path      string
		wantRoute string
		status    string
	}{
		{name: "matched route logs its pattern without the query", method: http.MethodGet, path: "/healthz?api_key=s3cr3t", wantRoute: `"route":"/healthz"`, status: `"status":200`},
		{name: "unmatched path is not logged verbatim", method: http.MethodGet, path: "/sdk/v1/lk_app_s3cr3t?token=s3cr3t", wantRoute: `"route":"(unmatched)"`, status: `"status":404`},
		{name: "failed request logs its final status", method: http.MethodGet, path: "/test/internal?x=s3cr3t", wantRoute: `"route":"/test/internal"`, status: `"status":500`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, Deps{}, failingRoutes)

			res := ts.do(t, tt.method, tt.path, headers(
				"Authorization", "Bearer s3cr3t",
				"Cookie", "latchkey_session=s3cr3t",
				"Latchkey-User-Token", "s3cr3t.jwt",
			))

			var requestLine string
			for line := range strings.SplitSeq(ts.logs.String(), "\n") {
				if strings.Contains(line, `"msg":"request"`) {
					requestLine = line
				}
			}
			if requestLine == "" {
				t.Fatalf("no request log line: %s", ts.logs.String())
			}
			for _, want := range []string{tt.wantRoute, tt.status, `"method":"GET"`, `"latency":`, `"request_id":"` + res.header.Get(HeaderRequestID) + `"`} {
				if !strings.Contains(requestLine, want) {
					t.Fatalf("request log lacks %s: %s", want, requestLine)
				}
			}
			if strings.Contains(requestLine, "s3cr3t") {
				t.Fatalf("request log leaked a secret: %s", requestLine)
			}
		})
	}
}
