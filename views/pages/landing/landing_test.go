package landing_test

import (
	"strings"
	"testing"

	"github.com/latchkey/latchkey/views/pages/landing"
)

func TestPage(t *testing.T) {
	tests := []struct {
		name    string
		vm      landing.ViewModel
		want    []string
		notWant []string
	}{
		{
			name: "root carries the test id and the links it was given",
			vm:   landing.ViewModel{HealthURL: "/healthz", DocsURL: "https://docs.example.com/latchkey"},
			want: []string{`data-testid="landing"`, `href="/healthz"`, `href="https://docs.example.com/latchkey"`, "Latchkey"},
		},
		{
			name:    "is a fragment, not a document",
			vm:      landing.ViewModel{HealthURL: "/healthz", DocsURL: "/docs"},
			notWant: []string{"<html", "<head", "<body"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := landing.Page(tt.vm).Render(t.Context(), &b); err != nil {
				t.Fatalf("render: %v", err)
			}
			html := b.String()
			for _, w := range tt.want {
				if !strings.Contains(html, w) {
					t.Errorf("missing %q in %s", w, html)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(html, w) {
					t.Errorf("unexpected %q in %s", w, html)
				}
			}
		})
	}
}
