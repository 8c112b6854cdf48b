package egress

import (
	"net/netip"
)

// specialRange is an address block egress never connects to in strict mode.
type specialRange struct {
	prefix netip.Prefix
	reason string
}

// special4 lists the IPv4 blocks that are not ordinary public unicast
// (IANA IPv4 Special-Purpose Address Registry, plus multicast and the
// reserved class E). Refusing too much is a support ticket; refusing too
// little is an SSRF.
var special4 = []specialRange{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network (0.0.0.0/8)"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private (RFC 1918)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT (RFC 6598)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (cloud metadata lives here)"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private (RFC 1918)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation (TEST-NET-1)"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay anycast"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private (RFC 1918)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation (TEST-NET-2)"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation (TEST-NET-3)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (includes broadcast)"},
}

// Within global unicast (2000::/3) these are still not somewhere a credential
// should go. 6to4 and Teredo embed IPv4 addresses that could be private, and
// both are obsolete, so the whole blocks are refused rather than decoded.
var special6 = []specialRange{
	{netip.MustParsePrefix("2001::/23"), "IETF protocol assignments (Teredo, benchmarking, ORCHID)"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("2002::/16"), "6to4"},
	{netip.MustParsePrefix("3fff::/20"), "documentation"},
}

var (
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
	// nat64WellKnown embeds an IPv4 address in its last 32 bits (RFC 6052);
	// a DNS64 resolver hands these out for IPv4-only names. It is allowed
	// exactly when the embedded address is.
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96")
)

// specialReason returns why strict mode refuses to connect to a, or "" when
// a is an ordinary public unicast address. It is the single decision point
// for both the pre-dial check and the socket Control hook.
func specialReason(a netip.Addr) string {
	if !a.IsValid() {
		return "invalid address"
	}
	a = a.WithZone("")
	// IPv4-mapped IPv6 (::ffff:a.b.c.d) reaches the IPv4 address on a
	// dual-stack socket, so it is judged as that address.
	if a.Is4In6() {
		a = a.Unmap()
	}
	if a.Is4() {
		for _, r := range special4 {
			if r.prefix.Contains(a) {
				return r.reason
			}
		}
		return ""
	}
	if nat64WellKnown.Contains(a) {
		b := a.As16()
		v4 := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		if reason := specialReason(v4); reason != "" {
			return "NAT64 of " + reason
		}
		return ""
	}
	// Everything outside 2000::/3 is special: unspecified, loopback,
	// IPv4-compatible, discard, local-use NAT64, ULA fc00::/7, link-local
	// fe80::/10, site-local fec0::/10, multicast ff00::/8, SRv6 SIDs and the
	// unassigned space.
	if !globalUnicast6.Contains(a) {
		switch {
		case a.IsLoopback():
			return "loopback"
		case a.IsUnspecified():
			return "unspecified"
		case a.IsLinkLocalUnicast():
			return "link-local"
		case a.IsPrivate():
			return "unique local (fc00::/7)"
		case a.IsMulticast():
			return "multicast"
		}
		return "not global unicast"
	}
	for _, r := range special6 {
		if r.prefix.Contains(a) {
			return r.reason
		}
	}
	return ""
}
