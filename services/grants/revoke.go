package grants

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/ids"
	"github.com/latchkey/latchkey/services/sdkauth"
)

// Revoke revokes a grant of the caller's app and every delegation of it, with
// its grant.revoke audit row in the same transaction. Only an app key acting
// as itself may revoke (agents, including an app key acting as an agent, get
// forbidden). Revoking an already revoked grant changes nothing and writes
// no audit row.
//
// The credential is never touched: revoking the last grant on a managed
// secret keeps the secret (operators delete secrets, not grants), and
// revoking the last grant on an OAuth credential does not yet revoke the
// token at the provider or delete the credential (DESIGN.md §6; the OAuth
// work adds that).
func (s *Service) Revoke(ctx context.Context, caller sdkauth.Caller, id string) (wire.Grant, error) {
	a, err := actorOf(caller, nil)
	if err != nil {
		return wire.Grant{}, err
	}
	if a.mode == modeAgent {
		return wire.Grant{}, errs.Coded(wire.CodeForbidden, "only an app key can revoke grants")
	}
	gid, ok := ids.Canonical(id)
	if !ok {
		return wire.Grant{}, grantNotFound("grant not found")
	}
	now := s.now().UTC()
	var g models.Grant
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).
			Where("id = ? AND app_id = ?", gid, caller.AppID).Take(&g).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return grantNotFound("grant not found")
		}
		if err != nil {
			return fmt.Errorf("grants: load grant: %w", err)
		}
		if g.Status == models.GrantRevoked {
			return nil
		}
		if err := tx.Model(&models.Grant{}).Where("id = ?", g.ID).
			Updates(map[string]any{"status": models.GrantRevoked, "revoked_at": now, "updated_at": now}).Error; err != nil {
			return fmt.Errorf("grants: revoke grant: %w", err)
		}
		g.Status, g.RevokedAt, g.UpdatedAt = models.GrantRevoked, &now, now
		res := tx.Model(&models.Delegation{}).
			Where("grant_id = ? AND app_id = ? AND status = ?", g.ID, g.AppID, models.DelegationActive).
			Updates(map[string]any{"status": models.DelegationRevoked, "revoked_at": now, "updated_at": now})
		if res.Error != nil {
			return fmt.Errorf("grants: revoke delegations: %w", res.Error)
		}
		ev := keyEvent(caller, ActionGrantRevoke)
		ev.GrantID, ev.Provider, ev.PrincipalKind, ev.PrincipalID = g.ID, g.Provider, g.PrincipalKind, g.PrincipalID
		ev.Context = audit.EncodeContext(map[string]string{"delegations_revoked": strconv.FormatInt(res.RowsAffected, 10)})
		return s.audit.InTx(ctx, tx, ev)
	})
	if err != nil {
		return wire.Grant{}, err
	}
	s.changed()
	// Revoking the last grant on an OAuth credential revokes the token at
	// the provider and deletes the credential (DESIGN.md §6). The token
	// service re-checks for live grants under a lock; ErrConflict just means
	// other grants still use the credential.
	if s.tokens != nil && g.CredentialID != nil && g.ManagedSecretID == nil {
		if err := s.tokens.RevokeCredential(ctx, g.AppID, *g.CredentialID); err != nil && !errors.Is(err, errs.ErrConflict) {
			// The grant is revoked either way; the credential has no live
			// grant left, so it is never refreshed or used again.
			s.logger.WarnContext(ctx, "provider-side revocation failed", "grant_id", g.ID, "error", err.Error())
		}
	}
	return s.toWire(ctx, g)
}

// RevokeDelegation revokes agent agentID's delegation of grant grantID, with
// a delegation.revoke audit row in the same transaction. An app key may
// revoke any delegation of its app; an agent (or an app key acting as one)
// only its own. Revoking an already revoked delegation changes nothing.
func (s *Service) RevokeDelegation(ctx context.Context, caller sdkauth.Caller, grantID, agentID string) error {
	a, err := actorOf(caller, nil)
	if err != nil {
		return err
	}
	gid, ok := ids.Canonical(grantID)
	if !ok {
		return grantNotFound("grant not found")
	}
	aid, ok := ids.Canonical(agentID)
	if !ok {
		return fmt.Errorf("delegation: %w", errs.ErrNotFound)
	}
	if a.mode == modeAgent && aid != caller.AgentID {
		// An agent sees only its own delegations: any other agent's (of this
		// app or another) is simply not found, never forbidden (§3.5).
		return fmt.Errorf("delegation: %w", errs.ErrNotFound)
	}
	now := s.now().UTC()
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var g models.Grant
		err := tx.Where("id = ? AND app_id = ?", gid, caller.AppID).Take(&g).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return grantNotFound("grant not found")
		}
		if err != nil {
			return fmt.Errorf("grants: load grant: %w", err)
		}
		var d models.Delegation
		err = tx.Clauses(clause.Locking{Strength: "UPDATE"}).
			Where("grant_id = ? AND agent_id = ? AND app_id = ?", gid, aid, caller.AppID).Take(&d).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("delegation: %w", errs.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("grants: load delegation: %w", err)
		}
		if d.Status == models.DelegationRevoked {
			return nil
		}
		if err := tx.Model(&models.Delegation{}).Where("id = ?", d.ID).
			Updates(map[string]any{"status": models.DelegationRevoked, "revoked_at": now, "updated_at": now}).Error; err != nil {
			return fmt.Errorf("grants: revoke delegation: %w", err)
		}
		ev := keyEvent(caller, ActionDelegationRevoke)
		// The row's agent is the one losing access; the acting key is in
		// key_id (and the context says whether an agent revoked itself).
		ev.AgentID = d.AgentID
		ev.GrantID, ev.Provider = g.ID, g.Provider
		ev.PrincipalKind, ev.PrincipalID = models.PrincipalUser, d.EndUserID
		ev.Context = audit.EncodeContext(map[string]string{"delegation_id": d.ID, "by_agent": strconv.FormatBool(a.mode == modeAgent)})
		return s.audit.InTx(ctx, tx, ev)
	})
	if err == nil {
		s.changed()
	}
	return err
}
