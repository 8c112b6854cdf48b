package bearer

import "testing"

// The stored form is a contract with rows already written: it must not
// change, and it must not be the value itself.
func TestHashIsLowercaseHexSHA256(t *testing.T) {
	// echo -n lkcs_example-token | sha256sum
	const want = "322709f7f2620bf4703beb89ae2c966dd8c44028a52870a174e6809f07632d30"
	if got := Hash("lkcs_example-token"); got != want {
		t.Fatalf("Hash = %q, want %q", got, want)
	}
}
