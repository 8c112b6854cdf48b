package errorpage_test

import (
	"testing"

	"github.com/latchkey/latchkey/testutil/templtest"
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
			templtest.Check(t, templtest.Render(t, errorpage.Page(tt.vm)), tt.want, tt.notWant)
		})
	}
}
