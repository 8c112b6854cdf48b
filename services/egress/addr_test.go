package egress

import (
	"net/netip"
	"testing"
)

func TestSpecialReason(t *testing.T) {
	special := []string{
		"0.0.0.0", "0.1.2.3", // this network, unspecified
		"10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", // RFC 1918
		"100.64.0.1", "100.127.255.255", // CGNAT
		"127.0.0.1", "127.255.255.254", // loopback
		"169.254.169.254", "169.254.0.1", // link-local, cloud metadata
		"192.0.0.8", "192.0.2.1", "198.51.100.7", "203.0.113.9", // protocol assignments, documentation
		"198.18.0.1", "198.19.255.255", // benchmarking
		"192.88.99.1",                  // 6to4 relay
		"224.0.0.1", "239.255.255.250", // multicast
		"240.0.0.1", "255.255.255.255", // reserved, broadcast
		"::", "::1", // unspecified, loopback
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:0.0.0.0", // mapped
		"::127.0.0.1",                           // IPv4-compatible (deprecated)
		"64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", // NAT64 of loopback and metadata
		"64:ff9b:1::8.8.8.8",      // local-use NAT64
		"100::1",                  // discard
		"fc00::1", "fd12:3456::1", // ULA
		"fe80::1", "fe80::1%eth0", "febf::1", "fec0::1", // link-local, site-local
		"ff02::1", "ff0e::1", // multicast
		"2001:db8::1", "3fff::1", // documentation
		"2001::1", "2001:2::1", // Teredo, benchmarking
		"2002:7f00:1::1", // 6to4 embedding loopback
		"5f00::1",        // SRv6 SIDs
	}
	for _, s := range special {
		t.Run("refuses "+s, func(t *testing.T) {
			if specialReason(netip.MustParseAddr(s)) == "" {
				t.Fatalf("%s must be refused", s)
			}
		})
	}
	public := []string{
		"8.8.8.8", "1.1.1.1", "140.82.112.3", "100.63.255.255", "100.128.0.1", "172.15.255.255", "172.32.0.1",
		"169.253.255.255", "192.0.1.1", "198.17.255.255", "198.20.0.1", "223.255.255.255",
		"::ffff:8.8.8.8",
		"64:ff9b::808:808", // NAT64 of 8.8.8.8
		"2606:4700:4700::1111", "2a00:1450:4001::200e", "2600::1",
	}
	for _, s := range public {
		t.Run("allows "+s, func(t *testing.T) {
			if r := specialReason(netip.MustParseAddr(s)); r != "" {
				t.Fatalf("%s refused as %q, want allowed", s, r)
			}
		})
	}
	if specialReason(netip.Addr{}) == "" {
		t.Fatal("the zero address must be refused")
	}
}
