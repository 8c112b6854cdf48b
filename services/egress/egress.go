// Package egress is the outbound half of POST /sdk/v1/proxy: it validates the
// caller's target against the allowed-hosts list, builds the upstream request
// with the credential injected, sends it over one shared HTTPS transport that
// refuses loopback, private and other special-purpose addresses at dial time,
// and hands back the upstream response for the handler to stream (DESIGN.md
// §3.6, §4.6; operator notes in docs/egress.md).
//
// Egress holds no database and no secrets of its own: the handler resolves
// the grant, opens the credential and passes it in a Call.
package egress

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/errs"
)

// Defaults for Options fields left zero.
const (
	DefaultTimeout             = 30 * time.Second
	DefaultMaxTimeout          = 120 * time.Second
	DefaultDialTimeout         = 10 * time.Second
	DefaultTLSHandshakeTimeout = 10 * time.Second
	DefaultMaxRequestBytes     = 10 << 20
	DefaultMaxResponseBytes    = 64 << 20
	// DefaultMaxIdleConnsPerHost keeps enough warm connections for dozens
	// of concurrent calls to one API over HTTP/1.1 (net/http's default of 2
	// would open and close a connection per call under load).
	DefaultMaxIdleConnsPerHost = 64
	// DefaultUserAgent is sent when the caller gives no User-Agent, so
	// upstream operators can tell Latchkey traffic from Go's default client.
	DefaultUserAgent = "Latchkey"
)

// maxResponseHeaderBytes bounds the upstream's response headers.
const maxResponseHeaderBytes = 1 << 20

// Resolver looks up a host's addresses. *net.Resolver satisfies it; tests
// pass a map so that a name can "resolve" to 127.0.0.1 or 169.254.169.254.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Options configures an Egress. Zero fields take the defaults above.
type Options struct {
	// AllowPrivate permits http, IP-literal hosts and loopback/private
	// addresses (LATCHKEY_ALLOW_PRIVATE_UPSTREAMS: tests and the demo only).
	AllowPrivate bool
	// DefaultTimeout applies when a Call gives none; MaxTimeout caps what a
	// Call may ask for. Both cover connect, TLS, headers and the whole body.
	DefaultTimeout time.Duration
	MaxTimeout     time.Duration
	// DialTimeout bounds one TCP connect; TLSHandshakeTimeout the handshake.
	DialTimeout         time.Duration
	TLSHandshakeTimeout time.Duration
	// MaxRequestBytes bounds the body sent upstream; MaxResponseBytes the
	// body relayed back.
	MaxRequestBytes  int64
	MaxResponseBytes int64
	// MaxIdleConnsPerHost sizes the per-host idle connection pool.
	MaxIdleConnsPerHost int
	// UserAgent is sent when the caller sets none.
	UserAgent string
	// Logger receives refusals (warn) and upstream failures (info). Nil
	// discards.
	Logger *slog.Logger
	// Resolver replaces the system resolver (tests).
	Resolver Resolver
	// RootCAs replaces the system roots (tests trust httptest's CA).
	RootCAs *x509.CertPool
}

// Egress makes upstream calls. It is safe for concurrent use; build one at
// start and share it, so that connections are pooled across calls.
type Egress struct {
	allowPrivate     bool
	defaultTimeout   time.Duration
	maxTimeout       time.Duration
	maxRequestBytes  int64
	maxResponseBytes int64
	userAgent        string
	log              *slog.Logger
	resolver         Resolver
	dialer           *net.Dialer
	transport        *http.Transport
	client           *http.Client
	bufs             sync.Pool
}

// New builds an Egress and its shared transport.
func New(opts Options) *Egress {
	e := &Egress{
		allowPrivate:     opts.AllowPrivate,
		defaultTimeout:   orDefault(opts.DefaultTimeout, DefaultTimeout),
		maxTimeout:       orDefault(opts.MaxTimeout, DefaultMaxTimeout),
		maxRequestBytes:  orDefault(opts.MaxRequestBytes, DefaultMaxRequestBytes),
		maxResponseBytes: orDefault(opts.MaxResponseBytes, DefaultMaxResponseBytes),
		userAgent:        opts.UserAgent,
		log:              opts.Logger,
		resolver:         opts.Resolver,
	}
	e.defaultTimeout = min(e.defaultTimeout, e.maxTimeout)
	if e.userAgent == "" {
		e.userAgent = DefaultUserAgent
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.resolver == nil {
		e.resolver = &net.Resolver{}
	}
	e.bufs.New = func() any { b := make([]byte, 32<<10); return &b }

	e.dialer = &net.Dialer{
		Timeout:   orDefault(opts.DialTimeout, DefaultDialTimeout),
		KeepAlive: 30 * time.Second,
	}
	if !e.allowPrivate {
		// The last word: whatever path led to connect(2), the socket's
		// actual peer address is checked before the SYN is sent.
		e.dialer.ControlContext = controlRefuseSpecial
	}
	perHost := orDefault(opts.MaxIdleConnsPerHost, DefaultMaxIdleConnsPerHost)
	e.transport = &http.Transport{
		// Never an environment proxy: a proxy would do its own DNS and
		// connect, and the dial-time address check would check the proxy.
		Proxy:       nil,
		DialContext: e.dialContext,
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			RootCAs:    opts.RootCAs,
		},
		// A custom DialContext and TLS config turn HTTP/2 off unless asked.
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: orDefault(opts.TLSHandshakeTimeout, DefaultTLSHandshakeTimeout),
		MaxIdleConns:        max(4*perHost, 256),
		MaxIdleConnsPerHost: perHost,
		IdleConnTimeout:     90 * time.Second,
		// The body is relayed byte for byte with the upstream's
		// Content-Encoding; transparent gunzip would change what the
		// caller receives and defeat the response size bound.
		DisableCompression:     true,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
	}
	e.client = &http.Client{
		Transport: e.transport,
		// Redirects go back to the caller: following one would send the
		// credential to wherever the upstream points.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return e
}

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Close releases idle upstream connections.
func (e *Egress) Close() { e.transport.CloseIdleConnections() }

// MaxRequestBytes is the largest upstream request body Do accepts; handlers
// size their own JSON limit from it (base64 adds a third).
func (e *Egress) MaxRequestBytes() int64 { return e.maxRequestBytes }

// Call is one upstream request.
type Call struct {
	// Method is one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS (any
	// ASCII case).
	Method string
	// URL is the caller's absolute https URL.
	URL string
	// Header holds the caller's headers (wire.ProxyRequest.Headers).
	Header map[string]string
	// Body, when non-nil, is sent upstream, bounded by MaxRequestBytes;
	// leave it nil when there is no body. ContentLength is its length when
	// known (> 0); otherwise it is sent chunked. Body is consumed: a retry
	// (DESIGN.md §6, one retry after a forced refresh) needs a fresh reader.
	Body          io.Reader
	ContentLength int64
	// ContentType is sent when the caller's headers have no Content-Type
	// (application/json for the proxy request's "json" field).
	ContentType string
	// Timeout bounds the whole call, body included. Zero takes the default;
	// values above the maximum are capped.
	Timeout time.Duration
	// AllowedHosts is the provider's or managed secret's allowed-hosts list.
	AllowedHosts AllowList
	// Injection says where Secret goes.
	Injection Injection
	Secret    Secret
}

// Response is the upstream's answer. The caller must Close Body; that also
// releases the call's timer.
type Response struct {
	StatusCode int
	// Header is the upstream's headers minus those egress never relays
	// (hop-by-hop, Latchkey-*, Set-Cookie, …; see relayedHeader).
	Header http.Header
	// ContentLength is the upstream's declared length, or -1.
	ContentLength int64
	// Proto is the upstream protocol ("HTTP/1.1", "HTTP/2.0").
	Proto string
	// Body is bounded by MaxResponseBytes and the call's timeout. Past
	// either, Read returns a *errs.CodedError (upstream_unreachable with
	// ErrResponseTooLarge as its cause, or upstream_timeout).
	Body io.ReadCloser

	bufs *sync.Pool
}

// ErrResponseTooLarge is the cause when an upstream body exceeds
// MaxResponseBytes.
var ErrResponseTooLarge = errors.New("egress: upstream response exceeds the size limit")

var errRequestTooLarge = errors.New("egress: request body exceeds the size limit")

// Do validates call, sends it and returns the upstream response with its
// body unread. Errors are *errs.CodedError with an SDK code:
// invalid_request, host_not_allowed, payload_too_large,
// upstream_unreachable, upstream_timeout, or internal for a bad injection
// rule or credential; or a wrapped context.Canceled when ctx was canceled.
// Messages never contain the credential or the URL's query.
//
// A 3xx comes back like any other status; it is never followed.
func (e *Egress) Do(ctx context.Context, call Call) (*Response, error) {
	method, err := checkMethod(call.Method)
	if err != nil {
		return nil, err
	}
	target, err := e.ValidateTarget(call.URL, call.AllowedHosts)
	if err != nil {
		return nil, err
	}
	if err := call.Injection.Validate(); err != nil {
		return nil, &errs.CodedError{Code: wire.CodeInternal, Message: "the credential's injection rule is invalid", Cause: err}
	}
	if call.Secret == "" {
		return nil, errs.Coded(wire.CodeInternal, "there is no credential to inject")
	}
	header, err := callerHeaders(call.Header, call.Injection)
	if err != nil {
		return nil, err
	}
	if call.Injection.Kind == InjectQuery {
		if err := checkQueryCollision(target.URL.RawQuery, call.Injection.Name); err != nil {
			return nil, err
		}
	}
	timeout, err := e.callTimeout(call.Timeout)
	if err != nil {
		return nil, err
	}
	var body *boundedBody
	if call.Body != nil {
		if call.ContentLength > e.maxRequestBytes {
			return nil, e.tooLargeRequest()
		}
		body = &boundedBody{r: call.Body, remaining: e.maxRequestBytes}
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	req, err := http.NewRequestWithContext(ctx, method, target.URL.String(), nil)
	if err != nil {
		cancel()
		return nil, errs.Coded(wire.CodeInvalidRequest, "url is not a valid URL")
	}
	if body != nil {
		req.Body = io.NopCloser(body)
		req.ContentLength = -1
		if call.ContentLength > 0 {
			req.ContentLength = call.ContentLength
		}
	}
	req.Header = header
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", e.userAgent)
	}
	if call.ContentType != "" && req.Header.Get("Content-Type") == "" {
		if !httpguts.ValidHeaderFieldValue(call.ContentType) {
			cancel()
			return nil, errs.Coded(wire.CodeInvalidRequest, "content type has control characters")
		}
		req.Header.Set("Content-Type", call.ContentType)
	}
	if err := call.Injection.apply(req, string(call.Secret)); err != nil {
		cancel()
		return nil, &errs.CodedError{Code: wire.CodeInternal, Message: "the credential cannot be injected as configured", Cause: err}
	}

	start := time.Now()
	resp, err := e.client.Do(req)
	if err != nil {
		// Classify before cancel: cancel would make every failure look
		// like the caller going away.
		err = e.classify(ctx, err, body, target.Host, call.Secret)
		cancel()
		return nil, err
	}
	if ctx.Err() != nil {
		// net/http can hand over a response that the upstream produced only
		// because we hung up at the deadline (its handler saw the close and
		// returned). Past the deadline nothing counts as an answer.
		_ = resp.Body.Close()
		err = e.classify(ctx, ctx.Err(), body, target.Host, call.Secret)
		cancel()
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// Upgrade is refused on the way out, so a 101 is an upstream bug;
		// relaying it would hand the caller a raw socket.
		_ = resp.Body.Close()
		cancel()
		return nil, errs.Coded(wire.CodeUpstreamUnreachable, "the upstream switched protocols unexpectedly")
	}
	if resp.ContentLength > e.maxResponseBytes && method != http.MethodHead &&
		resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotModified {
		// Refuse before the headers reach the caller, so the answer is a
		// clean JSON error rather than a truncated stream.
		_ = resp.Body.Close()
		cancel()
		return nil, e.tooLargeResponse()
	}
	e.log.DebugContext(ctx, "egress: upstream responded",
		"method", method, "host", target.Host, "status", resp.StatusCode,
		"proto", resp.Proto, "elapsed", time.Since(start))
	return &Response{
		StatusCode:    resp.StatusCode,
		Header:        redactSecret(relayedHeader(resp.Header), string(call.Secret)),
		ContentLength: resp.ContentLength,
		Proto:         resp.Proto,
		Body: &responseBody{
			e: e, rc: resp.Body, remaining: e.maxResponseBytes,
			ctx: ctx, cancel: cancel, host: target.Host, secret: call.Secret,
		},
		bufs: &e.bufs,
	}, nil
}

// Relay writes the response to w: headers (merged into those the handler
// already set, such as Latchkey-Proxied), status, then the body. A body of
// unknown length (chunked: streams, long polls, server-sent events) is
// flushed after every chunk so the caller sees bytes as the upstream sends
// them; a body of declared length is written through net/http's buffer,
// which still streams it in buffer-sized pieces but spares a small answer
// the extra write per flush.
//
// An error after the status was written cannot become a JSON error any more;
// the handler should abort the connection (panic(http.ErrAbortHandler)) so
// the caller sees a truncated response rather than a short one that looks
// complete. Relay does not close Body.
func (r *Response) Relay(w http.ResponseWriter) (int64, error) {
	dst := w.Header()
	for k, vv := range r.Header {
		dst[k] = append([]string(nil), vv...)
	}
	w.WriteHeader(r.StatusCode)
	rc := http.NewResponseController(w)
	canFlush := false
	if r.ContentLength < 0 {
		// Headers go out at once: a long poll's caller learns the status early.
		canFlush = rc.Flush() == nil
	}

	var buf []byte
	if r.bufs != nil {
		bp := r.bufs.Get().(*[]byte)
		defer r.bufs.Put(bp)
		buf = *bp
	} else {
		buf = make([]byte, 32<<10)
	}
	var written int64
	for {
		n, rerr := r.Body.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			written += int64(m)
			if werr != nil {
				return written, fmt.Errorf("egress: write to caller: %w", werr)
			}
			if canFlush {
				if ferr := rc.Flush(); ferr != nil {
					return written, fmt.Errorf("egress: flush to caller: %w", ferr)
				}
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
	}
}

// checkMethod upper-cases an ASCII method and accepts the verbs REST APIs
// use. TRACE and CONNECT are never proxied.
func checkMethod(m string) (string, error) {
	up := make([]byte, len(m))
	for i := 0; i < len(m); i++ {
		c := m[i]
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		up[i] = c
	}
	switch s := string(up); s {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return s, nil
	}
	return "", errs.Coded(wire.CodeInvalidRequest, "method must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
}

// checkQueryCollision refuses a url that already carries the parameter the
// credential goes in, in any case variant or encoding, and a query egress
// cannot parse unambiguously (bad escapes, ';' separators some servers
// split on): either could smuggle a second value past the injected one.
func checkQueryCollision(rawQuery, name string) error {
	vals, err := url.ParseQuery(rawQuery)
	if err != nil {
		return errs.Coded(wire.CodeInvalidRequest, "url query is malformed")
	}
	for k := range vals {
		if strings.EqualFold(k, name) {
			return errs.Coded(wire.CodeInvalidRequest, "url must not set the query parameter %s: Latchkey injects the credential there", name)
		}
	}
	return nil
}

func (e *Egress) callTimeout(d time.Duration) (time.Duration, error) {
	switch {
	case d < 0:
		return 0, errs.Coded(wire.CodeInvalidRequest, "timeout_ms must not be negative")
	case d == 0:
		return e.defaultTimeout, nil
	}
	return min(d, e.maxTimeout), nil
}

func (e *Egress) tooLargeRequest() error {
	ce := errs.Coded(wire.CodePayloadTooLarge, "the request body exceeds %d bytes", e.maxRequestBytes)
	ce.Details = map[string]any{"limit_bytes": e.maxRequestBytes}
	ce.Cause = errRequestTooLarge
	return ce
}

func (e *Egress) tooLargeResponse() error {
	ce := errs.Coded(wire.CodeUpstreamUnreachable, "the upstream response exceeds %d bytes", e.maxResponseBytes)
	ce.Details = map[string]any{"reason": "response_too_large", "limit_bytes": e.maxResponseBytes}
	ce.Cause = ErrResponseTooLarge
	return ce
}

// boundedBody stops the request body at the limit. The flag is read by Do
// after the transport's writer goroutine gave up, whatever error it wrapped
// ours in.
type boundedBody struct {
	r         io.Reader
	remaining int64
	exceeded  atomic.Bool
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.exceeded.Load() {
		return 0, errRequestTooLarge
	}
	if int64(len(p)) > b.remaining+1 {
		p = p[:b.remaining+1]
	}
	n, err := b.r.Read(p)
	if int64(n) > b.remaining {
		b.exceeded.Store(true)
		return 0, errRequestTooLarge
	}
	b.remaining -= int64(n)
	return n, err
}

// responseBody bounds the upstream body and owns the call's context: Close
// ends the timer, and read errors are classified like Do's.
type responseBody struct {
	e         *Egress
	rc        io.ReadCloser
	remaining int64
	ctx       context.Context
	cancel    context.CancelFunc
	host      string
	secret    Secret
	err       error
}

func (b *responseBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if int64(len(p)) > b.remaining+1 {
		p = p[:b.remaining+1]
	}
	n, err := b.rc.Read(p)
	if int64(n) > b.remaining {
		n = int(b.remaining)
		b.remaining = 0
		b.err = b.e.tooLargeResponse()
		b.e.log.InfoContext(b.ctx, "egress: upstream response exceeded the size limit; aborting", "host", b.host)
		return n, b.err
	}
	b.remaining -= int64(n)
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF && b.ctx.Err() == nil:
		return n, io.EOF
	}
	// An EOF after the deadline is not trusted: net/http can report the
	// clean end of a body the upstream cut short because we hung up.
	b.err = b.e.classify(b.ctx, err, nil, b.host, b.secret)
	return n, b.err
}

func (b *responseBody) Close() error {
	err := b.rc.Close()
	b.cancel()
	return err
}

// refusedAddrError is a dial refused because of where it would go. Its text
// (with the address) is for logs; callers get a generic message, because
// telling a caller what an internal name resolves to maps the network.
type refusedAddrError struct {
	host   string
	addr   netip.Addr
	reason string
}

func (e *refusedAddrError) Error() string {
	if e.host != "" {
		return fmt.Sprintf("egress: refused to connect to %s (%s): %s address", e.host, e.addr, e.reason)
	}
	return fmt.Sprintf("egress: refused to connect to %s: %s address", e.addr, e.reason)
}

// dialContext resolves host with the configured resolver, refuses the whole
// name if any address is special (a rebinding name that answers "public,
// 127.0.0.1" is an attack, not a fallback list), then connects to the
// addresses in order. It dials IP addresses only, so no second lookup can
// answer differently from the one that was checked.
func (e *Egress) dialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("egress: dial address %q: %w", address, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("egress: dial port %q: %w", portStr, err)
	}
	var addrs []netip.Addr
	if ip, perr := netip.ParseAddr(host); perr == nil {
		addrs = []netip.Addr{ip}
	} else {
		addrs, err = e.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
		}
	}
	if !e.allowPrivate {
		for _, a := range addrs {
			if reason := specialReason(a); reason != "" {
				return nil, &refusedAddrError{host: host, addr: a, reason: reason}
			}
		}
	}
	var firstErr error
	for _, a := range addrs {
		conn, err := e.dialer.DialContext(ctx, network, netip.AddrPortFrom(a.Unmap(), uint16(port)).String())
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		var refused *refusedAddrError
		if ctx.Err() != nil || errors.As(err, &refused) {
			break
		}
	}
	return nil, firstErr
}

// controlRefuseSpecial runs on the socket just before connect(2) and checks
// the address the kernel is about to reach.
func controlRefuseSpecial(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &refusedAddrError{reason: "unparseable"}
	}
	if reason := specialReason(ap.Addr()); reason != "" {
		return &refusedAddrError{addr: ap.Addr(), reason: reason}
	}
	return nil
}

// classify turns a transport error into the SDK error the caller sees. The
// cause kept for logs is the error inside *url.Error, whose own text quotes
// the URL, and the URL may carry a query-injected credential.
func (e *Egress) classify(ctx context.Context, err error, body *boundedBody, host string, secret Secret) error {
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err
	}
	if secret != "" && strings.Contains(cause.Error(), string(secret)) {
		cause = errors.New("upstream error text withheld: it quoted the credential")
	}
	coded := func(code wire.ErrorCode, msg string) error {
		return &errs.CodedError{Code: code, Message: msg, Cause: cause}
	}
	var (
		refused *refusedAddrError
		dnsErr  *net.DNSError
	)
	switch {
	case body != nil && body.exceeded.Load():
		return e.tooLargeRequest()
	case errors.As(err, &refused):
		e.log.WarnContext(ctx, "egress: refused a special-purpose upstream address",
			"host", host, "addr", refused.addr.String(), "reason", refused.reason)
		return coded(wire.CodeHostNotAllowed, "the upstream host resolves to a loopback, private or special-purpose address")
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		e.log.InfoContext(ctx, "egress: upstream timed out", "host", host, "err", cause)
		return coded(wire.CodeUpstreamTimeout, "the upstream did not answer in time")
	case ctx.Err() != nil:
		return fmt.Errorf("egress: call to %s canceled: %w", host, ctx.Err())
	case errors.As(err, &dnsErr):
		e.log.InfoContext(ctx, "egress: upstream host does not resolve", "host", host, "err", cause)
		return coded(wire.CodeUpstreamUnreachable, "the upstream host name does not resolve")
	case errors.Is(err, syscall.ECONNREFUSED):
		e.log.InfoContext(ctx, "egress: upstream refused the connection", "host", host)
		return coded(wire.CodeUpstreamUnreachable, "the upstream refused the connection")
	case isTLSError(err):
		e.log.InfoContext(ctx, "egress: TLS with the upstream failed", "host", host, "err", cause)
		return coded(wire.CodeUpstreamUnreachable, "the TLS handshake with the upstream failed")
	}
	e.log.InfoContext(ctx, "egress: upstream call failed", "host", host, "err", cause)
	return coded(wire.CodeUpstreamUnreachable, "the upstream could not be reached")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isTLSError(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		record   tls.RecordHeaderError
		alert    tls.AlertError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &record) || errors.As(err, &alert) ||
		strings.Contains(err.Error(), "tls: ")
}
