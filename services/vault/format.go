package vault

import (
	"encoding/binary"
	"math"

	"golang.org/x/crypto/chacha20poly1305"
)

// The AEAD is XChaCha20-Poly1305 rather than AES-256-GCM because its 192-bit
// nonce can be drawn at random for every seal with no practical collision
// risk, however many values one long-lived data key seals across replicas
// that do not coordinate (GCM's 96-bit random nonces limit a key to about
// 2³² messages); it is also constant-time in pure Go on CPUs without AES-NI.
//
// Ciphertext layout (all integers big-endian):
//
//	[0]      format byte: formatXChaCha20Poly1305
//	[1:5]    data-key version (uint32, 1 … 2³¹-1)
//	[5:29]   random XChaCha20 nonce (24 bytes)
//	[29:]    sealed box: encrypted plaintext followed by the 16-byte Poly1305 tag
//
// The associated data authenticated with the box is
//
//	adTag || header ([0:5]) || len32(app id) app id || len32(table) table ||
//	len32(row id) row id || len32(column) column
//
// Length prefixes make the field split unambiguous ("a|b" + "c" never equals
// "a" + "b|c"), the header binds the version and format, and the fixed tag
// keeps vault associated data distinct from any other use of the same key.
const (
	formatXChaCha20Poly1305 byte = 0x01

	headerLen = 1 + 4
	nonceLen  = chacha20poly1305.NonceSizeX
	tagLen    = chacha20poly1305.Overhead
	minLen    = headerLen + nonceLen + tagLen

	dataKeyLen = chacha20poly1305.KeySize

	adTag = "latchkey.vault.ad.v1\x00"
)

// parseVersion reads the key version of a ciphertext, or reports that the
// bytes cannot be a vault ciphertext of a known format.
func parseVersion(ct []byte) (uint32, bool) {
	if len(ct) < minLen || ct[0] != formatXChaCha20Poly1305 {
		return 0, false
	}
	v := binary.BigEndian.Uint32(ct[1:headerLen])
	// data_keys.version is a signed 32-bit integer starting at 1.
	return v, v >= 1 && v <= math.MaxInt32
}

func associatedData(b Binding, header []byte) []byte {
	n := len(adTag) + len(header) + 16 + len(b.AppID) + len(b.Table) + len(b.RowID) + len(b.Column)
	ad := make([]byte, 0, n)
	ad = append(ad, adTag...)
	ad = append(ad, header...)
	for _, f := range [...]string{b.AppID, b.Table, b.RowID, b.Column} {
		ad = binary.BigEndian.AppendUint32(ad, uint32(len(f)))
		ad = append(ad, f...)
	}
	return ad
}
