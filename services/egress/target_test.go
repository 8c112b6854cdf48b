package egress

import (
	"testing"

	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/errs"
)

func TestValidateTargetStrict(t *testing.T) {
	e := New(Options{})
	allow := mustAllow(t, "api.example.com", "*.example.org", "bücher.example", "api.example.net:8443")
	tests := []struct {
		name    string
		url     string
		code    wire.ErrorCode // "" means accepted
		wantURL string
	}{
		{name: "allowed host", url: "https://api.example.com/v1/items?limit=5", wantURL: "https://api.example.com/v1/items?limit=5"},
		{name: "host is canonicalised", url: "HTTPS://API.Example.COM./v1", wantURL: "https://api.example.com/v1"},
		{name: "explicit default port is dropped", url: "https://api.example.com:443/", wantURL: "https://api.example.com/"},
		{name: "wildcard entry", url: "https://eu.api.example.org/x", wantURL: "https://eu.api.example.org/x"},
		{name: "unicode host goes out as punycode", url: "https://bücher.example/x", wantURL: "https://xn--bcher-kva.example/x"},
		{name: "entry with port", url: "https://api.example.net:8443/", wantURL: "https://api.example.net:8443/"},
		{name: "escaped path is kept", url: "https://api.example.com/a%2Fb?q=%20", wantURL: "https://api.example.com/a%2Fb?q=%20"},

		{name: "http refused", url: "http://api.example.com/", code: wire.CodeInvalidRequest},
		{name: "other scheme", url: "ftp://api.example.com/", code: wire.CodeInvalidRequest},
		{name: "no scheme", url: "api.example.com/v1", code: wire.CodeInvalidRequest},
		{name: "scheme-relative", url: "//api.example.com/v1", code: wire.CodeInvalidRequest},
		{name: "opaque", url: "https:api.example.com", code: wire.CodeInvalidRequest},
		{name: "empty", url: "", code: wire.CodeInvalidRequest},
		{name: "userinfo with password", url: "https://user:pw@api.example.com/", code: wire.CodeInvalidRequest},
		{name: "userinfo without password", url: "https://user@api.example.com/", code: wire.CodeInvalidRequest},
		{name: "backslash userinfo trick", url: `https://evil.example\@api.example.com/`, code: wire.CodeInvalidRequest},
		{name: "no host", url: "https:///v1", code: wire.CodeInvalidRequest},
		{name: "only a port", url: "https://:443/", code: wire.CodeInvalidRequest},
		{name: "fragment", url: "https://api.example.com/#x", code: wire.CodeInvalidRequest},
		{name: "empty fragment", url: "https://api.example.com/#", code: wire.CodeInvalidRequest},
		{name: "space", url: "https://api.example.com/a b", code: wire.CodeInvalidRequest},
		{name: "CRLF", url: "https://api.example.com/\r\nX: y", code: wire.CodeInvalidRequest},
		{name: "port zero", url: "https://api.example.com:0/", code: wire.CodeInvalidRequest},
		{name: "port out of range", url: "https://api.example.com:99999/", code: wire.CodeInvalidRequest},
		{name: "empty port", url: "https://api.example.com:/", code: wire.CodeInvalidRequest},
		{name: "empty label", url: "https://api..example.com/", code: wire.CodeInvalidRequest},
		{name: "underscore", url: "https://a_b.example.com/", code: wire.CodeInvalidRequest},

		{name: "IPv4 literal", url: "https://127.0.0.1/", code: wire.CodeHostNotAllowed},
		{name: "metadata IP", url: "https://169.254.169.254/latest/meta-data/", code: wire.CodeHostNotAllowed},
		{name: "public IPv4 literal", url: "https://8.8.8.8/", code: wire.CodeHostNotAllowed},
		{name: "IPv4 literal with trailing dot", url: "https://127.0.0.1./", code: wire.CodeHostNotAllowed},
		{name: "full-width IPv4", url: "https://１２７．０．０．１/", code: wire.CodeHostNotAllowed},
		{name: "IPv6 loopback", url: "https://[::1]/", code: wire.CodeHostNotAllowed},
		{name: "IPv4-mapped IPv6", url: "https://[::ffff:127.0.0.1]/", code: wire.CodeHostNotAllowed},
		{name: "IPv4-mapped IPv6 in hex", url: "https://[::ffff:7f00:1]/", code: wire.CodeHostNotAllowed},
		{name: "public IPv6", url: "https://[2606:4700::1111]/", code: wire.CodeHostNotAllowed},
		{name: "IPv6 with zone", url: "https://[fe80::1%25eth0]/", code: wire.CodeInvalidRequest},
		{name: "IPv4 in brackets", url: "https://[127.0.0.1]/", code: wire.CodeInvalidRequest},
		{name: "hex and short", url: "https://0x7f.1/", code: wire.CodeInvalidRequest},
		{name: "single hex number", url: "https://0x7f000001/", code: wire.CodeInvalidRequest},
		{name: "single decimal number", url: "https://2130706433/", code: wire.CodeInvalidRequest},
		{name: "shortened dotted", url: "https://127.1/", code: wire.CodeInvalidRequest},
		{name: "octal octet", url: "https://0177.0.0.1/", code: wire.CodeInvalidRequest},
		{name: "zero", url: "https://0/", code: wire.CodeInvalidRequest},
		{name: "five octets", url: "https://1.2.3.4.5/", code: wire.CodeInvalidRequest},
		{name: "numeric last label", url: "https://api.example.123/", code: wire.CodeInvalidRequest},

		{name: "host not on the list", url: "https://evil.example.com/", code: wire.CodeHostNotAllowed},
		{name: "apex of a wildcard", url: "https://example.org/", code: wire.CodeHostNotAllowed},
		{name: "port not on the list", url: "https://api.example.com:8443/", code: wire.CodeHostNotAllowed},
		{name: "entry port required", url: "https://api.example.net/", code: wire.CodeHostNotAllowed},
		{name: "lookalike suffix", url: "https://api.example.com.evil.net/", code: wire.CodeHostNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.ValidateTarget(tt.url, allow)
			if tt.code != "" {
				if err == nil {
					t.Fatalf("ValidateTarget(%q) = %s, want %s", tt.url, got.URL, tt.code)
				}
				if c := errs.CodeOf(err); c != tt.code {
					t.Fatalf("ValidateTarget(%q) code = %s (%v), want %s", tt.url, c, err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatalf("ValidateTarget(%q): %v", tt.url, err)
			}
			if got.URL.String() != tt.wantURL {
				t.Fatalf("URL = %q, want %q", got.URL, tt.wantURL)
			}
		})
	}
}

func TestValidateTargetAllowPrivate(t *testing.T) {
	e := New(Options{AllowPrivate: true})
	allow := mustAllow(t, "127.0.0.1:8443", "[::1]:8443", "127.0.0.1:8080", "localhost:8080")
	tests := []struct {
		name string
		url  string
		code wire.ErrorCode
	}{
		{name: "IPv4 literal", url: "https://127.0.0.1:8443/x"},
		{name: "IPv6 literal", url: "https://[::1]:8443/x"},
		{name: "plain http", url: "http://127.0.0.1:8080/x"},
		{name: "plain http to a name", url: "http://localhost:8080/x"},
		{name: "non-canonical numeric host is still refused", url: "https://0x7f.1:8443/", code: wire.CodeInvalidRequest},
		{name: "decimal host is still refused", url: "https://2130706433:8443/", code: wire.CodeInvalidRequest},
		{name: "the list still applies", url: "https://127.0.0.1:9999/", code: wire.CodeHostNotAllowed},
		{name: "userinfo is still refused", url: "https://u@127.0.0.1:8443/", code: wire.CodeInvalidRequest},
		{name: "other schemes are still refused", url: "ws://127.0.0.1:8443/", code: wire.CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.ValidateTarget(tt.url, allow)
			if c := errs.CodeOf(err); c != tt.code {
				t.Fatalf("ValidateTarget(%q) code = %q (%v), want %q", tt.url, c, err, tt.code)
			}
		})
	}
}
