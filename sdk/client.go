package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/latchkey/latchkey/sdk/wire"
)

// DefaultBaseURL is where a local `latchkey serve` listens.
const DefaultBaseURL = "http://127.0.0.1:8080"

// userAgent identifies the SDK in server logs; it is not signed.
const userAgent = "latchkey-go-sdk/1"

// maxResponseBody bounds a JSON answer from Latchkey (not a proxied body,
// which is streamed to the caller untouched).
const maxResponseBody = 16 << 20

// Option configures NewApp and NewAgent.
type Option func(*settings)

type settings struct {
	baseURL      string
	httpClient   *http.Client
	caller       string
	userToken    func(context.Context) (string, error)
	now          func() time.Time
	retry        RetryPolicy
	onDeprecated func(keyID string)
	logger       *slog.Logger

	// Test hooks (export_test.go): a fixed nonce source reproduces the
	// protocol's test vectors, and a fake sleep keeps retry tests fast.
	rand  io.Reader
	sleep func(context.Context, time.Duration) error
}

// WithBaseURL sets Latchkey's base URL (default DefaultBaseURL). It may carry
// a path prefix when Latchkey is mounted below one.
func WithBaseURL(u string) Option { return func(s *settings) { s.baseURL = u } }

// WithHTTPClient sets the HTTP client. The SDK uses a shallow copy that never
// follows redirects: a redirect in a proxied answer belongs to the caller
// (Latchkey never follows one with a credential attached), and following it
// against Latchkey would only produce a signature failure.
func WithHTTPClient(c *http.Client) Option { return func(s *settings) { s.httpClient = c } }

// WithCaller sets Latchkey-Caller, the free-form audit attribution sent with
// every request of this client (at most 200 characters). It is recorded, not
// trusted: it grants nothing.
func WithCaller(caller string) Option { return func(s *settings) { s.caller = caller } }

// WithUserToken sets a function returning the end user's JWT from the app's
// identity provider, sent as Latchkey-User-Token. It is called for every
// attempt, with the call's context, so a server handling many users can pull
// the token of the current request from ctx, and an expired token can be
// renewed between retries. An empty token sends no header. App keys only:
// Latchkey refuses user tokens from agents.
func WithUserToken(get func(ctx context.Context) (string, error)) Option {
	return func(s *settings) { s.userToken = get }
}

// WithClock sets the clock used for Latchkey-Timestamp (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *settings) { s.now = now } }

// WithRetry replaces DefaultRetryPolicy; zero fields keep their defaults and
// MaxAttempts 1 disables retries.
func WithRetry(p RetryPolicy) Option { return func(s *settings) { s.retry = p } }

// WithDeprecationNotice sets a function called once per client (handles from
// App.GetAgent included) the first time Latchkey answers
// Latchkey-Key-Deprecated: true, meaning the key still works but is being
// retired and should be rotated. It runs synchronously inside that call.
// Without it the SDK logs one warning on the logger (WithLogger).
func WithDeprecationNotice(notify func(keyID string)) Option {
	return func(s *settings) { s.onDeprecated = notify }
}

// WithLogger sets the logger for the deprecation warning (default
// slog.Default()). The SDK logs nothing else, and never a secret.
func WithLogger(l *slog.Logger) Option { return func(s *settings) { s.logger = l } }

// client is the shared machinery behind App and Agent. It holds a Signer,
// which keeps only the derived signing key, never the API key.
type client struct {
	base      string // scheme://host[/prefix], no trailing slash
	hc        *http.Client
	signer    *wire.Signer
	kind      wire.KeyKind
	caller    string
	userToken func(context.Context) (string, error)
	agent     string // Latchkey-Agent for an app key acting as an agent
	now       func() time.Time
	retry     RetryPolicy
	sleep     func(context.Context, time.Duration) error
	notice    *deprecationNotice
}

func newClient(ctor string, apiKey string, want wire.KeyKind, opts []Option) (*client, error) {
	key, err := wire.ParseKey(apiKey)
	if err != nil {
		// *wire.KeyFormatError carries a fixed reason, never the key text.
		return nil, fmt.Errorf("sdk: %s: %w", ctor, err)
	}
	if key.Kind() != want {
		other := "NewApp"
		if key.Kind() == wire.KeyKindAgent {
			other = "NewAgent"
		}
		return nil, fmt.Errorf("sdk: %s needs an %s key (lk_%s_…); this is an %s key, use %s", ctor, want, want, key.Kind(), other)
	}

	s := settings{baseURL: DefaultBaseURL, retry: DefaultRetryPolicy()}
	for _, o := range opts {
		if o != nil {
			o(&s)
		}
	}
	base, err := normaliseBaseURL(s.baseURL)
	if err != nil {
		return nil, fmt.Errorf("sdk: %s: %w", ctor, err)
	}
	if err := checkCaller(s.caller); err != nil {
		return nil, fmt.Errorf("sdk: %s: %w", ctor, err)
	}
	if s.userToken != nil && want != wire.KeyKindApp {
		return nil, fmt.Errorf("sdk: %s: WithUserToken is for app keys; Latchkey refuses user tokens from agent keys", ctor)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.sleep == nil {
		s.sleep = sleepCtx
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	signer, err := wire.NewSigner(key, s.now, s.rand)
	if err != nil {
		return nil, fmt.Errorf("sdk: %s: %w", ctor, err)
	}
	return &client{
		base:      base,
		hc:        noRedirects(s.httpClient),
		signer:    signer,
		kind:      key.Kind(),
		caller:    s.caller,
		userToken: s.userToken,
		now:       s.now,
		retry:     s.retry.withDefaults(),
		sleep:     s.sleep,
		notice:    &deprecationNotice{keyID: key.KeyID(), notify: s.onDeprecated, logger: s.logger},
	}, nil
}

func normaliseBaseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("base URL must be an absolute http:// or https:// URL")
	}
	// Credentials in the URL would end up in transport error messages.
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("base URL must not carry credentials, a query or a fragment")
	}
	return strings.TrimSuffix(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"), nil
}

// checkCaller mirrors the server's rule (docs/sdk-protocol.md §2) so a bad
// caller fails at construction, not on the first request.
func checkCaller(c string) error {
	if c == "" {
		return nil
	}
	if strings.Trim(c, " \t") != c || !utf8.ValidString(c) || utf8.RuneCountInString(c) > wire.MaxCallerLength {
		return fmt.Errorf("caller must be valid UTF-8 of at most %d characters without leading or trailing whitespace", wire.MaxCallerLength)
	}
	return nil
}

func noRedirects(hc *http.Client) *http.Client {
	var c http.Client
	if hc != nil {
		c = *hc
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// deprecationNotice surfaces Latchkey-Key-Deprecated once per key.
type deprecationNotice struct {
	keyID  string
	notify func(keyID string)
	logger *slog.Logger
	seen   atomic.Bool
	once   sync.Once
}

func (d *deprecationNotice) observe(h http.Header) {
	if !strings.EqualFold(h.Get(wire.HeaderKeyDeprecated), "true") {
		return
	}
	d.seen.Store(true)
	d.once.Do(func() {
		if d.notify != nil {
			d.notify(d.keyID)
			return
		}
		d.logger.Warn("latchkey: this API key is deprecated; mint a new key and switch to it before it is revoked",
			"key_id", d.keyID)
	})
}

// call is one logical SDK request; send may make several attempts of it.
type call struct {
	method string
	path   string // escaped, from the wire Path constants
	query  string // encoded, without "?"
	body   []byte // JSON; nil for none
	// proxy marks POST /sdk/v1/proxy, whose answer may be the upstream's.
	proxy bool
}

// send performs c with the retry policy and returns the final response,
// whatever its status; the caller owns the body.
func (c *client) send(ctx context.Context, cl call) (*http.Response, error) {
	for attempt := 1; ; attempt++ {
		req, err := c.newRequest(ctx, cl)
		if err != nil {
			return nil, err
		}
		resp, err := c.hc.Do(req)
		last := attempt >= c.retry.MaxAttempts

		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil || last || !retryableTransportError(err, cl.method) {
				return nil, fmt.Errorf("sdk: %s %s: %w", cl.method, cl.path, err)
			}
			wait = c.retry.backoff(attempt)
		default:
			c.notice.observe(resp.Header)
			// An upstream's answer is the caller's to judge; resending it
			// could repeat a side effect at the upstream.
			if resp.Header.Get(wire.HeaderProxied) != "" || last || !retryableStatus(resp.StatusCode) {
				return resp, nil
			}
			ra, ok := retryAfter(resp.Header, c.now())
			if ok && ra > c.retry.MaxRetryAfter {
				return resp, nil
			}
			wait = max(c.retry.backoff(attempt), ra)
		}
		if deadline, ok := ctx.Deadline(); ok && c.now().Add(wait).After(deadline) {
			if err != nil {
				return nil, fmt.Errorf("sdk: %s %s: %w", cl.method, cl.path, err)
			}
			return resp, nil
		}
		if resp != nil {
			drainAndClose(resp.Body)
		}
		if serr := c.sleep(ctx, wait); serr != nil {
			return nil, fmt.Errorf("sdk: %s %s: %w", cl.method, cl.path, serr)
		}
	}
}

// newRequest builds and signs one attempt: a new nonce and timestamp every
// time, and the user token fetched afresh.
func (c *client) newRequest(ctx context.Context, cl call) (*http.Request, error) {
	target := c.base + cl.path
	if cl.query != "" {
		target += "?" + cl.query
	}
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, target, body)
	if err != nil {
		return nil, fmt.Errorf("sdk: build %s %s: %w", cl.method, cl.path, err)
	}
	req.Header.Set("User-Agent", userAgent)
	if cl.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if !cl.proxy {
		req.Header.Set("Accept", "application/json")
	}
	if c.userToken != nil {
		tok, err := c.userToken(ctx)
		if err != nil {
			return nil, fmt.Errorf("sdk: get user token: %w", err)
		}
		if tok != "" {
			req.Header.Set(wire.HeaderUserToken, tok)
		}
	}
	if c.caller != "" {
		req.Header.Set(wire.HeaderCaller, c.caller)
	}
	if c.agent != "" {
		req.Header.Set(wire.HeaderAgent, c.agent)
	}
	// wire's errors name the header and a fixed reason, never its value.
	if err := c.signer.Sign(req); err != nil {
		return nil, fmt.Errorf("sdk: sign %s %s: %w", cl.method, cl.path, err)
	}
	return req, nil
}

// doJSON sends cl and decodes a 2xx JSON answer into out (nil: discard).
// held says whether a 202 means "held for approval" on this endpoint.
func (c *client) doJSON(ctx context.Context, cl call, out any, held bool) error {
	resp, err := c.send(ctx, cl)
	if err != nil {
		return err
	}
	if held && resp.StatusCode == http.StatusAccepted {
		return approvalFromResponse(resp)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errorFromResponse(resp, c.now())
	}
	defer drainAndClose(resp.Body)
	// 204 has no body by definition; out keeps its zero value.
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBody)).Decode(out); err != nil {
		return fmt.Errorf("sdk: %s %s: decode response (request id %s): %w",
			cl.method, cl.path, resp.Header.Get(wire.HeaderRequestID), err)
	}
	return nil
}

// drainAndClose lets the connection be reused; the read is bounded so a
// huge body is dropped with its connection instead.
func drainAndClose(rc io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(rc, 64<<10))
	_ = rc.Close()
}

func jsonBody(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("sdk: encode request: %w", err)
	}
	return b, nil
}

// segment escapes one path segment. Empty and dot segments are refused:
// they would address a different route (or be cleaned away by a proxy).
func segment(what, v string) (string, error) {
	if v == "" || v == "." || v == ".." {
		return "", fmt.Errorf("sdk: %s is required", what)
	}
	return url.PathEscape(v), nil
}

// pageQuery encodes list parameters in a fixed order (filters, then limit,
// then cursor), the order docs/sdk-protocol.md shows.
func pageQuery(pairs ...string) string {
	var parts []string
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			parts = append(parts, url.QueryEscape(pairs[i])+"="+url.QueryEscape(pairs[i+1]))
		}
	}
	return strings.Join(parts, "&")
}
