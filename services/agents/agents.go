// Package agents manages an app's named agents: operator-provisioned
// workload identities with their own keys and audit trail.
package agents

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/latchkey/latchkey/handlers/requestid"
	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/errs"
)

// KeyMinter mints agent keys inside the agent's transaction.
type KeyMinter interface {
	MintTx(ctx context.Context, tx *gorm.DB, app models.App, agentID, label string, actor apikeys.Actor) (apikeys.Minted, error)
}

// Service manages agents.
type Service struct {
	db    *gorm.DB
	keys  KeyMinter
	audit *audit.Log
	now   func() time.Time
}

// New builds the service.
func New(db *gorm.DB, keys KeyMinter, a *audit.Log, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	return &Service{db: db, keys: keys, audit: a, now: now}
}

var agentNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// CreateInput describes a new agent.
type CreateInput struct {
	AppID       string
	Name        string
	DisplayName string
	Description string
	Actor       apikeys.Actor
}

// Created is a new agent with its first key (shown once).
type Created struct {
	Agent models.Agent
	Key   apikeys.Minted
}

// Create provisions an agent and mints its first key.
func (s *Service) Create(ctx context.Context, in CreateInput) (Created, error) {
	var v errs.Validation
	if _, err := uuid.Parse(in.AppID); err != nil {
		v.Add("app", "must be an app id (UUID)")
	}
	in.Name = strings.TrimSpace(in.Name)
	if !agentNameRE.MatchString(in.Name) {
		v.Add("name", "must be 1-63 lower-case letters, digits, dashes or underscores, starting with a letter or digit")
	}
	in.DisplayName = strings.TrimSpace(in.DisplayName)
	if len(in.DisplayName) > 100 {
		v.Add("display-name", "must be at most 100 characters")
	}
	if err := v.Err(); err != nil {
		return Created{}, err
	}
	if in.DisplayName == "" {
		in.DisplayName = in.Name
	}
	db := s.db.WithContext(ctx)
	var app models.App
	if err := db.Where("id = ?", in.AppID).Take(&app).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return Created{}, fmt.Errorf("app: %w", errs.ErrNotFound)
		}
		return Created{}, fmt.Errorf("agents: load app: %w", err)
	}
	now := s.now().UTC()
	ag := models.Agent{ID: uuid.NewString(), AppID: app.ID, Name: in.Name, DisplayName: in.DisplayName,
		Description: in.Description, Status: models.AgentActive, CreatedAt: now, UpdatedAt: now}
	var key apikeys.Minted
	err := db.Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&ag).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return fmt.Errorf("an agent named %q already exists in this app: %w", in.Name, errs.ErrConflict)
			}
			return fmt.Errorf("agents: insert: %w", err)
		}
		if err := s.audit.InTx(ctx, tx, models.AuditEvent{OrganizationID: app.OrganizationID, AppID: app.ID,
			Action: audit.ActionAgentCreate, ActorKind: in.Actor.Kind, ActorID: in.Actor.ID, AgentID: ag.ID,
			Caller: in.Actor.Caller, RequestID: requestid.From(ctx)}); err != nil {
			return err
		}
		var err error
		key, err = s.keys.MintTx(ctx, tx, app, ag.ID, "initial", in.Actor)
		return err
	})
	if err != nil {
		return Created{}, err
	}
	return Created{Agent: ag, Key: key}, nil
}
