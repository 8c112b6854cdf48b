package handlers

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/latchkey/latchkey/handlers/requestid"
)

// defaultReadyTimeout bounds one readiness check, so a hung database makes
// /readyz answer 503 quickly instead of hanging the load balancer's probe.
const defaultReadyTimeout = 3 * time.Second

// maxReasonLength keeps the reason a short phrase even if a Reason method
// misbehaves.
const maxReasonLength = 120

// NotReady returns a readiness failure whose reason /readyz may show. reason
// must be a short fixed phrase ("database unreachable", "schema not current");
// cause is only logged.
func NotReady(reason string, cause error) error {
	return &notReadyError{reason: reason, cause: cause}
}

type notReadyError struct {
	reason string
	cause  error
}

func (e *notReadyError) Error() string {
	if e.cause == nil {
		return e.reason
	}
	return e.reason + ": " + e.cause.Error()
}

func (e *notReadyError) Unwrap() error  { return e.cause }
func (e *notReadyError) Reason() string { return e.reason }

type statusBody struct {
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
}

// healthz answers as long as the process can serve HTTP at all: liveness,
// with no dependency checks, so a database outage does not get replicas
// restarted in a loop.
func (s *Server) healthz(c *echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, statusBody{Status: "ok"})
}

// readyz answers whether this replica should receive traffic now.
func (s *Server) readyz(c *echo.Context) error {
	c.Response().Header().Set("Cache-Control", "no-store")
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.readyTimeout)
	defer cancel()

	err := s.readiness.Ready(ctx)
	if err == nil {
		return c.JSON(http.StatusOK, statusBody{Status: "ready"})
	}
	reason := notReadyReason(ctx, err)
	s.logger.LogAttrs(ctx, slog.LevelWarn, "not ready",
		slog.String(requestid.LogKey, requestid.From(ctx)),
		slog.String("reason", reason),
		slog.String("error", err.Error()))
	return c.JSON(http.StatusServiceUnavailable, statusBody{Status: "not_ready", Reason: reason})
}

// notReadyReason never echoes the error's own text, which may name hosts,
// users or file paths; only a Reason the dependency wrote for this purpose.
func notReadyReason(ctx context.Context, err error) string {
	if r, ok := errors.AsType[interface {
		error
		Reason() string
	}](err); ok && r.Reason() != "" {
		reason := r.Reason()
		if len(reason) > maxReasonLength {
			reason = reason[:maxReasonLength]
		}
		return reason
	}
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return "readiness check timed out"
	}
	return "dependency check failed"
}
