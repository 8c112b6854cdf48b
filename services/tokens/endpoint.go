package tokens

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/latchkey/latchkey/services/catalog"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/oauth"
)

// failure classes of a refresh (docs/tokens.md has the table).
type failureKind int

const (
	// failTransient: network error, timeout, 5xx, 429, or an answer we
	// cannot use; retried with backoff.
	failTransient failureKind = iota
	// failInvalidGrant: the refresh token is dead; the user must reconnect.
	failInvalidGrant
	// failInvalidClient: the provider refused the app's OAuth client; the
	// provider config is broken, the users' grants are fine.
	failInvalidClient
)

// refreshFailure is why a refresh did not produce tokens. Its text is
// stored in last_refresh_error and logged, so it holds only a status, an
// OAuth error code and a short classification: never a body, a token or a
// secret.
type refreshFailure struct {
	kind       failureKind
	status     int    // HTTP status; 0 for network errors
	code       string // OAuth error code, sanitised
	retryAfter time.Duration
	summary    string
}

func (f *refreshFailure) Error() string { return f.summary }

// tokenResult is a successful token response.
type tokenResult struct {
	accessToken  string
	refreshToken string
	tokenType    string
	scope        string
	expiresIn    expiresIn
}

// expiresIn is the token response's expires_in as found.
type expiresIn struct {
	present bool
	valid   bool // a number of seconds in (0, MaxLifetime)
	seconds int64
}

// expiry turns expires_in into the credential's expires_at (see
// AssumedLifetime): a usable value is trusted; an unusable one, or a
// missing one on a provider whose tokens expire, gives a refreshable token
// AssumedLifetime; otherwise the token is treated as non-expiring (nil),
// because a token that cannot be refreshed must not be declared dead on a
// guess.
func expiry(p catalog.Provider, in expiresIn, refreshable bool, now time.Time) *time.Time {
	var t time.Time
	switch {
	case in.valid:
		t = now.Add(time.Duration(in.seconds) * time.Second)
	case refreshable && (in.present || p.TokensExpire):
		t = now.Add(AssumedLifetime)
	default:
		return nil
	}
	t = database.StoredTime(t)
	return &t
}

// parseExpiresIn reads expires_in from a JSON number or string (PayPal
// and others send "3600").
func parseExpiresIn(v any, ok bool) expiresIn {
	if !ok || v == nil {
		return expiresIn{}
	}
	out := expiresIn{present: true}
	var f float64
	switch x := v.(type) {
	case json.Number:
		var err error
		if f, err = x.Float64(); err != nil {
			return out
		}
	case string:
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSpace(x), 64); err != nil {
			return out
		}
	default:
		return out
	}
	if math.IsNaN(f) || f <= 0 || f >= MaxLifetime.Seconds() {
		return out
	}
	out.valid, out.seconds = true, int64(f)
	if out.seconds == 0 {
		out.valid = false
	}
	return out
}

// refreshRequest sends a refresh_token grant for cfg and classifies the
// answer. With the "auto" client authentication it tries HTTP Basic first
// and the request body after a client-authentication failure (the refresh
// token was not consumed by a request whose client was refused), and
// remembers what worked per provider config.
func (s *Service) refreshRequest(ctx context.Context, cfg oauth.ClientConfig, refreshToken string) (tokenResult, *refreshFailure) {
	style := cfg.Provider.TokenAuthStyle
	if style == catalog.AuthStyleAuto {
		s.authMu.Lock()
		known, ok := s.authStyles[cfg.ProviderConfigID]
		s.authMu.Unlock()
		if ok {
			style = known
		} else {
			res, f := s.refreshOnce(ctx, cfg, refreshToken, catalog.AuthStyleHeader)
			if f == nil || f.kind != failInvalidClient {
				if f == nil {
					s.rememberAuth(cfg.ProviderConfigID, catalog.AuthStyleHeader)
				}
				return res, f
			}
			res, f = s.refreshOnce(ctx, cfg, refreshToken, catalog.AuthStyleParams)
			if f == nil {
				s.rememberAuth(cfg.ProviderConfigID, catalog.AuthStyleParams)
			}
			return res, f
		}
	}
	return s.refreshOnce(ctx, cfg, refreshToken, style)
}

func (s *Service) rememberAuth(providerConfigID string, style catalog.AuthStyle) {
	s.authMu.Lock()
	s.authStyles[providerConfigID] = style
	s.authMu.Unlock()
}

// refreshOnce sends one refresh request with the given client
// authentication ("header" or "params"; anything else is "header", which
// RFC 6749 §2.3.1 requires every server to support).
func (s *Service) refreshOnce(ctx context.Context, cfg oauth.ClientConfig, refreshToken string, style catalog.AuthStyle) (tokenResult, *refreshFailure) {
	fields := [][2]string{{"grant_type", "refresh_token"}, {"refresh_token", refreshToken}}
	if style == catalog.AuthStyleParams {
		fields = append(fields, [2]string{"client_id", cfg.ClientID})
		if cfg.ClientSecret != "" {
			fields = append(fields, [2]string{"client_secret", cfg.ClientSecret})
		}
	}
	body, contentType, err := encodeBody(cfg.Provider.TokenBody(), fields)
	if err != nil {
		return tokenResult{}, &refreshFailure{kind: failTransient, summary: "cannot encode the token request"}
	}
	ctx, cancel := context.WithTimeout(ctx, s.requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.Provider.RefreshEndpoint(), bytes.NewReader(body))
	if err != nil {
		// The URL came from a validated provider definition; this is a
		// configuration problem that a retry will not fix, but it is not
		// the users' fault either.
		return tokenResult{}, &refreshFailure{kind: failTransient, summary: "the refresh URL is not usable"}
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	if style != catalog.AuthStyleParams {
		setClientBasic(req, cfg.ClientID, cfg.ClientSecret)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return tokenResult{}, networkFailure(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return tokenResult{}, networkFailure(err)
	}
	return classify(resp, raw, cfg.Provider.TokenResponseRoot, s.now())
}

// setClientBasic is client_secret_basic: RFC 6749 §2.3.1 form-encodes the
// id and secret before Basic encoding them.
func setClientBasic(req *http.Request, id, secret string) {
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
}

func encodeBody(format catalog.BodyFormat, fields [][2]string) ([]byte, string, error) {
	if format == catalog.BodyJSON {
		m := make(map[string]string, len(fields))
		for _, f := range fields {
			m[f[0]] = f[1]
		}
		b, err := json.Marshal(m)
		return b, "application/json", err
	}
	v := url.Values{}
	for _, f := range fields {
		v.Set(f[0], f[1])
	}
	return []byte(v.Encode()), "application/x-www-form-urlencoded", nil
}

func networkFailure(err error) *refreshFailure {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return &refreshFailure{kind: failTransient, summary: "timeout waiting for the token endpoint"}
	}
	return &refreshFailure{kind: failTransient, summary: "network error reaching the token endpoint"}
}

// Error codes some providers use instead of invalid_grant for a dead
// refresh token (Slack answers 200 {"ok":false,"error":"invalid_refresh_token"}).
var deadRefreshCodes = map[string]bool{
	"invalid_grant": true, "invalid_refresh_token": true, "token_revoked": true, "token_expired": true,
}

// classify turns a token endpoint answer into tokens or a failure.
func classify(resp *http.Response, raw []byte, root string, now time.Time) (tokenResult, *refreshFailure) {
	doc := decodeBody(resp.Header.Get("Content-Type"), raw)
	code := ""
	if doc != nil {
		if c, ok := doc["error"].(string); ok {
			code = sanitizeCode(c)
		}
	}
	status := resp.StatusCode
	switch {
	case status == http.StatusTooManyRequests || status >= 500:
		return tokenResult{}, &refreshFailure{kind: failTransient, status: status, code: code,
			retryAfter: retryAfter(resp.Header.Get("Retry-After"), now),
			summary:    fmt.Sprintf("token endpoint answered %d", status)}
	case deadRefreshCodes[code]:
		return tokenResult{}, &refreshFailure{kind: failInvalidGrant, status: status, code: code,
			summary: fmt.Sprintf("token endpoint answered %d %s", status, code)}
	case code == "invalid_client" || code == "unauthorized_client" ||
		(status == http.StatusUnauthorized && code == ""):
		// RFC 6749 §5.2: a 401 from the token endpoint is a failed client
		// authentication.
		if code == "" {
			code = "invalid_client"
		}
		return tokenResult{}, &refreshFailure{kind: failInvalidClient, status: status, code: code,
			summary: fmt.Sprintf("token endpoint answered %d %s", status, code)}
	case status < 200 || status > 299 || code != "":
		// invalid_request, invalid_scope, unsupported_grant_type, a 403 from
		// a WAF, an error inside a 200: nothing says the refresh token is
		// dead, so keep it and retry later with backoff.
		summary := fmt.Sprintf("token endpoint answered %d", status)
		if code != "" {
			summary += " " + code
		}
		return tokenResult{}, &refreshFailure{kind: failTransient, status: status, code: code,
			retryAfter: retryAfter(resp.Header.Get("Retry-After"), now), summary: summary}
	}
	obj := doc
	if root != "" && obj != nil {
		obj = descend(obj, root)
	}
	res := tokenResult{}
	if obj != nil {
		res.accessToken, _ = obj["access_token"].(string)
		res.refreshToken, _ = obj["refresh_token"].(string)
		res.tokenType, _ = obj["token_type"].(string)
		res.scope, _ = obj["scope"].(string)
		v, ok := obj["expires_in"]
		res.expiresIn = parseExpiresIn(v, ok)
	}
	if res.accessToken == "" {
		return tokenResult{}, &refreshFailure{kind: failTransient, status: status,
			summary: fmt.Sprintf("token endpoint answered %d without an access token", status)}
	}
	return res, nil
}

// decodeBody reads a JSON object, or a form-encoded body (GitHub without
// an Accept header, some older servers); nil when it is neither.
func decodeBody(contentType string, raw []byte) map[string]any {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err == nil {
		return m
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/x-www-form-urlencoded" || mt == "text/plain" {
		v, err := url.ParseQuery(string(raw))
		if err != nil || len(v) == 0 {
			return nil
		}
		m = make(map[string]any, len(v))
		for k := range v {
			m[k] = v.Get(k)
		}
		return m
	}
	return nil
}

// descend follows a dotted path of object keys.
func descend(m map[string]any, path string) map[string]any {
	for part := range strings.SplitSeq(path, ".") {
		next, ok := m[part].(map[string]any)
		if !ok {
			return nil
		}
		m = next
	}
	return m
}

// retryAfter reads Retry-After as seconds or an HTTP date; 0 when absent
// or unusable. It is capped by MaxRetryAfter.
func retryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter)
}

// sanitizeCode keeps an OAuth error code printable and short: it ends up
// in a database column and in logs, and a hostile server chooses it.
func sanitizeCode(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 64 {
			break
		}
		if r == '_' || r == '-' || r == '.' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		}
	}
	return b.String()
}
