package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/latchkey/latchkey/handlers"
)

// Server is a running HTTP server over a Core.
type Server struct {
	core    *Core
	handler http.Handler
	http    *http.Server
}

// Option adds to the server.
type Option func(*handlers.Deps)

// WithDemo serves h under /demo/ (latchkey serve --demo only).
func WithDemo(h http.Handler) Option { return func(d *handlers.Deps) { d.Demo = h } }

// New builds the HTTP edge over core.
func New(core *Core, opts ...Option) (*Server, error) {
	deps := handlers.Deps{
		Logger:    core.Logger,
		Readiness: core,
		PublicURL: core.Config.PublicURL.String(),
		SDKAuth:   core.SDKAuth,
		Audit:     core.AuditCalls,
		Agents:    core.Agents,
		APIKeys:   core.Keys,
		Grants:    core.Grants,
		Identity:  core.Identity,
		Secrets:   core.Secrets,
		Proxy:     core.Proxy,
		Connect:   core.Connect,
	}
	for _, o := range opts {
		o(&deps)
	}
	h, err := handlers.New(deps)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	return &Server{
		core:    core,
		handler: h,
		http: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       120 * time.Second,
			// No WriteTimeout: proxied responses stream for as long as the
			// upstream takes, bounded per call by the proxy itself.
			MaxHeaderBytes: 64 << 10,
		},
	}, nil
}

// Handler is the HTTP handler, for in-process tests.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves on ln until ctx is cancelled, then shuts down gracefully:
// no new connections, in-flight requests get up to 20 seconds to finish.
// The SDK authenticator's background jobs (nonce sweeping, key-usage
// flushing) run for as long as the server does.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.http.ErrorLog = nil
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	bg.Go(func() { _ = s.core.SDKAuth.Run(bgCtx) })
	// Idle grants are refreshed before they expire, and refreshes a crash
	// interrupted are detected, even when no call uses them.
	bg.Go(func() { _ = s.core.Tokens.Run(bgCtx) })
	bg.Go(func() { s.core.runHousekeeping(bgCtx) })
	// Stopped only after the HTTP server has drained, so the final usage
	// flush sees the last requests.
	defer func() {
		stopBackground()
		bg.Wait()
	}()
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	s.core.Logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	if err := s.http.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("server: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("server: %w", err)
	}
	return nil
}
