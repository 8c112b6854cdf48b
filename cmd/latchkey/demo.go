package main

import (
	"context"
	"fmt"
	"io"

	"github.com/latchkey/latchkey/server"
)

// seedDemo prepares the demo walkthrough. The demo identity and OAuth
// providers arrive with the Connect work; for now it prints how to start.
func seedDemo(ctx context.Context, core *server.Core, w io.Writer) error {
	_ = ctx
	fmt.Fprintf(w, "Latchkey demo: open %s\n", core.Config.PublicURL.String())
	return nil
}
