package oauth

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/services/catalog"
)

// A field added to catalog.CustomDefinition must be stored too, or a
// custom provider would silently lose it on the way through the database.
func TestStoredDefinitionMirrorsEveryCustomDefinitionField(t *testing.T) {
	stored := map[string]bool{}
	for f := range reflect.TypeFor[customJSON]().Fields() {
		stored[f.Name] = true
	}
	for f := range reflect.TypeFor[catalog.CustomDefinition]().Fields() {
		if f.Name == "AllowInsecure" {
			continue // decided by the running server, never stored
		}
		if !stored[f.Name] {
			t.Errorf("catalog.CustomDefinition.%s is not stored by customJSON", f.Name)
		}
	}
	def := catalog.CustomDefinition{ID: "x", Name: "X", Category: catalog.CategoryCRM, AuthorizeURL: "https://a/b",
		TokenURL: "https://a/t", UserinfoURL: "https://a/u", IDField: "id", DisplayField: "d", RevokeURL: "https://a/r",
		RevokeStyle: catalog.RevokeRFC7009, APIHosts: []string{"a"}, Scopes: []string{"s"}, ScopeSeparator: ",",
		PKCE: catalog.PKCERequired, TokenAuthStyle: catalog.AuthStyleParams, ExtraAuthorizeParams: map[string]string{"k": "v"}}
	b, err := json.Marshal(toCustomJSON(def))
	if err != nil {
		t.Fatal(err)
	}
	var back customJSON
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if got := back.definition(false); !reflect.DeepEqual(got, def) {
		t.Fatalf("round trip\n got %+v\nwant %+v", got, def)
	}
}

func TestExpiryFrom(t *testing.T) {
	now := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	in := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	tests := []struct {
		name        string
		raw         any
		refreshable bool
		want        *time.Time
	}{
		{"json number", json.Number("3600"), true, in(time.Hour)},
		{"float", float64(7200), false, in(2 * time.Hour)},
		{"string", "3600", true, in(time.Hour)},
		{"string with spaces", " 60 ", true, in(time.Minute)},
		{"missing", nil, true, nil},
		{"missing on a provider whose tokens expire", nil, true, in(ConservativeLifetime)},
		{"zero", float64(0), true, in(ConservativeLifetime)},
		{"negative", "-5", true, in(ConservativeLifetime)},
		{"not a number", "soon", true, in(ConservativeLifetime)},
		{"ten years", json.Number("315360000"), true, in(ConservativeLifetime)},
		{"absurd without refresh token", json.Number("315360000"), false, nil},
		{"just under ten years", json.Number("315359999"), false, in(315359999 * time.Second)},
		{"NaN", "NaN", false, nil},
		{"boolean", true, true, in(ConservativeLifetime)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			expires := strings.Contains(tt.name, "tokens expire")
			got := expiryFrom(now, tt.raw, tt.refreshable, expires)
			if (got == nil) != (tt.want == nil) || (got != nil && !got.Equal(*tt.want)) {
				t.Fatalf("expiryFrom(%v) = %v, want %v", tt.raw, got, tt.want)
			}
		})
	}
}

func TestSanitizers(t *testing.T) {
	for in, want := range map[string]string{
		"":                       "",
		"access_denied":          "access_denied",
		"invalid grant":          "invalid_error_code",
		`x"y`:                    "invalid_error_code",
		"é":                      "invalid_error_code",
		string(make([]byte, 65)): "invalid_error_code",
	} {
		if got := sanitizeCode(in); got != want {
			t.Errorf("sanitizeCode(%q) = %q, want %q", in, got, want)
		}
	}
	if got := sanitizeText("a\r\nb\x00c<é>", 100); got != "abc<>" {
		t.Errorf("sanitizeText = %q", got)
	}
	if got := sanitizeText("abcdef", 3); got != "abc" {
		t.Errorf("sanitizeText bound = %q", got)
	}
}

func TestLookupAndScalars(t *testing.T) {
	var doc map[string]any
	dec := json.NewDecoder(stringsReader(`{"team":{"id":"T1","n":12345678901234567890},"emails":["a@x","b@x"],"flag":true,"nil":null}`))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	get := func(p string) (any, bool) { return lookupPath(func(k string) any { return doc[k] }, p) }
	for path, want := range map[string]string{"team.id": "T1", "team.n": "12345678901234567890", "emails.1": "b@x"} {
		if got, err := scalarAt(get, path); err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", path, got, err, want)
		}
	}
	for _, path := range []string{"team.missing", "emails.2", "emails.x", "flag", "nil", "team", "team.id.deeper"} {
		if got, err := scalarAt(get, path); err == nil {
			t.Errorf("%s = %q, want an error", path, got)
		}
	}
	floats := func(p string) (any, bool) {
		return map[string]any{"ok": float64(42), "big": float64(1 << 60), "frac": 1.5}[p], true
	}
	if got, err := scalarAt(floats, "ok"); err != nil || got != "42" {
		t.Errorf("float id = %q, %v", got, err)
	}
	for _, p := range []string{"big", "frac"} {
		if _, err := scalarAt(floats, p); err == nil {
			t.Errorf("%s: an inexact float id was accepted", p)
		}
	}
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
