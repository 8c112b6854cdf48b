package egress

import (
	"errors"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/errs"
)

// maxURLLength bounds the target URL. Real API URLs are far shorter; the
// bound keeps a JSON field from becoming a multi-megabyte request line.
const maxURLLength = 8 << 10

// Target is a validated upstream URL.
type Target struct {
	// URL is the URL egress will request: the caller's path and query
	// untouched, the host rewritten to its canonical ASCII form so that the
	// name that was checked is the name that is resolved, sent as SNI and
	// verified in the certificate.
	URL    *url.URL
	Scheme string // "https", or "http" with AllowPrivate
	Host   string // canonical host (punycode, lower case) or IP literal without brackets
	Port   int    // explicit or the scheme's default
	// IP is set when Host is an IP literal (AllowPrivate only).
	IP netip.Addr
}

// ValidateTarget checks a caller's URL against the egress rules (DESIGN.md
// §3.6) and the allowed-hosts list:
//
//   - https only (http only with AllowPrivate), absolute, with a host, no
//     userinfo, no fragment, no whitespace or control characters;
//   - no IP literal unless AllowPrivate, and never a non-canonical numeric
//     host (0x7f.1, 2130706433, 127.1, 0177.0.0.1) in any mode, because
//     resolvers disagree about what those mean;
//   - the host and port must match allowed.
//
// A malformed URL is invalid_request; a well-formed URL egress will not call
// is host_not_allowed. Do calls it itself; handlers may call it early to
// refuse before policy or approval runs.
func (e *Egress) ValidateTarget(rawURL string, allowed AllowList) (*Target, error) {
	bad := func(format string, args ...any) (*Target, error) {
		return nil, errs.Coded(wire.CodeInvalidRequest, format, args...)
	}
	switch {
	case rawURL == "":
		return bad("url is required")
	case len(rawURL) > maxURLLength:
		return bad("url is longer than %d bytes", maxURLLength)
	case strings.IndexFunc(rawURL, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
		return bad("url must not contain whitespace or control characters")
	case strings.Contains(rawURL, "#"):
		// A fragment is never sent, so one in the url is a client mistake
		// (or an attempt to confuse a parser about where the host ends).
		return bad("url must not contain a fragment")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return bad("url is not a valid URL")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && e.allowPrivate:
	case u.Scheme == "http":
		return bad("url must use https")
	default:
		return bad("url must be an absolute https URL")
	}
	if u.Opaque != "" {
		return bad("url must be an absolute https URL")
	}
	if u.User != nil {
		return bad("url must not contain user information; the credential comes from the grant")
	}
	hostname := u.Hostname()
	if hostname == "" {
		return bad("url has no host")
	}
	port := defaultPort(u.Scheme)
	if ps := u.Port(); ps != "" {
		if port, err = parsePort(ps); err != nil {
			return bad("url port must be 1-65535")
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return bad("url has an empty port")
	}
	host, ip, err := canonicalHost(hostname)
	switch {
	case errors.Is(err, errNonCanonicalIP):
		return bad("url host is an IP address in a non-canonical form")
	case err != nil:
		return bad("url host is not a valid host name")
	}
	if ip.IsValid() && !e.allowPrivate {
		return nil, errs.Coded(wire.CodeHostNotAllowed, "IP addresses are not allowed as upstream hosts; use a host name on the allowed-hosts list")
	}
	if !allowed.Match(host, port, u.Scheme) {
		ce := errs.Coded(wire.CodeHostNotAllowed, "%s is not on the allowed-hosts list", hostPort(host, ip, port))
		ce.Details = map[string]any{"host": host, "port": port}
		return nil, ce
	}

	out := *u
	out.User = nil
	out.Fragment, out.RawFragment = "", ""
	// An explicit default port is dropped, so "Host: api.example.com:443"
	// never reaches an upstream that only expects the bare name.
	switch {
	case port != defaultPort(u.Scheme):
		out.Host = hostPort(host, ip, port)
	case ip.Is6():
		out.Host = "[" + host + "]"
	default:
		out.Host = host
	}
	return &Target{URL: &out, Scheme: u.Scheme, Host: host, Port: port, IP: ip}, nil
}

func hostPort(host string, ip netip.Addr, port int) string {
	if ip.Is6() {
		return net.JoinHostPort(host, strconv.Itoa(port))
	}
	return host + ":" + strconv.Itoa(port)
}
