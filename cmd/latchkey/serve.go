package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"

	"github.com/latchkey/latchkey/config"
	"github.com/latchkey/latchkey/server"
)

func (e *environment) serve(ctx context.Context, args []string) error {
	fs := newFlags("serve")
	demo := fs.Bool("demo", false, "seed demo data (idempotent) and print a walkthrough")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := config.Load(e.getenv, isTerminal(e.stderr))
	if err != nil {
		return err
	}
	logger := newLogger(cfg, e.stderr)
	if *demo {
		// The demo's provider and API live on this server, over plain http
		// on loopback: the proxy must be allowed to reach them.
		cfg.AllowPrivateUpstreams = true
	}
	if cfg.AllowPrivateUpstreams {
		logger.Warn("LATCHKEY_ALLOW_PRIVATE_UPSTREAMS is on: http and private/loopback upstreams are permitted; never use this in production")
	}
	core, err := server.Open(ctx, cfg, logger, server.CoreOptions{})
	if err != nil {
		return err
	}
	defer core.Close()

	var opts []server.Option
	if *demo {
		h, err := setupDemo(ctx, core, e.stdout)
		if err != nil {
			return err
		}
		opts = append(opts, server.WithDemo(h))
	}

	srv, err := server.New(core, opts...)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	logger.Info("latchkey listening", "addr", ln.Addr().String(), "public_url", cfg.PublicURL.String(), "database", core.DB.Dialect)
	return srv.Serve(ctx, ln)
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if cfg.LogFormat == config.LogFormatJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
