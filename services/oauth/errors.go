package oauth

import (
	"errors"
	"strings"
)

// Sentinel errors of a flow's callback. Each one's text is the error code
// the Connect popup reports (`alter_connect_error`); match them with
// errors.Is. Finish returns them inside a *FlowError, which adds the
// provider's own error code and the flow's session when they are known.
var (
	// ErrStateInvalid: the state is unknown, already used, or belongs to a
	// flow started in another browser.
	ErrStateInvalid = errors.New("state_mismatch")
	// ErrFlowExpired: the flow was started more than the flow TTL ago.
	ErrFlowExpired = errors.New("flow_expired")
	// ErrAccessDenied: the user declined at the provider (error=access_denied).
	ErrAccessDenied = errors.New("access_denied")
	// ErrProviderError: the provider sent any other error to the callback,
	// or no code at all.
	ErrProviderError = errors.New("provider_error")
	// ErrExchangeFailed: the token endpoint refused the code or could not be
	// reached. ProviderCode holds its RFC 6749 error (invalid_grant,
	// invalid_client, …); invalid_client also marks the config broken.
	ErrExchangeFailed = errors.New("exchange_failed")
	// ErrIdentityFailed: the connected account could not be identified.
	ErrIdentityFailed = errors.New("identity_failed")
)

// FlowError is a failed callback. Message is safe to show; nothing in it,
// or in ProviderCode, comes from the provider unfiltered.
type FlowError struct {
	// Kind is one of the sentinels above.
	Kind error
	// ProviderCode is the provider's error code, reduced to RFC 6749's
	// error character set and 64 characters; empty when there was none.
	ProviderCode string
	// ProviderDescription is the provider's error_description reduced to
	// printable ASCII and 200 characters. It is provider-controlled text:
	// render it escaped, and only where a provider's words are expected.
	ProviderDescription string
	// Message is a human explanation written by Latchkey.
	Message string
	// AppID and ConnectSessionID name the flow's session when the state was
	// found and belonged to this browser, so the caller can fail it.
	AppID            string
	ConnectSessionID string
	// Cause is for logs only. It never holds a token, code, state,
	// verifier or secret, nor a raw provider response.
	Cause error
}

// Code is the Connect error code (the sentinel's text).
func (e *FlowError) Code() string {
	if e.Kind == nil {
		return "internal"
	}
	return e.Kind.Error()
}

func (e *FlowError) Error() string {
	s := "oauth: " + e.Code()
	if e.ProviderCode != "" {
		s += " (" + e.ProviderCode + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrAccessDenied) and friends work.
func (e *FlowError) Is(target error) bool { return target != nil && target == e.Kind }

func (e *FlowError) Unwrap() error { return e.Cause }

// sanitizeCode keeps an RFC 6749 §5.2 error code only when it is one: the
// characters %x20-21 / %x23-5B / %x5D-7E, here further without spaces,
// at most 64 of them. Anything else becomes "invalid_error_code".
func sanitizeCode(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > 64 {
		return "invalid_error_code"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			return "invalid_error_code"
		}
	}
	return s
}

// sanitizeText reduces provider or caller text to printable ASCII of at
// most n bytes, for a field that is shown or audited.
func sanitizeText(s string, n int) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < n; i++ {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			b.WriteByte(c)
		}
	}
	return b.String()
}
