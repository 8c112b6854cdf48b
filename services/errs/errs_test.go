package errs

import (
	"errors"
	"fmt"
	"testing"

	"github.com/latchkey/latchkey/sdk/wire"
)

func TestCodeOfMapsEveryKindOfError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want wire.ErrorCode
	}{
		{"nil", nil, ""},
		{"coded, wrapped", fmt.Errorf("ctx: %w", Coded(wire.CodeGrantRevoked, "revoked")), wire.CodeGrantRevoked},
		{"validation", Invalid("name", "is required"), wire.CodeInvalidRequest},
		{"not found, wrapped", fmt.Errorf("app: %w", ErrNotFound), wire.CodeNotFound},
		{"conflict", ErrConflict, wire.CodeConflict},
		{"forbidden", ErrForbidden, wire.CodeForbidden},
		{"anything else is internal", errors.New("disk on fire"), wire.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CodeOf(tt.err); got != tt.want {
				t.Fatalf("CodeOf = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidationCollectsEveryProblem(t *testing.T) {
	var v Validation
	if v.Err() != nil {
		t.Fatal("an empty validation is an error")
	}
	v.Add("a", "bad %d", 1)
	v.Add("b", "worse")
	var ve *ValidationError
	if !errors.As(v.Err(), &ve) || len(ve.Problems) != 2 || ve.Error() != "invalid input: a: bad 1; b: worse" {
		t.Fatalf("got %v", v.Err())
	}
}

// A coded error keeps its cause for logs but its code and message are what
// callers see; unwrapping reaches the cause.
func TestCodedErrorUnwrapsToItsCause(t *testing.T) {
	cause := errors.New("driver: connection reset")
	ce := &CodedError{Code: wire.CodeInternal, Message: "could not save", Cause: cause}
	if !errors.Is(ce, cause) || CodeOf(ce) != wire.CodeInternal {
		t.Fatalf("unwrap/code: %v", ce)
	}
}
