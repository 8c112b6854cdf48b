package htmlform_test

import (
	"net/url"
	"reflect"
	"testing"

	"github.com/latchkey/latchkey/testutil/htmlform"
)

const page = `<!doctype html><html><body>
<form method="post" action="/login?x=1">
  <input type="hidden" name="csrf" value="tok">
  <input type="hidden" name="scope" value="a">
  <input type="hidden" name="scope" value="b">
  <input type="text" name="typed" value="not hidden">
  <div><button type="submit" name="user" value="ada" data-testid="user-ada">Ada</button></div>
  <button type="submit" data-testid="nameless">Go</button>
</form>
<form action="/second"><input type="hidden" name="other" value="1"><button name="b" value="2" data-testid="second">x</button></form>
<input type="hidden" name="outside" value="1">
</body></html>`

func TestParseReadsTheFirstFormOnly(t *testing.T) {
	f := htmlform.Parse(t, page)
	if f.Action != "/login?x=1" {
		t.Errorf("action %q", f.Action)
	}
	if want := (url.Values{"csrf": {"tok"}, "scope": {"a", "b"}}); !reflect.DeepEqual(f.Fields, want) {
		t.Errorf("fields %v, want %v", f.Fields, want)
	}
	if want := map[string]htmlform.Button{"user-ada": {Name: "user", Value: "ada"}, "nameless": {}}; !reflect.DeepEqual(f.Buttons, want) {
		t.Errorf("buttons %v, want %v", f.Buttons, want)
	}
}

func TestValues(t *testing.T) {
	tests := []struct {
		name   string
		testid string
		want   url.Values
	}{
		{"a named button adds its name and value", "user-ada", url.Values{"csrf": {"tok"}, "scope": {"a", "b"}, "user": {"ada"}}},
		{"a nameless button adds nothing", "nameless", url.Values{"csrf": {"tok"}, "scope": {"a", "b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := htmlform.Parse(t, page)
			got := f.Values(t, tt.testid)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("values %v, want %v", got, tt.want)
			}
			got.Set("csrf", "changed")
			if f.Fields.Get("csrf") != "tok" {
				t.Fatal("changing the values changed the form")
			}
		})
	}
}

func TestTargetResolvesTheActionAgainstThePage(t *testing.T) {
	tests := []struct {
		name, action, page, want string
	}{
		{"absolute path", "/login?x=1", "http://host.test:8080/a/b?q=1", "http://host.test:8080/login?x=1"},
		{"relative path", "next", "http://host.test/a/b", "http://host.test/a/next"},
		{"empty action posts to the page", "", "http://host.test/a/b?q=1", "http://host.test/a/b?q=1"},
		{"absolute URL", "https://other.test/x", "http://host.test/a", "https://other.test/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := htmlform.Form{Action: tt.action}
			if got := f.Target(t, tt.page); got != tt.want {
				t.Fatalf("target %q, want %q", got, tt.want)
			}
		})
	}
}
