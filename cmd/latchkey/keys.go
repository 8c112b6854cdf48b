package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/latchkey/latchkey/services/vault"
)

func (e *environment) keys(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "rotate" {
		return usagef("keys: want rotate")
	}
	fs := newFlags("keys rotate")
	app := fs.String("app", "", "rotate one app's keyring (default: every app)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	core, err := e.openCore(ctx)
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
