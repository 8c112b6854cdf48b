package sdk

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RetryPolicy bounds the SDK's own retries. The SDK retries only what cannot
// have been acted on twice:
//
//   - a connection that failed before the request was sent (dial and DNS
//     errors), for every method;
//   - any transport error on GET, which changes nothing on the server;
//   - 429 and 503 answered by Latchkey itself (not by an upstream), for every
//     method, because Latchkey refuses those before doing any work. A
//     Retry-After longer than MaxRetryAfter is not waited for: the error is
//     returned with Error.RetryAfter set instead.
//
// A proxied call's upstream answer (Latchkey-Proxied: true) is never retried,
// whatever its status, and neither is any other Latchkey error: a
// timestamp_out_of_range means the local clock is wrong, and resending will
// not fix it. Each attempt is signed afresh with a new nonce and timestamp,
// as the replay check requires. Waiting stops early when the context ends or
// its deadline would pass first.
type RetryPolicy struct {
	// MaxAttempts counts the first attempt; 1 disables retries. Zero or less
	// selects the default, 3.
	MaxAttempts int
	// BaseDelay is the first backoff, doubled per attempt up to MaxDelay,
	// with jitter. Defaults 200ms and 2s.
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// MaxRetryAfter is the longest server-requested wait the SDK honours on
	// its own. Default 20s.
	MaxRetryAfter time.Duration
}

// DefaultRetryPolicy is the policy used without WithRetry.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 3, BaseDelay: 200 * time.Millisecond, MaxDelay: 2 * time.Second, MaxRetryAfter: 20 * time.Second}
}

// withDefaults fills zero fields, so RetryPolicy{MaxAttempts: 5} keeps the
// default delays.
func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetryPolicy()
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = d.MaxAttempts
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = d.BaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = d.MaxDelay
	}
	if p.MaxDelay < p.BaseDelay {
		p.MaxDelay = p.BaseDelay
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = d.MaxRetryAfter
	}
	return p
}

// backoff is the wait before attempt+1: exponential, capped, with jitter in
// [d/2, d] so many clients refused at once do not come back in lockstep.
func (p RetryPolicy) backoff(attempt int) time.Duration {
	d := p.BaseDelay
	for i := 1; i < attempt && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	half := d / 2
	if half <= 0 {
		return d
	}
	return half + rand.N(half+1)
}

// retryableStatus reports whether a status from Latchkey itself means the
// request was refused before any work was done.
func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable
}

// retryableTransportError reports whether err from http.Client.Do may be
// retried for method without risking a second execution.
func retryableTransportError(err error, method string) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	// Certificate problems do not heal by themselves; retrying only delays
	// the error the operator needs to see.
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	if errors.As(err, &certErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr) {
		return false
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return !dnsErr.IsNotFound
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return true // nothing reached the server
	}
	return method == http.MethodGet
}

// retryAfter parses Retry-After as delay-seconds or an HTTP-date.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		// Clamp before multiplying so an absurd value cannot overflow into
		// a small or negative duration.
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// sleepCtx waits for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
