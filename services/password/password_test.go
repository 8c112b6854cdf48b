package password

import (
	"errors"
	"strings"
	"testing"
)

func fast() Params { return Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16} }

func TestHashVerifies(t *testing.T) {
	h, err := Hash("correct horse", fast())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=1024,t=1,p=1$") {
		t.Fatalf("not a PHC argon2id string: %q", h)
	}
	if strings.Contains(h, "correct horse") {
		t.Fatal("hash contains the password")
	}
	if err := Verify("correct horse", h); err != nil {
		t.Fatalf("verify: %v", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	h, _ := Hash("pw", fast())
	tests := []struct {
		name string
		pw   string
		hash string
		want error
	}{
		{"wrong password", "PW", h, ErrMismatch},
		{"empty password", "", h, ErrMismatch},
		{"bcrypt hash", "pw", "$2a$10$abcdefghijklmnopqrstuv", ErrMalformedHash},
		{"truncated", "pw", h[:20], ErrMalformedHash},
		{"garbage salt", "pw", "$argon2id$v=19$m=1024,t=1,p=1$!!!$AAAA", ErrMalformedHash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Verify(tt.pw, tt.hash); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSaltsDiffer(t *testing.T) {
	a, _ := Hash("same", fast())
	b, _ := Hash("same", fast())
	if a == b {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
}
