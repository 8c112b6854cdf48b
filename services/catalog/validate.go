package catalog

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/latchkey/latchkey/services/egress"
	"github.com/latchkey/latchkey/services/errs"
)

// Limits on a provider definition.
const (
	maxIDLen       = 64
	maxNameLen     = 80
	maxScopes      = 100
	maxScopeLen    = 512
	maxAPIHosts    = 50
	maxParams      = 5
	maxURLLen      = 2048
	maxNotesLen    = 1000
	maxIdentityLen = 4096
)

// reservedClientID is the one placeholder that is not a tenant param: the
// OAuth service fills it into RevokeURL from the app's own client id.
const reservedClientID = "client_id"

// sampleParamValue stands in for every tenant placeholder while a template
// is validated: it is a DNS label like every value Resolve accepts.
const sampleParamValue = "tenant"

var (
	idRE         = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	paramNameRE  = regexp.MustCompile(`^[a-z][a-z0-9_]{0,30}$`)
	placeholder  = regexp.MustCompile(`\{([^{}]*)\}`)
	dnsLabelRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	jsonPathRE   = regexp.MustCompile(`^[A-Za-z0-9_$@-]+(\.[A-Za-z0-9_$@-]+)*$`)
	headerNameRE = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
	queryNameRE  = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)
	scopeParamRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// flowParams are the authorize parameters the OAuth flow owns. An extra
// parameter that replaced one of them could send the code elsewhere or
// switch PKCE off.
var flowParams = []string{
	"client_id", "redirect_uri", "response_type", "state", "scope",
	"code_challenge", "code_challenge_method", "nonce",
}

// Headers a provider definition may not set on the identity request or
// inject with: the credential and connection-level headers belong to the
// HTTP client, as in the proxy (DESIGN.md §3.6).
var forbiddenHeaders = []string{
	"authorization", "cookie", "host", "content-length", "connection",
	"transfer-encoding", "te", "trailer", "upgrade", "keep-alive",
	"proxy-authorization", "proxy-authenticate", "proxy-connection",
}

type validateOptions struct {
	// custom relaxes what only catalog entries need: an identity source
	// and the docs link.
	custom bool
	// allowInsecure permits http URLs and loopback/private hosts (tests
	// and the demo; mirrors LATCHKEY_ALLOW_PRIVATE_UPSTREAMS).
	allowInsecure bool
}

// Validate checks a catalog entry. Every problem is reported at once, as a
// *errs.ValidationError.
func (p Provider) Validate() error {
	return p.validate(validateOptions{custom: p.Custom})
}

func (p Provider) validate(opt validateOptions) error {
	var v errs.Validation

	switch {
	case p.ID == "":
		v.Add("id", "is required")
	case len(p.ID) > maxIDLen || !idRE.MatchString(p.ID):
		v.Add("id", "must be a slug: lower-case letters, digits and hyphens, starting with a letter or digit, at most %d characters", maxIDLen)
	}
	switch {
	case strings.TrimSpace(p.Name) == "":
		v.Add("name", "is required")
	case len(p.Name) > maxNameLen:
		v.Add("name", "is longer than %d characters", maxNameLen)
	}
	if !p.Category.Valid() {
		v.Add("category", "must be one of %s", joinQuoted(Categories()))
	}
	if p.LogoSVG != "" {
		if err := checkLogoSVG(p.LogoSVG); err != nil {
			v.Add("logo_svg", "%v", err)
		}
	}
	if len(p.Notes) > maxNotesLen {
		v.Add("notes", "is longer than %d characters", maxNotesLen)
	}

	p.validateParams(&v)

	sub := func(s string) string { return substitute(s, sampleParamValue) }
	checkURL(&v, "authorize_url", sub(p.AuthorizeURL), true, opt.allowInsecure)
	checkURL(&v, "token_url", sub(p.TokenURL), true, opt.allowInsecure)
	if p.RefreshURL != "" {
		checkURL(&v, "refresh_url", sub(p.RefreshURL), true, opt.allowInsecure)
	}
	if !opt.custom || p.Docs != "" {
		// A documentation link may point at a section.
		docs, _, _ := strings.Cut(p.Docs, "#")
		checkURL(&v, "docs", docs, true, false)
	}
	if p.RevokeURL != "" {
		checkURL(&v, "revoke_url", sub(p.RevokeURL), true, opt.allowInsecure)
		if !slices.Contains(revokeStyles(), p.RevokeStyle) {
			v.Add("revoke_style", "must be one of %s", joinQuoted(revokeStyles()))
		}
		if strings.Contains(p.RevokeURL, "{"+reservedClientID+"}") && p.RevokeStyle != RevokeGitHub {
			v.Add("revoke_url", "{client_id} is only filled in for revoke_style %q", RevokeGitHub)
		}
	} else if p.RevokeStyle != "" {
		v.Add("revoke_style", "is set but revoke_url is empty")
	}

	p.validateIdentity(&v, opt)
	p.validateScopes(&v)

	switch p.PKCE {
	case PKCERequired, PKCESupported, PKCENone:
	default:
		v.Add("pkce", "must be %q, %q or %q", PKCERequired, PKCESupported, PKCENone)
	}
	switch p.TokenAuthStyle {
	case AuthStyleHeader, AuthStyleParams, AuthStyleAuto:
	default:
		v.Add("token_auth_style", "must be %q, %q or %q", AuthStyleHeader, AuthStyleParams, AuthStyleAuto)
	}
	switch p.TokenBodyFormat {
	case "", BodyForm, BodyJSON:
	default:
		v.Add("token_body_format", "must be %q or %q", BodyForm, BodyJSON)
	}
	for _, k := range sortedKeys(p.ExtraAuthorizeParams) {
		switch {
		case k == "" || !queryNameRE.MatchString(k):
			v.Add("extra_authorize_params", "%q is not a valid parameter name", k)
		case slices.Contains(flowParams, k) || k == p.ScopeParamName():
			v.Add("extra_authorize_params", "%q is set by the OAuth flow and cannot be overridden", k)
		}
	}
	if p.TokenResponseRoot != "" && !jsonPathRE.MatchString(p.TokenResponseRoot) {
		v.Add("token_response_root", "must be a dotted JSON path")
	}
	if p.Inject != "" {
		if err := checkInject(p.Inject); err != nil {
			v.Add("inject", "%v", err)
		}
	}
	p.validateHosts(&v, opt)

	return v.Err()
}

// validateParams checks that every declared param is well named and used,
// and every placeholder is declared: an undeclared one would reach the
// wire as a literal "{shop}", and an unused one would ask operators for a
// value that changes nothing.
func (p Provider) validateParams(v *errs.Validation) {
	if len(p.Params) > maxParams {
		v.Add("params", "at most %d parameters", maxParams)
	}
	seen := map[string]bool{}
	for _, name := range p.Params {
		switch {
		case !paramNameRE.MatchString(name):
			v.Add("params", "%q must be lower-case letters, digits and underscores, starting with a letter", name)
		case name == reservedClientID:
			v.Add("params", "%q is reserved", name)
		case seen[name]:
			v.Add("params", "%q is declared twice", name)
		}
		seen[name] = true
	}

	used := map[string]bool{}
	note := func(field, s string, clientIDOK bool) {
		for _, m := range placeholder.FindAllStringSubmatch(s, -1) {
			name := m[1]
			if name == reservedClientID && clientIDOK {
				continue
			}
			if !seen[name] {
				v.Add(field, "placeholder {%s} is not declared in params", name)
				continue
			}
			used[name] = true
		}
	}
	note("authorize_url", p.AuthorizeURL, false)
	note("token_url", p.TokenURL, false)
	note("refresh_url", p.RefreshURL, false)
	note("revoke_url", p.RevokeURL, true)
	note("identity.url", p.Identity.URL, false)
	for _, h := range p.APIHosts {
		note("api_hosts", h, false)
	}
	for _, s := range p.DefaultScopes {
		note("default_scopes", s, false)
	}
	for _, k := range sortedKeys(p.ExtraAuthorizeParams) {
		note("extra_authorize_params", p.ExtraAuthorizeParams[k], false)
	}
	for _, name := range p.Params {
		if !used[name] {
			v.Add("params", "%q is declared but no URL, host or scope uses it", name)
		}
	}
	// Fields that never take a param: a placeholder there would be sent
	// verbatim. (identity.body is JSON or GraphQL, where braces are normal.)
	for _, f := range []struct{ field, value string }{
		{"docs", p.Docs},
		{"inject", strings.ReplaceAll(p.Inject, "{token}", "")},
		{"identity.id_field", p.Identity.IDField},
		{"token_response_root", p.TokenResponseRoot},
	} {
		if placeholder.MatchString(f.value) {
			v.Add(f.field, "cannot contain a {placeholder}")
		}
	}
}

func (p Provider) validateIdentity(v *errs.Validation, opt validateOptions) {
	id := p.Identity
	src := id.EffectiveSource()
	switch src {
	case "":
		if !opt.custom {
			v.Add("identity", "is required: an endpoint URL, the token response or the id_token")
		} else if id.IDField != "" || id.DisplayField != "" || id.Method != "" || id.Body != "" || len(id.Headers) > 0 {
			v.Add("identity.url", "is required when identity fields are set")
		}
		return
	case IdentityEndpoint:
		checkURL(v, "identity.url", substitute(id.URL, sampleParamValue), true, opt.allowInsecure)
		switch id.EffectiveMethod() {
		case "GET":
			if id.Body != "" {
				v.Add("identity.body", "is only sent with POST")
			}
		case "POST":
			if id.Body != "" && (len(id.Body) > maxIdentityLen || !json.Valid([]byte(id.Body))) {
				v.Add("identity.body", "must be a JSON document of at most %d bytes", maxIdentityLen)
			}
		default:
			v.Add("identity.method", "must be GET or POST")
		}
		for _, k := range sortedKeys(id.Headers) {
			if !headerNameRE.MatchString(k) || slices.Contains(forbiddenHeaders, strings.ToLower(k)) || strings.HasPrefix(strings.ToLower(k), "proxy-") {
				v.Add("identity.headers", "%q cannot be set", k)
			}
			if strings.ContainsAny(id.Headers[k], "\r\n") {
				v.Add("identity.headers", "%q has a line break in its value", k)
			}
		}
	case IdentityTokenResponse, IdentityIDToken:
		if id.URL != "" || id.Method != "" || id.Body != "" || len(id.Headers) > 0 {
			v.Add("identity", "source %q takes no url, method, body or headers", src)
		}
	default:
		v.Add("identity.source", "must be %q, %q or %q", IdentityEndpoint, IdentityTokenResponse, IdentityIDToken)
		return
	}
	if !jsonPathRE.MatchString(id.IDField) {
		v.Add("identity.id_field", "must be a dotted JSON path such as id, data.id or user.email")
	}
	if id.DisplayField != "" && !jsonPathRE.MatchString(id.DisplayField) {
		v.Add("identity.display_field", "must be a dotted JSON path")
	}
}

func (p Provider) validateScopes(v *errs.Validation) {
	switch p.ScopeSeparator {
	case " ", ",":
	default:
		v.Add("scope_separator", `must be " " or ","`)
	}
	if p.ScopeParam != "" && !scopeParamRE.MatchString(p.ScopeParam) {
		v.Add("scope_param", "must be a lower-case parameter name")
	}
	if len(p.DefaultScopes) > maxScopes {
		v.Add("default_scopes", "at most %d scopes", maxScopes)
	}
	seen := map[string]bool{}
	for _, s := range p.DefaultScopes {
		switch {
		case s == "":
			v.Add("default_scopes", "contains an empty scope")
		case len(s) > maxScopeLen:
			v.Add("default_scopes", "a scope is longer than %d characters", maxScopeLen)
		case strings.ContainsAny(s, " ,\t\r\n\"<>\\"):
			// Neither separator may appear inside a scope: it would split
			// into two on the wire.
			v.Add("default_scopes", "%q contains a space, comma or other character scopes cannot hold", s)
		case seen[s]:
			v.Add("default_scopes", "%q is listed twice", s)
		}
		seen[s] = true
	}
}

func (p Provider) validateHosts(v *errs.Validation, opt validateOptions) {
	switch {
	case len(p.APIHosts) == 0:
		v.Add("api_hosts", "at least one host is required: proxy egress is closed by default")
	case len(p.APIHosts) > maxAPIHosts:
		v.Add("api_hosts", "at most %d hosts", maxAPIHosts)
	}
	seen := map[string]bool{}
	for i, h := range p.APIHosts {
		field := fmt.Sprintf("api_hosts[%d]", i)
		templated := placeholder.MatchString(h)
		if templated && strings.HasPrefix(h, "*.") {
			// A wildcard over a tenant's domain would be decided by the
			// tenant value; keep tenant hosts exact.
			v.Add(field, "a host with a {placeholder} cannot be a wildcard")
			continue
		}
		pat, err := egress.ParseHostPattern(substitute(h, sampleParamValue))
		if err != nil {
			v.Add(field, "%v", err)
			continue
		}
		canon := pat.String()
		if !templated && canon != h {
			// One spelling per host keeps audit rows and diffs honest.
			v.Add(field, "write %q in canonical form %q", h, canon)
		}
		if !opt.allowInsecure {
			host := strings.TrimPrefix(canon, "*.")
			if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
				host = host[:i]
			}
			if isPrivateHost(host) {
				v.Add(field, "IP addresses and local names need the insecure (development) option")
			}
		}
		if seen[canon] {
			v.Add(field, "%q is listed twice", h)
		}
		seen[canon] = true
	}
}

// checkURL requires an absolute https URL with a host and no credentials
// or fragment. With allowInsecure, http and local hosts pass too.
func checkURL(v *errs.Validation, field, s string, required, allowInsecure bool) {
	if s == "" {
		if required {
			v.Add(field, "is required")
		}
		return
	}
	if len(s) > maxURLLen {
		v.Add(field, "is longer than %d characters", maxURLLen)
		return
	}
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		v.Add(field, "must be an absolute URL")
		return
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowInsecure:
	default:
		v.Add(field, "must use https")
		return
	}
	if u.User != nil {
		v.Add(field, "must not contain credentials")
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		v.Add(field, "must not contain a fragment")
	}
	host := u.Hostname()
	if _, err := egress.ParseHostPattern(host); err != nil || strings.HasPrefix(host, "*") {
		v.Add(field, "has an invalid host")
		return
	}
	if !allowInsecure && isPrivateHost(host) {
		v.Add(field, "IP addresses and local names need the insecure (development) option")
	}
}

// isPrivateHost reports hosts that only make sense in development: IP
// literals (a catalog names services by name) and localhost names. The
// proxy's dial-time check is the real guard; this keeps obvious mistakes
// out of configuration.
func isPrivateHost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return h == "localhost" || strings.HasSuffix(h, ".localhost") || strings.HasSuffix(h, ".local") || strings.HasSuffix(h, ".internal")
}

// checkInject validates an injection rule: "header:Name:template" or
// "query:name:template", the template holding {token} once.
func checkInject(rule string) error {
	kind, rest, ok := strings.Cut(rule, ":")
	if !ok {
		return fmt.Errorf("must be header:Name:template or query:name:template")
	}
	name, tmpl, ok := strings.Cut(rest, ":")
	if !ok || name == "" {
		return fmt.Errorf("must be header:Name:template or query:name:template")
	}
	switch kind {
	case "header":
		lower := strings.ToLower(name)
		if !headerNameRE.MatchString(name) || (lower != "authorization" && (slices.Contains(forbiddenHeaders, lower) || strings.HasPrefix(lower, "proxy-"))) {
			return fmt.Errorf("header %q cannot carry a token", name)
		}
	case "query":
		if !queryNameRE.MatchString(name) {
			return fmt.Errorf("query parameter %q is not a valid name", name)
		}
	default:
		return fmt.Errorf("kind must be header or query")
	}
	if strings.Count(tmpl, "{token}") != 1 || strings.ContainsAny(tmpl, "\r\n") {
		return fmt.Errorf("template must contain {token} exactly once and no line breaks")
	}
	return nil
}

// substitute replaces every placeholder except the reserved {client_id}
// with val.
func substitute(s, val string) string {
	return placeholder.ReplaceAllStringFunc(s, func(m string) string {
		if m == "{"+reservedClientID+"}" {
			return m
		}
		return val
	})
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func joinQuoted[T ~string](xs []T) string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}
