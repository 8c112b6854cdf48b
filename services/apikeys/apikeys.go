// Package apikeys mints SDK API keys and manages their lifecycle
// (DESIGN.md §4.1). The API key is returned once; only its signing key is
// stored, sealed by the vault.
package apikeys

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/latchkey/latchkey/handlers/requestid"
	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/vault"
)

// Sealer seals signing keys.
type Sealer interface {
	Seal(ctx context.Context, b vault.Binding, plaintext []byte) ([]byte, error)
}

// Service mints and manages API keys.
type Service struct {
	db    *gorm.DB
	vault Sealer
	audit *audit.Log
	now   func() time.Time
}

// New builds the service.
func New(db *gorm.DB, v Sealer, a *audit.Log, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{db: db, vault: v, audit: a, now: now}
}

// Actor says who asked for a change, for the audit row. Caller is the
// free-form Latchkey-Caller attribution of an SDK request (empty elsewhere);
// it is recorded, never trusted.
type Actor struct {
	Kind   string
	ID     string
	Caller string
}

// MintInput selects the owner of a new key.
type MintInput struct {
	AppID   string
	AgentID string // empty for an app key
	Label   string
	Actor   Actor
}

// Minted is a new key. APIKey is shown once and never stored.
type Minted struct {
	ID        string
	KeyID     string
	AppID     string
	AgentID   string
	Label     string
	CreatedAt time.Time
	APIKey    wire.APIKey
}

// SigningKeyBinding is the vault binding of a key row's signing key.
func SigningKeyBinding(appID, rowID string) vault.Binding {
	return vault.Binding{AppID: appID, Table: "api_keys", RowID: rowID, Column: "signing_key_ciphertext"}
}

// Mint creates a key for an app or one of its agents.
func (s *Service) Mint(ctx context.Context, in MintInput) (Minted, error) {
	if _, err := uuid.Parse(in.AppID); err != nil {
		return Minted{}, errs.Invalid("app", "must be an app id (UUID)")
	}
	if in.AgentID != "" {
		if _, err := uuid.Parse(in.AgentID); err != nil {
			return Minted{}, errs.Invalid("agent", "must be an agent id (UUID)")
		}
	}
	db := s.db.WithContext(ctx)
	var app models.App
	if err := db.Where("id = ?", in.AppID).Take(&app).Error; err != nil {
		return Minted{}, notFound(err, "app")
	}
	if in.AgentID != "" {
		var ag models.Agent
		// Scoped by app: another app's agent is simply not found.
		if err := db.Where("id = ? AND app_id = ?", in.AgentID, in.AppID).Take(&ag).Error; err != nil {
			return Minted{}, notFound(err, "agent")
		}
		if ag.Status != models.AgentActive {
			return Minted{}, errs.Invalid("agent", "agent is disabled")
		}
	}

	var minted Minted
	err := db.Transaction(func(tx *gorm.DB) error {
		var err error
		minted, err = s.MintTx(ctx, tx, app, in.AgentID, in.Label, in.Actor)
		return err
	})
	return minted, err
}

// MintTx mints a key inside the caller's transaction, so a new agent and its
// first key are written together or not at all. The caller has checked that
// agentID (if any) belongs to app.
func (s *Service) MintTx(ctx context.Context, tx *gorm.DB, app models.App, agentID, label string, actor Actor) (Minted, error) {
	kind := wire.KeyKindApp
	if agentID != "" {
		kind = wire.KeyKindAgent
	}
	key, err := wire.GenerateKey(kind, rand.Reader)
	if err != nil {
		return Minted{}, fmt.Errorf("apikeys: generate: %w", err)
	}
	row := models.APIKey{
		ID:     uuid.NewString(),
		KeyID:  key.KeyID(),
		AppID:  app.ID,
		Kind:   string(kind),
		Status: models.KeyActive,
		Label:  label,
	}
	if agentID != "" {
		row.AgentID = &agentID
	}
	// The vault reads the keyring on its own connection; that is safe inside
	// a transaction because the app's keyring exists from app creation on.
	sealed, err := s.vault.Seal(ctx, SigningKeyBinding(app.ID, row.ID), key.SigningKey())
	if err != nil {
		return Minted{}, fmt.Errorf("apikeys: seal: %w", err)
	}
	row.SigningKeyCiphertext = sealed
	now := s.now().UTC()
	row.CreatedAt, row.UpdatedAt = now, now
	if err := tx.WithContext(ctx).Create(&row).Error; err != nil {
		return Minted{}, fmt.Errorf("apikeys: insert: %w", err)
	}
	if err := s.audit.InTx(ctx, tx, models.AuditEvent{
		OrganizationID: app.OrganizationID, AppID: app.ID, Action: audit.ActionKeyMint,
		ActorKind: actor.Kind, ActorID: actor.ID, KeyID: row.KeyID, AgentID: agentID,
		Caller: actor.Caller, RequestID: requestid.From(ctx),
	}); err != nil {
		return Minted{}, err
	}
	return Minted{ID: row.ID, KeyID: row.KeyID, AppID: app.ID, AgentID: agentID, Label: label,
		CreatedAt: now, APIKey: key}, nil
}

func notFound(err error, what string) error {
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("%s: %w", what, errs.ErrNotFound)
	}
	return fmt.Errorf("apikeys: load %s: %w", what, err)
}
