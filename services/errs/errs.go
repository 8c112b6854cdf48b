// Package errs holds the typed errors services return. Handlers map them to
// HTTP statuses and error codes in one place; the CLI maps them to exit codes.
package errs

import (
	"errors"
	"fmt"
	"strings"

	"github.com/latchkey/latchkey/sdk/wire"
)

// Sentinel errors. Tenant isolation reports another app's objects as
// ErrNotFound, never as ErrForbidden.
var (
	ErrNotFound  = errors.New("not found")
	ErrConflict  = errors.New("conflict")
	ErrForbidden = errors.New("forbidden")
)

// ValidationError is bad input, field by field. Messages are safe to show:
// they never echo secret values.
type ValidationError struct {
	Problems []FieldProblem
}

// FieldProblem names one invalid field.
type FieldProblem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *ValidationError) Error() string {
	parts := make([]string, 0, len(e.Problems))
	for _, p := range e.Problems {
		parts = append(parts, p.Field+": "+p.Message)
	}
	return "invalid input: " + strings.Join(parts, "; ")
}

// Validation collects problems; Err returns nil when there are none.
type Validation struct{ problems []FieldProblem }

// Add records a problem with a field.
func (v *Validation) Add(field, format string, args ...any) {
	v.problems = append(v.problems, FieldProblem{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Err returns the collected problems as a *ValidationError, or nil.
func (v *Validation) Err() error {
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.problems}
}

// Invalid returns a ValidationError with one problem.
func Invalid(field, format string, args ...any) error {
	var v Validation
	v.Add(field, format, args...)
	return v.Err()
}

// CodedError carries one of the SDK error codes (DESIGN.md §4.5) with a
// human message and optional details.
type CodedError struct {
	Code    wire.ErrorCode
	Message string
	Details map[string]any
	// Cause is kept for logs only; it is never shown to a client.
	Cause error
}

func (e *CodedError) Error() string {
	if e.Cause != nil {
		return string(e.Code) + ": " + e.Message + ": " + e.Cause.Error()
	}
	return string(e.Code) + ": " + e.Message
}

func (e *CodedError) Unwrap() error { return e.Cause }

// Coded builds a CodedError.
func Coded(code wire.ErrorCode, format string, args ...any) *CodedError {
	return &CodedError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf reports the SDK error code err maps to.
func CodeOf(err error) wire.ErrorCode {
	var ce *CodedError
	var ve *ValidationError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &ce):
		return ce.Code
	case errors.As(err, &ve):
		return wire.CodeInvalidRequest
	case errors.Is(err, ErrNotFound):
		return wire.CodeNotFound
	case errors.Is(err, ErrConflict):
		return wire.CodeConflict
	case errors.Is(err, ErrForbidden):
		return wire.CodeForbidden
	}
	return wire.CodeInternal
}
