package grants

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/ids"
	"github.com/latchkey/latchkey/services/sdkauth"
)

// Page sizes of List.
const (
	DefaultListLimit = 50
	MaxListLimit     = 200
)

// ListInput filters and pages the grants a caller can see.
type ListInput struct {
	Caller   sdkauth.Caller
	EndUser  *EndUser
	Provider string // optional
	Status   string // optional: active, expired, revoked or needs_reauth
	Cursor   string // opaque, from the previous page's NextCursor
	Limit    int    // 0: DefaultListLimit; capped at MaxListLimit
}

// List returns the grants visible to the caller, ordered by id, one page at
// a time. Visibility is resolution's: an app key alone sees every grant of
// its app; with an end user, the user's own and their groups' grants; an
// agent, the grants bound to it and those delegated to it through a live
// delegation (an active delegation of an active user's active grant).
func (s *Service) List(ctx context.Context, in ListInput) (wire.GrantList, error) {
	a, err := actorOf(in.Caller, in.EndUser)
	if err != nil {
		return wire.GrantList{}, err
	}
	if err := a.userAllowed(); err != nil {
		return wire.GrantList{}, err
	}
	switch {
	case len(in.Provider) > maxProviderLen:
		return wire.GrantList{}, invalidRequest("provider is too long")
	case in.Status != "" && !validStatus(in.Status):
		return wire.GrantList{}, invalidRequest("status must be active, expired, revoked or needs_reauth")
	case in.Limit < 0:
		return wire.GrantList{}, invalidRequest("limit must be positive")
	}
	limit := in.Limit
	if limit == 0 {
		limit = DefaultListLimit
	}
	limit = min(limit, MaxListLimit)
	after := ""
	if in.Cursor != "" {
		var ok bool
		if after, ok = decodeCursor(in.Cursor); !ok {
			return wire.GrantList{}, invalidRequest("cursor is not one this server issued")
		}
	}

	q := s.visible(ctx, a)
	if in.Provider != "" {
		q = q.Where("g.provider = ?", in.Provider)
	}
	if in.Status != "" {
		q = q.Where("g.status = ?", in.Status)
	}
	if after != "" {
		q = q.Where("g.id > ?", after)
	}
	var rows []models.Grant
	if err := q.Select("g.*").Order("g.id").Limit(limit + 1).Find(&rows).Error; err != nil {
		return wire.GrantList{}, fmt.Errorf("grants: list: %w", err)
	}
	out := wire.GrantList{Grants: make([]wire.Grant, 0, min(len(rows), limit))}
	if len(rows) > limit {
		rows = rows[:limit]
		out.NextCursor = encodeCursor(rows[limit-1].ID)
	}
	subjects, err := s.subjects(ctx, a.caller.AppID, rows)
	if err != nil {
		return wire.GrantList{}, err
	}
	for _, g := range rows {
		out.Grants = append(out.Grants, ToWire(g, subjects[g.PrincipalID]))
	}
	return out, nil
}

// visible scopes a query over "grants AS g" to what the actor can see. The
// agent branch compares expires_at in SQL: both dialects store UTC times in
// a form that orders correctly, and the clock here is UTC.
func (s *Service) visible(ctx context.Context, a actor) *gorm.DB {
	q := s.db.WithContext(ctx).Table("grants AS g").Where("g.app_id = ?", a.caller.AppID)
	switch a.mode {
	case modeUser:
		if len(a.user.Groups) > 0 {
			return q.Where("((g.principal_kind = ? AND g.principal_id = ?) OR (g.principal_kind = ? AND g.principal_id IN ?))",
				models.PrincipalUser, a.user.ID, models.PrincipalGroup, a.user.Groups)
		}
		return q.Where("g.principal_kind = ? AND g.principal_id = ?", models.PrincipalUser, a.user.ID)
	case modeAgent:
		sub := `SELECT 1 FROM delegations d JOIN end_users u ON u.id = d.end_user_id
			WHERE d.grant_id = g.id AND d.app_id = g.app_id AND d.agent_id = ? AND d.status = ? AND u.status = ?`
		args := []any{models.PrincipalAgent, a.caller.AgentID, models.GrantActive, s.now().UTC(),
			a.caller.AgentID, models.DelegationActive, models.EndUserActive}
		if a.user != nil {
			sub += ` AND d.end_user_id = ?`
			args = append(args, a.user.ID)
		}
		return q.Where(`((g.principal_kind = ? AND g.principal_id = ?) OR
			(g.status = ? AND (g.expires_at IS NULL OR g.expires_at > ?) AND EXISTS (`+sub+`)))`, args...)
	}
	return q
}

// Get returns one grant the caller can see. A malformed id, another app's
// grant and (for an end user) someone else's grant are grant_not_found; an
// agent asking for a grant of its app that it cannot reach gets
// no_delegated_grant, as in resolution.
func (s *Service) Get(ctx context.Context, caller sdkauth.Caller, endUser *EndUser, id string) (wire.Grant, error) {
	a, err := actorOf(caller, endUser)
	if err != nil {
		return wire.Grant{}, err
	}
	if err := a.userAllowed(); err != nil {
		return wire.Grant{}, err
	}
	row, err := s.loadForActor(ctx, a, id)
	if err != nil {
		return wire.Grant{}, err
	}
	if err := reachable(a, &row, s.now()); err != nil {
		return wire.Grant{}, err
	}
	return s.toWire(ctx, row.Grant)
}

// toWire renders one grant, looking up its user's subject when needed.
func (s *Service) toWire(ctx context.Context, g models.Grant) (wire.Grant, error) {
	subjects, err := s.subjects(ctx, g.AppID, []models.Grant{g})
	if err != nil {
		return wire.Grant{}, err
	}
	return ToWire(g, subjects[g.PrincipalID]), nil
}

// subjects maps the end-user ids of the user grants among rows to their
// IdP subjects, in one query.
func (s *Service) subjects(ctx context.Context, appID string, rows []models.Grant) (map[string]string, error) {
	var ids []string
	for _, g := range rows {
		if g.PrincipalKind == models.PrincipalUser {
			ids = append(ids, g.PrincipalID)
		}
	}
	out := map[string]string{}
	if len(ids) == 0 {
		return out, nil
	}
	var users []models.EndUser
	if err := s.db.WithContext(ctx).Select("id", "subject").Where("app_id = ? AND id IN ?", appID, ids).Find(&users).Error; err != nil {
		return nil, fmt.Errorf("grants: load end users: %w", err)
	}
	for _, u := range users {
		out[u.ID] = u.Subject
	}
	return out, nil
}

// ToWire renders a grant as the SDK sees it. subject is the IdP subject of a
// user grant's end user (wire principals name users by subject, not by
// Latchkey's id); it is ignored for other principals. The status is the
// stored one. provider_name is the managed secret's name or the provider
// slug until the provider catalog supplies display names.
func ToWire(g models.Grant, subject string) wire.Grant {
	p := wire.Principal{Kind: wire.PrincipalKind(g.PrincipalKind)}
	switch g.PrincipalKind {
	case models.PrincipalUser:
		p.ID = subject
	case models.PrincipalGroup, models.PrincipalAgent:
		p.ID = g.PrincipalID
	}
	out := wire.Grant{
		GrantID:           g.ID,
		Provider:          g.Provider,
		ProviderName:      providerName(g.Provider),
		AccountIdentifier: g.AccountIdentifier,
		Principal:         p,
		Status:            wire.GrantStatus(g.Status),
		Scopes:            strings.Fields(g.Scopes),
		CreatedAt:         g.CreatedAt.UTC(),
		UpdatedAt:         g.UpdatedAt.UTC(),
		Metadata:          metadataMap(g.Metadata),
	}
	if out.Scopes == nil {
		out.Scopes = []string{}
	}
	if g.ExpiresAt != nil {
		t := g.ExpiresAt.UTC()
		out.ExpiresAt = &t
	}
	return out
}

// metadataMap decodes the stored JSON object; values that are not strings
// are kept as their JSON text, and anything unreadable is dropped rather
// than failing a listing.
func metadataMap(raw string) map[string]string {
	if raw == "" || raw == "{}" {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &m); err != nil || len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		var s string
		if err := json.Unmarshal(v, &s); err == nil {
			out[k] = s
		} else {
			out[k] = string(v)
		}
	}
	return out
}

func validStatus(s string) bool {
	switch s {
	case models.GrantActive, models.GrantExpired, models.GrantRevoked, models.GrantNeedsReauth:
		return true
	}
	return false
}

// Cursors are opaque to clients ("g1." + base64url of the last id) so the
// page key can change later without clients noticing.
const cursorPrefix = "g1."

func encodeCursor(lastID string) string {
	return cursorPrefix + base64.RawURLEncoding.EncodeToString([]byte(lastID))
}

func decodeCursor(c string) (string, bool) {
	rest, ok := strings.CutPrefix(c, cursorPrefix)
	if !ok || len(rest) > 64 {
		return "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return "", false
	}
	return ids.Canonical(string(b))
}
