package handlers

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/latchkey/latchkey/handlers/requestid"
)

// contentSecurityPolicy allows only same-origin scripts and styles, and no
// inline script at all: an injected <script> or on* attribute does not run.
// Pages that must differ (the Connect popup) override the header themselves.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// assignRequestID gives every request a fresh id, sends it back on the
// response (errors and 404s included, since it is set before routing's
// outcome is known) and puts it in the request context for services.
func (s *Server) assignRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		id := requestid.New()
		c.Response().Header().Set(HeaderRequestID, id)
		r := c.Request()
		c.SetRequest(r.WithContext(requestid.With(r.Context(), id)))
		return next(c)
	}
}

// setSecurityHeaders is set before the handler runs so that error pages and
// static files carry the same headers as pages.
func (s *Server) setSecurityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if s.secure {
			// Only when the public URL is https: on plain http it would be
			// ignored at best and lock a misconfigured host out at worst.
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		return next(c)
	}
}

// logRequests writes one line per request. It deliberately logs the route
// pattern (e.g. /sdk/v1/grants/:grant_id) and never the raw URL, query,
// headers, cookies or bodies: tokens and keys travel in all of those.
func (s *Server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			// Handle the error here instead of after the chain returns, so the
			// status logged below is the one the client actually received.
			s.handleError(c, err)
		}
		_, status := echo.ResolveResponseStatus(c.Response(), nil)

		r := c.Request()
		level := slog.LevelInfo
		if status >= http.StatusInternalServerError {
			level = slog.LevelError
		}
		s.logger.LogAttrs(r.Context(), level, "request",
			slog.String("method", r.Method),
			slog.String("route", routeLabel(c)),
			slog.Int("status", status),
			slog.Duration("latency", time.Since(start)),
			slog.String(requestid.LogKey, requestid.From(r.Context())),
		)
		return nil
	}
}

// routeLabel is the matched route pattern, or a fixed word when nothing
// matched: an unmatched path is whatever the client typed and is not logged.
func routeLabel(c *echo.Context) string {
	if p := c.Path(); p != "" {
		return p
	}
	return "(unmatched)"
}

// errPanic is what a recovered panic becomes: an internal error whose details
// go to the log, never to the client.
var errPanic = errors.New("handler panicked")

// recoverPanics turns a panic into an ordinary 500 so one bad request cannot
// take the process down, and logs the stack with the request id.
func (s *Server) recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c *echo.Context) (err error) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				// net/http's deliberate way to abort a response; let it through.
				panic(v)
			}
			ctx := c.Request().Context()
			s.logger.LogAttrs(ctx, slog.LevelError, "panic recovered",
				slog.String(requestid.LogKey, requestid.From(ctx)),
				slog.String("panic", fmt.Sprint(v)),
				slog.String("stack", string(debug.Stack())),
			)
			err = errPanic
		}()
		return next(c)
	}
}
