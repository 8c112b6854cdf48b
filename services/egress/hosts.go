package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"

	"github.com/latchkey/latchkey/services/errs"
)

// HostPattern is one entry of an allowed-hosts list (DESIGN.md §3.6): an
// exact host, "*.domain" (any subdomain of domain, at any depth, but not
// domain itself), optionally followed by ":port". Without a port the entry
// matches only the default port of the request's scheme.
//
// The zero value matches nothing.
type HostPattern struct {
	// host is the canonical form: lower-case ASCII (punycode), no trailing
	// dot; for a wildcard, the domain after "*."; for an IP literal, the
	// netip string form without brackets.
	host     string
	wildcard bool
	ip       bool
	port     int // 0: the scheme's default port
}

// AllowList is a parsed allowed-hosts list. An empty list allows nothing:
// egress is closed by default.
type AllowList []HostPattern

// Default ports of the two schemes egress speaks. An entry without a port
// matches only these; any other scheme has no default and matches nothing.
const (
	httpsPort = 443
	httpPort  = 80
)

func defaultPort(scheme string) int {
	switch scheme {
	case "https":
		return httpsPort
	case "http":
		return httpPort
	}
	return 0
}

// ParseHostPattern parses one allowed-hosts entry. Host names are compared in
// their ASCII (IDNA/punycode) form, case-insensitively, with any trailing dot
// removed, so "Bücher.example." and "xn--bcher-kva.example" are the same
// entry. A bare "*" and wildcards over a public suffix ("*.com", "*.co.uk",
// "*.github.io") are refused: they would let any stranger's host receive the
// credential. IP literals are accepted (for AllowPrivate deployments); in
// strict mode a URL naming an IP literal is refused before matching anyway.
//
// The error is a *errs.ValidationError (field "allowed_hosts") that quotes
// the entry: allowed hosts are configuration, not secrets.
func ParseHostPattern(entry string) (HostPattern, error) {
	p, err := parseHostPattern(entry)
	if err != nil {
		return HostPattern{}, errs.Invalid("allowed_hosts", "%s", err.Error())
	}
	return p, nil
}

func parseHostPattern(entry string) (HostPattern, error) {
	fail := func(format string, args ...any) (HostPattern, error) {
		return HostPattern{}, fmt.Errorf("allowed host %q: %s", entry, fmt.Sprintf(format, args...))
	}
	s := entry
	if s == "" {
		return fail("empty entry")
	}
	if strings.Contains(s, "://") || strings.ContainsAny(s, "/?#@ \t\r\n") {
		return fail("an entry is host, *.domain or host:port, not a URL")
	}

	host, portStr, hasPort, err := splitPatternPort(s)
	if err != nil {
		return fail("%v", err)
	}
	var p HostPattern
	if hasPort {
		port, err := parsePort(portStr)
		if err != nil {
			return fail("%v", err)
		}
		p.port = port
	}

	if rest, ok := strings.CutPrefix(host, "*."); ok {
		p.wildcard = true
		host = rest
	}
	if strings.Contains(host, "*") {
		return fail("a wildcard is allowed only as a leading \"*.\" label")
	}
	canon, ip, err := canonicalHost(host)
	if err != nil {
		return fail("%v", err)
	}
	if ip.IsValid() {
		if p.wildcard {
			return fail("a wildcard cannot cover an IP address")
		}
		p.ip = true
	}
	if p.wildcard {
		// The public suffix list's private section counts too (github.io,
		// s3.amazonaws.com): subdomains there belong to different owners.
		if ps, _ := publicsuffix.PublicSuffix(canon); ps == canon {
			return fail("a wildcard over a public suffix would match hosts of unrelated owners")
		}
	}
	p.host = canon
	return p, nil
}

// splitPatternPort separates an optional ":port". IPv6 literals need
// brackets when a port follows; a bare IPv6 literal has no port.
func splitPatternPort(s string) (host, port string, hasPort bool, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return "", "", false, errors.New("unclosed '['")
		}
		host, rest := s[:end+1], s[end+1:]
		switch {
		case rest == "":
			return host, "", false, nil
		case strings.HasPrefix(rest, ":"):
			return host, rest[1:], true, nil
		}
		return "", "", false, errors.New("unexpected text after ']'")
	}
	switch strings.Count(s, ":") {
	case 0:
		return s, "", false, nil
	case 1:
		h, p, _ := strings.Cut(s, ":")
		return h, p, true, nil
	}
	return s, "", false, nil // a bare IPv6 literal; canonicalHost decides
}

// parsePort accepts 1–65535 in canonical decimal (no sign, no leading zero),
// so that one port has one spelling in configuration and audit.
func parsePort(s string) (int, error) {
	if s == "" || len(s) > 5 || s[0] == '0' {
		return 0, errors.New("port must be 1-65535")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("port must be 1-65535")
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, errors.New("port must be 1-65535")
	}
	return n, nil
}

// ParseAllowList parses every entry and reports all bad ones at once as a
// *errs.ValidationError (field "allowed_hosts").
func ParseAllowList(entries []string) (AllowList, error) {
	var v errs.Validation
	list := make(AllowList, 0, len(entries))
	for _, e := range entries {
		p, err := parseHostPattern(e)
		if err != nil {
			v.Add("allowed_hosts", "%s", err.Error())
			continue
		}
		list = append(list, p)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	return list, nil
}

// String renders the entry in canonical form; ParseHostPattern(p.String())
// returns p.
func (p HostPattern) String() string {
	if p.host == "" {
		return ""
	}
	h := p.host
	if p.ip && strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	if p.wildcard {
		h = "*." + h
	}
	if p.port != 0 {
		h += ":" + strconv.Itoa(p.port)
	}
	return h
}

// Match reports whether a request to host:port over scheme is covered by
// the entry. host may be in any case, with a trailing dot, in Unicode or
// punycode, and an IPv6 literal with or without brackets; port 0 means the
// scheme's default port. Anything that does not canonicalise matches
// nothing.
func (p HostPattern) Match(host string, port int, scheme string) bool {
	if p.host == "" {
		return false
	}
	canon, ip, err := canonicalHost(host)
	if err != nil {
		return false
	}
	if port == 0 {
		port = defaultPort(scheme)
	}
	if p.port != 0 {
		if port != p.port {
			return false
		}
	} else if def := defaultPort(scheme); def == 0 || port != def {
		return false
	}
	if p.ip || ip.IsValid() {
		return p.ip && ip.IsValid() && canon == p.host
	}
	if p.wildcard {
		// At least one more label: "*.example.com" never matches the apex.
		return len(canon) > len(p.host)+1 && strings.HasSuffix(canon, "."+p.host)
	}
	return canon == p.host
}

// Match reports whether any entry matches.
func (l AllowList) Match(host string, port int, scheme string) bool {
	for _, p := range l {
		if p.Match(host, port, scheme) {
			return true
		}
	}
	return false
}

// Strings renders the list in canonical form (for storage and display).
func (l AllowList) Strings() []string {
	out := make([]string, len(l))
	for i, p := range l {
		out[i] = p.String()
	}
	return out
}

var (
	errNonCanonicalIP = errors.New("host looks like an IP address in a non-canonical form (octal, hex, decimal or shortened)")
	errBadHost        = errors.New("not a valid host name")
)

// maxHostLength is the DNS limit on a name in text form (without the
// trailing dot).
const maxHostLength = 253

// canonicalHost returns the one spelling of a host that egress compares and
// connects to, and the IP address when the host is an IP literal.
//
// Order matters: the IDNA mapping runs before the numeric check, because
// UTS #46 maps full-width digits and dots ("１２７．０．０．１") to ASCII, and
// such a name must be caught as the IP literal it becomes.
func canonicalHost(h string) (string, netip.Addr, error) {
	if h == "" {
		return "", netip.Addr{}, errors.New("empty host")
	}
	if strings.HasPrefix(h, "[") || strings.HasSuffix(h, "]") {
		if !strings.HasPrefix(h, "[") || !strings.HasSuffix(h, "]") {
			return "", netip.Addr{}, errBadHost
		}
		h = h[1 : len(h)-1]
		ip, err := netip.ParseAddr(h)
		if err != nil || !ip.Is6() {
			return "", netip.Addr{}, errors.New("brackets must hold an IPv6 address")
		}
		return canonicalIP(ip)
	}
	if strings.Contains(h, ":") {
		ip, err := netip.ParseAddr(h)
		if err != nil || !ip.Is6() {
			return "", netip.Addr{}, errBadHost
		}
		return canonicalIP(ip)
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" {
		return "", netip.Addr{}, errBadHost
	}
	ascii, err := idna.Lookup.ToASCII(h)
	if err != nil {
		return "", netip.Addr{}, errBadHost
	}
	ascii = strings.TrimSuffix(ascii, ".") // a mapped full-width dot may end it
	if endsInNumber(ascii) {
		// Every resolver and browser reads a name whose last label is a
		// number as IPv4, in whichever of the inet_aton forms it likes.
		// Only the dotted-quad canonical form is unambiguous.
		ip, err := netip.ParseAddr(ascii)
		if err != nil || !ip.Is4() || ip.String() != ascii {
			return "", netip.Addr{}, errNonCanonicalIP
		}
		return ascii, ip, nil
	}
	if !validDNSName(ascii) {
		return "", netip.Addr{}, errBadHost
	}
	return ascii, netip.Addr{}, nil
}

func canonicalIP(ip netip.Addr) (string, netip.Addr, error) {
	if ip.Zone() != "" {
		return "", netip.Addr{}, errors.New("IPv6 zones are not allowed")
	}
	return ip.String(), ip, nil
}

// endsInNumber is the WHATWG URL "ends in a number" test: the last label is
// all decimal digits, or "0x" followed by hex digits. Such a host is an IPv4
// address to URL parsers, never a DNS name (no TLD is numeric).
func endsInNumber(h string) bool {
	last := h
	if i := strings.LastIndexByte(h, '.'); i >= 0 {
		last = h[i+1:]
	}
	if last == "" {
		return false
	}
	if allDigits(last, 10) {
		return true
	}
	if len(last) >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') {
		return allDigits(last[2:], 16)
	}
	return false
}

func allDigits(s string, base int) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
		case base == 16 && ('a' <= c && c <= 'f' || 'A' <= c && c <= 'F'):
		default:
			return false
		}
	}
	return true
}

// validDNSName checks the ASCII result of IDNA mapping against RFC 1123:
// labels of 1–63 letters, digits and hyphens, not starting or ending with a
// hyphen. Underscores are refused: no publicly trusted certificate can name
// them.
func validDNSName(h string) bool {
	if len(h) == 0 || len(h) > maxHostLength {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
