package landing_test

import (
	"testing"

	"github.com/latchkey/latchkey/testutil/templtest"
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
			templtest.Check(t, templtest.Render(t, landing.Page(tt.vm)), tt.want, tt.notWant)
		})
	}
}
