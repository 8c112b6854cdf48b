package handlers

import (
	"net/http"
	"strings"
	"testing"
	"testing/fstest"
)

func TestStaticAssets(t *testing.T) {
	ts := newTestServer(t, Deps{}, nil)
	cssURL := ts.srv.stylesheetURL
	jsURL := ts.srv.scriptURL

	tests := []struct {
		name       string
		path       string
		header     []string
		wantStatus int
		wantType   string
		wantCache  string
	}{
		{name: "versioned stylesheet is css cached for a year", path: cssURL, wantStatus: 200, wantType: "text/css; charset=utf-8", wantCache: "public, max-age=31536000, immutable"},
		{name: "versioned htmx is javascript cached for a year", path: jsURL, wantStatus: 200, wantType: "text/javascript; charset=utf-8", wantCache: "public, max-age=31536000, immutable"},
		{name: "icon is svg", path: "/static/img/favicon.svg", wantStatus: 200, wantType: "image/svg+xml", wantCache: "public, max-age=300"},
		{name: "unversioned stylesheet is cached briefly", path: "/static/css/app.css", wantStatus: 200, wantType: "text/css; charset=utf-8", wantCache: "public, max-age=300"},
		{name: "outdated version is cached briefly", path: "/static/css/app.css?v=000000000000", wantStatus: 200, wantType: "text/css; charset=utf-8", wantCache: "public, max-age=300"},
		{name: "tailwind source is not served", path: "/static/css/input.css", wantStatus: 404},
		{name: "missing asset is not found", path: "/static/nope.js", wantStatus: 404},
		{name: "path traversal is not found", path: "/static/../go.mod", wantStatus: 404},
		{name: "encoded traversal is not found", path: "/static/%2e%2e/static.go", wantStatus: 404},
		{name: "directory is not listed", path: "/static/css/", wantStatus: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := ts.do(t, http.MethodGet, tt.path, headers(tt.header...))

			if res.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d", res.status, tt.wantStatus)
			}
			if tt.wantStatus != http.StatusOK {
				return
			}
			if ct := res.header.Get("Content-Type"); ct != tt.wantType {
				t.Fatalf("Content-Type = %q, want %q", ct, tt.wantType)
			}
			if cc := res.header.Get("Cache-Control"); cc != tt.wantCache {
				t.Fatalf("Cache-Control = %q, want %q", cc, tt.wantCache)
			}
			if res.header.Get("ETag") == "" || len(res.body) == 0 {
				t.Fatal("missing ETag or body")
			}
		})
	}
}

func TestStaticAssetRevalidatesWithETag(t *testing.T) {
	ts := newTestServer(t, Deps{}, nil)
	first := ts.do(t, http.MethodGet, "/static/css/app.css", nil)

	again := ts.do(t, http.MethodGet, "/static/css/app.css", headers("If-None-Match", first.header.Get("ETag")))

	if again.status != http.StatusNotModified || again.body != "" {
		t.Fatalf("revalidation = %d with %d bytes, want 304 and no body", again.status, len(again.body))
	}
}

func TestNewFailsWithoutBuiltAssets(t *testing.T) {
	tests := []struct {
		name    string
		files   fstest.MapFS
		wantErr string
	}{
		{name: "missing stylesheet is refused at start", files: fstest.MapFS{"js/htmx.min.js": {Data: []byte("x")}, "img/favicon.svg": {Data: []byte("x")}}, wantErr: "css/app.css"},
		{name: "missing htmx is refused at start", files: fstest.MapFS{"css/app.css": {Data: []byte("x")}, "img/favicon.svg": {Data: []byte("x")}}, wantErr: "js/htmx.min.js"},
		{name: "missing icon is refused at start", files: fstest.MapFS{"css/app.css": {Data: []byte("x")}, "js/htmx.min.js": {Data: []byte("x")}}, wantErr: "img/favicon.svg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Deps{Assets: tt.files})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New err = %v, want mention of %s", err, tt.wantErr)
			}
		})
	}
}
