package identity

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/vault"
)

// Preset names, stored in identity_providers.preset.
const (
	PresetGeneric  = "generic"
	PresetAuth0    = "auth0"
	PresetClerk    = "clerk"
	PresetOkta     = "okta"
	PresetKeycloak = "keycloak"
	PresetWorkOS   = "workos"
)

// Preset is a vendor's default claim names, recognised from the issuer URL.
type Preset struct {
	Name        string
	UserClaim   string
	GroupsClaim string
}

// DetectPreset recognises the vendor behind an issuer URL. Only claim
// defaults depend on it; verification is the same standard OIDC for all.
func DetectPreset(issuer string) Preset {
	u, err := url.Parse(strings.TrimSpace(issuer))
	if err != nil {
		return Preset{Name: PresetGeneric, UserClaim: defaultUserClaim}
	}
	host := strings.ToLower(u.Hostname())
	switch {
	case strings.HasSuffix(host, ".auth0.com"):
		// Auth0 puts groups/roles only where an Action adds them, under a
		// namespaced claim the tenant chooses: nothing to default to.
		return Preset{Name: PresetAuth0, UserClaim: defaultUserClaim}
	case strings.HasSuffix(host, ".clerk.accounts.dev"), strings.HasPrefix(host, "clerk."):
		return Preset{Name: PresetClerk, UserClaim: defaultUserClaim}
	case strings.HasSuffix(host, ".okta.com"), strings.HasSuffix(host, ".oktapreview.com"), strings.HasSuffix(host, ".okta-emea.com"):
		return Preset{Name: PresetOkta, UserClaim: defaultUserClaim, GroupsClaim: "groups"}
	case host == "api.workos.com", strings.HasSuffix(host, ".authkit.app"):
		return Preset{Name: PresetWorkOS, UserClaim: defaultUserClaim}
	case strings.Contains(u.Path, "/realms/"):
		// Keycloak emits "groups" once the realm's client has a Group
		// Membership mapper; the path is the only reliable fingerprint.
		return Preset{Name: PresetKeycloak, UserClaim: defaultUserClaim, GroupsClaim: "groups"}
	}
	return Preset{Name: PresetGeneric, UserClaim: defaultUserClaim}
}

// SetInput is `latchkey admin idp set`. Empty UserClaim and GroupsClaim take
// the preset's defaults. An empty ClientSecret keeps the stored one when the
// ClientID is unchanged (a secret belongs to one client id) and clears it
// otherwise.
type SetInput struct {
	AppID        string
	Issuer       string
	Audience     string
	UserClaim    string
	GroupsClaim  string
	ClientID     string
	ClientSecret string
	Actor        apikeys.Actor
}

// IdP is an app's identity provider as shown to operators. The client
// secret is never returned, only whether one is stored.
type IdP struct {
	ID              string
	AppID           string
	Issuer          string
	Audience        string
	UserClaim       string
	GroupsClaim     string
	Preset          string
	ClientID        string
	HasClientSecret bool
	UpdatedAt       time.Time
}

func idpFromModel(m models.IdentityProvider) IdP {
	return IdP{ID: m.ID, AppID: m.AppID, Issuer: m.Issuer, Audience: m.Audience, UserClaim: m.UserClaim,
		GroupsClaim: m.GroupsClaim, Preset: m.Preset, ClientID: m.ClientID,
		HasClientSecret: len(m.ClientSecretCiphertext) > 0, UpdatedAt: m.UpdatedAt}
}

// ClientSecretBinding is the vault binding of an IdP row's client secret.
func ClientSecretBinding(appID, idpID string) vault.Binding {
	return vault.Binding{AppID: appID, Table: "identity_providers", RowID: idpID, Column: "client_secret_ciphertext"}
}

// isLoopbackHost allows plain http for tests and the local demo only.
func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// checkIssuer returns a problem with an issuer URL, or "". The issuer is
// kept exactly as given: tokens must carry it byte for byte (Auth0's ends
// in a slash, most others do not).
func checkIssuer(s string) string {
	if s == "" {
		return "is required"
	}
	if len(s) > maxIssuerLen {
		return fmt.Sprintf("must be at most %d characters", maxIssuerLen)
	}
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return "must be an absolute URL such as https://example.auth0.com/"
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		return "must use https (http only for a loopback host)"
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "must not have user info, a query or a fragment"
	}
	return ""
}

func checkClaimName(v *errs.Validation, field, name string) {
	if len(name) > maxClaimNameLen {
		v.Add(field, "must be at most %d characters", maxClaimNameLen)
	} else if strings.ContainsAny(name, " \t\r\n") {
		v.Add(field, "must not contain whitespace")
	}
}

// SetIdP creates or replaces the app's identity provider (one per app) and
// writes an idp.set audit row in the same transaction. Discovery is not
// contacted: an issuer that is down now may come up later (CheckDiscovery
// tells the operator).
func (s *Service) SetIdP(ctx context.Context, in SetInput) (IdP, error) {
	in.Issuer = strings.TrimSpace(in.Issuer)
	in.Audience = strings.TrimSpace(in.Audience)
	in.UserClaim = strings.TrimSpace(in.UserClaim)
	in.GroupsClaim = strings.TrimSpace(in.GroupsClaim)
	in.ClientID = strings.TrimSpace(in.ClientID)

	var v errs.Validation
	if _, err := uuid.Parse(in.AppID); err != nil {
		v.Add("app", "must be an app id (UUID)")
	}
	if msg := checkIssuer(in.Issuer); msg != "" {
		v.Add("issuer", "%s", msg)
	}
	switch {
	case in.Audience == "":
		v.Add("audience", "is required (the aud your IdP puts in end-user tokens)")
	case len(in.Audience) > maxAudienceLen:
		v.Add("audience", "must be at most %d characters", maxAudienceLen)
	}
	checkClaimName(&v, "user-claim", in.UserClaim)
	checkClaimName(&v, "groups-claim", in.GroupsClaim)
	if len(in.ClientID) > maxClientIDLen {
		v.Add("client-id", "must be at most %d characters", maxClientIDLen)
	}
	if in.ClientSecret != "" && in.ClientID == "" {
		v.Add("client-secret", "needs --client-id")
	}
	if len(in.ClientSecret) > maxClientSecret {
		v.Add("client-secret", "must be at most %d bytes", maxClientSecret)
	}
	if err := v.Err(); err != nil {
		return IdP{}, err
	}

	preset := DetectPreset(in.Issuer)
	if in.UserClaim == "" {
		in.UserClaim = preset.UserClaim
	}
	if in.GroupsClaim == "" {
		in.GroupsClaim = preset.GroupsClaim
	}

	db := s.db.WithContext(ctx)
	var app models.App
	if err := db.Where("id = ?", in.AppID).Take(&app).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return IdP{}, fmt.Errorf("app: %w", errs.ErrNotFound)
		}
		return IdP{}, fmt.Errorf("identity: load app: %w", err)
	}

	// The secret is sealed before the transaction (the vault never runs
	// inside a caller's transaction) and bound to the row id, so the id must
	// be known first. A concurrent first "idp set" for the same app can
	// create the row in between; then the id changed and we seal again.
	var (
		saved     models.IdentityProvider
		oldIssuer string
	)
	for attempt := 0; ; attempt++ {
		var existing models.IdentityProvider
		found, err := s.loadRow(ctx, db, app.ID, &existing)
		if err != nil {
			return IdP{}, err
		}
		id := existing.ID
		if !found {
			id = uuid.NewString()
		}
		var sealed []byte
		switch {
		case in.ClientSecret != "":
			sealed, err = s.vault.Seal(ctx, ClientSecretBinding(app.ID, id), []byte(in.ClientSecret))
			if err != nil {
				return IdP{}, fmt.Errorf("identity: seal client secret: %w", err)
			}
		case found && existing.ClientID == in.ClientID:
			sealed = existing.ClientSecretCiphertext
		}
		now := s.now().UTC()
		row := models.IdentityProvider{ID: id, AppID: app.ID, Issuer: in.Issuer, Audience: in.Audience,
			UserClaim: in.UserClaim, GroupsClaim: in.GroupsClaim, Preset: preset.Name, ClientID: in.ClientID,
			ClientSecretCiphertext: sealed, CreatedAt: now, UpdatedAt: now}
		err = db.Transaction(func(tx *gorm.DB) error {
			var cur models.IdentityProvider
			curFound, err := s.loadRow(ctx, tx, app.ID, &cur)
			if err != nil {
				return err
			}
			if curFound != found || (found && cur.ID != id) {
				return errRetry
			}
			if found {
				row.CreatedAt = cur.CreatedAt
				oldIssuer = cur.Issuer
				if err := tx.Model(&models.IdentityProvider{}).Where("id = ? AND app_id = ?", id, app.ID).Updates(map[string]any{
					"issuer": row.Issuer, "audience": row.Audience, "user_claim": row.UserClaim,
					"groups_claim": row.GroupsClaim, "preset": row.Preset, "client_id": row.ClientID,
					"client_secret_ciphertext": row.ClientSecretCiphertext, "updated_at": now,
				}).Error; err != nil {
					return fmt.Errorf("identity: update idp: %w", err)
				}
			} else if err := tx.Create(&row).Error; err != nil {
				if errors.Is(err, gorm.ErrDuplicatedKey) {
					return errRetry
				}
				return fmt.Errorf("identity: insert idp: %w", err)
			}
			return s.audit.InTx(ctx, tx, models.AuditEvent{
				OrganizationID: app.OrganizationID, AppID: app.ID, Action: ActionIdPSet,
				ActorKind: in.Actor.Kind, ActorID: in.Actor.ID,
				Context: audit.EncodeContext(map[string]string{
					"idp_id": id, "issuer": row.Issuer, "audience": row.Audience, "preset": row.Preset,
					"user_claim": row.UserClaim, "groups_claim": row.GroupsClaim, "client_id": row.ClientID,
					"client_secret": secretState(in.ClientSecret != "", len(sealed) > 0),
				}),
			})
		})
		if errors.Is(err, errRetry) && attempt < 3 {
			continue
		}
		if errors.Is(err, errRetry) {
			return IdP{}, fmt.Errorf("identity provider changed concurrently; try again: %w", errs.ErrConflict)
		}
		if err != nil {
			return IdP{}, err
		}
		saved = row
		break
	}
	s.invalidateApp(app.ID, saved.Issuer, oldIssuer)
	return idpFromModel(saved), nil
}

// secretState describes the client secret change for the audit row without
// the secret itself.
func secretState(set, stored bool) string {
	switch {
	case set:
		return "set"
	case stored:
		return "kept"
	}
	return "none"
}

func (s *Service) loadRow(ctx context.Context, db *gorm.DB, appID string, out *models.IdentityProvider) (bool, error) {
	err := db.WithContext(ctx).Where("app_id = ?", appID).Take(out).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("identity: load idp: %w", err)
	}
	return true, nil
}

// IdP returns the app's identity provider, or errs.ErrNotFound.
func (s *Service) IdP(ctx context.Context, appID string) (IdP, error) {
	if _, err := uuid.Parse(appID); err != nil {
		return IdP{}, errs.Invalid("app", "must be an app id (UUID)")
	}
	var row models.IdentityProvider
	found, err := s.loadRow(ctx, s.db, appID, &row)
	if err != nil {
		return IdP{}, err
	}
	if !found {
		return IdP{}, fmt.Errorf("identity provider: %w", errs.ErrNotFound)
	}
	return idpFromModel(row), nil
}

// CheckDiscovery fetches the issuer's discovery document and checks that it
// names the same issuer. The CLI uses it to warn about an issuer it cannot
// reach; success also warms the provider cache.
func (s *Service) CheckDiscovery(ctx context.Context, issuer string) error {
	_, err := s.discover(ctx, issuer)
	return err
}

// idpConfig is the cached part of an IdP row plus the app's organization
// (for audit rows), without the client secret.
type idpConfig struct {
	ID, AppID, OrganizationID string
	Issuer, Audience          string
	UserClaim, GroupsClaim    string
	Preset                    string
	UpdatedAt                 time.Time
}

type configEntry struct {
	cfg      *idpConfig // nil: the app has no IdP
	loadedAt time.Time
}

// config returns the app's IdP configuration, cached for configTTL. A nil
// config means the app has none.
func (s *Service) config(ctx context.Context, appID string) (*idpConfig, error) {
	now := s.now()
	s.mu.Lock()
	e, ok := s.configs[appID]
	s.mu.Unlock()
	if ok && now.Sub(e.loadedAt) < s.configTTL && !now.Before(e.loadedAt) {
		return e.cfg, nil
	}
	var rows []idpConfig
	err := s.db.WithContext(ctx).Table("identity_providers AS i").
		Select("i.id, i.app_id, a.organization_id, i.issuer, i.audience, i.user_claim, i.groups_claim, i.preset, i.updated_at").
		Joins("JOIN apps a ON a.id = i.app_id").
		Where("i.app_id = ?", appID).Limit(1).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("identity: load idp: %w", err)
	}
	var cfg *idpConfig
	if len(rows) == 1 {
		cfg = &rows[0]
	}
	s.mu.Lock()
	s.configs[appID] = configEntry{cfg: cfg, loadedAt: now}
	s.mu.Unlock()
	return cfg, nil
}
