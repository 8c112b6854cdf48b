package apikeys

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/latchkey/latchkey/handlers/requestid"
	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/ids"
)

// ErrLastUsableKey is the cause of the conflict Revoke reports when the key
// is its owner's last usable (active or deprecated) key and force is off.
// Callers may test for it with errors.Is to offer a forced retry.
var ErrLastUsableKey = errors.New("apikeys: last usable key of its owner")

// KeyRef names one key inside an app. AgentID scopes the lookup to one of
// the app's agents; empty means an app key. A key outside that scope is
// reported as not found, exactly like a key that does not exist (tenant
// isolation, DESIGN.md §3.5).
type KeyRef struct {
	AppID   string
	AgentID string
	KeyID   string // public key id, lk_app_… / lk_agent_…
}

// RevokeInput selects a key to revoke. Force permits revoking the owner's
// last usable key, which leaves the owner unable to authenticate.
type RevokeInput struct {
	Key   KeyRef
	Force bool
	Actor Actor
}

// Get returns one key of the app (or of one of its agents).
func (s *Service) Get(ctx context.Context, ref KeyRef) (models.APIKey, error) {
	return s.load(s.db.WithContext(ctx), ref)
}

// List returns the keys of an agent (agentID set) or the app's own keys,
// oldest first, revoked ones included so the history stays visible.
func (s *Service) List(ctx context.Context, appID, agentID string) ([]models.APIKey, error) {
	if !validUUID(appID) || (agentID != "" && !validUUID(agentID)) {
		return nil, nil
	}
	q := s.db.WithContext(ctx).Where("app_id = ?", appID)
	if agentID == "" {
		q = q.Where("agent_id IS NULL")
	} else {
		q = q.Where("agent_id = ?", agentID)
	}
	var out []models.APIKey
	if err := q.Order("created_at, id").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("apikeys: list: %w", err)
	}
	return out, nil
}

// ListForAgents returns the keys of several agents of one app in one query,
// keyed by agent id, each list oldest first. Agents of other apps contribute
// nothing.
func (s *Service) ListForAgents(ctx context.Context, appID string, agentIDs []string) (map[string][]models.APIKey, error) {
	out := make(map[string][]models.APIKey, len(agentIDs))
	ids := make([]string, 0, len(agentIDs))
	for _, id := range agentIDs {
		if validUUID(id) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 || !validUUID(appID) {
		return out, nil
	}
	var rows []models.APIKey
	err := s.db.WithContext(ctx).
		Where("app_id = ? AND agent_id IN ?", appID, ids).
		Order("created_at, id").Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("apikeys: list agent keys: %w", err)
	}
	for _, r := range rows {
		out[*r.AgentID] = append(out[*r.AgentID], r)
	}
	return out, nil
}

// Deprecate marks an active key deprecated: it keeps working, and every
// response to it says so, so its holder knows to rotate. Deprecating a
// deprecated key changes nothing; a revoked key cannot be deprecated.
//
// Replicas that have the key cached notice within sdkauth's cache TTL.
func (s *Service) Deprecate(ctx context.Context, ref KeyRef, actor Actor) (models.APIKey, error) {
	var out models.APIKey
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		row, err := s.load(tx, ref)
		if err != nil {
			return err
		}
		switch row.Status {
		case models.KeyDeprecated:
			out = row
			return nil
		case models.KeyRevoked:
			return errs.Coded(wire.CodeConflict, "The key is revoked; a revoked key cannot be deprecated.")
		}
		now := s.now().UTC()
		res := tx.Model(&models.APIKey{}).
			Where("id = ? AND status = ?", row.ID, models.KeyActive).
			Updates(map[string]any{"status": models.KeyDeprecated, "deprecated_at": now, "updated_at": now})
		if res.Error != nil {
			return fmt.Errorf("apikeys: deprecate: %w", res.Error)
		}
		if res.RowsAffected != 1 {
			// Changed under us despite the transaction: fail closed rather
			// than audit a change that did not happen.
			return fmt.Errorf("apikeys: deprecate: key changed concurrently")
		}
		if err := s.writeAudit(ctx, tx, row, audit.ActionKeyDeprecate, actor, ""); err != nil {
			return err
		}
		row.Status, row.DeprecatedAt, row.UpdatedAt = models.KeyDeprecated, &now, now
		out = row
		return nil
	})
	return out, err
}

// Revoke revokes a key for good. Revoking a revoked key changes nothing.
// Revoking the last usable (active or deprecated) key of an agent, or of an
// app's own keys, is a conflict unless in.Force is set: an SDK client that
// revokes its only working key by mistake cannot undo that.
//
// The check and the update run in one transaction that first locks the
// owner (the agent or app row) on PostgreSQL, and holds SQLite's single
// write lock (transactions there begin IMMEDIATE), so two concurrent
// revocations of an owner's last two keys cannot both pass the check.
//
// Replicas that have the key cached refuse it within sdkauth's cache TTL.
func (s *Service) Revoke(ctx context.Context, in RevokeInput) (models.APIKey, error) {
	var out models.APIKey
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lockOwner(tx, in.Key); err != nil {
			return err
		}
		row, err := s.load(tx, in.Key)
		if err != nil {
			return err
		}
		if row.Status == models.KeyRevoked {
			out = row
			return nil
		}
		others, err := usableSiblings(tx, row)
		if err != nil {
			return err
		}
		reason := ""
		if others == 0 {
			if !in.Force {
				owner := "the agent's"
				if row.AgentID == nil {
					owner = "the app's"
				}
				return &errs.CodedError{
					Code: wire.CodeConflict,
					Message: "This is " + owner + " last usable key; revoking it leaves no key that can authenticate. " +
						"Mint a replacement first, or revoke with force.",
					Cause: ErrLastUsableKey,
				}
			}
			reason = "forced: last usable key"
		}
		now := s.now().UTC()
		res := tx.Model(&models.APIKey{}).
			Where("id = ? AND status <> ?", row.ID, models.KeyRevoked).
			Updates(map[string]any{"status": models.KeyRevoked, "revoked_at": now, "updated_at": now})
		if res.Error != nil {
			return fmt.Errorf("apikeys: revoke: %w", res.Error)
		}
		if res.RowsAffected != 1 {
			return fmt.Errorf("apikeys: revoke: key changed concurrently")
		}
		if err := s.writeAudit(ctx, tx, row, audit.ActionKeyRevoke, in.Actor, reason); err != nil {
			return err
		}
		row.Status, row.RevokedAt, row.UpdatedAt = models.KeyRevoked, &now, now
		out = row
		return nil
	})
	return out, err
}

// load reads the key ref names, inside its scope only.
func (s *Service) load(db *gorm.DB, ref KeyRef) (models.APIKey, error) {
	if !validUUID(ref.AppID) || (ref.AgentID != "" && !validUUID(ref.AgentID)) {
		return models.APIKey{}, fmt.Errorf("key: %w", errs.ErrNotFound)
	}
	if _, err := wire.ParseKeyID(ref.KeyID); err != nil {
		return models.APIKey{}, fmt.Errorf("key: %w", errs.ErrNotFound)
	}
	q := db.Where("key_id = ? AND app_id = ?", ref.KeyID, ref.AppID)
	if ref.AgentID == "" {
		q = q.Where("agent_id IS NULL")
	} else {
		q = q.Where("agent_id = ?", ref.AgentID)
	}
	var row models.APIKey
	if err := q.Take(&row).Error; err != nil {
		return models.APIKey{}, notFound(err, "key")
	}
	return row, nil
}

// lockOwner serialises lifecycle changes of one owner's keys on PostgreSQL.
// SQLite needs nothing: its transactions take the database write lock up
// front. A missing owner is left to load to report as not found.
func lockOwner(tx *gorm.DB, ref KeyRef) error {
	if tx.Dialector.Name() != "postgres" || !validUUID(ref.AppID) {
		return nil
	}
	locking := clause.Locking{Strength: clause.LockingStrengthUpdate}
	var err error
	if ref.AgentID != "" {
		if !validUUID(ref.AgentID) {
			return nil
		}
		var ag []models.Agent
		err = tx.Clauses(locking).Select("id").Where("id = ? AND app_id = ?", ref.AgentID, ref.AppID).Find(&ag).Error
	} else {
		var app []models.App
		err = tx.Clauses(locking).Select("id").Where("id = ?", ref.AppID).Find(&app).Error
	}
	if err != nil {
		return fmt.Errorf("apikeys: lock key owner: %w", err)
	}
	return nil
}

// usableSiblings counts the owner's other keys that still authenticate.
func usableSiblings(tx *gorm.DB, row models.APIKey) (int64, error) {
	q := tx.Model(&models.APIKey{}).
		Where("app_id = ? AND id <> ? AND status IN ?", row.AppID, row.ID, []string{models.KeyActive, models.KeyDeprecated})
	if row.AgentID == nil {
		q = q.Where("agent_id IS NULL")
	} else {
		q = q.Where("agent_id = ?", *row.AgentID)
	}
	var n int64
	if err := q.Count(&n).Error; err != nil {
		return 0, fmt.Errorf("apikeys: count usable keys: %w", err)
	}
	return n, nil
}

func (s *Service) writeAudit(ctx context.Context, tx *gorm.DB, row models.APIKey, action string, actor Actor, reason string) error {
	var app models.App
	if err := tx.Select("id", "organization_id").Where("id = ?", row.AppID).Take(&app).Error; err != nil {
		return fmt.Errorf("apikeys: load app for audit: %w", err)
	}
	agentID := ""
	if row.AgentID != nil {
		agentID = *row.AgentID
	}
	return s.audit.InTx(ctx, tx, models.AuditEvent{
		OrganizationID: app.OrganizationID, AppID: row.AppID, Action: action,
		ActorKind: actor.Kind, ActorID: actor.ID, KeyID: row.KeyID, AgentID: agentID,
		Caller: actor.Caller, Reason: reason, RequestID: requestid.From(ctx),
	})
}

// validUUID guards queries on uuid columns: PostgreSQL rejects a malformed
// uuid with an error, where "no such row" is the honest answer.
func validUUID(s string) bool {
	_, ok := ids.Canonical(s)
	return ok
}
