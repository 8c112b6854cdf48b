package testutil

import (
	"io"
	"log/slog"
)

// DiscardLogger is a logger for tests that do not inspect logs.
func DiscardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
