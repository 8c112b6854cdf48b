package connect

import "fmt"

// Codes a Connect flow can end with in the browser. They are stable: the
// popup sends them to the app as alter_connect_error's error, the redirect
// flow as error_code, and the poll endpoint as error_code. Those equal to
// an SDK error code (DESIGN.md §4.5) mean the same thing; the callback
// codes are services/oauth's flow error codes.
const (
	CodeAccessDenied          = "access_denied"
	CodeSessionExpired        = "connect_session_expired"
	CodeSessionUsed           = "connect_session_used"
	CodeNotFound              = "not_found"
	CodeBrowserMismatch       = "browser_mismatch"
	CodeStateMismatch         = "state_mismatch"
	CodeFlowExpired           = "flow_expired"
	CodeProviderError         = "provider_error"
	CodeExchangeFailed        = "exchange_failed"
	CodeIdentityFailed        = "identity_failed"
	CodeProviderNotConfigured = "provider_not_configured"
	CodeInvalidRequest        = "invalid_request"
	CodeInternal              = "internal"
)

// descriptions are the only texts shown for a code, in the popup and to the
// app: fixed sentences, never a provider's or an error's own words (a
// provider's error_description arrives in a URL anyone can craft).
var descriptions = map[string]string{
	CodeAccessDenied:          "The connection was not approved.",
	CodeSessionExpired:        "This Connect session has expired. Start again from the application.",
	CodeSessionUsed:           "This Connect session was already used. Start again from the application.",
	CodeNotFound:              "This Connect link is not valid. Start again from the application.",
	CodeBrowserMismatch:       "This connection was started in another browser, or its cookie is missing. Start again from the application in this browser.",
	CodeStateMismatch:         "The provider's answer does not belong to a connection in progress in this browser, or was already used. Start again from the application.",
	CodeFlowExpired:           "The sign-in at the provider took too long. Start again from the application.",
	CodeProviderError:         "The provider reported an error and did not connect the account.",
	CodeExchangeFailed:        "The provider did not complete the connection. Try again later.",
	CodeIdentityFailed:        "The connected account could not be identified.",
	CodeProviderNotConfigured: "This provider is not available for this application.",
	CodeInvalidRequest:        "The request could not be understood.",
	CodeInternal:              "Something went wrong on our side. Try again later.",
}

// Describe returns the human sentence for a code.
func Describe(code string) string {
	if d, ok := descriptions[code]; ok {
		return d
	}
	return descriptions[CodeInternal]
}

// Delivery is where the app hears about a session's outcome: the exact
// registered origin to post to from the popup, and the exact registered
// return URL of the redirect flow. Either may be empty; both are checked
// against the app's registered URLs again at delivery time, so an origin the
// operator removed meanwhile receives nothing.
type Delivery struct {
	TargetOrigin string
	ReturnURL    string
}

// Failure is a Connect flow that ended (or cannot go on) without a grant.
// Code and Description are safe to show and to send to the app. Delivery is
// set only when the session is known and this browser may speak for it;
// otherwise the outcome is shown in the page and goes nowhere else.
type Failure struct {
	Code        string
	Description string
	SessionID   string
	Delivery    Delivery
	// Cause is for logs only.
	Cause error
}

func (f *Failure) Error() string {
	if f.Cause != nil {
		return fmt.Sprintf("connect: %s: %v", f.Code, f.Cause)
	}
	return "connect: " + f.Code
}

func (f *Failure) Unwrap() error { return f.Cause }

// fail builds a Failure with the code's fixed description.
func fail(code string, cause error) *Failure {
	return &Failure{Code: code, Description: Describe(code), Cause: cause}
}
