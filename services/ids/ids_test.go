package ids

import (
	"strings"
	"testing"
)

func TestCanonical(t *testing.T) {
	for in, want := range map[string]string{
		"3F1B2C4D-0000-4000-8000-000000000000":          "3f1b2c4d-0000-4000-8000-000000000000",
		"3f1b2c4d-0000-4000-8000-000000000000":          "3f1b2c4d-0000-4000-8000-000000000000",
		"{3f1b2c4d-0000-4000-8000-000000000000}":        "", // braces: not the 36-character form
		"3f1b2c4d000040008000000000000000":              "", // no dashes
		"urn:uuid:3f1b2c4d-0000-4000-8000-000000000000": "",
		"not-a-uuid-at-all-but-36-characters!":          "",
		"":                                              "",
	} {
		got, ok := Canonical(in)
		if got != want || ok != (want != "") {
			t.Errorf("Canonical(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestNewSortsByCreation(t *testing.T) {
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := New()
	if _, ok := Canonical(a); !ok || strings.Compare(a, b) >= 0 {
		t.Fatalf("ids %s then %s: want canonical and increasing", a, b)
	}
}
