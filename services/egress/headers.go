package egress

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/errs"
)

// Bounds on the caller's headers. Generous for any real API, small enough
// that headers cannot be used to make Latchkey send megabytes per call.
const (
	maxCallerHeaders     = 100
	maxCallerHeaderBytes = 64 << 10
)

// isHopByHop reports the headers that describe one connection, not the
// message (RFC 9110 §7.6.1), plus the legacy ones proxies still meet.
// name must be canonical.
func isHopByHop(name string) bool {
	switch name {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// forbiddenCallerHeader says why the caller may not set the canonical
// header name, or "" when it may. Refusing (rather than dropping) makes a
// client bug visible at once instead of as a mysterious upstream 401.
func forbiddenCallerHeader(name string, inj Injection) string {
	switch {
	case name == "Authorization", name == "Cookie", name == "Cookie2":
		return "credentials are added by Latchkey, never by the caller"
	case hasPrefixFold(name, "Proxy-"):
		return "Proxy-* headers are not forwarded"
	case isHopByHop(name):
		return "hop-by-hop headers are managed by Latchkey"
	case name == "Host":
		return "the Host header comes from the url"
	case name == "Content-Length":
		return "the length comes from the body"
	case hasPrefixFold(name, "Latchkey-"):
		return "Latchkey-* headers are never forwarded upstream"
	case name == inj.headerName():
		return "Latchkey injects the credential in this header"
	}
	return ""
}

// callerHeaders validates the caller's headers and returns them as the
// outbound header set. Errors name the header but never echo a value.
func callerHeaders(in map[string]string, inj Injection) (http.Header, error) {
	if len(in) > maxCallerHeaders {
		return nil, errs.Coded(wire.CodeInvalidRequest, "at most %d headers may be given", maxCallerHeaders)
	}
	// Sorted so that a request with several problems always reports the same
	// one first.
	names := make([]string, 0, len(in))
	for k := range in {
		names = append(names, k)
	}
	slices.Sort(names)

	out := make(http.Header, len(in)+3)
	size := 0
	for _, raw := range names {
		value := in[raw]
		if !httpguts.ValidHeaderFieldName(raw) {
			return nil, errs.Coded(wire.CodeInvalidRequest, "header name %q is not a valid HTTP token", raw)
		}
		name := http.CanonicalHeaderKey(raw)
		if _, dup := out[name]; dup {
			return nil, errs.Coded(wire.CodeInvalidRequest, "header %s is given twice (names are case-insensitive)", name)
		}
		if why := forbiddenCallerHeader(name, inj); why != "" {
			return nil, errs.Coded(wire.CodeInvalidRequest, "header %s is not allowed: %s", name, why)
		}
		if !httpguts.ValidHeaderFieldValue(value) {
			return nil, errs.Coded(wire.CodeInvalidRequest, "header %s has a value with control characters", name)
		}
		size += len(name) + len(value) + 4
		if size > maxCallerHeaderBytes {
			return nil, errs.Coded(wire.CodeInvalidRequest, "headers exceed %d bytes", maxCallerHeaderBytes)
		}
		out[name] = []string{value}
	}
	return out, nil
}

// relayedHeader returns the upstream response headers the caller may see:
// the upstream's own, minus
//   - hop-by-hop headers and any header the upstream's Connection names:
//     they describe the upstream connection, not the message;
//   - Latchkey-*: an upstream must not be able to forge Latchkey-Proxied or
//     Latchkey-Grant-Id;
//   - Set-Cookie/Set-Cookie2: the caller may not send Cookie back through
//     the proxy, and an upstream session cookie is a credential that would
//     let the app bypass Latchkey;
//   - Alt-Svc, Strict-Transport-Security, Clear-Site-Data: they are about
//     the origin that sends them, which to the caller is Latchkey's origin,
//     not the upstream's.
func relayedHeader(in http.Header) http.Header {
	out := in.Clone()
	if out == nil {
		return http.Header{}
	}
	for _, v := range in.Values("Connection") {
		for name := range strings.SplitSeq(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				out.Del(name)
			}
		}
	}
	for name := range out {
		switch {
		case isHopByHop(name), hasPrefixFold(name, "Latchkey-"):
			delete(out, name)
		}
		switch name {
		case "Set-Cookie", "Set-Cookie2", "Alt-Svc", "Strict-Transport-Security", "Clear-Site-Data":
			delete(out, name)
		}
	}
	return out
}

// redactSecret replaces the injected secret, raw or in any of its URL
// encodings, in every header value relayed to the caller. Upstreams echo
// the request URL (a redirect's Location keeping the query, Content-Location,
// Link), and with query injection that URL holds the secret: relayed as is,
// it would hand the caller the credential Latchkey exists to keep from it.
func redactSecret(h http.Header, secret string) http.Header {
	if len(secret) < 4 {
		// Too short to search for without redacting unrelated text; a
		// secret that short is not worth protecting by redaction anyway.
		return h
	}
	forms := []string{secret, url.QueryEscape(secret), url.PathEscape(secret)}
	for name, vv := range h {
		for i, v := range vv {
			for _, f := range forms {
				if strings.Contains(v, f) {
					v = strings.ReplaceAll(v, f, "[redacted]")
				}
			}
			h[name][i] = v
		}
	}
	return h
}
