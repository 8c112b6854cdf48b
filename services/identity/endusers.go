package identity

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/ids"
)

// profile is what a verified token says about its user.
type profile struct {
	subject, email, name string
	groups               []string // sorted, unique
}

// hash fingerprints everything that may need writing, so an unchanged
// token on the hot path is recognised without touching the database.
func (p profile) hash() [32]byte {
	h := sha256.New()
	for _, s := range append([]string{p.subject, p.email, p.name}, p.groups...) {
		// Length-prefixed so ("ab","c") and ("a","bc") differ.
		fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

type seenEntry struct {
	user EndUser
	hash [32]byte
	at   time.Time
}

func seenKey(issuer, subject string) string { return issuer + "\x00" + subject }

func (s *Service) seenGet(appID, issuer string, p profile, h [32]byte) (EndUser, bool) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.seen[appID][seenKey(issuer, p.subject)]
	if !ok || e.hash != h || now.Sub(e.at) >= s.seenTTL || now.Before(e.at) {
		return EndUser{}, false
	}
	u := e.user
	u.Groups = slices.Clone(u.Groups) // callers may not alter the cached copy
	return u, true
}

func (s *Service) seenPut(u EndUser, h [32]byte) {
	if s.maxSeen <= 0 || s.seenTTL <= 0 {
		return
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seenCount >= s.maxSeen {
		// Sweep expired entries; if the cache is full of live ones, start
		// over. A miss only costs the reads it was saving.
		for app, m := range s.seen {
			for k, e := range m {
				if now.Sub(e.at) >= s.seenTTL {
					delete(m, k)
					s.seenCount--
				}
			}
			if len(m) == 0 {
				delete(s.seen, app)
			}
		}
		if s.seenCount >= s.maxSeen {
			s.seen = map[string]map[string]seenEntry{}
			s.seenCount = 0
		}
	}
	m := s.seen[u.AppID]
	if m == nil {
		m = map[string]seenEntry{}
		s.seen[u.AppID] = m
	}
	k := seenKey(u.Issuer, u.Subject)
	if _, ok := m[k]; !ok {
		s.seenCount++
	}
	u.Groups = slices.Clone(u.Groups)
	m[k] = seenEntry{user: u, hash: h, at: now}
}

// provision returns the end user a verified token names, creating or
// updating the row and its groups only when something changed.
func (s *Service) provision(ctx context.Context, cfg *idpConfig, p profile) (EndUser, error) {
	h := p.hash()
	if u, ok := s.seenGet(cfg.AppID, cfg.Issuer, p, h); ok {
		return u, nil
	}
	db := s.db.WithContext(ctx)
	now := s.now().UTC()

	// Read first, outside any transaction: the common case after the seen
	// cache expires is that nothing changed, and then nothing is written.
	var u models.EndUser
	err := db.Where("app_id = ? AND issuer = ? AND subject = ?", cfg.AppID, cfg.Issuer, p.subject).Take(&u).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
	case err != nil:
		return EndUser{}, fmt.Errorf("identity: load end user: %w", err)
	default:
		var have []string
		if err := db.Model(&models.EndUserGroup{}).Where("end_user_id = ?", u.ID).Order("group_name").Pluck("group_name", &have).Error; err != nil {
			return EndUser{}, fmt.Errorf("identity: load groups: %w", err)
		}
		add, remove := diffGroups(have, p.groups)
		if len(add) == 0 && len(remove) == 0 && !profileChanged(u, p) && !s.lastSeenStale(u, now) {
			out := endUserFromModel(u, p.groups)
			s.seenPut(out, h)
			return out, nil
		}
	}

	var out EndUser
	err = db.Transaction(func(tx *gorm.DB) error {
		var err error
		out, err = s.upsertTx(ctx, tx, cfg.OrganizationID, models.EndUser{
			AppID: cfg.AppID, Issuer: cfg.Issuer, Subject: p.subject, Source: models.EndUserSourceIdP,
			Email: p.email, DisplayName: p.name,
		}, now)
		if err != nil {
			return err
		}
		return s.syncGroupsTx(ctx, tx, cfg.OrganizationID, out.ID, cfg.AppID, p.groups, now)
	})
	if err != nil {
		return EndUser{}, err
	}
	out.Groups = p.groups
	s.seenPut(out, h)
	return out, nil
}

func (s *Service) lastSeenStale(u models.EndUser, now time.Time) bool {
	return u.LastSeenAt == nil || now.Sub(*u.LastSeenAt) >= s.lastSeenEvery
}

// profileChanged reports whether the token brings a new email or name. A
// claim the token lacks keeps the stored value: access tokens often carry
// no email, and that must not erase the one an ID token gave.
func profileChanged(u models.EndUser, p profile) bool {
	return (p.email != "" && p.email != u.Email) || (p.name != "" && p.name != u.DisplayName)
}

func endUserFromModel(u models.EndUser, groups []string) EndUser {
	return EndUser{ID: u.ID, AppID: u.AppID, Issuer: u.Issuer, Subject: u.Subject, Source: u.Source,
		Email: u.Email, DisplayName: u.DisplayName, Groups: groups, Status: u.Status}
}

// FindOrCreateTx returns the end user (want.AppID, want.Issuer,
// want.Subject), inserting want (with a fresh id) when there is none, and
// reports whether this call created it. Concurrent first calls for one
// user end with the same row: the insert does nothing on conflict and the
// row is read back. It writes no audit row; the caller knows who acted.
func FindOrCreateTx(ctx context.Context, tx *gorm.DB, want models.EndUser) (models.EndUser, bool, error) {
	tx = tx.WithContext(ctx)
	key := func() *gorm.DB {
		return tx.Where("app_id = ? AND issuer = ? AND subject = ?", want.AppID, want.Issuer, want.Subject)
	}
	// Read into fresh values: GORM would add a non-zero primary key to the
	// WHERE clause.
	var found []models.EndUser
	if err := key().Limit(1).Find(&found).Error; err != nil {
		return models.EndUser{}, false, fmt.Errorf("identity: load end user: %w", err)
	}
	if len(found) > 0 {
		return found[0], false, nil
	}
	id, err := ids.New()
	if err != nil {
		return models.EndUser{}, false, err
	}
	u := want
	u.ID = id
	res := tx.Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "app_id"}, {Name: "issuer"}, {Name: "subject"}},
		DoNothing: true,
	}).Create(&u)
	if res.Error != nil {
		return models.EndUser{}, false, fmt.Errorf("identity: insert end user: %w", res.Error)
	}
	if res.RowsAffected == 1 {
		return u, true, nil
	}
	if err := key().Limit(1).Find(&found).Error; err != nil || len(found) == 0 {
		return models.EndUser{}, false, fmt.Errorf("identity: reload end user: %w", errors.Join(err, errs.ErrConflict))
	}
	return found[0], false, nil
}

// upsertTx creates the end user (app, issuer, subject) or refreshes its
// profile and last_seen_at.
func (s *Service) upsertTx(ctx context.Context, tx *gorm.DB, orgID string, want models.EndUser, now time.Time) (EndUser, error) {
	tx = tx.WithContext(ctx)
	u, created, err := FindOrCreateTx(ctx, tx, models.EndUser{AppID: want.AppID, Issuer: want.Issuer, Subject: want.Subject,
		Source: want.Source, Email: want.Email, DisplayName: want.DisplayName, Status: models.EndUserActive,
		LastSeenAt: &now, CreatedAt: now, UpdatedAt: now})
	if err != nil {
		return EndUser{}, err
	}
	if created {
		ev := models.AuditEvent{OrganizationID: orgID, AppID: u.AppID, Action: ActionEndUserCreate,
			PrincipalKind: "user", PrincipalID: u.ID,
			Context: audit.EncodeContext(map[string]string{"source": u.Source, "issuer": u.Issuer})}
		ev.ActorKind, ev.ActorID = actorFor(u)
		if err := s.audit.InTx(ctx, tx, ev); err != nil {
			return EndUser{}, err
		}
		return endUserFromModel(u, nil), nil
	}
	updates := map[string]any{}
	if want.Email != "" && want.Email != u.Email {
		updates["email"], u.Email = want.Email, want.Email
	}
	if want.DisplayName != "" && want.DisplayName != u.DisplayName {
		updates["display_name"], u.DisplayName = want.DisplayName, want.DisplayName
	}
	profileUpdated := len(updates) > 0
	if profileUpdated || s.lastSeenStale(u, now) {
		updates["last_seen_at"], u.LastSeenAt = now, &now
		if profileUpdated {
			updates["updated_at"], u.UpdatedAt = now, now
		}
		if err := tx.Model(&models.EndUser{}).Where("id = ?", u.ID).Updates(updates).Error; err != nil {
			return EndUser{}, fmt.Errorf("identity: update end user: %w", err)
		}
	}
	if profileUpdated {
		kind, id := actorFor(u)
		if err := s.audit.InTx(ctx, tx, models.AuditEvent{OrganizationID: orgID, AppID: u.AppID,
			Action: ActionEndUserProfile, ActorKind: kind, ActorID: id,
			PrincipalKind: "user", PrincipalID: u.ID}); err != nil {
			return EndUser{}, err
		}
	}
	return endUserFromModel(u, nil), nil
}

// actorFor attributes an end user's own changes: the user, when a verified
// token carried them; the app's key, when the app asserted them.
func actorFor(u models.EndUser) (kind, id string) {
	if u.Source == models.EndUserSourceIdP {
		return audit.ActorEndUser, u.ID
	}
	return audit.ActorKey, ""
}

// syncGroupsTx makes the user's stored groups exactly want, auditing the
// change: group membership decides which group grants the user reaches.
func (s *Service) syncGroupsTx(ctx context.Context, tx *gorm.DB, orgID, userID, appID string, want []string, now time.Time) error {
	tx = tx.WithContext(ctx)
	var have []string
	if err := tx.Model(&models.EndUserGroup{}).Where("end_user_id = ?", userID).Order("group_name").Pluck("group_name", &have).Error; err != nil {
		return fmt.Errorf("identity: load groups: %w", err)
	}
	add, remove := diffGroups(have, want)
	if len(remove) > 0 {
		if err := tx.Where("end_user_id = ? AND group_name IN ?", userID, remove).Delete(&models.EndUserGroup{}).Error; err != nil {
			return fmt.Errorf("identity: remove groups: %w", err)
		}
	}
	if len(add) > 0 {
		rows := make([]models.EndUserGroup, 0, len(add))
		for _, g := range add {
			rows = append(rows, models.EndUserGroup{ID: uuid.NewString(), AppID: appID, EndUserID: userID, GroupName: g, CreatedAt: now})
		}
		if err := tx.Clauses(clause.OnConflict{
			Columns: []clause.Column{{Name: "end_user_id"}, {Name: "group_name"}}, DoNothing: true,
		}).Create(&rows).Error; err != nil {
			return fmt.Errorf("identity: add groups: %w", err)
		}
	}
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	return s.audit.InTx(ctx, tx, models.AuditEvent{OrganizationID: orgID, AppID: appID, Action: ActionEndUserGroups,
		ActorKind: audit.ActorEndUser, ActorID: userID, PrincipalKind: "user", PrincipalID: userID,
		Context: audit.EncodeContext(map[string]string{
			"added": strings.Join(add, ","), "removed": strings.Join(remove, ","),
		})})
}

// diffGroups returns what to add to have and remove from it to get want.
func diffGroups(have, want []string) (add, remove []string) {
	h := make(map[string]bool, len(have))
	for _, g := range have {
		h[g] = true
	}
	w := make(map[string]bool, len(want))
	for _, g := range want {
		w[g] = true
		if !h[g] {
			add = append(add, g)
		}
	}
	for _, g := range have {
		if !w[g] {
			remove = append(remove, g)
		}
	}
	return add, remove
}

// AssertEndUser records an end user the app vouches for itself, for apps
// without an identity provider (DESIGN.md §4.6: the Connect session's
// end_user). The user is keyed by (app, "", subject) and never collides
// with an IdP-verified user of the same subject. An app that has an IdP must
// identify its users with a token instead: asserting is refused.
func (s *Service) AssertEndUser(ctx context.Context, appID, subject, email, displayName string) (EndUser, error) {
	subject = strings.TrimSpace(subject)
	email = strings.TrimSpace(email)
	displayName = strings.TrimSpace(displayName)
	var v errs.Validation
	if _, err := uuid.Parse(appID); err != nil {
		v.Add("app", "must be an app id (UUID)")
	}
	switch {
	case subject == "":
		v.Add("end_user.id", "is required")
	case len(subject) > MaxSubjectLen:
		v.Add("end_user.id", "must be at most %d characters", MaxSubjectLen)
	}
	if email != "" && (len(email) > maxEmailLen || !strings.Contains(email, "@") || strings.ContainsAny(email, " \t\r\n<>")) {
		v.Add("end_user.email", "must be an email address")
	}
	if len(displayName) > maxDisplayLen {
		v.Add("end_user.display_name", "must be at most %d characters", maxDisplayLen)
	}
	if err := v.Err(); err != nil {
		return EndUser{}, err
	}
	db := s.db.WithContext(ctx)
	var app models.App
	if err := db.Where("id = ?", appID).Take(&app).Error; err != nil {
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return EndUser{}, fmt.Errorf("app: %w", errs.ErrNotFound)
		}
		return EndUser{}, fmt.Errorf("identity: load app: %w", err)
	}
	// Read uncached: this is a Connect-session call, not the hot path, and an
	// IdP set a moment ago on another replica must already count.
	var idp models.IdentityProvider
	found, err := s.loadRow(ctx, db, appID, &idp)
	if err != nil {
		return EndUser{}, err
	}
	if found {
		return EndUser{}, errs.Coded(wire.CodeInvalidRequest,
			"this app has an identity provider: identify the end user with Latchkey-User-Token, not end_user")
	}
	var out EndUser
	err = db.Transaction(func(tx *gorm.DB) error {
		var err error
		out, err = s.upsertTx(ctx, tx, app.OrganizationID, models.EndUser{AppID: appID, Subject: subject,
			Source: models.EndUserSourceAppAsserted, Email: email, DisplayName: displayName}, s.now().UTC())
		return err
	})
	if err != nil {
		return EndUser{}, err
	}
	return out, nil
}
