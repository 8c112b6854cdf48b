package layouts_test

import (
	"strings"
	"testing"

	"github.com/a-h/templ"

	"github.com/latchkey/latchkey/views/layouts"
)

func TestBase(t *testing.T) {
	tests := []struct {
		name string
		meta layouts.Meta
		want []string
	}{
		{
			name: "loads the stylesheet and htmx by URL and wraps the content",
			meta: layouts.Meta{Title: "Grants", StylesheetURL: "/static/css/app.css?v=1", ScriptURL: "/static/js/htmx.min.js?v=2"},
			want: []string{
				"<!doctype html>",
				"<title>Grants · Latchkey</title>",
				`<link rel="stylesheet" href="/static/css/app.css?v=1">`,
				`<script src="/static/js/htmx.min.js?v=2" defer></script>`,
				`<p id="content">hello</p>`,
			},
		},
		{
			name: "untitled page is titled with the product name",
			meta: layouts.Meta{StylesheetURL: "/a.css", ScriptURL: "/a.js"},
			want: []string{"<title>Latchkey</title>"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			content := templ.Raw(`<p id="content">hello</p>`)
			if err := layouts.Base(tt.meta, content).Render(t.Context(), &b); err != nil {
				t.Fatalf("render: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("missing %q in %s", w, b.String())
				}
			}
		})
	}
}
