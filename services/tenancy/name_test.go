package tenancy_test

import (
	"strings"
	"testing"

	"github.com/latchkey/latchkey/services/tenancy"
)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"Acme", true},
		{"Acme Corp. eu-west_1", true},
		{"Ünïcode 東京", true},
		{"7", true},
		{"a" + strings.Repeat("é", 99), true}, // 100 runes, 199 bytes: runes are counted
		{"a" + strings.Repeat("é", 100), false},
		{strings.Repeat("x", 101), false},
		{"", false},
		{" leading space", false},
		{"-dash first", false},
		{"slash/inside", false},
		{"new\nline", false},
		{"bad\xffutf8", false},
	} {
		if got := tenancy.ValidName(tc.name); got != tc.ok {
			t.Errorf("ValidName(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
}
