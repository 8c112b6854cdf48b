package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"github.com/latchkey/latchkey/server"

	"github.com/latchkey/latchkey/services/vault"
)

func (e *environment) keys(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "rotate" {
		return usagef("keys: want rotate")
	}
	fs := newFlags("keys rotate")
	app := fs.String("app", "", "rotate one app's keyring (default: every app)")
	grace := fs.Duration("grace", 0, "how long to wait for other replicas to pick up the new key version before the final re-encryption scan (default: twice the key cache TTL plus a write allowance; 0s when no other replica runs)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	var opts []vault.Option
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "grace" {
			g := *grace
			if g <= 0 {
				g = time.Nanosecond // the vault reads 0 as "use the default"
			}
			opts = append(opts, vault.WithRotationGrace(g))
		}
	})
	core, err := e.openCoreWith(ctx, server.CoreOptions{Vault: opts})
	if err != nil {
		return err
	}
	defer core.Close()
	rep, err := core.Vault.Rotate(ctx, *app, func(p vault.RotateProgress) {
		if !*asJSON {
			fmt.Fprintf(e.stderr, "%+v\n", p)
		}
	})
	if err != nil {
		return fmt.Errorf("keys rotate: %w (safe to run again: rotation resumes)", err)
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(rep)
	}
	fmt.Fprintf(e.stdout, "%+v\n", rep)
	return nil
}
