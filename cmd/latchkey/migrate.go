package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/latchkey/latchkey/config"
	"github.com/latchkey/latchkey/services/database"
)

func (e *environment) migrate(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("migrate: want up or status")
	}
	fs := newFlags("migrate " + args[0])
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := config.Load(e.getenv, false)
	if err != nil {
		return err
	}
	db, err := database.Open(ctx, database.Options{URL: cfg.DatabaseURL, SQLitePath: cfg.SQLitePath()})
	if err != nil {
		return err
	}
	defer db.Close()
	m, err := database.NewMigrator(db)
	if err != nil {
		return err
	}
	switch args[0] {
	case "up":
		applied, err := m.Up(ctx)
		if err != nil {
			return err
		}
		cur, err := m.Current(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(e.stdout).Encode(map[string]any{"applied": nonNilInts(applied), "version": cur})
		}
		fmt.Fprintf(e.stdout, "applied %d migration(s); schema at version %d\n", len(applied), cur)
		return nil
	case "status":
		st, err := m.Status(ctx)
		if err != nil {
			return err
		}
		cur, err := m.Current(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(e.stdout).Encode(map[string]any{"version": cur, "latest": m.Latest(), "migrations": st})
		}
		fmt.Fprintf(e.stdout, "schema version %d (this binary knows up to %d)\n", cur, m.Latest())
		for _, s := range st {
			state := "pending"
			if s.Applied {
				state = "applied"
			}
			fmt.Fprintf(e.stdout, "  %05d  %-8s %s\n", s.Version, state, s.Name)
		}
		if cur > m.Latest() {
			return fmt.Errorf("%w: upgrade Latchkey", database.ErrSchemaTooNew)
		}
		return nil
	}
	return usagef("migrate: unknown subcommand %q (want up or status)", args[0])
}

func nonNilInts(s []int64) []int64 {
	if s == nil {
		return []int64{}
	}
	return s
}
