package oauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/latchkey/latchkey/services/catalog"
)

// MaxAccountIdentifierLen bounds the stored account identifier.
const MaxAccountIdentifierLen = 255

// idTokenAlgs are the signature algorithms accepted on ID tokens.
var idTokenAlgs = []string{
	oidc.RS256, oidc.RS384, oidc.RS512, oidc.PS256, oidc.PS384, oidc.PS512,
	oidc.ES256, oidc.ES384, oidc.ES512, oidc.EdDSA,
}

// identify learns the connected account per the provider's Identity: its
// stable id (the grant's account identifier) and an optional label.
//
//   - endpoint: GET or POST Identity.URL with the new access token injected
//     the way the provider's API takes it (Authorization: Bearer by default;
//     Shopify and monday.com differ), then read IDField / DisplayField.
//   - token_response: read the fields from the top level of the token
//     response (Slack bot installs, Notion, Strava).
//   - id_token: read the ID token's claims. With an issuer configured for
//     the provider (WithIssuers) the token is verified with go-oidc:
//     signature against the issuer's JWKS, issuer, audience, expiry. Without
//     one, it is accepted only when the token response came over https
//     straight from the token endpoint (OIDC Core §3.1.3.7); the audience
//     and expiry are still checked. Either way the nonce must match.
//
// A provider without an identity source cannot be connected: the account
// identifier is what tells one connection from another.
func (s *Service) identify(ctx context.Context, cc ClientConfig, tr tokenResult, nonce string) (string, string, error) {
	id := cc.Provider.Identity
	var get func(string) (any, bool)
	switch id.EffectiveSource() {
	case catalog.IdentityEndpoint:
		body, err := s.fetchIdentity(ctx, cc, tr.AccessToken)
		if err != nil {
			return "", "", err
		}
		get = func(path string) (any, bool) { return lookupPath(func(k string) any { return body[k] }, path) }
	case catalog.IdentityTokenResponse:
		get = tr.top
	case catalog.IdentityIDToken:
		claims, err := s.idTokenClaims(ctx, cc, tr, nonce)
		if err != nil {
			return "", "", err
		}
		get = func(path string) (any, bool) { return lookupPath(func(k string) any { return claims[k] }, path) }
	default:
		return "", "", errors.New("the provider defines no way to identify the account (identity url)")
	}
	account, err := scalarAt(get, id.IDField)
	if err != nil {
		return "", "", fmt.Errorf("identity field %s: %w", id.IDField, err)
	}
	account = strings.TrimSpace(account)
	if account == "" || len(account) > MaxAccountIdentifierLen || !utf8.ValidString(account) || hasControl(account) {
		return "", "", fmt.Errorf("identity field %s is empty, too long or not printable", id.IDField)
	}
	display := ""
	if id.DisplayField != "" {
		if d, err := scalarAt(get, id.DisplayField); err == nil && utf8.ValidString(d) && !hasControl(d) {
			display = strings.TrimSpace(d)
			if len(display) > MaxAccountIdentifierLen {
				display = display[:MaxAccountIdentifierLen]
				for !utf8.ValidString(display) {
					display = display[:len(display)-1]
				}
			}
		}
	}
	return account, display, nil
}

// fetchIdentity calls the identity endpoint. Errors name the status only:
// the body may echo the request.
func (s *Service) fetchIdentity(ctx context.Context, cc ClientConfig, accessToken string) (map[string]any, error) {
	id := cc.Provider.Identity
	var body io.Reader
	if id.EffectiveMethod() == http.MethodPost && id.Body != "" {
		body = strings.NewReader(id.Body)
	}
	req, err := http.NewRequestWithContext(ctx, id.EffectiveMethod(), id.URL, body)
	if err != nil {
		return nil, errors.New("the identity URL is not usable")
	}
	for _, k := range slices.Sorted(maps.Keys(id.Headers)) {
		req.Header.Set(k, id.Headers[k])
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := injectToken(req, cc.Provider.Injection(), accessToken); err != nil {
		return nil, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("identity endpoint: %w", withoutURL(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("identity endpoint: read: %w", withoutURL(err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("identity endpoint answered HTTP %d", resp.StatusCode)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, errors.New("identity endpoint did not answer with a JSON object")
	}
	if ok, has := m["ok"].(bool); has && !ok {
		// Slack answers 200 {"ok": false, "error": …}.
		return nil, errors.New("identity endpoint answered ok=false")
	}
	return m, nil
}

// injectToken places the access token as the provider's injection rule
// says ("header:Name:…{token}…" or "query:name:…{token}…"; validated by the
// catalog).
func injectToken(req *http.Request, rule, token string) error {
	if hasControl(token) || token == "" {
		return errors.New("the access token is empty or has control characters")
	}
	kind, rest, _ := strings.Cut(rule, ":")
	name, tmpl, _ := strings.Cut(rest, ":")
	value := strings.Replace(tmpl, "{token}", token, 1)
	switch kind {
	case "header":
		req.Header.Set(name, value)
	case "query":
		q := req.URL.Query()
		q.Set(name, value)
		req.URL.RawQuery = q.Encode()
	default:
		return errors.New("the provider's injection rule is not usable")
	}
	return nil
}

// idTokenClaims verifies (or, over TLS, accepts) the ID token and returns
// its claims.
func (s *Service) idTokenClaims(ctx context.Context, cc ClientConfig, tr tokenResult, nonce string) (map[string]any, error) {
	if tr.idToken == "" {
		return nil, errors.New("the token response carries no id_token")
	}
	cfg := &oidc.Config{ClientID: cc.ClientID, SupportedSigningAlgs: idTokenAlgs, Now: s.now}
	var verifier *oidc.IDTokenVerifier
	if issuer := s.issuers[cc.Provider.ID]; issuer != "" {
		p, err := s.oidcProvider(ctx, issuer)
		if err != nil {
			return nil, err
		}
		verifier = p.Verifier(cfg)
	} else {
		if !tr.overTLS {
			return nil, errors.New("an id_token can only be trusted without signature verification when it comes " +
				"over https from the token endpoint; configure the provider's issuer or use an https token URL")
		}
		cfg.SkipIssuerCheck = true
		cfg.InsecureSkipSignatureCheck = true
		verifier = oidc.NewVerifier("", nil, cfg)
	}
	tok, err := verifier.Verify(ctx, tr.idToken)
	if err != nil {
		return nil, fmt.Errorf("id_token: %w", err)
	}
	if nonce != "" && tok.Nonce != nonce {
		return nil, errors.New("id_token: the nonce does not match the flow")
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return nil, fmt.Errorf("id_token claims: %w", err)
	}
	return claims, nil
}

// oidcProvider discovers an issuer once and keeps it, so its JWKS cache is
// shared by every flow.
func (s *Service) oidcProvider(ctx context.Context, issuer string) (*oidc.Provider, error) {
	s.mu.Lock()
	p := s.oidcByIss[issuer]
	s.mu.Unlock()
	if p != nil {
		return p, nil
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, s.http), issuer)
	if err != nil {
		return nil, fmt.Errorf("discovery for %s: %w", issuer, err)
	}
	s.mu.Lock()
	s.oidcByIss[issuer] = p
	s.mu.Unlock()
	return p, nil
}

// lookupPath follows a dotted path ("team.id", "emails.0") from the value
// get returns for its first segment.
func lookupPath(get func(string) any, path string) (any, bool) {
	first, rest, more := strings.Cut(path, ".")
	cur := get(first)
	if cur == nil {
		return nil, false
	}
	for more {
		var seg string
		seg, rest, more = strings.Cut(rest, ".")
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[seg]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
		if cur == nil {
			return nil, false
		}
	}
	return cur, true
}

// stringAt returns a string value at path, or "" when it is absent or not
// a string.
func stringAt(get func(string) (any, bool), path string) (string, bool) {
	v, ok := get(path)
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	return s, ok
}

// scalarAt renders a string or number at path. Numbers keep their exact
// digits (json.Number); a float64 (from oauth2's decoding) is accepted only
// when it is an integer that float64 represents exactly, so a 64-bit id is
// never silently rounded into someone else's.
func scalarAt(get func(string) (any, bool), path string) (string, error) {
	v, ok := get(path)
	if !ok {
		return "", errors.New("is missing")
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return "", errors.New("is a number that cannot be represented exactly")
		}
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case bool:
		return "", errors.New("is a boolean")
	}
	return "", errors.New("is not a string or number")
}
