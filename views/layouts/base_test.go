package layouts_test

import (
	"testing"

	"github.com/a-h/templ"

	"github.com/latchkey/latchkey/testutil/templtest"
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
			content := templ.Raw(`<p id="content">hello</p>`)
			templtest.Check(t, templtest.Render(t, layouts.Base(tt.meta, content)), tt.want, nil)
		})
	}
}
