package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/catalog"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/ids"
)

// Limits on configuration input.
const (
	MaxClientIDLen     = 512
	MaxClientSecretLen = 4096
	MaxScopes          = 100
	MaxScopeLen        = 512
	maxBrokenReasonLen = 200
)

var slugRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)

// systemActor attributes changes the service makes on its own (marking a
// config broken after the provider refused the client).
var systemActor = apikeys.Actor{Kind: audit.ActorSystem, ID: "oauth"}

// storedDefinition is provider_configs.custom_definition: the operator's
// custom definition (or override of a catalog entry) and the tenant
// params. Both are kept as given, not resolved, so a config that only
// overrides a catalog entry's hosts keeps following the catalog's
// endpoints, and the definition is re-validated whenever it is used.
// The column stays empty for a plain catalog provider without params.
type storedDefinition struct {
	Custom *customJSON       `json:"custom,omitempty"`
	Params map[string]string `json:"params,omitempty"`
}

// customJSON is catalog.CustomDefinition with stable snake_case names.
// AllowInsecure is not stored: the running server decides it
// (WithAllowInsecure). A test checks that every other field is mirrored.
type customJSON struct {
	ID                   string              `json:"id"`
	Name                 string              `json:"name,omitempty"`
	Category             catalog.Category    `json:"category,omitempty"`
	AuthorizeURL         string              `json:"authorize_url,omitempty"`
	TokenURL             string              `json:"token_url,omitempty"`
	UserinfoURL          string              `json:"userinfo_url,omitempty"`
	IDField              string              `json:"id_field,omitempty"`
	DisplayField         string              `json:"display_field,omitempty"`
	RevokeURL            string              `json:"revoke_url,omitempty"`
	RevokeStyle          catalog.RevokeStyle `json:"revoke_style,omitempty"`
	APIHosts             []string            `json:"api_hosts,omitempty"`
	Scopes               []string            `json:"scopes,omitempty"`
	ScopeSeparator       string              `json:"scope_separator,omitempty"`
	PKCE                 catalog.PKCE        `json:"pkce,omitempty"`
	TokenAuthStyle       catalog.AuthStyle   `json:"token_auth_style,omitempty"`
	ExtraAuthorizeParams map[string]string   `json:"extra_authorize_params,omitempty"`
}

func toCustomJSON(d catalog.CustomDefinition) *customJSON {
	return &customJSON{
		ID: d.ID, Name: d.Name, Category: d.Category, AuthorizeURL: d.AuthorizeURL, TokenURL: d.TokenURL,
		UserinfoURL: d.UserinfoURL, IDField: d.IDField, DisplayField: d.DisplayField, RevokeURL: d.RevokeURL,
		RevokeStyle: d.RevokeStyle, APIHosts: slices.Clone(d.APIHosts), Scopes: slices.Clone(d.Scopes),
		ScopeSeparator: d.ScopeSeparator, PKCE: d.PKCE, TokenAuthStyle: d.TokenAuthStyle,
		ExtraAuthorizeParams: maps.Clone(d.ExtraAuthorizeParams),
	}
}

func (c *customJSON) definition(allowInsecure bool) catalog.CustomDefinition {
	return catalog.CustomDefinition{
		ID: c.ID, Name: c.Name, Category: c.Category, AuthorizeURL: c.AuthorizeURL, TokenURL: c.TokenURL,
		UserinfoURL: c.UserinfoURL, IDField: c.IDField, DisplayField: c.DisplayField, RevokeURL: c.RevokeURL,
		RevokeStyle: c.RevokeStyle, APIHosts: slices.Clone(c.APIHosts), Scopes: slices.Clone(c.Scopes),
		ScopeSeparator: c.ScopeSeparator, PKCE: c.PKCE, TokenAuthStyle: c.TokenAuthStyle,
		ExtraAuthorizeParams: maps.Clone(c.ExtraAuthorizeParams), AllowInsecure: allowInsecure,
	}
}

// Configure enables a provider for an app with the app's own OAuth client,
// or replaces the app's existing configuration of it (one per app and
// provider slug; the config id is kept). The client secret is sealed, the
// scopes default to the provider's default scopes, a custom definition is
// validated like a catalog entry, tenant params must fill the provider's
// placeholders with single DNS labels, and the config becomes active again
// (a broken config is repaired by configuring it anew). The
// provider.configure audit row is written in the same transaction.
//
// Bad input is a *errs.ValidationError and writes nothing; messages never
// quote the client secret.
func (s *Service) Configure(ctx context.Context, in ConfigureInput) (ConfigureResult, error) {
	res, err := s.configure(ctx, in)
	if err == nil {
		s.changed()
	}
	return res, err
}

func (s *Service) configure(ctx context.Context, in ConfigureInput) (ConfigureResult, error) {
	var v errs.Validation
	appID, ok := ids.Canonical(in.AppID)
	if !ok {
		v.Add("app", "must be an app id (UUID)")
	}
	in.Provider = strings.TrimSpace(in.Provider)
	if !slugRE.MatchString(in.Provider) {
		v.Add("provider", "must be a provider slug: lower-case letters, digits and hyphens, at most 64 characters")
	}
	in.ClientID = strings.TrimSpace(in.ClientID)
	switch {
	case in.ClientID == "":
		v.Add("client_id", "is required")
	case len(in.ClientID) > MaxClientIDLen || !utf8.ValidString(in.ClientID) || hasControl(in.ClientID):
		v.Add("client_id", "must be at most %d printable characters", MaxClientIDLen)
	}
	switch {
	case in.ClientSecret == "":
		v.Add("client_secret", "is required")
	case len(in.ClientSecret) > MaxClientSecretLen || !utf8.ValidString(in.ClientSecret) || hasControl(in.ClientSecret):
		v.Add("client_secret", "must be at most %d printable characters (the value is not shown)", MaxClientSecretLen)
	}
	scopes := checkScopes(&v, in.Scopes)
	if in.Custom != nil && in.Custom.ID != "" && in.Custom.ID != in.Provider {
		v.Add("custom.id", "must equal the provider slug")
	}
	if err := v.Err(); err != nil {
		return ConfigureResult{}, err
	}

	var def *catalog.CustomDefinition
	if in.Custom != nil {
		d := *in.Custom
		d.ID = in.Provider
		def = &d
	}
	p, err := s.resolveProvider(in.Provider, def, in.Params)
	if err != nil {
		return ConfigureResult{}, err
	}
	if len(scopes) == 0 {
		scopes = slices.Clone(p.DefaultScopes)
	}
	stored := ""
	if def != nil || len(in.Params) > 0 {
		sd := storedDefinition{Params: maps.Clone(in.Params)}
		if def != nil {
			sd.Custom = toCustomJSON(*def)
		}
		b, err := json.Marshal(sd)
		if err != nil {
			return ConfigureResult{}, fmt.Errorf("oauth: encode definition: %w", err)
		}
		stored = string(b)
	}

	db := s.db.WithContext(ctx)
	var app models.App
	if err := db.Select("id", "organization_id").Where("id = ?", appID).Take(&app).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return ConfigureResult{}, fmt.Errorf("app: %w", errs.ErrNotFound)
		}
		return ConfigureResult{}, fmt.Errorf("oauth: load app: %w", err)
	}
	var existing []models.ProviderConfig
	if err := db.Select("id").Where("app_id = ? AND provider = ?", app.ID, in.Provider).Limit(1).Find(&existing).Error; err != nil {
		return ConfigureResult{}, fmt.Errorf("oauth: find provider config: %w", err)
	}
	id := ""
	if len(existing) > 0 {
		id = existing[0].ID
	} else if id, err = ids.New(); err != nil {
		return ConfigureResult{}, err
	}
	// Sealed before the transaction (the binding names the row id), so a
	// keeper round trip never holds database locks.
	sealed, err := s.seal(ctx, ClientSecretBinding(app.ID, id), in.ClientSecret)
	if err != nil {
		return ConfigureResult{}, err
	}
	now := s.now().UTC()
	err = db.Transaction(func(tx *gorm.DB) error {
		if len(existing) > 0 {
			res := tx.Model(&models.ProviderConfig{}).Where("id = ? AND app_id = ?", id, app.ID).Updates(map[string]any{
				"client_id": in.ClientID, "client_secret_ciphertext": sealed, "scopes": strings.Join(scopes, " "),
				"status": models.ProviderConfigActive, "broken_reason": "", "custom_definition": stored, "updated_at": now,
			})
			if res.Error != nil {
				return fmt.Errorf("oauth: update provider config: %w", res.Error)
			}
			if res.RowsAffected != 1 {
				return fmt.Errorf("provider %s was removed while being configured; run the command again: %w", in.Provider, errs.ErrConflict)
			}
		} else {
			pc := models.ProviderConfig{ID: id, AppID: app.ID, Provider: in.Provider, ClientID: in.ClientID,
				ClientSecretCiphertext: sealed, Scopes: strings.Join(scopes, " "), Status: models.ProviderConfigActive,
				CustomDefinition: stored, CreatedAt: now, UpdatedAt: now}
			if err := tx.Create(&pc).Error; err != nil {
				if errors.Is(err, gorm.ErrDuplicatedKey) {
					return fmt.Errorf("provider %s was configured concurrently; run the command again: %w", in.Provider, errs.ErrConflict)
				}
				return fmt.Errorf("oauth: insert provider config: %w", err)
			}
		}
		custom := "false"
		if def != nil {
			custom = "true"
		}
		return s.audit.InTx(ctx, tx, models.AuditEvent{OrganizationID: app.OrganizationID, AppID: app.ID,
			Action: ActionProviderConfigure, ActorKind: in.Actor.Kind, ActorID: in.Actor.ID, Caller: in.Actor.Caller,
			Provider: in.Provider,
			Context: audit.EncodeContext(map[string]string{
				"provider_config_id": id, "client_id": in.ClientID, "scopes": strings.Join(scopes, " "),
				"custom": custom, "created": fmt.Sprint(len(existing) == 0),
			})})
	})
	if err != nil {
		return ConfigureResult{}, err
	}
	return ConfigureResult{ProviderConfigID: id, RedirectURI: s.redirectURI}, nil
}

// checkScopes validates and de-duplicates operator scopes, keeping order.
func checkScopes(v *errs.Validation, in []string) []string {
	if len(in) > MaxScopes {
		v.Add("scopes", "at most %d scopes", MaxScopes)
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, raw := range in {
		sc := strings.TrimSpace(raw)
		switch {
		case sc == "":
			continue
		case len(sc) > MaxScopeLen:
			v.Add("scopes", "a scope is longer than %d characters", MaxScopeLen)
		case !utf8.ValidString(sc) || hasControl(sc) || strings.ContainsAny(sc, " ,\t\"<>\\"):
			// Neither separator may appear inside a scope: it would split
			// into two on the wire.
			v.Add("scopes", "%q contains a space, comma or other character scopes cannot hold", sanitizeText(sc, 64))
		case !seen[sc]:
			seen[sc] = true
			out = append(out, sc)
		}
	}
	return out
}

// resolveProvider returns the concrete provider of a config: the catalog
// entry or the custom definition, validated, with tenant params filled in.
func (s *Service) resolveProvider(slug string, def *catalog.CustomDefinition, params map[string]string) (catalog.Provider, error) {
	var p catalog.Provider
	if def != nil {
		d := *def
		d.AllowInsecure = s.allowInsecure
		var err error
		if p, err = s.catalog.Custom(d); err != nil {
			return catalog.Provider{}, err
		}
	} else {
		var ok bool
		if p, ok = s.catalog.Get(slug); !ok {
			return catalog.Provider{}, errs.Invalid("provider",
				"%q is not in the catalog; define a custom provider with an authorize URL, a token URL and at least one API host", slug)
		}
	}
	return p.Resolve(params)
}

// Client returns the app's configuration of provider, resolved and with
// its secret opened. No config, a disabled one and a broken one are all
// provider_not_configured (with details.status for the latter two).
func (s *Service) Client(ctx context.Context, appID, provider string) (ClientConfig, error) {
	id, ok := ids.Canonical(appID)
	if !ok || !slugRE.MatchString(provider) {
		return ClientConfig{}, notConfigured(provider, "")
	}
	var rows []models.ProviderConfig
	if err := s.db.WithContext(ctx).Where("app_id = ? AND provider = ?", id, provider).Limit(1).Find(&rows).Error; err != nil {
		return ClientConfig{}, fmt.Errorf("oauth: load provider config: %w", err)
	}
	if len(rows) == 0 {
		return ClientConfig{}, notConfigured(provider, "")
	}
	return s.clientConfig(ctx, rows[0])
}

// ClientByID is Client by provider config id (a credential's
// provider_config_id), scoped to the app.
func (s *Service) ClientByID(ctx context.Context, appID, providerConfigID string) (ClientConfig, error) {
	aid, ok1 := ids.Canonical(appID)
	pid, ok2 := ids.Canonical(providerConfigID)
	if !ok1 || !ok2 {
		return ClientConfig{}, notConfigured("", "")
	}
	var rows []models.ProviderConfig
	if err := s.db.WithContext(ctx).Where("id = ? AND app_id = ?", pid, aid).Limit(1).Find(&rows).Error; err != nil {
		return ClientConfig{}, fmt.Errorf("oauth: load provider config: %w", err)
	}
	if len(rows) == 0 {
		return ClientConfig{}, notConfigured("", "")
	}
	return s.clientConfig(ctx, rows[0])
}

func (s *Service) clientConfig(ctx context.Context, pc models.ProviderConfig) (ClientConfig, error) {
	switch pc.Status {
	case models.ProviderConfigActive:
	case models.ProviderConfigBroken:
		ce := notConfigured(pc.Provider, pc.Status)
		ce.Message = fmt.Sprintf("provider %q is configured but broken: the provider rejected the app's OAuth client "+
			"(invalid_client); an operator must configure it again with a valid client id and secret", pc.Provider)
		return ClientConfig{}, ce
	default:
		return ClientConfig{}, notConfigured(pc.Provider, pc.Status)
	}
	p, err := s.providerOf(pc)
	if err != nil {
		return ClientConfig{}, err
	}
	secret := ""
	if len(pc.ClientSecretCiphertext) > 0 {
		if secret, err = s.open(ctx, ClientSecretBinding(pc.AppID, pc.ID), pc.ClientSecretCiphertext); err != nil {
			return ClientConfig{}, err
		}
	}
	return ClientConfig{
		ProviderConfigID: pc.ID, AppID: pc.AppID, Provider: p, ClientID: pc.ClientID, ClientSecret: secret,
		Scopes: strings.Fields(pc.Scopes), RedirectURI: s.redirectURI, Status: pc.Status,
	}, nil
}

// ProviderByID returns the resolved provider (catalog entry or custom
// definition, tenant params substituted) of one of the app's provider
// configs, whatever its status: the proxy needs the API hosts of a grant
// even while its config is broken, because a broken config stops refreshing,
// not using (DESIGN.md §6).
func (s *Service) ProviderByID(ctx context.Context, appID, providerConfigID string) (catalog.Provider, error) {
	aid, ok1 := ids.Canonical(appID)
	pid, ok2 := ids.Canonical(providerConfigID)
	if !ok1 || !ok2 {
		return catalog.Provider{}, notConfigured("", "")
	}
	var rows []models.ProviderConfig
	if err := s.db.WithContext(ctx).Where("id = ? AND app_id = ?", pid, aid).Limit(1).Find(&rows).Error; err != nil {
		return catalog.Provider{}, fmt.Errorf("oauth: load provider config: %w", err)
	}
	if len(rows) == 0 {
		return catalog.Provider{}, notConfigured("", "")
	}
	return s.providerOf(rows[0])
}

// providerOf resolves a config's provider definition.
func (s *Service) providerOf(pc models.ProviderConfig) (catalog.Provider, error) {
	var sd storedDefinition
	if pc.CustomDefinition != "" {
		if err := json.Unmarshal([]byte(pc.CustomDefinition), &sd); err != nil {
			return catalog.Provider{}, fmt.Errorf("oauth: provider config %s: decode definition: %w", pc.ID, err)
		}
	}
	var def *catalog.CustomDefinition
	if sd.Custom != nil {
		d := sd.Custom.definition(false)
		def = &d
	}
	p, err := s.resolveProvider(pc.Provider, def, sd.Params)
	if err != nil {
		// The catalog entry was removed, or the definition no longer
		// validates (an insecure one on a server without the development
		// switch): the config cannot be used until it is configured again.
		ce := notConfigured(pc.Provider, "invalid")
		ce.Message = fmt.Sprintf("provider %q is configured but its definition is no longer valid; configure it again", pc.Provider)
		ce.Cause = err
		return catalog.Provider{}, ce
	}
	return p, nil
}

func notConfigured(provider, status string) *errs.CodedError {
	ce := &errs.CodedError{Code: wire.CodeProviderNotConfigured, Details: map[string]any{}}
	if slugRE.MatchString(provider) {
		ce.Message = fmt.Sprintf("provider %q is not configured for this app", provider)
		ce.Details["provider"] = provider
	} else {
		ce.Message = "the provider is not configured for this app"
	}
	if status != "" {
		ce.Details["status"] = status
	}
	return ce
}

// MarkBroken marks a provider config broken after the provider refused the
// app's client (invalid_client), with a provider.broken audit row in the
// same transaction. Only the config goes broken, never its users' grants:
// one bad OAuth app must not look like every user's consent failing
// (DESIGN.md §6). Marking an already broken config changes nothing and
// writes no second row. reason is stored reduced to printable ASCII.
func (s *Service) MarkBroken(ctx context.Context, providerConfigID, reason string) error {
	id, ok := ids.Canonical(providerConfigID)
	if !ok {
		return fmt.Errorf("provider config: %w", errs.ErrNotFound)
	}
	reason = sanitizeText(reason, maxBrokenReasonLen)
	if reason == "" {
		reason = "the provider answered invalid_client"
	}
	marked := false
	var pc models.ProviderConfig
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Select("id", "app_id", "provider", "status").Where("id = ?", id).Take(&pc).Error; err != nil {
			if errors.Is(err, gorm.ErrRecordNotFound) {
				return fmt.Errorf("provider config: %w", errs.ErrNotFound)
			}
			return fmt.Errorf("oauth: load provider config: %w", err)
		}
		res := tx.Model(&models.ProviderConfig{}).Where("id = ? AND status <> ?", id, models.ProviderConfigBroken).
			Updates(map[string]any{"status": models.ProviderConfigBroken, "broken_reason": reason, "updated_at": s.now().UTC()})
		if res.Error != nil {
			return fmt.Errorf("oauth: mark provider config broken: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return nil
		}
		marked = true
		var app models.App
		if err := tx.Select("id", "organization_id").Where("id = ?", pc.AppID).Take(&app).Error; err != nil {
			return fmt.Errorf("oauth: load app: %w", err)
		}
		return s.audit.InTx(ctx, tx, models.AuditEvent{OrganizationID: app.OrganizationID, AppID: pc.AppID,
			Action: ActionProviderBroken, ActorKind: systemActor.Kind, ActorID: systemActor.ID,
			Provider: pc.Provider, Outcome: models.OutcomeError, ErrorCode: "invalid_client", Reason: reason,
			Context: audit.EncodeContext(map[string]string{"provider_config_id": id})})
	})
	if err != nil {
		return err
	}
	if marked {
		s.log.WarnContext(ctx, "oauth: provider config marked broken", "app_id", pc.AppID,
			"provider", pc.Provider, "provider_config_id", id, "reason", reason)
		s.changed()
	}
	return nil
}
