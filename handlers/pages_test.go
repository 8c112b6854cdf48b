package handlers

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestLandingPageRenders(t *testing.T) {
	ts := newTestServer(t, Deps{}, nil)

	res := ts.do(t, http.MethodGet, "/", headers("Accept", "text/html"))

	if res.status != http.StatusOK {
		t.Fatalf("status = %d, want 200", res.status)
	}
	if ct := res.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("Content-Type = %q", ct)
	}
	if res.header.Get(HeaderRequestID) == "" {
		t.Fatal("no request id header")
	}
	if csp := res.header.Get("Content-Security-Policy"); csp != contentSecurityPolicy {
		t.Fatalf("CSP = %q", csp)
	}
	for _, want := range []string{
		`data-testid="landing"`,
		"Latchkey",
		`href="/healthz"`,
		`href="` + defaultDocsURL + `"`,
		`<link rel="stylesheet" href="/static/css/app.css?v=`,
		`<script src="/static/js/htmx.min.js?v=`,
	} {
		if !strings.Contains(res.body, want) {
			t.Fatalf("page lacks %q:\n%s", want, res.body)
		}
	}
}

func TestPagesHaveNoInlineScriptsOrStyles(t *testing.T) {
	// The CSP would block them anyway; this catches them before a browser does.
	ts := newTestServer(t, Deps{}, nil)
	scriptTag := regexp.MustCompile(`<script[^>]*>`)
	for _, path := range []string{"/", "/no/such/page"} {
		t.Run(path, func(t *testing.T) {
			res := ts.do(t, http.MethodGet, path, headers("Accept", "text/html"))
			for _, tag := range scriptTag.FindAllString(res.body, -1) {
				if !strings.Contains(tag, ` src="/static/`) {
					t.Fatalf("inline or foreign script %q", tag)
				}
			}
			if strings.Contains(res.body, "<script>") || strings.Contains(res.body, "<style") || strings.Contains(res.body, ` style="`) || strings.Contains(res.body, " onclick=") {
				t.Fatalf("inline script or style in %s:\n%s", path, res.body)
			}
		})
	}
}

func TestRenderChoosesFullPageOrPartial(t *testing.T) {
	tests := []struct {
		name        string
		header      []string
		wantFullDoc bool
	}{
		{name: "plain browser request gets the full page", header: nil, wantFullDoc: true},
		{name: "htmx request gets only the partial", header: []string{"HX-Request", "true"}, wantFullDoc: false},
		{name: "htmx partial request type gets only the partial", header: []string{"HX-Request", "true", "HX-Request-Type", "partial"}, wantFullDoc: false},
		{name: "boosted htmx navigation gets the full page", header: []string{"HX-Request", "true", "HX-Boosted", "true"}, wantFullDoc: true},
		{name: "htmx request for a full document gets the full page", header: []string{"HX-Request", "true", "HX-Request-Type", "full"}, wantFullDoc: true},
		{name: "HX-Request other than true gets the full page", header: []string{"HX-Request", "false"}, wantFullDoc: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, Deps{}, nil)

			res := ts.do(t, http.MethodGet, "/", headers(tt.header...))

			if res.status != http.StatusOK {
				t.Fatalf("status = %d", res.status)
			}
			if !strings.Contains(res.body, `data-testid="landing"`) {
				t.Fatalf("content missing: %s", res.body)
			}
			isFull := strings.Contains(res.body, "<!doctype html>") && strings.Contains(res.body, "<html")
			if isFull != tt.wantFullDoc {
				t.Fatalf("full document = %v, want %v:\n%s", isFull, tt.wantFullDoc, res.body)
			}
			if !tt.wantFullDoc && (strings.Contains(res.body, "<head") || strings.Contains(res.body, "<body")) {
				t.Fatalf("partial carries layout: %s", res.body)
			}
			if !varyIncludes(res.header, "HX-Request") {
				t.Fatalf("Vary = %q, want it to name HX-Request", res.header.Values("Vary"))
			}
		})
	}
}

func TestErrorPageFollowsHtmxToo(t *testing.T) {
	ts := newTestServer(t, Deps{}, nil)

	res := ts.do(t, http.MethodGet, "/no/such/page", headers("HX-Request", "true", "Accept", "text/html"))

	if res.status != http.StatusNotFound {
		t.Fatalf("status = %d", res.status)
	}
	if strings.Contains(res.body, "<html") || !strings.Contains(res.body, `data-testid="error-page"`) {
		t.Fatalf("want the error partial alone: %s", res.body)
	}
	if !varyIncludes(res.header, "HX-Request") {
		t.Fatalf("Vary = %q", res.header.Values("Vary"))
	}
}

func TestAddVaryDoesNotRepeatNames(t *testing.T) {
	h := http.Header{}
	h.Set("Vary", "Accept-Encoding, hx-request")
	addVary(h, "HX-Request", "HX-Boosted")
	addVary(h, "HX-Boosted")
	got := strings.Join(h.Values("Vary"), ",")
	if strings.Count(strings.ToLower(got), "hx-request") != 1 || strings.Count(strings.ToLower(got), "hx-boosted") != 1 {
		t.Fatalf("Vary = %q", got)
	}
}

func varyIncludes(h http.Header, name string) bool {
	for _, v := range h.Values("Vary") {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), name) {
				return true
			}
		}
	}
	return false
}

func TestHeadIsAnsweredForProbesAndAssetsOnly(t *testing.T) {
	tests := []struct {
		name       string
		path       string
		wantStatus int
	}{
		{name: "liveness probe answers HEAD", path: "/healthz", wantStatus: http.StatusOK},
		{name: "readiness probe answers HEAD", path: "/readyz", wantStatus: http.StatusOK},
		{name: "static asset answers HEAD", path: "/static/css/app.css", wantStatus: http.StatusOK},
		{name: "page does not run its handler for HEAD", path: "/", wantStatus: http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, Deps{}, nil)

			res := ts.do(t, http.MethodHead, tt.path, nil)

			if res.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d", res.status, tt.wantStatus)
			}
			if res.body != "" {
				t.Fatalf("HEAD body = %q", res.body)
			}
		})
	}
}
