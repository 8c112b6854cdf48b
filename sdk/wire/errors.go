package wire

import "net/http"

// ErrorCode is a stable, machine-readable error code (DESIGN.md §4.5).
// Clients switch on it; the message is for humans and may change.
type ErrorCode string

// Error codes. The HTTP status of each is given by HTTPStatus and listed in
// docs/sdk-protocol.md; a test keeps the two in step.
const (
	CodeInvalidRequest          ErrorCode = "invalid_request"
	CodeMalformedAuth           ErrorCode = "malformed_auth"
	CodeInvalidKey              ErrorCode = "invalid_key"
	CodeKeyRevoked              ErrorCode = "key_revoked"
	CodeTimestampOutOfRange     ErrorCode = "timestamp_out_of_range"
	CodeInvalidSignature        ErrorCode = "invalid_signature"
	CodeReplayedRequest         ErrorCode = "replayed_request"
	CodeInvalidUserToken        ErrorCode = "invalid_user_token"
	CodeAgentCannotUseUserToken ErrorCode = "agent_cannot_use_user_token"
	CodeForbidden               ErrorCode = "forbidden"
	CodeNotFound                ErrorCode = "not_found"
	CodeMethodNotAllowed        ErrorCode = "method_not_allowed"
	CodeConflict                ErrorCode = "conflict"
	CodePayloadTooLarge         ErrorCode = "payload_too_large"
	CodeUnsupportedMediaType    ErrorCode = "unsupported_media_type"
	CodeGrantNotFound           ErrorCode = "grant_not_found"
	CodeGrantRevoked            ErrorCode = "grant_revoked"
	CodeGrantExpired            ErrorCode = "grant_expired"
	CodeReauthRequired          ErrorCode = "reauth_required"
	CodeAmbiguousGrant          ErrorCode = "ambiguous_grant"
	CodeNoDelegatedGrant        ErrorCode = "no_delegated_grant"
	CodePolicyDenied            ErrorCode = "policy_denied"
	CodeHostNotAllowed          ErrorCode = "host_not_allowed"
	CodeProviderNotConfigured   ErrorCode = "provider_not_configured"
	CodeRateLimited             ErrorCode = "rate_limited"
	CodeUpstreamUnreachable     ErrorCode = "upstream_unreachable"
	CodeUpstreamTimeout         ErrorCode = "upstream_timeout"
	CodeConnectSessionExpired   ErrorCode = "connect_session_expired"
	CodeConnectSessionUsed      ErrorCode = "connect_session_used"
	CodeInternal                ErrorCode = "internal"
)

// DetailAccountIdentifiers is the details key under which ambiguous_grant
// lists the matching account_identifier values ([]string).
const DetailAccountIdentifiers = "account_identifiers"

// ErrorCodes returns every defined code, in the order of the table in
// docs/sdk-protocol.md. A fresh slice each call, so callers cannot alter it.
func ErrorCodes() []ErrorCode {
	return []ErrorCode{
		CodeInvalidRequest,
		CodeMalformedAuth,
		CodeInvalidKey,
		CodeKeyRevoked,
		CodeTimestampOutOfRange,
		CodeInvalidSignature,
		CodeReplayedRequest,
		CodeInvalidUserToken,
		CodeAgentCannotUseUserToken,
		CodeForbidden,
		CodeNotFound,
		CodeMethodNotAllowed,
		CodeConflict,
		CodePayloadTooLarge,
		CodeUnsupportedMediaType,
		CodeGrantNotFound,
		CodeGrantRevoked,
		CodeGrantExpired,
		CodeReauthRequired,
		CodeAmbiguousGrant,
		CodeNoDelegatedGrant,
		CodePolicyDenied,
		CodeHostNotAllowed,
		CodeProviderNotConfigured,
		CodeRateLimited,
		CodeUpstreamUnreachable,
		CodeUpstreamTimeout,
		CodeConnectSessionExpired,
		CodeConnectSessionUsed,
		CodeInternal,
	}
}

// Known reports whether c is a defined code.
func (c ErrorCode) Known() bool {
	_, ok := status(c)
	return ok
}

// HTTPStatus is the status that accompanies code. An unknown code maps to
// 500, the same as internal: failing closed beats inventing a status.
func HTTPStatus(code ErrorCode) int {
	if s, ok := status(code); ok {
		return s
	}
	return http.StatusInternalServerError
}

func status(code ErrorCode) (int, bool) {
	switch code {
	case CodeInvalidRequest, CodeAgentCannotUseUserToken:
		return http.StatusBadRequest, true
	case CodeMalformedAuth, CodeInvalidKey, CodeKeyRevoked, CodeTimestampOutOfRange,
		CodeInvalidSignature, CodeReplayedRequest, CodeInvalidUserToken:
		return http.StatusUnauthorized, true
	case CodeForbidden, CodeGrantRevoked, CodeGrantExpired, CodeReauthRequired,
		CodeNoDelegatedGrant, CodePolicyDenied, CodeHostNotAllowed:
		return http.StatusForbidden, true
	case CodeNotFound, CodeGrantNotFound, CodeProviderNotConfigured:
		return http.StatusNotFound, true
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed, true
	case CodeConflict, CodeAmbiguousGrant, CodeConnectSessionUsed:
		return http.StatusConflict, true
	case CodeConnectSessionExpired:
		return http.StatusGone, true
	case CodePayloadTooLarge:
		return http.StatusRequestEntityTooLarge, true
	case CodeUnsupportedMediaType:
		return http.StatusUnsupportedMediaType, true
	case CodeRateLimited:
		return http.StatusTooManyRequests, true
	case CodeInternal:
		return http.StatusInternalServerError, true
	case CodeUpstreamUnreachable:
		return http.StatusBadGateway, true
	case CodeUpstreamTimeout:
		return http.StatusGatewayTimeout, true
	}
	return 0, false
}

// ErrorBody is the one shape of every error Latchkey itself produces:
// {"error": {"code": …, "message": …, "request_id": …, "details": {…}}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody. Details is omitted when empty;
// clients must treat a missing details object like an empty one.
type ErrorDetail struct {
	Code      ErrorCode      `json:"code"`
	Message   string         `json:"message"`
	RequestID string         `json:"request_id"`
	Details   map[string]any `json:"details,omitempty"`
}
