// Package e2e runs the built latchkey binary as a separate process (and,
// for browser tests, a real headless Chromium) the way operators and users
// meet it.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/latchkey/latchkey/testutil"
)

// binary is the latchkey executable built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "latchkey-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "latchkey")
	build := exec.Command("go", "build", "-o", binary, "../cmd/latchkey")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build latchkey:", err)
		os.Exit(1)
	}
	code := m.Run()
	testutil.DropTemplate()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}
