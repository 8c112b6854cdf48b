package sdk

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/latchkey/latchkey/sdk/wire"
)

// Request is one upstream call for Latchkey to make (POST /sdk/v1/proxy).
//
// Exactly one of GrantID and Provider selects the grant; Account narrows
// Provider to one account_identifier. At most one of JSON and Body is the
// upstream body.
type Request struct {
	Method string // default GET
	URL    string // absolute https:// URL on a host the provider allows

	GrantID  string
	Provider string
	Account  string

	// Headers go to the upstream. Authorization, Cookie, Proxy-* and
	// hop-by-hop headers are refused: Latchkey injects the credential.
	Headers map[string]string
	// JSON is encoded with encoding/json and sent with Content-Type
	// application/json; pass a json.RawMessage to send pre-encoded JSON.
	JSON any
	// Body is sent as raw bytes (set Content-Type in Headers).
	Body []byte

	Reason  string            // shown to approvers, recorded in the audit log
	Context map[string]string // per-call audit metadata: tool, run id, thread id
	// Timeout bounds the upstream call (Latchkey caps it); 0 leaves it to
	// Latchkey. It does not bound the SDK call: use ctx for that.
	Timeout time.Duration
}

func (r Request) wire() (wire.ProxyRequest, error) {
	if r.URL == "" {
		return wire.ProxyRequest{}, errors.New("sdk: proxy: URL is required")
	}
	if err := checkSelection(r.GrantID, r.Provider, r.Account); err != nil {
		return wire.ProxyRequest{}, fmt.Errorf("sdk: proxy: %w", err)
	}
	if r.JSON != nil && r.Body != nil {
		return wire.ProxyRequest{}, errors.New("sdk: proxy: set at most one of JSON and Body")
	}
	if r.Timeout < 0 {
		return wire.ProxyRequest{}, errors.New("sdk: proxy: Timeout must not be negative")
	}
	p := wire.ProxyRequest{
		Method:    r.Method,
		URL:       r.URL,
		GrantID:   r.GrantID,
		Provider:  r.Provider,
		Account:   r.Account,
		Headers:   r.Headers,
		Reason:    r.Reason,
		Context:   r.Context,
		TimeoutMS: timeoutMS(r.Timeout),
	}
	if p.Method == "" {
		p.Method = http.MethodGet
	}
	if r.JSON != nil {
		b, err := json.Marshal(r.JSON)
		if err != nil {
			return wire.ProxyRequest{}, fmt.Errorf("sdk: proxy: encode JSON body: %w", err)
		}
		p.JSON = b
	}
	if len(r.Body) > 0 {
		p.BodyBase64 = base64.StdEncoding.EncodeToString(r.Body)
	}
	return p, nil
}

// timeoutMS rounds up, so a sub-millisecond timeout is not sent as "none".
func timeoutMS(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	return int(min(int64(ms), math.MaxInt32))
}

// checkSelection applies the grant-selection rule locally so a mistake
// fails before a request (and an audit row) is spent on it.
func checkSelection(grantID, provider, account string) error {
	switch {
	case grantID != "" && provider != "":
		return errors.New("set exactly one of GrantID and Provider, not both")
	case grantID == "" && provider == "":
		return errors.New("set exactly one of GrantID and Provider")
	case account != "" && provider == "":
		return errors.New("Account narrows Provider; set Provider too")
	}
	return nil
}

// proxyCall sends a proxy request. The answer is one of three things:
//
//   - Latchkey-Proxied: true — the upstream's response, returned as is
//     whatever its status (an upstream 404 is not an error);
//   - 202 — held for approval, *ApprovalPendingError;
//   - anything else — Latchkey's own error, *Error.
func (c *client) proxyCall(ctx context.Context, r Request) (*http.Response, error) {
	p, err := r.wire()
	if err != nil {
		return nil, err
	}
	body, err := jsonBody(p)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(ctx, call{method: http.MethodPost, path: wire.PathProxy, body: body, proxy: true})
	if err != nil {
		return nil, err
	}
	if strings.EqualFold(resp.Header.Get(wire.HeaderProxied), "true") {
		return resp, nil
	}
	if resp.StatusCode == http.StatusAccepted {
		return nil, approvalFromResponse(resp)
	}
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		// Without the header this cannot be told apart from a Latchkey
		// answer, so it is not handed over as the upstream's.
		drainAndClose(resp.Body)
		return nil, &Error{
			Status:    resp.StatusCode,
			RequestID: resp.Header.Get(wire.HeaderRequestID),
			Message:   "proxy answer has neither Latchkey-Proxied nor an error body",
		}
	}
	return nil, errorFromResponse(resp, c.now())
}

// TokenRequest selects a grant for retrieve mode (POST /sdk/v1/token), with
// the same rules as Request.
type TokenRequest struct {
	GrantID  string
	Provider string
	Account  string
	Reason   string
	Context  map[string]string
}

func (c *client) token(ctx context.Context, r TokenRequest) (*wire.TokenResponse, error) {
	if err := checkSelection(r.GrantID, r.Provider, r.Account); err != nil {
		return nil, fmt.Errorf("sdk: token: %w", err)
	}
	body, err := jsonBody(wire.TokenRequest{
		GrantID: r.GrantID, Provider: r.Provider, Account: r.Account, Reason: r.Reason, Context: r.Context,
	})
	if err != nil {
		return nil, err
	}
	var out wire.TokenResponse
	if err := c.doJSON(ctx, call{method: http.MethodPost, path: wire.PathToken, body: body}, &out, true); err != nil {
		return nil, err
	}
	return &out, nil
}
