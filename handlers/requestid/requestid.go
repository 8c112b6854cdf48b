// Package requestid carries the per-request id through a context.Context.
//
// It lives in its own leaf package, importing only the standard library, so
// services and loggers can read the id without importing handlers (which
// would create an import cycle, since handlers import services).
package requestid

import (
	"context"
	"crypto/rand"
	"log/slog"
)

// LogKey is the attribute name the id is logged under, everywhere.
const LogKey = "request_id"

type ctxKey struct{}

// New returns a fresh random id: 26 base32 characters carrying 128 bits, so
// ids never collide across replicas and cannot be guessed. Ids sent by clients
// are never adopted: they would let a caller forge log correlation.
func New() string {
	return rand.Text()
}

// With returns a context that carries id.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// From returns the id carried by ctx, or "" outside a request.
func From(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// NewLogHandler wraps next so that every record logged with a request's
// context (logger.InfoContext(ctx, …)) carries the request id, without each
// service having to add it by hand.
func NewLogHandler(next slog.Handler) slog.Handler {
	return logHandler{next: next}
}

type logHandler struct {
	next slog.Handler
}

func (h logHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := From(ctx); id != "" && !hasAttr(r, LogKey) {
		r = r.Clone()
		r.AddAttrs(slog.String(LogKey, id))
	}
	return h.next.Handle(ctx, r)
}

func (h logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{next: h.next.WithAttrs(attrs)}
}

// WithGroup keeps wrapping, so ids logged through a grouped logger land inside
// that group; acceptable, since the id is still on the line.
func (h logHandler) WithGroup(name string) slog.Handler {
	return logHandler{next: h.next.WithGroup(name)}
}

// hasAttr avoids a duplicate key when the caller already logged the id.
func hasAttr(r slog.Record, key string) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			found = true
			return false
		}
		return true
	})
	return found
}
