// Package catalog is the built-in list of OAuth providers (DESIGN.md §1):
// endpoints, scopes, identity lookup, token behaviour and the API hosts the
// proxy may reach for each, plus the validation that operator-defined
// (custom) providers pass through.
//
// The data lives in providers/*.json, one file per provider, embedded in
// the binary so a deployment never depends on fetching it. Load parses and
// validates it once; the Catalog it returns is immutable and hands out
// copies, so one caller cannot change what another sees.
package catalog

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/latchkey/latchkey/services/errs"
)

// providerFiles is read-only data compiled into the binary.
//
//go:embed providers/*.json
var providerFiles embed.FS

// Catalog is the parsed, validated provider list.
type Catalog struct {
	byID map[string]Provider
	ids  []string // sorted
}

// Load parses and validates the embedded provider files. An invalid entry
// fails the whole load: a half-loaded catalog would make providers vanish
// silently. The test suite runs the same validation, so this cannot fail in
// a released binary.
func Load() (*Catalog, error) {
	return loadFS(providerFiles, "providers")
}

func loadFS(fsys fs.FS, dir string) (*Catalog, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("catalog: read providers: %w", err)
	}
	c := &Catalog{byID: make(map[string]Provider, len(entries))}
	var problems []error
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".json" {
			continue
		}
		p, err := parseProviderFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			problems = append(problems, err)
			continue
		}
		if want := strings.TrimSuffix(e.Name(), ".json"); p.ID != want {
			problems = append(problems, fmt.Errorf("%s: id %q does not match the file name", e.Name(), p.ID))
			continue
		}
		if _, dup := c.byID[p.ID]; dup {
			problems = append(problems, fmt.Errorf("%s: duplicate id %q", e.Name(), p.ID))
			continue
		}
		c.byID[p.ID] = p
	}
	if err := errors.Join(problems...); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	c.ids = slices.Sorted(maps.Keys(c.byID))
	return c, nil
}

func parseProviderFile(fsys fs.FS, name string) (Provider, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return Provider{}, fmt.Errorf("%s: %w", name, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	// A misspelt field would otherwise be dropped without a word.
	dec.DisallowUnknownFields()
	var p Provider
	if err := dec.Decode(&p); err != nil {
		return Provider{}, fmt.Errorf("%s: %w", name, err)
	}
	if dec.More() {
		return Provider{}, fmt.Errorf("%s: more than one JSON document", name)
	}
	if p.Custom {
		return Provider{}, fmt.Errorf("%s: catalog entries cannot be marked custom", name)
	}
	if err := p.Validate(); err != nil {
		return Provider{}, fmt.Errorf("%s: %w", name, err)
	}
	return p, nil
}

// Len returns the number of providers.
func (c *Catalog) Len() int { return len(c.ids) }

// Get returns a copy of the provider with that id.
func (c *Catalog) Get(id string) (Provider, bool) {
	p, ok := c.byID[id]
	if !ok {
		return Provider{}, false
	}
	return p.clone(), true
}

// All returns copies of every provider, sorted by id.
func (c *Catalog) All() []Provider {
	out := make([]Provider, 0, len(c.ids))
	for _, id := range c.ids {
		out = append(out, c.byID[id].clone())
	}
	return out
}

// ByCategory returns copies of the providers grouped by category, each
// group sorted by id. Categories without providers are absent; iterate
// Categories() for display order.
func (c *Catalog) ByCategory() map[Category][]Provider {
	out := map[Category][]Provider{}
	for _, p := range c.All() {
		out[p.Category] = append(out[p.Category], p)
	}
	return out
}

// CustomDefinition is an operator-supplied provider (`admin providers
// configure` with URL flags, or the portal's custom provider form).
//
// When ID names a catalog provider the definition overrides it: the
// catalog entry is the base and every non-empty field here replaces the
// entry's. Otherwise it defines a new provider and AuthorizeURL, TokenURL
// and APIHosts are required.
type CustomDefinition struct {
	ID       string
	Name     string   // default: the ID
	Category Category // default: other

	AuthorizeURL string
	TokenURL     string
	// UserinfoURL identifies the connected account (an OIDC userinfo
	// endpoint or the provider's "me"); IDField defaults to "sub" and
	// DisplayField to "email" when it is set.
	UserinfoURL  string
	IDField      string
	DisplayField string
	RevokeURL    string
	RevokeStyle  RevokeStyle // default: rfc7009 when RevokeURL is set

	APIHosts       []string
	Scopes         []string
	ScopeSeparator string    // default " "
	PKCE           PKCE      // default supported
	TokenAuthStyle AuthStyle // default auto
	// ExtraAuthorizeParams replace the base's map as a whole when non-nil.
	ExtraAuthorizeParams map[string]string

	// AllowInsecure permits http URLs and loopback or private hosts. Only
	// for tests and the demo, when the server runs with
	// LATCHKEY_ALLOW_PRIVATE_UPSTREAMS=true.
	AllowInsecure bool
}

// Custom validates an operator-supplied definition with the same rules as
// catalog entries (https only, valid host patterns, no bare "*", no
// undeclared placeholders) and returns the provider it defines.
func (c *Catalog) Custom(def CustomDefinition) (Provider, error) {
	base, override := c.byID[def.ID]
	var p Provider
	if override {
		p = base.clone()
	} else {
		p = Provider{
			ID:             def.ID,
			Name:           def.ID,
			Category:       CategoryOther,
			ScopeSeparator: " ",
			PKCE:           PKCESupported,
			TokenAuthStyle: AuthStyleAuto,
			DefaultScopes:  []string{},
		}
	}
	p.Custom = true
	set := func(dst *string, src string) {
		if src != "" {
			*dst = strings.TrimSpace(src)
		}
	}
	set(&p.Name, def.Name)
	if def.Category != "" {
		p.Category = def.Category
	}
	set(&p.AuthorizeURL, def.AuthorizeURL)
	set(&p.TokenURL, def.TokenURL)
	if def.UserinfoURL != "" {
		p.Identity = Identity{
			Source:       IdentityEndpoint,
			URL:          strings.TrimSpace(def.UserinfoURL),
			IDField:      "sub",
			DisplayField: "email",
		}
	}
	if def.IDField != "" || def.DisplayField != "" {
		if p.Identity.EffectiveSource() == "" {
			return Provider{}, errs.Invalid("identity.url", "is required when id_field or display_field is set")
		}
		set(&p.Identity.IDField, def.IDField)
		set(&p.Identity.DisplayField, def.DisplayField)
	}
	if def.RevokeURL != "" {
		p.RevokeURL = strings.TrimSpace(def.RevokeURL)
		p.RevokeStyle = RevokeRFC7009
	}
	if def.RevokeStyle != "" {
		p.RevokeStyle = def.RevokeStyle
	}
	if def.APIHosts != nil {
		p.APIHosts = slices.Clone(def.APIHosts)
	}
	if def.Scopes != nil {
		p.DefaultScopes = slices.Clone(def.Scopes)
	}
	if def.ScopeSeparator != "" {
		p.ScopeSeparator = def.ScopeSeparator
	}
	if def.PKCE != "" {
		p.PKCE = def.PKCE
	}
	if def.TokenAuthStyle != "" {
		p.TokenAuthStyle = def.TokenAuthStyle
	}
	if def.ExtraAuthorizeParams != nil {
		p.ExtraAuthorizeParams = maps.Clone(def.ExtraAuthorizeParams)
	}
	if override {
		// Params no URL or host uses any more (the operator replaced the
		// templated URLs) are dropped rather than demanded.
		p.Params = slices.DeleteFunc(p.Params, func(name string) bool { return !p.usesParam(name) })
		if len(p.Params) == 0 {
			p.Params = nil
		}
	}
	if err := p.validate(validateOptions{custom: true, allowInsecure: def.AllowInsecure}); err != nil {
		return Provider{}, err
	}
	return p, nil
}

// usesParam reports whether any templated field mentions {name}.
func (p Provider) usesParam(name string) bool {
	ph := "{" + name + "}"
	fields := []string{p.AuthorizeURL, p.TokenURL, p.RefreshURL, p.RevokeURL, p.Identity.URL}
	fields = append(fields, p.APIHosts...)
	fields = append(fields, p.DefaultScopes...)
	for _, v := range p.ExtraAuthorizeParams {
		fields = append(fields, v)
	}
	for _, f := range fields {
		if strings.Contains(f, ph) {
			return true
		}
	}
	return false
}
