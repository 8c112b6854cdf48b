// Package templtest renders templ components in tests and checks the HTML
// for what must and must not be in it.
package templtest

import (
	"strings"
	"testing"

	"github.com/a-h/templ"
)

// Render renders c and fails the test if it cannot.
func Render(t testing.TB, c templ.Component) string {
	t.Helper()
	var b strings.Builder
	if err := c.Render(t.Context(), &b); err != nil {
		t.Fatalf("render: %v", err)
	}
	return b.String()
}

// Check marks the test failed, and goes on, for each string of want
// missing from html and each of notWant found in it.
func Check(t testing.TB, html string, want, notWant []string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(html, w) {
			t.Errorf("missing %q in:\n%s", w, html)
		}
	}
	for _, w := range notWant {
		if strings.Contains(html, w) {
			t.Errorf("unexpected %q in:\n%s", w, html)
		}
	}
}
