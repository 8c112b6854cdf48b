package sdk

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey/latchkey/sdk/wire"
)

// CodeError is a Latchkey error code used as an error value, so that
// errors.Is(err, sdk.ErrGrantNotFound) matches any *Error carrying that code.
// The sentinels below are constants of this type: they cannot be reassigned,
// and any code — including one newer than this SDK — can be matched with
// CodeError(code).
type CodeError wire.ErrorCode

func (c CodeError) Error() string { return "latchkey: " + string(c) }

// Code is the wire error code.
func (c CodeError) Code() wire.ErrorCode { return wire.ErrorCode(c) }

// Sentinels, one per wire error code (docs/sdk-protocol.md §5). Match them
// with errors.Is; use errors.As with *Error for the message, request id and
// details.
const (
	ErrInvalidRequest          = CodeError(wire.CodeInvalidRequest)
	ErrMalformedAuth           = CodeError(wire.CodeMalformedAuth)
	ErrInvalidKey              = CodeError(wire.CodeInvalidKey)
	ErrKeyRevoked              = CodeError(wire.CodeKeyRevoked)
	ErrTimestampOutOfRange     = CodeError(wire.CodeTimestampOutOfRange)
	ErrInvalidSignature        = CodeError(wire.CodeInvalidSignature)
	ErrReplayedRequest         = CodeError(wire.CodeReplayedRequest)
	ErrInvalidUserToken        = CodeError(wire.CodeInvalidUserToken)
	ErrAgentCannotUseUserToken = CodeError(wire.CodeAgentCannotUseUserToken)
	ErrForbidden               = CodeError(wire.CodeForbidden)
	ErrNotFound                = CodeError(wire.CodeNotFound)
	ErrMethodNotAllowed        = CodeError(wire.CodeMethodNotAllowed)
	ErrConflict                = CodeError(wire.CodeConflict)
	ErrPayloadTooLarge         = CodeError(wire.CodePayloadTooLarge)
	ErrUnsupportedMediaType    = CodeError(wire.CodeUnsupportedMediaType)
	ErrGrantNotFound           = CodeError(wire.CodeGrantNotFound)
	ErrGrantRevoked            = CodeError(wire.CodeGrantRevoked)
	ErrGrantExpired            = CodeError(wire.CodeGrantExpired)
	ErrReauthRequired          = CodeError(wire.CodeReauthRequired)
	ErrAmbiguousGrant          = CodeError(wire.CodeAmbiguousGrant)
	ErrNoDelegatedGrant        = CodeError(wire.CodeNoDelegatedGrant)
	ErrPolicyDenied            = CodeError(wire.CodePolicyDenied)
	ErrHostNotAllowed          = CodeError(wire.CodeHostNotAllowed)
	ErrProviderNotConfigured   = CodeError(wire.CodeProviderNotConfigured)
	ErrRateLimited             = CodeError(wire.CodeRateLimited)
	ErrUpstreamUnreachable     = CodeError(wire.CodeUpstreamUnreachable)
	ErrUpstreamTimeout         = CodeError(wire.CodeUpstreamTimeout)
	ErrConnectSessionExpired   = CodeError(wire.CodeConnectSessionExpired)
	ErrConnectSessionUsed      = CodeError(wire.CodeConnectSessionUsed)
	ErrInternal                = CodeError(wire.CodeInternal)
)

// Error is an error produced by Latchkey itself (never an upstream answer).
//
// Code is empty when the response was not in Latchkey's error shape — for
// example an HTML 503 from a load balancer in front of Latchkey; Status then
// says what happened. Clients should treat a code they do not know by the
// class of Status, as docs/sdk-protocol.md recommends.
type Error struct {
	Code      wire.ErrorCode
	Status    int // HTTP status
	Message   string
	RequestID string // quote it when reporting a problem
	Details   map[string]any
	// RetryAfter is the server's Retry-After hint (429 and 503), 0 if none.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("latchkey: ")
	if e.Code != "" {
		b.WriteString(string(e.Code))
	} else {
		b.WriteString("HTTP " + strconv.Itoa(e.Status))
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (request id " + e.RequestID + ")")
	}
	return b.String()
}

// Is matches the CodeError sentinel of e's code.
func (e *Error) Is(target error) bool {
	c, ok := target.(CodeError)
	return ok && e.Code != "" && wire.ErrorCode(c) == e.Code
}

// Retryable reports whether the same call may succeed later without any
// change (docs/sdk-protocol.md §5). The SDK already retries what is safe to
// retry on its own (see RetryPolicy); this is for callers that want to retry
// more, e.g. a proxied GET after upstream_timeout.
func (e *Error) Retryable() bool {
	switch e.Code {
	case wire.CodeRateLimited, wire.CodeUpstreamUnreachable, wire.CodeUpstreamTimeout, wire.CodeInternal:
		return true
	case "":
		return e.Status == http.StatusTooManyRequests || e.Status >= 500
	}
	return false
}

// AmbiguousGrantError is ambiguous_grant: several grants match the provider
// and no account was given. Retry with Request.Account set to one of
// Accounts. It unwraps to the *Error, so errors.Is(err, ErrAmbiguousGrant)
// and errors.As(err, new(*Error)) both work.
type AmbiguousGrantError struct {
	Accounts []string // the matching account_identifier values
	Err      *Error
}

func (e *AmbiguousGrantError) Error() string {
	if e.Err == nil {
		return "latchkey: " + string(wire.CodeAmbiguousGrant)
	}
	return e.Err.Error()
}

// Unwrap returns the underlying *Error.
func (e *AmbiguousGrantError) Unwrap() error {
	if e.Err == nil {
		return nil
	}
	return e.Err
}

// Is matches ErrAmbiguousGrant even when Err is nil.
func (e *AmbiguousGrantError) Is(target error) bool { return target == ErrAmbiguousGrant }

// ApprovalPendingError means a policy held the call for a human decision
// (HTTP 202). It is not a failure of the request: poll GetApproval with
// ApprovalID, or send the user to ApprovalURL. Latchkey executes the call
// itself once approved; do not resend it.
type ApprovalPendingError struct {
	ApprovalID  string
	ApprovalURL string
	ExpiresAt   time.Time
	Reason      string
	RequestID   string
}

func (e *ApprovalPendingError) Error() string {
	var b strings.Builder
	b.WriteString("latchkey: call held for approval " + e.ApprovalID)
	if e.ApprovalURL != "" {
		b.WriteString(" (approve at " + e.ApprovalURL + ")")
	}
	if !e.ExpiresAt.IsZero() {
		b.WriteString(", expires " + e.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if e.RequestID != "" {
		b.WriteString(" (request id " + e.RequestID + ")")
	}
	return b.String()
}

// maxErrorBody bounds how much of an error response is read: Latchkey's
// errors are small, and anything big is not one of them.
const maxErrorBody = 64 << 10

// errorFromResponse turns a non-success response from Latchkey into an
// *Error (or *AmbiguousGrantError) and closes its body. The body text is
// used only when it parses as Latchkey's error shape; anything else is
// summarised by status so foreign content never reaches an error string.
func errorFromResponse(resp *http.Response, now time.Time) error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))

	e := &Error{
		Status:    resp.StatusCode,
		RequestID: resp.Header.Get(wire.HeaderRequestID),
	}
	if d, ok := retryAfter(resp.Header, now); ok {
		e.RetryAfter = d
	}
	var eb wire.ErrorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error.Code != "" {
		e.Code = eb.Error.Code
		e.Message = eb.Error.Message
		e.Details = eb.Error.Details
		if eb.Error.RequestID != "" {
			e.RequestID = eb.Error.RequestID
		}
	} else {
		e.Message = fmt.Sprintf("unexpected %s response without a Latchkey error body", statusText(resp))
	}
	if e.Code == wire.CodeAmbiguousGrant {
		return &AmbiguousGrantError{Accounts: stringList(e.Details[wire.DetailAccountIdentifiers]), Err: e}
	}
	return e
}

// approvalFromResponse reads a 202 {"approval": {…}} body and closes it.
func approvalFromResponse(resp *http.Response) error {
	defer resp.Body.Close()
	var env wire.ApprovalEnvelope
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxErrorBody)).Decode(&env); err != nil || env.Approval.ApprovalID == "" {
		return &Error{
			Status:    resp.StatusCode,
			RequestID: resp.Header.Get(wire.HeaderRequestID),
			Message:   "202 response without an approval body",
		}
	}
	return &ApprovalPendingError{
		ApprovalID:  env.Approval.ApprovalID,
		ApprovalURL: env.Approval.ApprovalURL,
		ExpiresAt:   env.Approval.ExpiresAt,
		Reason:      env.Approval.Reason,
		RequestID:   resp.Header.Get(wire.HeaderRequestID),
	}
}

func statusText(resp *http.Response) string {
	if t := http.StatusText(resp.StatusCode); t != "" {
		return strconv.Itoa(resp.StatusCode) + " " + t
	}
	return strconv.Itoa(resp.StatusCode)
}

// stringList reads a JSON array of strings decoded as []any; other element
// types are skipped rather than failing the whole error.
func stringList(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
