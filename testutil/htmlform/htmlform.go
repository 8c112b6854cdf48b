// Package htmlform reads the first form of an HTML page the way a browser
// would submit it, so tests can click its buttons without a browser. It
// imports only the standard library and golang.org/x/net/html, so any test
// package can use it.
package htmlform

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// Button is a submit button: what it adds to the submission when clicked.
type Button struct {
	Name, Value string
}

// Form is an HTML form as a browser would submit it. Tests may change its
// fields (to forge or drop a value) or add buttons before submitting.
type Form struct {
	// Action is the action attribute as written in the page.
	Action string
	// Fields are the hidden inputs.
	Fields url.Values
	// Buttons are the buttons by data-testid.
	Buttons map[string]Button

	page string // for failure messages
}

// Parse reads the first form of an HTML page and fails the test when the
// page has none.
func Parse(t testing.TB, body string) Form {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse page: %v", err)
	}
	f := Form{Fields: url.Values{}, Buttons: map[string]Button{}, page: body}
	found := false
	var walk func(n *html.Node, inForm bool)
	walk = func(n *html.Node, inForm bool) {
		if n.Type == html.ElementNode {
			a := map[string]string{}
			for _, at := range n.Attr {
				a[at.Key] = at.Val
			}
			switch n.Data {
			case "form":
				if found {
					return
				}
				found, inForm = true, true
				f.Action = a["action"]
			case "input":
				if inForm && a["type"] == "hidden" {
					f.Fields.Add(a["name"], a["value"])
				}
			case "button":
				if inForm {
					f.Buttons[a["data-testid"]] = Button{Name: a["name"], Value: a["value"]}
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, inForm)
		}
	}
	walk(doc, false)
	if !found {
		t.Fatalf("no form on page:\n%s", body)
	}
	return f
}

// Values is what a browser posts when the button with data-testid testid
// is clicked: a copy of the hidden fields plus the button's name and value.
// It fails the test when the form has no such button.
func (f Form) Values(t testing.TB, testid string) url.Values {
	t.Helper()
	btn, ok := f.Buttons[testid]
	if !ok {
		have := make([]string, 0, len(f.Buttons))
		for id := range f.Buttons {
			have = append(have, id)
		}
		slices.Sort(have)
		t.Fatalf("no button %q in the form (have %q); page:\n%s", testid, have, f.page)
	}
	v := url.Values{}
	for k, vs := range f.Fields {
		v[k] = append([]string(nil), vs...)
	}
	if btn.Name != "" { // a nameless button submits nothing of its own
		v.Set(btn.Name, btn.Value)
	}
	return v
}

// Target is the URL the form posts to: Action resolved against the URL of
// the page the form was on, as a browser resolves it.
func (f Form) Target(t testing.TB, pageURL string) string {
	t.Helper()
	base, err := url.Parse(pageURL)
	if err != nil {
		t.Fatalf("page URL: %v", err)
	}
	action, err := base.Parse(f.Action)
	if err != nil {
		t.Fatalf("form action %q: %v", f.Action, err)
	}
	return action.String()
}
