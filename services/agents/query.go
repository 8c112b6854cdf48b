package agents

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/ids"
)

// Page sizes for List.
const (
	DefaultPageSize = 50
	MaxPageSize     = 200
)

// Get returns one agent of the app. An agent of another app, or an id that
// is not a UUID, is reported as not found (DESIGN.md §3.5).
func (s *Service) Get(ctx context.Context, appID, agentID string) (models.Agent, error) {
	if !validUUID(appID) || !validUUID(agentID) {
		return models.Agent{}, fmt.Errorf("agent: %w", errs.ErrNotFound)
	}
	var ag models.Agent
	err := s.db.WithContext(ctx).Where("id = ? AND app_id = ?", agentID, appID).Take(&ag).Error
	if err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return models.Agent{}, fmt.Errorf("agent: %w", errs.ErrNotFound)
		}
		return models.Agent{}, fmt.Errorf("agents: load: %w", err)
	}
	return ag, nil
}

// ListInput selects a page of an app's agents. Cursor is the NextCursor of
// the previous page, empty for the first; Limit 0 means DefaultPageSize.
type ListInput struct {
	AppID  string
	Cursor string
	Limit  int
}

// Page is one page of agents, ordered by name. NextCursor is empty on the
// last page.
type Page struct {
	Agents     []models.Agent
	NextCursor string
}

// List returns a page of the app's agents ordered by name. Names are unique
// per app and never change, so "name greater than the last one seen" is a
// stable cursor: agents created or deleted between pages neither repeat nor
// shift the others. The cursor is opaque to clients (base64url of the name).
func (s *Service) List(ctx context.Context, in ListInput) (Page, error) {
	var v errs.Validation
	if in.Limit < 0 || in.Limit > MaxPageSize {
		v.Add("limit", "must be between 1 and %d", MaxPageSize)
	}
	after, ok := decodeCursor(in.Cursor)
	if !ok {
		v.Add("cursor", "is not a cursor this server issued")
	}
	if err := v.Err(); err != nil {
		return Page{}, err
	}
	if !validUUID(in.AppID) {
		return Page{}, nil
	}
	limit := in.Limit
	if limit == 0 {
		limit = DefaultPageSize
	}
	q := s.db.WithContext(ctx).Where("app_id = ?", in.AppID)
	if after != "" {
		q = q.Where("name > ?", after)
	}
	var rows []models.Agent
	// One extra row tells whether another page exists without a count.
	if err := q.Order("name").Limit(limit + 1).Find(&rows).Error; err != nil {
		return Page{}, fmt.Errorf("agents: list: %w", err)
	}
	page := Page{Agents: rows}
	if len(rows) > limit {
		page.Agents = rows[:limit]
		page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(rows[limit-1].Name))
	}
	return page, nil
}

func decodeCursor(c string) (string, bool) {
	if c == "" {
		return "", true
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) == 0 || !utf8.Valid(b) || !agentNameRE.Match(b) {
		return "", false
	}
	return string(b), true
}

// validUUID guards queries on uuid columns: PostgreSQL answers a malformed
// uuid with an error, where "no such agent" is the honest answer.
func validUUID(s string) bool {
	_, ok := ids.Canonical(s)
	return ok
}
