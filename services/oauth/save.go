package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/ids"
)

// Limits on what Save stores.
const (
	MaxTokenBytes    = 16 << 10
	MaxMetadataBytes = 4 << 10
)

// errRetry means the grant Save planned for changed before its transaction
// could lock it; Save starts over.
var errRetry = errors.New("oauth: save raced another connection; retrying")

// Save stores a finished flow for a principal, in one transaction:
//
//   - Reconnecting the same account (app, provider, account identifier)
//     for the same principal (kind, id), whose grant is not revoked, updates
//     that grant's credential in place — new sealed access token, the new
//     refresh token or else the old one, expiry, scopes, version bumped,
//     refresh state reset — and sets the grant active: operation reauth,
//     same grant id. The grant never gains a second credential, so a
//     provider that rotated the refresh token on reconnect leaves exactly
//     one live pair behind.
//   - Otherwise it creates an OAuth credential and a grant: operation
//     creation. A different principal, or a revoked grant, gets a new grant.
//   - With AgentID, the agent (active, of the app) is delegated the grant
//     on behalf of the consenting end user; an earlier revoked delegation
//     is reactivated. Only user grants can be delegated.
//
// Tokens are sealed before the transaction (the binding names the
// credential id, generated or looked up first); grant.create /
// grant.reauth and delegation.create audit rows are written inside it.
func (s *Service) Save(ctx context.Context, in SaveInput) (Saved, error) {
	if err := s.checkSave(&in); err != nil {
		return Saved{}, err
	}
	for range 3 {
		saved, err := s.save(ctx, in)
		if errors.Is(err, errRetry) {
			continue
		}
		if err == nil {
			s.changed()
		}
		return saved, err
	}
	return Saved{}, fmt.Errorf("oauth: the grant kept changing while it was saved: %w", errs.ErrConflict)
}

func (s *Service) checkSave(in *SaveInput) error {
	c := &in.Connected
	var v errs.Validation
	var ok bool
	if c.AppID, ok = ids.Canonical(c.AppID); !ok {
		v.Add("app", "must be an app id (UUID)")
	}
	if c.ProviderConfigID, ok = ids.Canonical(c.ProviderConfigID); !ok {
		v.Add("provider_config_id", "must be a provider config id (UUID)")
	}
	if !slugRE.MatchString(c.Provider) {
		v.Add("provider", "must be a provider slug")
	}
	if c.AccountIdentifier == "" || len(c.AccountIdentifier) > MaxAccountIdentifierLen || hasControl(c.AccountIdentifier) {
		v.Add("account_identifier", "is required, printable and at most %d characters", MaxAccountIdentifierLen)
	}
	// Token values are never quoted.
	if c.AccessToken == "" || len(c.AccessToken) > MaxTokenBytes || len(c.RefreshToken) > MaxTokenBytes {
		v.Add("tokens", "the access token is required and tokens are at most %d bytes", MaxTokenBytes)
	}
	switch in.PrincipalKind {
	case models.PrincipalUser:
		if in.PrincipalID, ok = ids.Canonical(in.PrincipalID); !ok {
			v.Add("principal_id", "must be the end user's id (UUID)")
		}
		if in.EndUserID == "" {
			in.EndUserID = in.PrincipalID
		} else if id, ok := ids.Canonical(in.EndUserID); !ok || id != in.PrincipalID {
			v.Add("end_user_id", "must be the grant's own end user: a user consents only to their own grant")
		}
	case models.PrincipalSystem:
		if in.PrincipalID != "" {
			v.Add("principal_id", "must be empty for the system principal")
		}
		if in.AgentID != "" {
			v.Add("agent_id", "a system grant cannot be delegated: only an end user's own grant can be")
		}
	default:
		v.Add("principal_kind", "must be user or system")
	}
	if in.AgentID != "" {
		if in.AgentID, ok = ids.Canonical(in.AgentID); !ok {
			v.Add("agent_id", "must be an agent id (UUID)")
		}
	}
	if b, err := json.Marshal(in.Metadata); err != nil || len(b) > MaxMetadataBytes {
		v.Add("metadata", "must be at most %d bytes of JSON", MaxMetadataBytes)
	}
	return v.Err()
}

// existingGrant finds the live grant a reconnect updates: same app,
// provider, account and principal, not revoked; the oldest when several
// (which Save itself never creates).
func existingGrant(db *gorm.DB, in SaveInput) (*models.Grant, error) {
	c := in.Connected
	var rows []models.Grant
	err := db.Where("app_id = ? AND provider = ? AND account_identifier = ? AND principal_kind = ? AND principal_id = ? "+
		"AND status <> ? AND credential_id IS NOT NULL",
		c.AppID, c.Provider, c.AccountIdentifier, in.PrincipalKind, in.PrincipalID, models.GrantRevoked).
		Order("created_at").Order("id").Limit(1).Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("oauth: find grant: %w", err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	return &rows[0], nil
}

func (s *Service) save(ctx context.Context, in SaveInput) (Saved, error) {
	c := in.Connected
	db := s.db.WithContext(ctx)
	var app models.App
	if err := db.Select("id", "organization_id").Where("id = ?", c.AppID).Take(&app).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return Saved{}, fmt.Errorf("app: %w", errs.ErrNotFound)
		}
		return Saved{}, fmt.Errorf("oauth: load app: %w", err)
	}
	planned, err := existingGrant(db, in)
	if err != nil {
		return Saved{}, err
	}
	var credID, grantID string
	if planned != nil {
		credID, grantID = *planned.CredentialID, planned.ID
	} else {
		if credID, err = ids.New(); err != nil {
			return Saved{}, err
		}
		if grantID, err = ids.New(); err != nil {
			return Saved{}, err
		}
	}
	accessCT, err := s.seal(ctx, AccessTokenBinding(app.ID, credID), c.AccessToken)
	if err != nil {
		return Saved{}, err
	}
	var refreshCT []byte
	if c.RefreshToken != "" {
		if refreshCT, err = s.seal(ctx, RefreshTokenBinding(app.ID, credID), c.RefreshToken); err != nil {
			return Saved{}, err
		}
	}
	metadata := "{}"
	if len(in.Metadata) > 0 {
		b, _ := json.Marshal(in.Metadata) // checked by checkSave
		metadata = string(b)
	}
	scopes := strings.Join(c.Scopes, " ")
	now := s.now().UTC()
	var out Saved
	err = db.Transaction(func(tx *gorm.DB) error {
		// A no-op write on the provider config row serializes every Save of
		// this config (a row lock on PostgreSQL; SQLite transactions take
		// the write lock at BEGIN), so two callbacks for one account cannot
		// both decide to create. It also proves the config still exists.
		res := tx.Exec("UPDATE provider_configs SET status = status WHERE id = ? AND app_id = ?", c.ProviderConfigID, app.ID)
		if res.Error != nil {
			return fmt.Errorf("oauth: lock provider config: %w", res.Error)
		}
		if res.RowsAffected != 1 {
			return notConfigured(c.Provider, "")
		}
		if err := checkPrincipal(tx, app.ID, in); err != nil {
			return err
		}
		current, err := existingGrant(tx, in)
		if err != nil {
			return err
		}
		if (current == nil) != (planned == nil) ||
			(current != nil && (current.ID != planned.ID || *current.CredentialID != *planned.CredentialID)) {
			return errRetry
		}
		ev := models.AuditEvent{OrganizationID: app.OrganizationID, AppID: app.ID,
			ActorKind: in.Actor.Kind, ActorID: in.Actor.ID, Caller: in.Actor.Caller,
			GrantID: grantID, Provider: c.Provider, PrincipalKind: in.PrincipalKind, PrincipalID: in.PrincipalID,
			Context: audit.EncodeContext(map[string]string{
				"account_identifier": c.AccountIdentifier, "provider_config_id": c.ProviderConfigID,
				"connect_session_id": c.ConnectSessionID, "credential_id": credID, "scopes": scopes,
			})}
		if current != nil {
			if err := s.reauth(tx, current, c, accessCT, refreshCT, scopes, metadata, in.Metadata != nil, now); err != nil {
				return err
			}
			ev.Action, out.Operation = ActionGrantReauth, OperationReauth
		} else {
			pcID := c.ProviderConfigID
			cred := models.Credential{ID: credID, AppID: app.ID, Kind: models.CredentialOAuth, ProviderConfigID: &pcID,
				AccountIdentifier: c.AccountIdentifier, AccessTokenCiphertext: accessCT, RefreshTokenCiphertext: refreshCT,
				TokenType: c.TokenType, Scopes: scopes, ExpiresAt: c.ExpiresAt, Version: 1,
				RefreshState: models.RefreshIdle, CreatedAt: now, UpdatedAt: now}
			if err := tx.Create(&cred).Error; err != nil {
				return fmt.Errorf("oauth: insert credential: %w", err)
			}
			g := models.Grant{ID: grantID, AppID: app.ID, CredentialID: &credID, PrincipalKind: in.PrincipalKind,
				PrincipalID: in.PrincipalID, Provider: c.Provider, AccountIdentifier: c.AccountIdentifier,
				Status: models.GrantActive, Scopes: scopes, Metadata: metadata, CreatedAt: now, UpdatedAt: now}
			if err := tx.Create(&g).Error; err != nil {
				return fmt.Errorf("oauth: insert grant: %w", err)
			}
			ev.Action, out.Operation = ActionGrantCreate, OperationCreation
		}
		if err := s.audit.InTx(ctx, tx, ev); err != nil {
			return err
		}
		if in.AgentID != "" {
			if out.DelegationID, err = s.delegate(ctx, tx, app, grantID, in, now); err != nil {
				return err
			}
		}
		return tx.Where("id = ?", grantID).Take(&out.Grant).Error
	})
	if err != nil {
		return Saved{}, err
	}
	return out, nil
}

// reauth replaces the tokens of an existing grant's credential and makes
// the grant active again. The credential row is locked first, as the token
// service locks it to refresh; the version bump makes a refresh that read
// the old tokens fail its optimistic check instead of overwriting these.
func (s *Service) reauth(tx *gorm.DB, g *models.Grant, c Connected, accessCT, refreshCT []byte,
	scopes, metadata string, setMetadata bool, now time.Time) error {
	var cred models.Credential
	if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Select("id", "app_id", "kind").
		Where("id = ? AND app_id = ?", *g.CredentialID, g.AppID).Take(&cred).Error; err != nil {
		return fmt.Errorf("oauth: lock credential: %w", err)
	}
	if cred.Kind != models.CredentialOAuth {
		return fmt.Errorf("oauth: grant %s is not an OAuth grant: %w", g.ID, errs.ErrConflict)
	}
	pcID := c.ProviderConfigID
	upd := map[string]any{
		"access_token_ciphertext": accessCT, "token_type": c.TokenType, "scopes": scopes, "expires_at": c.ExpiresAt,
		"provider_config_id": pcID, "account_identifier": c.AccountIdentifier,
		"version": gorm.Expr("version + 1"), "refresh_state": models.RefreshIdle, "refresh_started_at": nil,
		"refresh_failures": 0, "next_refresh_at": nil, "last_refresh_error": "", "updated_at": now,
	}
	if refreshCT != nil {
		upd["refresh_token_ciphertext"] = refreshCT
	}
	if err := tx.Model(&models.Credential{}).Where("id = ?", cred.ID).Updates(upd).Error; err != nil {
		return fmt.Errorf("oauth: update credential: %w", err)
	}
	gu := map[string]any{"status": models.GrantActive, "scopes": scopes, "updated_at": now}
	if setMetadata {
		gu["metadata"] = metadata
	}
	if err := tx.Model(&models.Grant{}).Where("id = ?", g.ID).Updates(gu).Error; err != nil {
		return fmt.Errorf("oauth: update grant: %w", err)
	}
	return nil
}

// checkPrincipal refuses a principal that is not the app's: an end user of
// another app, or a disabled one.
func checkPrincipal(tx *gorm.DB, appID string, in SaveInput) error {
	if in.PrincipalKind != models.PrincipalUser {
		return nil
	}
	var users []models.EndUser
	if err := tx.Select("id", "status").Where("id = ? AND app_id = ?", in.PrincipalID, appID).Limit(1).Find(&users).Error; err != nil {
		return fmt.Errorf("oauth: load end user: %w", err)
	}
	if len(users) == 0 {
		return fmt.Errorf("end user: %w", errs.ErrNotFound)
	}
	if users[0].Status != models.EndUserActive {
		return errs.Coded(wire.CodeForbidden, "the end user is disabled")
	}
	return nil
}

// delegate creates or reactivates the delegation of grantID to the agent,
// with a delegation.create audit row when anything changed.
func (s *Service) delegate(ctx context.Context, tx *gorm.DB, app models.App, grantID string, in SaveInput, now time.Time) (string, error) {
	var agents []models.Agent
	if err := tx.Select("id", "status").Where("id = ? AND app_id = ?", in.AgentID, app.ID).Limit(1).Find(&agents).Error; err != nil {
		return "", fmt.Errorf("oauth: load agent: %w", err)
	}
	if len(agents) == 0 {
		return "", fmt.Errorf("agent: %w", errs.ErrNotFound)
	}
	if agents[0].Status != models.AgentActive {
		return "", errs.Coded(wire.CodeForbidden, "the agent is disabled and cannot be delegated a grant")
	}
	var rows []models.Delegation
	if err := tx.Where("grant_id = ? AND agent_id = ?", grantID, in.AgentID).Limit(1).Find(&rows).Error; err != nil {
		return "", fmt.Errorf("oauth: find delegation: %w", err)
	}
	id := ""
	reactivated := false
	switch {
	case len(rows) == 0:
		var err error
		if id, err = ids.New(); err != nil {
			return "", err
		}
		d := models.Delegation{ID: id, AppID: app.ID, GrantID: grantID, AgentID: in.AgentID, EndUserID: in.EndUserID,
			Status: models.DelegationActive, CreatedAt: now, UpdatedAt: now}
		if err := tx.Create(&d).Error; err != nil {
			return "", fmt.Errorf("oauth: insert delegation: %w", err)
		}
	case rows[0].Status != models.DelegationActive || rows[0].EndUserID != in.EndUserID:
		id, reactivated = rows[0].ID, true
		if err := tx.Model(&models.Delegation{}).Where("id = ?", id).Updates(map[string]any{
			"status": models.DelegationActive, "revoked_at": nil, "end_user_id": in.EndUserID, "updated_at": now,
		}).Error; err != nil {
			return "", fmt.Errorf("oauth: reactivate delegation: %w", err)
		}
	default:
		return rows[0].ID, nil // already delegated: nothing changed, nothing to audit
	}
	return id, s.audit.InTx(ctx, tx, models.AuditEvent{OrganizationID: app.OrganizationID, AppID: app.ID,
		Action: ActionDelegationCreate, ActorKind: in.Actor.Kind, ActorID: in.Actor.ID, Caller: in.Actor.Caller,
		AgentID: in.AgentID, GrantID: grantID, Provider: in.Connected.Provider,
		PrincipalKind: models.PrincipalUser, PrincipalID: in.EndUserID,
		Context: audit.EncodeContext(map[string]string{"delegation_id": id, "reactivated": fmt.Sprint(reactivated)})})
}
