package egress

import (
	"net/http"
	"time"
)

// HTTPClient returns a client for Latchkey's own calls to providers — the
// OAuth token exchange, the identity lookup, refresh and revocation — over
// the proxy's shared transport, so those calls get the same dial-time
// refusal of loopback, private and special-purpose addresses (DNS
// rebinding included) and never use an environment proxy. Token and
// identity endpoints come from operator-supplied provider definitions, so
// without this they would be an SSRF path around the proxy's checks.
//
// Redirects are never followed: a token request carries the client secret
// and a code, an identity request the new access token, and a 3xx must not
// forward them elsewhere. timeout bounds each request, body included; zero
// means DefaultTimeout.
func (e *Egress) HTTPClient(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &http.Client{
		Transport:     e.transport,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
