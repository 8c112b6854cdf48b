// Command latchkey is the Latchkey server, its migrations, key rotation and
// the admin scripting surface (DESIGN.md §7).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// usageError is bad input from the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "latchkey: "+err.Error())
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

const usage = `usage: latchkey <command> [flags]

commands:
  serve [--demo]        migrate when needed, then serve
  migrate up|status     apply or list schema migrations
  keys rotate           add a data-key version and re-encrypt online
  admin …               scripting surface (admin help)
  request …             a signed SDK call from the command line
`

// run is the whole program, with its environment passed in so tests can
// drive every command in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return usagef("missing command")
	}
	env := &environment{getenv: getenv, stdout: stdout, stderr: stderr}
	cmd, rest := args[1], args[2:]
	switch cmd {
	case "serve":
		return env.serve(ctx, rest)
	case "migrate":
		return env.migrate(ctx, rest)
	case "keys":
		return env.keys(ctx, rest)
	case "admin":
		return env.admin(ctx, rest)
	case "request":
		return env.request(ctx, rest)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usagef("unknown command %q", cmd)
}

// environment carries what every command needs from the outside world.
type environment struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}
