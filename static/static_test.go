package static_test

import (
	"io/fs"
	"testing"

	"github.com/latchkey/latchkey/static"
)

func TestFSHoldsBuiltAssetsOnly(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		present bool
	}{
		{name: "compiled stylesheet is embedded", path: "css/app.css", present: true},
		{name: "vendored htmx is embedded", path: "js/htmx.min.js", present: true},
		{name: "favicon is embedded", path: "img/favicon.svg", present: true},
		{name: "tailwind source is not embedded", path: "css/input.css", present: false},
		{name: "go source is not embedded", path: "static.go", present: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := fs.Stat(static.FS, tt.path)
			if !tt.present {
				if err == nil {
					t.Fatalf("%s is embedded but should not be", tt.path)
				}
				return
			}
			if err != nil {
				t.Fatalf("stat %s: %v", tt.path, err)
			}
			if info.Size() == 0 {
				t.Fatalf("%s is empty; run make web", tt.path)
			}
		})
	}
}
