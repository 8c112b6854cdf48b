package handlers

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v5"

	"github.com/latchkey/latchkey/views/layouts"
)

// page is one screen: its title and its content without the layout.
type page struct {
	title   string
	content templ.Component
}

// render sends p as a full HTML document, or only its content when htmx asks
// for a fragment. The page is rendered into memory first, so a template error
// becomes a clean error response instead of half a page.
func (s *Server) render(c *echo.Context, status int, p page) error {
	r := c.Request()
	// These headers choose between the full page and the partial, so a shared
	// cache must never hand one to a request for the other.
	addVary(c.Response().Header(), "HX-Request", "HX-Boosted", "HX-Request-Type")

	component := p.content
	if !wantsPartial(r) {
		component = layouts.Base(layouts.Meta{
			Title:         p.title,
			StylesheetURL: s.stylesheetURL,
			ScriptURL:     s.scriptURL,
			IconURL:       s.iconURL,
		}, p.content)
	}
	var buf bytes.Buffer
	if err := component.Render(r.Context(), &buf); err != nil {
		return fmt.Errorf("render page %q: %w", p.title, err)
	}
	return c.HTMLBlob(status, buf.Bytes())
}

// wantsPartial is true for htmx requests that swap part of a page. Boosted
// links and requests htmx marks as "full" (body targets, hx-select) replace
// or pick from a whole document, so they get the full page.
func wantsPartial(r *http.Request) bool {
	return r.Header.Get("HX-Request") == "true" &&
		r.Header.Get("HX-Boosted") != "true" &&
		r.Header.Get("HX-Request-Type") != "full"
}

// addVary adds names to Vary as one comma-separated line, without repeating
// a name already there (the error page may be rendered after a handler
// already set some).
func addVary(h http.Header, names ...string) {
	var all []string
	present := map[string]bool{}
	for _, v := range h.Values("Vary") {
		for part := range strings.SplitSeq(v, ",") {
			part = strings.TrimSpace(part)
			if part != "" && !present[strings.ToLower(part)] {
				present[strings.ToLower(part)] = true
				all = append(all, part)
			}
		}
	}
	for _, n := range names {
		if !present[strings.ToLower(n)] {
			present[strings.ToLower(n)] = true
			all = append(all, n)
		}
	}
	h.Set("Vary", strings.Join(all, ", "))
}
