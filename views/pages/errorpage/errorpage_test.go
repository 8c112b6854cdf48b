package errorpage_test

import (
	"strings"
	"testing"

	"github.com/latchkey/latchkey/views/pages/errorpage"
)

func TestPage(t *testing.T) {
	tests := []struct {
		name    string
		vm      errorpage.ViewModel
		want    []string
		notWant []string
	}{
		{
			name: "shows status, title, message and request id",
			vm:   errorpage.ViewModel{Status: 404, Title: "Page not found", Message: "Nothing here.", RequestID: "RID123"},
			want: []string{`data-testid="error-page"`, ">404<", "Page not found", "Nothing here.", `data-testid="error-request-id"`, "RID123"},
		},
		{
			name:    "omits the request id block when there is no id",
			vm:      errorpage.ViewModel{Status: 500, Title: "Something went wrong", Message: "Sorry."},
			notWant: []string{`data-testid="error-request-id"`},
		},
		{
			name:    "escapes markup in every field",
			vm:      errorpage.ViewModel{Status: 400, Title: "<b>t</b>", Message: `<script>alert(1)</script>`, RequestID: `"><img src=x>`},
			want:    []string{"&lt;script&gt;", "&lt;b&gt;"},
			notWant: []string{"<script>", "<b>", "<img src=x>"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := errorpage.Page(tt.vm).Render(t.Context(), &b); err != nil {
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
