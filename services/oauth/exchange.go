package oauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/latchkey/latchkey/services/catalog"
)

// tokenResult is a successful token response, read from the object at the
// provider's TokenResponseRoot.
type tokenResult struct {
	AccessToken  string
	RefreshToken string
	TokenType    string
	ExpiresAt    *time.Time
	scope        string
	idToken      string
	// top reads a dotted path from the top level of the response (identity
	// source token_response); root from the token object.
	top  func(path string) (any, bool)
	root func(path string) (any, bool)
	// overTLS: the response came over https straight from the token
	// endpoint (the condition for trusting an unverified id_token).
	overTLS bool
}

func (t tokenResult) grantedScopes() []string { return trimScopes(t.scope) }

// exchangeCode redeems an authorization code. Form-encoded token requests
// go through golang.org/x/oauth2 (Config.Exchange with the verifier); JSON
// token requests and responses whose tokens sit below a root object
// (Slack's authed_user) need the hand-made exchange. Both use the service's
// HTTP client.
func (s *Service) exchangeCode(ctx context.Context, cc ClientConfig, code, verifier, redirectURI string) (tokenResult, error) {
	p := cc.Provider
	var (
		tr  tokenResult
		err error
	)
	if p.TokenBody() == catalog.BodyJSON || p.TokenResponseRoot != "" {
		tr, err = s.exchangeManual(ctx, cc, code, verifier, redirectURI)
	} else {
		tr, err = s.exchangeOAuth2(ctx, cc, code, verifier, redirectURI)
	}
	if err != nil {
		var fe *FlowError
		if errors.As(err, &fe) && fe.ProviderCode == "invalid_client" {
			// The app's client credentials no longer work: mark the config,
			// not anyone's grant (DESIGN.md §6).
			if merr := s.MarkBroken(ctx, cc.ProviderConfigID, "the token endpoint answered invalid_client to a code exchange"); merr != nil {
				s.log.ErrorContext(ctx, "oauth: could not mark provider config broken",
					"provider_config_id", cc.ProviderConfigID, "err", merr)
			}
		}
		return tokenResult{}, err
	}
	return tr, nil
}

func authStyle(a catalog.AuthStyle) oauth2.AuthStyle {
	switch a {
	case catalog.AuthStyleHeader:
		return oauth2.AuthStyleInHeader
	case catalog.AuthStyleParams:
		return oauth2.AuthStyleInParams
	}
	return oauth2.AuthStyleAutoDetect
}

func (s *Service) exchangeOAuth2(ctx context.Context, cc ClientConfig, code, verifier, redirectURI string) (tokenResult, error) {
	p := cc.Provider
	cfg := oauth2.Config{
		ClientID:     cc.ClientID,
		ClientSecret: cc.ClientSecret,
		Endpoint:     oauth2.Endpoint{TokenURL: p.TokenURL, AuthStyle: authStyle(p.TokenAuthStyle)},
		RedirectURL:  redirectURI,
	}
	var opts []oauth2.AuthCodeOption
	if verifier != "" {
		opts = append(opts, oauth2.VerifierOption(verifier))
	}
	tok, err := cfg.Exchange(context.WithValue(ctx, oauth2.HTTPClient, s.http), code, opts...)
	if err != nil {
		return tokenResult{}, exchangeError(err)
	}
	lookup := func(path string) (any, bool) { return lookupPath(tok.Extra, path) }
	tr := tokenResult{
		AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, TokenType: tok.TokenType,
		top: lookup, root: lookup, overTLS: isHTTPS(p.TokenURL),
	}
	tr.scope, _ = stringAt(lookup, "scope")
	tr.idToken, _ = stringAt(lookup, "id_token")
	raw, _ := lookup("expires_in")
	tr.ExpiresAt = expiryFrom(s.now(), raw, tr.RefreshToken != "", cc.Provider.TokensExpire)
	return tr, nil
}

// exchangeError turns an oauth2 error into ErrExchangeFailed. Only the
// error code is kept: oauth2's own error text quotes the response body.
func exchangeError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		code := sanitizeCode(re.ErrorCode)
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		if code == "" && status == http.StatusUnauthorized {
			// RFC 6749 §5.2: a 401 from the token endpoint is failed client
			// authentication.
			code = "invalid_client"
		}
		return &FlowError{Kind: ErrExchangeFailed, ProviderCode: code,
			ProviderDescription: sanitizeText(re.ErrorDescription, 200),
			Message:             exchangeMessage(code),
			Cause:               fmt.Errorf("token endpoint answered HTTP %d", status)}
	}
	return &FlowError{Kind: ErrExchangeFailed, Message: "the provider's token endpoint could not be reached or answered nonsense",
		Cause: withoutURL(err)}
}

func exchangeMessage(code string) string {
	switch code {
	case "invalid_grant":
		return "the provider refused the authorization code; start again"
	case "invalid_client":
		return "the provider refused the app's OAuth client; an operator must fix the provider configuration"
	case "":
		return "the provider's token endpoint refused the request"
	}
	return "the provider's token endpoint refused the request (" + code + ")"
}

// withoutURL drops the URL from a transport error (its text may carry a
// query) and any text that is not one of ours.
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s request failed: %w", ue.Op, ue.Err)
	}
	if strings.HasPrefix(err.Error(), "oauth2: cannot parse") || strings.Contains(err.Error(), "missing access_token") {
		return errors.New("the token response could not be used")
	}
	return errors.New("the token request failed")
}

// exchangeManual posts the token request itself: a JSON or form body, the
// client authenticated as the catalog says (auto: Basic first, then the
// body after a refusal of the client), and reads the tokens from the root
// object. Numbers are kept exact (json.Number).
func (s *Service) exchangeManual(ctx context.Context, cc ClientConfig, code, verifier, redirectURI string) (tokenResult, error) {
	p := cc.Provider
	params := [][2]string{{"grant_type", "authorization_code"}, {"code", code}, {"redirect_uri", redirectURI}}
	if verifier != "" {
		params = append(params, [2]string{"code_verifier", verifier})
	}
	styles := []catalog.AuthStyle{p.TokenAuthStyle}
	if p.TokenAuthStyle == catalog.AuthStyleAuto || p.TokenAuthStyle == "" {
		styles = []catalog.AuthStyle{catalog.AuthStyleHeader, catalog.AuthStyleParams}
	}
	var (
		body   map[string]any
		status int
		err    error
	)
	for i, style := range styles {
		body, status, err = s.postToken(ctx, cc, params, style)
		if err != nil {
			return tokenResult{}, err
		}
		if i+1 < len(styles) && clientRefused(body, status) {
			continue
		}
		break
	}
	top := func(path string) (any, bool) { return lookupPath(func(k string) any { return body[k] }, path) }
	if failed, code := tokenFailure(body, status); failed {
		desc, _ := stringAt(top, "error_description")
		return tokenResult{}, &FlowError{Kind: ErrExchangeFailed, ProviderCode: code,
			ProviderDescription: sanitizeText(desc, 200), Message: exchangeMessage(code),
			Cause: fmt.Errorf("token endpoint answered HTTP %d", status)}
	}
	root := top
	if p.TokenResponseRoot != "" {
		obj, ok := top(p.TokenResponseRoot)
		m, isObj := obj.(map[string]any)
		if !ok || !isObj {
			return tokenResult{}, &FlowError{Kind: ErrExchangeFailed,
				Message: "the token response has no " + p.TokenResponseRoot + " object"}
		}
		root = func(path string) (any, bool) { return lookupPath(func(k string) any { return m[k] }, path) }
	}
	tr := tokenResult{top: top, root: root, overTLS: isHTTPS(p.TokenURL)}
	tr.AccessToken, _ = stringAt(root, "access_token")
	if tr.AccessToken == "" {
		return tokenResult{}, &FlowError{Kind: ErrExchangeFailed, Message: "the token response carries no access token"}
	}
	tr.RefreshToken, _ = stringAt(root, "refresh_token")
	tr.TokenType, _ = stringAt(root, "token_type")
	tr.scope, _ = stringAt(root, "scope")
	tr.idToken, _ = stringAt(root, "id_token")
	raw, _ := root("expires_in")
	tr.ExpiresAt = expiryFrom(s.now(), raw, tr.RefreshToken != "", cc.Provider.TokensExpire)
	return tr, nil
}

// postToken sends one token request and decodes the answer (JSON, or a
// form-encoded body as GitHub sends without Accept: application/json).
func (s *Service) postToken(ctx context.Context, cc ClientConfig, params [][2]string, style catalog.AuthStyle) (map[string]any, int, error) {
	p := cc.Provider
	if style == catalog.AuthStyleParams {
		params = append(params, [2]string{"client_id", cc.ClientID}, [2]string{"client_secret", cc.ClientSecret})
	}
	var (
		reqBody     []byte
		contentType string
	)
	if p.TokenBody() == catalog.BodyJSON {
		m := make(map[string]string, len(params))
		for _, kv := range params {
			m[kv[0]] = kv[1]
		}
		b, err := json.Marshal(m)
		if err != nil {
			return nil, 0, fmt.Errorf("oauth: encode token request: %w", err)
		}
		reqBody, contentType = b, "application/json"
	} else {
		v := url.Values{}
		for _, kv := range params {
			v.Set(kv[0], kv[1])
		}
		reqBody, contentType = []byte(v.Encode()), "application/x-www-form-urlencoded"
	}
	// The body holds the code and perhaps the client secret: wiped once sent.
	defer clear(reqBody)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.TokenURL, bytes.NewReader(reqBody))
	if err != nil {
		return nil, 0, &FlowError{Kind: ErrExchangeFailed, Message: "the token URL is not usable"}
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	if style == catalog.AuthStyleHeader {
		// RFC 6749 §2.3.1: both parts form-encoded before Basic encoding.
		req.SetBasicAuth(url.QueryEscape(cc.ClientID), url.QueryEscape(cc.ClientSecret))
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, 0, &FlowError{Kind: ErrExchangeFailed, Message: "the provider's token endpoint could not be reached",
			Cause: withoutURL(err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, 0, &FlowError{Kind: ErrExchangeFailed, Message: "the token response could not be read", Cause: withoutURL(err)}
	}
	return decodeBody(raw, resp.Header.Get("Content-Type")), resp.StatusCode, nil
}

// decodeBody reads a JSON object (numbers exact) or, for form-encoded and
// plain-text answers, query syntax. Anything else is an empty map.
func decodeBody(raw []byte, contentType string) map[string]any {
	ct, _, _ := mime.ParseMediaType(contentType)
	if ct == "application/x-www-form-urlencoded" || (ct == "text/plain" && !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{"))) {
		vals, err := url.ParseQuery(string(raw))
		if err != nil {
			return map[string]any{}
		}
		out := make(map[string]any, len(vals))
		for k := range vals {
			out[k] = vals.Get(k)
		}
		return out
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return map[string]any{}
	}
	return m
}

// tokenFailure reports an error answer: a non-2xx status, an "error" field
// (some providers answer 200 with one), or Slack's "ok": false.
func tokenFailure(body map[string]any, status int) (bool, string) {
	code, _ := body["error"].(string)
	code = sanitizeCode(code)
	ok, hasOK := body["ok"].(bool)
	switch {
	case status < 200 || status > 299:
		if code == "" && status == http.StatusUnauthorized {
			code = "invalid_client"
		}
		return true, code
	case code != "", hasOK && !ok:
		return true, code
	}
	return false, ""
}

// clientRefused reports an answer that means "authenticate the client
// differently" for the auto style's second attempt.
func clientRefused(body map[string]any, status int) bool {
	failed, code := tokenFailure(body, status)
	return failed && (code == "invalid_client" || code == "unauthorized_client" || status == http.StatusUnauthorized)
}

// expiryFrom turns expires_in into an expiry time.
//
//   - missing: no expiry (the provider did not say; tokens are treated as
//     non-expiring, and an upstream 401 later forces a refresh);
//   - a number, or a string holding one ("3600"): now plus that many
//     seconds, when it is in (0, MaxTokenLifetime);
//   - zero, negative, unparseable or MaxTokenLifetime (ten years) or more:
//     unknown. With a refresh token the token gets ConservativeLifetime, so
//     it is refreshed early instead of trusted; without one there is
//     nothing to refresh with, and it is kept without an expiry.
func expiryFrom(now time.Time, raw any, refreshable, tokensExpire bool) *time.Time {
	if raw == nil {
		// No expires_in: trust it as non-expiring unless the catalog says
		// this provider's tokens expire and we can refresh — then assume
		// the conservative lifetime, as services/tokens does on refresh, so
		// both sides treat one response the same way.
		if refreshable && tokensExpire {
			t := now.UTC().Add(ConservativeLifetime).Truncate(time.Second)
			return &t
		}
		return nil
	}
	secs, ok := seconds(raw)
	if !ok || secs <= 0 || secs >= MaxTokenLifetime.Seconds() {
		if !refreshable {
			return nil
		}
		t := now.UTC().Add(ConservativeLifetime).Truncate(time.Second)
		return &t
	}
	// Whole seconds, UTC: what SQLite stores and compares (as services/tokens does).
	t := now.UTC().Add(time.Duration(secs * float64(time.Second))).Truncate(time.Second)
	return &t
}

func seconds(raw any) (float64, bool) {
	var f float64
	switch v := raw.(type) {
	case float64:
		f = v
	case json.Number:
		n, err := v.Float64()
		if err != nil {
			return 0, false
		}
		f = n
	case string:
		n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return 0, false
		}
		f = n
	case int:
		f = float64(v)
	case int64:
		f = float64(v)
	default:
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

func isHTTPS(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "https"
}
