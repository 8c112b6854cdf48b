package egress

import (
	"testing"
)

func TestParseHostPattern(t *testing.T) {
	tests := []struct {
		name    string
		entry   string
		want    string // canonical String(); "" means the entry is refused
		wantErr bool
	}{
		{name: "plain host", entry: "api.github.com", want: "api.github.com"},
		{name: "upper case and trailing dot are normalised", entry: "API.GitHub.com.", want: "api.github.com"},
		{name: "wildcard", entry: "*.Example.com", want: "*.example.com"},
		{name: "wildcard at depth", entry: "*.eu.api.example.com", want: "*.eu.api.example.com"},
		{name: "host with port", entry: "api.example.com:8443", want: "api.example.com:8443"},
		{name: "wildcard with port", entry: "*.example.com:8443", want: "*.example.com:8443"},
		{name: "unicode becomes punycode", entry: "Bücher.example", want: "xn--bcher-kva.example"},
		{name: "punycode stays punycode", entry: "xn--bcher-kva.example", want: "xn--bcher-kva.example"},
		{name: "IPv4 literal with port", entry: "127.0.0.1:8080", want: "127.0.0.1:8080"},
		{name: "bracketed IPv6 with port", entry: "[::1]:8443", want: "[::1]:8443"},
		{name: "bare IPv6", entry: "::1", want: "[::1]"},
		{name: "single-label host", entry: "localhost:8080", want: "localhost:8080"},

		{name: "empty", entry: "", wantErr: true},
		{name: "bare star", entry: "*", wantErr: true},
		{name: "wildcard over a TLD", entry: "*.com", wantErr: true},
		{name: "wildcard over a multi-label public suffix", entry: "*.co.uk", wantErr: true},
		{name: "wildcard over a private-section public suffix", entry: "*.github.io", wantErr: true},
		{name: "wildcard over a cloud public suffix", entry: "*.s3.amazonaws.com", wantErr: true},
		// googleapis.com is on the list's private section too; operators
		// list the API hosts they need instead (www.googleapis.com, …).
		{name: "wildcard over googleapis.com", entry: "*.googleapis.com", wantErr: true},
		{name: "wildcard over a single label", entry: "*.internal", wantErr: true},
		{name: "double star", entry: "**.example.com", wantErr: true},
		{name: "star in the middle", entry: "api.*.example.com", wantErr: true},
		{name: "star glued to a label", entry: "*example.com", wantErr: true},
		{name: "wildcard over an IP", entry: "*.127.0.0.1", wantErr: true},
		{name: "URL instead of host", entry: "https://api.github.com", wantErr: true},
		{name: "path", entry: "api.github.com/v3", wantErr: true},
		{name: "userinfo", entry: "user@api.github.com", wantErr: true},
		{name: "port zero", entry: "api.github.com:0", wantErr: true},
		{name: "port too large", entry: "api.github.com:65536", wantErr: true},
		{name: "port with leading zero", entry: "api.github.com:0443", wantErr: true},
		{name: "empty port", entry: "api.github.com:", wantErr: true},
		{name: "non-numeric port", entry: "api.github.com:https", wantErr: true},
		{name: "non-canonical IPv4", entry: "0x7f.1", wantErr: true},
		{name: "decimal IPv4", entry: "2130706433", wantErr: true},
		{name: "space", entry: "api github.com", wantErr: true},
		{name: "underscore", entry: "my_host.example.com", wantErr: true},
		{name: "empty label", entry: "api..example.com", wantErr: true},
		{name: "leading hyphen", entry: "-api.example.com", wantErr: true},
		{name: "IPv6 zone", entry: "[fe80::1%eth0]:443", wantErr: true},
		{name: "unclosed bracket", entry: "[::1:443", wantErr: true},
		{name: "IPv4 in brackets", entry: "[127.0.0.1]:443", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseHostPattern(tt.entry)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseHostPattern(%q) = %v, want an error", tt.entry, p)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseHostPattern(%q): %v", tt.entry, err)
			}
			if got := p.String(); got != tt.want {
				t.Fatalf("String() = %q, want %q", got, tt.want)
			}
			again, err := ParseHostPattern(p.String())
			if err != nil || again != p {
				t.Fatalf("String() does not round-trip: %v, %v", again, err)
			}
		})
	}
}

func TestParseAllowListReportsEveryBadEntry(t *testing.T) {
	_, err := ParseAllowList([]string{"api.github.com", "*", "*.com"})
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{`"*"`, `"*.com"`} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestHostPatternMatch(t *testing.T) {
	tests := []struct {
		name    string
		pattern string
		host    string
		port    int
		scheme  string
		want    bool
	}{
		{"exact host on the default https port", "api.github.com", "api.github.com", 443, "https", true},
		{"port zero means the default", "api.github.com", "api.github.com", 0, "https", true},
		{"case-insensitive", "api.github.com", "API.GitHub.COM", 443, "https", true},
		{"trailing dot on the host", "api.github.com", "api.github.com.", 443, "https", true},
		{"no port in entry: other port refused", "api.github.com", "api.github.com", 8443, "https", false},
		{"no port in entry: http matches only 80", "api.github.com", "api.github.com", 80, "http", true},
		{"no port in entry: http on 443 refused", "api.github.com", "api.github.com", 443, "http", false},
		{"no port in entry: unknown scheme refused", "api.github.com", "api.github.com", 443, "ftp", false},
		{"other host", "api.github.com", "uploads.github.com", 443, "https", false},
		{"suffix trick", "api.github.com", "api.github.com.evil.com", 443, "https", false},
		{"prefix trick", "api.github.com", "evilapi.github.com", 443, "https", false},

		{"wildcard: one label", "*.example.com", "a.example.com", 443, "https", true},
		{"wildcard: several labels", "*.example.com", "a.b.c.example.com", 443, "https", true},
		{"wildcard: not the apex", "*.example.com", "example.com", 443, "https", false},
		{"wildcard: not a glued label", "*.example.com", "aexample.com", 443, "https", false},
		{"wildcard: not a lookalike suffix", "*.example.com", "example.com.evil.net", 443, "https", false},
		{"wildcard: default port only", "*.example.com", "a.example.com", 8443, "https", false},

		{"explicit port matches it", "api.example.com:8443", "api.example.com", 8443, "https", true},
		{"explicit port refuses the default", "api.example.com:8443", "api.example.com", 443, "https", false},
		{"explicit port is scheme-independent", "api.example.com:8080", "api.example.com", 8080, "http", true},

		{"unicode entry, punycode host", "bücher.example", "xn--bcher-kva.example", 443, "https", true},
		{"punycode entry, unicode host", "xn--bcher-kva.example", "BÜCHER.example", 443, "https", true},

		{"IPv4 entry", "127.0.0.1:8080", "127.0.0.1", 8080, "http", true},
		{"IPv6 entry, bracketed host", "[::1]:8443", "[::1]", 8443, "https", true},
		{"IPv6 entry, bare host", "[::1]:8443", "::1", 8443, "https", true},
		{"IPv6 entry, non-canonical spelling", "[::1]:8443", "0:0:0:0:0:0:0:1", 8443, "https", true},
		{"IPv4 entry does not match its mapped IPv6 form", "127.0.0.1:8443", "::ffff:127.0.0.1", 8443, "https", false},
		{"host entry never matches an IP", "localhost:8443", "127.0.0.1", 8443, "https", false},
		{"non-canonical numeric host never matches", "127.0.0.1:8443", "127.1", 8443, "https", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseHostPattern(tt.pattern)
			if err != nil {
				t.Fatalf("ParseHostPattern(%q): %v", tt.pattern, err)
			}
			if got := p.Match(tt.host, tt.port, tt.scheme); got != tt.want {
				t.Fatalf("%q.Match(%q, %d, %q) = %v, want %v", tt.pattern, tt.host, tt.port, tt.scheme, got, tt.want)
			}
		})
	}
}

func TestEmptyAllowListMatchesNothing(t *testing.T) {
	var l AllowList
	if l.Match("api.github.com", 443, "https") {
		t.Fatal("an empty list must allow nothing")
	}
	var zero HostPattern
	if zero.Match("", 443, "https") {
		t.Fatal("the zero pattern must match nothing")
	}
}
