package wire

import (
	"net/http"
	"strconv"
	"strings"
)

// AuthHeaders are the Latchkey-* request headers after the well-formedness
// check of DESIGN.md §4.4 step 1. Nothing here is verified yet: the server
// still has to look the key up, check the time window, the signature and the
// nonce, in that order.
type AuthHeaders struct {
	KeyID     string
	KeyKind   KeyKind
	Timestamp int64
	Nonce     string
	Signature []byte // decoded from "v1=<hex>"
	UserToken string // "" when absent
	Caller    string // "" when absent
	// Agent is the Latchkey-Agent value exactly as sent (it is signed that
	// way); use AgentID for lookups.
	Agent string
}

// AgentID is the agent UUID in canonical lowercase form, "" when absent.
func (a AuthHeaders) AgentID() string {
	return strings.ToLower(a.Agent)
}

// SignatureParams combines the headers with the parts of the request the
// headers do not carry, ready for StringToSign. bodySHA256 is the digest of
// the body bytes as received.
func (a AuthHeaders) SignatureParams(method, target string, bodySHA256 []byte) SignatureParams {
	return SignatureParams{
		KeyID:      a.KeyID,
		Timestamp:  a.Timestamp,
		Nonce:      a.Nonce,
		Method:     method,
		Target:     target,
		BodySHA256: bodySHA256,
		UserToken:  a.UserToken,
		Caller:     a.Caller,
		Agent:      a.Agent,
	}
}

// MalformedAuthError says which auth header is missing or malformed. It maps
// to 401 malformed_auth. Like KeyFormatError it holds a fixed reason and
// never the header value, which may be a JWT or part of a key.
type MalformedAuthError struct {
	Header string
	Reason string
}

func (e *MalformedAuthError) Error() string {
	return "wire: malformed " + e.Header + " header: " + e.Reason
}

// Code is the wire error code for this error.
func (e *MalformedAuthError) Code() ErrorCode { return CodeMalformedAuth }

// Fixed reasons reported by MalformedAuthError.
const (
	reasonAuthMissing    = "is required"
	reasonAuthRepeated   = "must appear at most once"
	reasonAuthKeyID      = "must be lk_app_ or lk_agent_ followed by 16 characters of [a-z0-9]"
	reasonAuthTimestamp  = "must be Unix seconds as a decimal integer without sign or leading zeros"
	reasonAuthNonce      = "must be 16-64 characters of [A-Za-z0-9_-]"
	reasonAuthSignature  = "must be v1= followed by 64 lowercase hex characters"
	reasonAuthWhitespace = "must not have leading or trailing whitespace"
	reasonAuthCaller     = "must be valid UTF-8 of at most 200 characters"
	reasonAuthAgent      = "must be a UUID (8-4-4-4-12 hex digits)"
)

// ParseAuthHeaders checks that the required Latchkey-* headers are present,
// each at most once, and well formed, and that the optional ones are well
// formed when present. Errors are *MalformedAuthError (401 malformed_auth).
//
// An optional header sent with an empty value is treated as absent: both hash
// to the same line of the string to sign. A repeated header is refused
// because which copy was signed would be ambiguous.
func ParseAuthHeaders(h http.Header) (AuthHeaders, error) {
	var a AuthHeaders

	keyID, err := requiredHeader(h, HeaderKeyID)
	if err != nil {
		return AuthHeaders{}, err
	}
	kind, err := ParseKeyID(keyID)
	if err != nil {
		return AuthHeaders{}, &MalformedAuthError{Header: HeaderKeyID, Reason: reasonAuthKeyID}
	}
	a.KeyID, a.KeyKind = keyID, kind

	ts, err := requiredHeader(h, HeaderTimestamp)
	if err != nil {
		return AuthHeaders{}, err
	}
	if a.Timestamp, err = parseTimestamp(ts); err != nil {
		return AuthHeaders{}, err
	}

	if a.Nonce, err = requiredHeader(h, HeaderNonce); err != nil {
		return AuthHeaders{}, err
	}
	if !ValidNonce(a.Nonce) {
		return AuthHeaders{}, &MalformedAuthError{Header: HeaderNonce, Reason: reasonAuthNonce}
	}

	sig, err := requiredHeader(h, HeaderSignature)
	if err != nil {
		return AuthHeaders{}, err
	}
	if a.Signature, err = ParseSignatureHeader(sig); err != nil {
		return AuthHeaders{}, err
	}

	if a.UserToken, err = optionalHeader(h, HeaderUserToken); err != nil {
		return AuthHeaders{}, err
	}
	if a.Caller, err = optionalHeader(h, HeaderCaller); err != nil {
		return AuthHeaders{}, err
	}
	if a.Agent, err = optionalHeader(h, HeaderAgent); err != nil {
		return AuthHeaders{}, err
	}
	return a, nil
}

func requiredHeader(h http.Header, name string) (string, error) {
	vals := h.Values(name)
	switch {
	case len(vals) == 0 || (len(vals) == 1 && vals[0] == ""):
		return "", &MalformedAuthError{Header: name, Reason: reasonAuthMissing}
	case len(vals) > 1:
		return "", &MalformedAuthError{Header: name, Reason: reasonAuthRepeated}
	}
	return vals[0], nil
}

func optionalHeader(h http.Header, name string) (string, error) {
	vals := h.Values(name)
	switch {
	case len(vals) == 0:
		return "", nil
	case len(vals) > 1:
		return "", &MalformedAuthError{Header: name, Reason: reasonAuthRepeated}
	}
	if err := checkOptionalValue(name, vals[0]); err != nil {
		return "", err
	}
	return vals[0], nil
}

// checkOptionalValue is shared by the Signer (before sending) and the server
// (on receipt) so both sides agree on what is acceptable.
func checkOptionalValue(name, v string) error {
	if v == "" {
		return nil
	}
	if strings.Trim(v, " \t") != v {
		return &MalformedAuthError{Header: name, Reason: reasonAuthWhitespace}
	}
	switch name {
	case HeaderCaller:
		if !validUTF8Max(v, MaxCallerLength) {
			return &MalformedAuthError{Header: name, Reason: reasonAuthCaller}
		}
	case HeaderAgent:
		if !validUUID(v) {
			return &MalformedAuthError{Header: name, Reason: reasonAuthAgent}
		}
	}
	return nil
}

// parseTimestamp accepts only the canonical decimal form, because the header
// text is what gets signed while the server compares the parsed number: a
// "+17…" or "017…" would otherwise verify as one value and be read as another.
func parseTimestamp(s string) (int64, error) {
	bad := &MalformedAuthError{Header: HeaderTimestamp, Reason: reasonAuthTimestamp}
	if len(s) == 0 || len(s) > 19 || (len(s) > 1 && s[0] == '0') || !allIn(s, "0123456789") {
		return 0, bad
	}
	ts, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, bad
	}
	return ts, nil
}

// validUUID accepts the hyphenated 8-4-4-4-12 form in either case (some
// platforms print UUIDs in upper case). Braces and urn:uuid: are refused so
// one agent has few spellings.
func validUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
