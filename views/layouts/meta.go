// Package layouts holds the page shells every full page is rendered inside.
package layouts

// Meta is what the shell needs to know about one page. Handlers fill it; the
// layout only displays it.
type Meta struct {
	// Title is the page's own title; the layout appends the product name.
	Title string
	// StylesheetURL and ScriptURL carry a content-hash query so the static
	// handler can cache them for a year without serving stale assets after an
	// upgrade.
	StylesheetURL string
	ScriptURL     string
	// IconURL is linked so browsers do not probe /favicon.ico on every visit.
	IconURL string
}

// PageTitle is the text of the <title> element.
func (m Meta) PageTitle() string {
	if m.Title == "" {
		return "Latchkey"
	}
	return m.Title + " · Latchkey"
}
