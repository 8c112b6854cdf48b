package catalog

import (
	"encoding/base64"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/latchkey/latchkey/services/egress"
	"github.com/latchkey/latchkey/services/errs"
)

// Category groups providers in the portal's picker. The set is closed so
// the picker and the docs table never grow a typo'd heading.
type Category string

// Categories.
const (
	CategoryProductivity  Category = "productivity"
	CategoryCommunication Category = "communication"
	CategoryDeveloper     Category = "developer"
	CategoryCRM           Category = "crm"
	CategorySupport       Category = "support"
	CategoryFinance       Category = "finance"
	CategoryCommerce      Category = "commerce"
	CategoryStorage       Category = "storage"
	CategoryDesign        Category = "design"
	CategoryMarketing     Category = "marketing"
	CategorySocial        Category = "social"
	CategoryHR            Category = "hr"
	CategoryAnalytics     Category = "analytics"
	CategoryIdentity      Category = "identity"
	CategoryOther         Category = "other"
)

// Categories returns every category in display order.
func Categories() []Category {
	return []Category{
		CategoryProductivity, CategoryCommunication, CategoryDeveloper, CategoryCRM,
		CategorySupport, CategoryFinance, CategoryCommerce, CategoryStorage, CategoryDesign,
		CategoryMarketing, CategorySocial, CategoryHR, CategoryAnalytics, CategoryIdentity,
		CategoryOther,
	}
}

// Valid reports whether c is one of Categories.
func (c Category) Valid() bool { return slices.Contains(Categories(), c) }

// PKCE says what the provider does with RFC 7636 code challenges.
type PKCE string

// PKCE support levels.
const (
	// PKCERequired: the provider refuses an authorization request without a
	// code challenge (X, Airtable, Canva, …).
	PKCERequired PKCE = "required"
	// PKCESupported: the provider verifies a code challenge when one is sent.
	PKCESupported PKCE = "supported"
	// PKCENone: the provider does not document PKCE. Sending a challenge is
	// usually ignored, but the OAuth flow must not rely on it there.
	PKCENone PKCE = "none"
)

// AuthStyle is how the client authenticates at the token endpoint.
type AuthStyle string

// Token endpoint authentication styles.
const (
	// AuthStyleHeader: HTTP Basic (client_secret_basic).
	AuthStyleHeader AuthStyle = "header"
	// AuthStyleParams: client_id and client_secret in the form body
	// (client_secret_post).
	AuthStyleParams AuthStyle = "params"
	// AuthStyleAuto: try Basic, fall back to the body on an auth error; for
	// operator-defined providers whose server is unknown.
	AuthStyleAuto AuthStyle = "auto"
)

// BodyFormat is the encoding of token endpoint requests.
type BodyFormat string

// Token request encodings.
const (
	BodyForm BodyFormat = "form"
	BodyJSON BodyFormat = "json"
)

// RevokeStyle is how a token is revoked at the provider (DESIGN.md §6).
type RevokeStyle string

// Revocation styles. Each names one request shape the OAuth service knows
// how to send; a provider with another shape gets a new style, not a
// free-form template, because revocation requests carry secrets.
const (
	// RevokeRFC7009: POST form "token=…" (RFC 7009), the client
	// authenticated as at the token endpoint.
	RevokeRFC7009 RevokeStyle = "rfc7009"
	// RevokeBearerPost: POST with the access token as the bearer credential
	// and no body (Dropbox, Slack auth.revoke, Intercom).
	RevokeBearerPost RevokeStyle = "bearer-post"
	// RevokeBearerDelete: DELETE with the access token as the bearer
	// credential (Zendesk's tokens/current, Facebook's me/permissions).
	RevokeBearerDelete RevokeStyle = "bearer-delete"
	// RevokeJSON: POST a JSON body {"token": …} with HTTP Basic client
	// authentication (Intuit, Notion).
	RevokeJSON RevokeStyle = "json"
	// RevokeGitHub: DELETE {"access_token": …} as JSON with HTTP Basic
	// client authentication to a URL naming the client id (GitHub's
	// /applications/{client_id}/token).
	RevokeGitHub RevokeStyle = "github"
)

func revokeStyles() []RevokeStyle {
	return []RevokeStyle{RevokeRFC7009, RevokeBearerPost, RevokeBearerDelete, RevokeJSON, RevokeGitHub}
}

// IdentitySource says where the connected account's identity comes from.
type IdentitySource string

// Identity sources.
const (
	// IdentityEndpoint: call Identity.URL with the new access token.
	IdentityEndpoint IdentitySource = "endpoint"
	// IdentityTokenResponse: read the fields from the token response itself
	// (Notion, Stripe Connect, Slack bots).
	IdentityTokenResponse IdentitySource = "token_response"
	// IdentityIDToken: read the claims of the id_token in the token
	// response. It arrives directly from the token endpoint over TLS, which
	// OIDC Core §3.1.3.7 accepts in place of a signature check.
	IdentityIDToken IdentitySource = "id_token"
)

// Identity tells the OAuth service how to learn which account was connected
// (the grant's account_identifier).
type Identity struct {
	// Source defaults to "endpoint" when URL is set.
	Source IdentitySource `json:"source,omitempty"`
	// URL is called with the access token as a bearer credential.
	URL string `json:"url,omitempty"`
	// Method is GET (the default) or POST.
	Method string `json:"method,omitempty"`
	// Headers are sent with the identity request (never Authorization).
	Headers map[string]string `json:"headers,omitempty"`
	// Body is a JSON document sent with a POST (a GraphQL "viewer" query).
	Body string `json:"body,omitempty"`
	// IDField is a dotted path into the JSON answer ("id", "data.id",
	// "emails.0"); its value is the stable account id.
	IDField string `json:"id_field"`
	// DisplayField is a dotted path to a human-readable label (email,
	// login); optional.
	DisplayField string `json:"display_field,omitempty"`
}

// EffectiveSource returns Source with its default applied.
func (i Identity) EffectiveSource() IdentitySource {
	if i.Source == "" && i.URL != "" {
		return IdentityEndpoint
	}
	return i.Source
}

// EffectiveMethod returns Method with its default applied.
func (i Identity) EffectiveMethod() string {
	if i.Method == "" {
		return "GET"
	}
	return i.Method
}

// Provider is one catalog entry: everything Latchkey needs to run an OAuth
// flow against a third-party service and to proxy calls to its API.
// Operator-defined (custom) providers have the same shape.
//
// URLs and API hosts may contain "{name}" placeholders for per-tenant
// parts (a Shopify shop, a Zendesk subdomain); every such name is declared
// in Params and filled in by Resolve from the app's provider config.
type Provider struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Category Category `json:"category"`
	// LogoSVG is an optional hand-made simple mark; without it Logo
	// renders a monogram. Never a copied brand logo.
	LogoSVG string `json:"logo_svg,omitempty"`
	// Docs is the provider's OAuth documentation.
	Docs string `json:"docs"`
	// Params are the per-tenant placeholders the operator supplies.
	Params []string `json:"params,omitempty"`

	AuthorizeURL string `json:"authorize_url"`
	TokenURL     string `json:"token_url"`
	// RefreshURL is where refresh_token grants go when that is not
	// TokenURL (Figma); empty means TokenURL.
	RefreshURL string `json:"refresh_url,omitempty"`
	// RevokeURL is empty when the provider has no revocation endpoint. It
	// may contain the reserved placeholder {client_id} (RevokeGitHub).
	RevokeURL   string      `json:"revoke_url,omitempty"`
	RevokeStyle RevokeStyle `json:"revoke_style,omitempty"`

	Identity Identity `json:"identity"`

	// DefaultScopes are requested when the app's provider config names
	// none. Catalog defaults are identity plus read access: operators widen
	// them deliberately.
	DefaultScopes []string `json:"default_scopes"`
	// ScopeSeparator joins scopes in the authorize request: " " or ",".
	ScopeSeparator string `json:"scope_separator"`
	// ScopeParam is the authorize parameter carrying the scopes; empty
	// means "scope". Slack user tokens use "user_scope".
	ScopeParam string `json:"scope_param,omitempty"`
	PKCE       PKCE   `json:"pkce"`
	// ExtraAuthorizeParams are added to every authorize request (Google's
	// access_type=offline and prompt=consent, Dropbox's
	// token_access_type=offline). They cannot override the flow's own
	// parameters.
	ExtraAuthorizeParams map[string]string `json:"extra_authorize_params,omitempty"`
	TokenAuthStyle       AuthStyle         `json:"token_auth_style"`
	// TokenBodyFormat is how token requests are encoded: "form" (RFC 6749,
	// the default) or "json" for providers that document only JSON
	// (Atlassian, Trello, Notion, Square).
	TokenBodyFormat BodyFormat `json:"token_body_format,omitempty"`
	// TokenResponseRoot is a dotted path to the object holding
	// access_token, refresh_token and expires_in when they are not at the
	// top level (Slack user tokens: "authed_user").
	TokenResponseRoot string `json:"token_response_root,omitempty"`
	// Inject is how the proxy presents the access token, in the managed
	// secrets' template syntax with {token}: "header:Name:template" or
	// "query:name:template". Empty means "header:Authorization:Bearer {token}".
	Inject string `json:"inject,omitempty"`
	// APIHosts is the proxy's allow-list for this provider (DESIGN.md
	// §3.6): "host", "*.domain" or "host:port".
	APIHosts []string `json:"api_hosts"`

	// TokensExpire: access tokens may expire and must be refreshed; the
	// actual lifetime comes from expires_in.
	TokensExpire bool `json:"tokens_expire"`
	// RefreshTokenRotates: a refresh may return a new refresh token and
	// retire the old one, so the new pair must be committed before use.
	RefreshTokenRotates bool `json:"refresh_token_rotates"`

	// Notes are caveats an operator should read before enabling the
	// provider (app review, extra headers, uncertain facts).
	Notes string `json:"notes,omitempty"`
	// Custom marks an operator-defined or operator-overridden provider.
	Custom bool `json:"custom,omitempty"`
}

// DefaultInject is the injection rule of a provider that names none.
const DefaultInject = "header:Authorization:Bearer {token}"

// Injection returns Inject with its default applied.
func (p Provider) Injection() string {
	if p.Inject == "" {
		return DefaultInject
	}
	return p.Inject
}

// RefreshEndpoint returns where refresh requests go.
func (p Provider) RefreshEndpoint() string {
	if p.RefreshURL != "" {
		return p.RefreshURL
	}
	return p.TokenURL
}

// TokenBody returns TokenBodyFormat with its default applied.
func (p Provider) TokenBody() BodyFormat {
	if p.TokenBodyFormat == "" {
		return BodyForm
	}
	return p.TokenBodyFormat
}

// ScopeParamName returns the authorize parameter that carries scopes.
func (p Provider) ScopeParamName() string {
	if p.ScopeParam == "" {
		return "scope"
	}
	return p.ScopeParam
}

// JoinScopes renders scopes for the authorize request.
func (p Provider) JoinScopes(scopes []string) string {
	sep := p.ScopeSeparator
	if sep == "" {
		sep = " "
	}
	return strings.Join(scopes, sep)
}

// RevokeEndpoint returns RevokeURL with the reserved {client_id}
// placeholder filled in (path-escaped, so a client id cannot change the
// path).
func (p Provider) RevokeEndpoint(clientID string) string {
	return strings.ReplaceAll(p.RevokeURL, "{"+reservedClientID+"}", url.PathEscape(clientID))
}

// Logo returns the provider's SVG mark: LogoSVG when set, else a generated
// monogram of the name.
func (p Provider) Logo() string {
	if p.LogoSVG != "" {
		return p.LogoSVG
	}
	return Monogram(p.Name)
}

// LogoDataURI returns Logo as a data: URI for an <img src>. Browsers run no
// script in an SVG loaded as an image, so pages can show it without
// trusting its markup.
func (p Provider) LogoDataURI() string {
	return "data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString([]byte(p.Logo()))
}

// Resolve fills the provider's tenant placeholders with the operator's
// values and returns the concrete provider (Params empty). Every declared
// param must be given, nothing else may be, and each value must be a single
// DNS label: a value such as "evil.com/x" or "a.b" could otherwise move a
// URL or an allowed host to someone else's server.
func (p Provider) Resolve(params map[string]string) (Provider, error) {
	var v errs.Validation
	values := make(map[string]string, len(p.Params))
	for _, name := range p.Params {
		raw, ok := params[name]
		if !ok || raw == "" {
			v.Add("params."+name, "is required")
			continue
		}
		val := strings.ToLower(raw)
		if !dnsLabelRE.MatchString(val) {
			// The value is configuration, not a secret, but it is not
			// echoed: it may be long or contain markup.
			v.Add("params."+name, "must be a single DNS label: letters, digits and hyphens, at most 63 characters, no dots or slashes")
			continue
		}
		values[name] = val
	}
	for _, name := range slices.Sorted(maps.Keys(params)) {
		if !slices.Contains(p.Params, name) {
			v.Add("params."+name, "is not a parameter of provider %q", p.ID)
		}
	}
	if err := v.Err(); err != nil {
		return Provider{}, err
	}

	r := p.clone()
	sub := func(s string) string {
		for name, val := range values {
			s = strings.ReplaceAll(s, "{"+name+"}", val)
		}
		return s
	}
	r.AuthorizeURL = sub(r.AuthorizeURL)
	r.TokenURL = sub(r.TokenURL)
	r.RefreshURL = sub(r.RefreshURL)
	r.RevokeURL = sub(r.RevokeURL)
	r.Identity.URL = sub(r.Identity.URL)
	for i := range r.APIHosts {
		r.APIHosts[i] = sub(r.APIHosts[i])
	}
	for i := range r.DefaultScopes {
		r.DefaultScopes[i] = sub(r.DefaultScopes[i])
	}
	for k, val := range r.ExtraAuthorizeParams {
		r.ExtraAuthorizeParams[k] = sub(val)
	}
	r.Params = nil
	// The templates were validated with a sample label in every
	// placeholder, so a value that is itself a DNS label cannot make them
	// invalid, except by length; check what the proxy and the HTTP client
	// will parse.
	for i, h := range r.APIHosts {
		if _, err := egress.ParseHostPattern(h); err != nil {
			v.Add(fmt.Sprintf("api_hosts[%d]", i), "%v", err)
		}
	}
	for field, s := range r.urls() {
		if s == "" {
			continue
		}
		if u, err := url.Parse(s); err != nil || u.Host == "" {
			v.Add(field, "is not a valid URL once parameters are filled in")
		}
	}
	if err := v.Err(); err != nil {
		return Provider{}, err
	}
	return r, nil
}

// urls returns the provider's URL fields by their JSON names.
func (p Provider) urls() map[string]string {
	return map[string]string{
		"authorize_url": p.AuthorizeURL,
		"token_url":     p.TokenURL,
		"refresh_url":   p.RefreshURL,
		"revoke_url":    p.RevokeURL,
		"identity.url":  p.Identity.URL,
		"docs":          p.Docs,
	}
}

// clone returns a deep copy, so callers can never change the catalog's
// shared slices and maps.
func (p Provider) clone() Provider {
	c := p
	c.Params = slices.Clone(p.Params)
	c.DefaultScopes = slices.Clone(p.DefaultScopes)
	c.APIHosts = slices.Clone(p.APIHosts)
	c.ExtraAuthorizeParams = maps.Clone(p.ExtraAuthorizeParams)
	c.Identity.Headers = maps.Clone(p.Identity.Headers)
	return c
}
