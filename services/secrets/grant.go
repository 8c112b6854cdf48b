package secrets

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/latchkey/latchkey/handlers/requestid"
	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/grants"
	"github.com/latchkey/latchkey/services/identity"
	"github.com/latchkey/latchkey/services/ids"
)

// Principal is a parsed grant principal. Value is the IdP subject of a
// user, the group name of a group, the agent id of an agent and empty for
// the system principal.
type Principal struct {
	Kind  string // models.PrincipalSystem, PrincipalUser, PrincipalGroup or PrincipalAgent
	Value string
}

// String renders the principal in the form ParsePrincipal reads.
func (p Principal) String() string {
	if p.Kind == models.PrincipalSystem {
		return p.Kind
	}
	return p.Kind + ":" + p.Value
}

// ParsePrincipal reads "system", "user:<subject>", "group:<name>" or
// "agent:<agent_id>". Subjects and group names are taken verbatim (IdPs
// compare them exactly).
func ParsePrincipal(s string) (Principal, error) {
	if s == models.PrincipalSystem {
		return Principal{Kind: models.PrincipalSystem}, nil
	}
	kind, value, ok := strings.Cut(s, ":")
	if !ok {
		return Principal{}, errs.Invalid("principal", "must be system, user:<subject>, group:<name> or agent:<agent_id>")
	}
	switch kind {
	case models.PrincipalUser, models.PrincipalGroup:
		what := "subject"
		if kind == models.PrincipalGroup {
			what = "group name"
		}
		switch {
		case value == "":
			return Principal{}, errs.Invalid("principal", "%s: needs a %s", kind, what)
		case len(value) > MaxPrincipalNameLen:
			return Principal{}, errs.Invalid("principal", "%s: must be at most %d characters", kind, MaxPrincipalNameLen)
		case strings.ContainsFunc(value, isControl):
			return Principal{}, errs.Invalid("principal", "%s: must not contain control characters", kind)
		}
		return Principal{Kind: kind, Value: value}, nil
	case models.PrincipalAgent:
		id, ok := ids.Canonical(value)
		if !ok {
			return Principal{}, errs.Invalid("principal", "agent: must be an agent id (UUID)")
		}
		return Principal{Kind: kind, Value: id}, nil
	}
	return Principal{}, errs.Invalid("principal", "must be system, user:<subject>, group:<name> or agent:<agent_id>")
}

// GrantInput binds a managed secret of app AppID to a principal.
type GrantInput struct {
	AppID     string
	SecretID  string
	Principal string // "system" | "user:<subject>" | "group:<name>" | "agent:<agent_id>"
	Actor     apikeys.Actor
}

// Granted is the grant binding a managed secret to a principal. Created is
// false when the principal already held a live grant on the secret, whose
// id is returned instead (granting is idempotent).
type Granted struct {
	GrantID string
	Created bool
}

// Grant binds a managed secret to a principal, with a grant.create audit row
// in the same transaction.
//
//   - Another app's secret and an unknown or malformed secret id are
//     not_found; so is an agent that does not belong to the app.
//   - A principal that already holds a grant on the secret that is not
//     revoked gets that grant back (Created false, no audit row). A revoked
//     grant stays revoked: granting again creates a new grant id.
//   - "user:<subject>" names the end user (app, issuer, subject) where the
//     issuer is the app's IdP issuer, or "" for an app without an IdP. An end
//     user not seen yet is created on the spot (pre-provisioned: source idp
//     with the IdP's issuer, else app_asserted), with its own
//     end_user.create audit row, so operators can provision secrets before a
//     user's first sign-in; the identity service finds the same row on the
//     user's first verified token.
func (s *Service) Grant(ctx context.Context, in GrantInput) (Granted, error) {
	g, err := s.grant(ctx, in)
	if err == nil && g.Created {
		s.changed()
	}
	return g, err
}

func (s *Service) grant(ctx context.Context, in GrantInput) (Granted, error) {
	var v errs.Validation
	if _, err := uuid.Parse(in.AppID); err != nil {
		v.Add("app", "must be an app id (UUID)")
	}
	p, perr := ParsePrincipal(in.Principal)
	if perr != nil {
		addProblems(&v, "principal", perr)
	}
	if err := v.Err(); err != nil {
		return Granted{}, err
	}
	app, err := s.app(ctx, in.AppID)
	if err != nil {
		return Granted{}, err
	}
	var out Granted
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Locks the credential row (PostgreSQL), so concurrent grants of one
		// secret to one principal cannot both insert.
		ms, cred, err := s.load(ctx, tx, app.ID, in.SecretID)
		if err != nil {
			return err
		}
		principalID, err := s.principalID(ctx, tx, app, p, in.Actor)
		if err != nil {
			return err
		}
		provider := grants.SecretProvider(ms.Name)
		var existing []models.Grant
		if err := tx.Where("app_id = ? AND principal_kind = ? AND principal_id = ? AND provider = ? AND credential_id = ? AND status <> ?",
			app.ID, p.Kind, principalID, provider, cred.ID, models.GrantRevoked).
			Order("created_at").Order("id").Limit(1).Find(&existing).Error; err != nil {
			return fmt.Errorf("secrets: find grant: %w", err)
		}
		if len(existing) > 0 {
			out = Granted{GrantID: existing[0].ID}
			return nil
		}
		id, err := ids.New()
		if err != nil {
			return err
		}
		now := s.now().UTC()
		g := models.Grant{ID: id, AppID: app.ID, CredentialID: &cred.ID, PrincipalKind: p.Kind, PrincipalID: principalID,
			Provider: provider, ManagedSecretID: &ms.ID, Status: models.GrantActive, Metadata: "{}",
			CreatedAt: now, UpdatedAt: now}
		if err := tx.Create(&g).Error; err != nil {
			return fmt.Errorf("secrets: insert grant: %w", err)
		}
		ev := models.AuditEvent{OrganizationID: app.OrganizationID, AppID: app.ID,
			Action: grants.ActionGrantCreate, ActorKind: in.Actor.Kind, ActorID: in.Actor.ID,
			Caller: in.Actor.Caller, RequestID: requestid.From(ctx),
			GrantID: g.ID, Provider: provider, PrincipalKind: p.Kind, PrincipalID: principalID,
			Context: audit.EncodeContext(map[string]string{"managed_secret_id": ms.ID})}
		if in.Actor.Kind == audit.ActorKey {
			ev.KeyID = in.Actor.ID
		}
		if err := s.audit.InTx(ctx, tx, ev); err != nil {
			return err
		}
		out = Granted{GrantID: g.ID, Created: true}
		return nil
	})
	if err != nil {
		return Granted{}, err
	}
	return out, nil
}

// principalID turns a parsed principal into the grants.principal_id value:
// "" for system, the group name, the agent id (checked to be the app's), or
// the end user's id (found or pre-provisioned).
func (s *Service) principalID(ctx context.Context, tx *gorm.DB, app models.App, p Principal, actor apikeys.Actor) (string, error) {
	switch p.Kind {
	case models.PrincipalSystem:
		return "", nil
	case models.PrincipalGroup:
		return p.Value, nil
	case models.PrincipalAgent:
		var n int64
		if err := tx.Model(&models.Agent{}).Where("id = ? AND app_id = ?", p.Value, app.ID).Count(&n).Error; err != nil {
			return "", fmt.Errorf("secrets: load agent: %w", err)
		}
		if n == 0 {
			return "", fmt.Errorf("agent: %w", errs.ErrNotFound)
		}
		return p.Value, nil
	case models.PrincipalUser:
		return s.endUser(ctx, tx, app, p.Value, actor)
	}
	return "", fmt.Errorf("secrets: unknown principal kind %q", p.Kind)
}

// endUser finds or pre-provisions the app's end user with subject, under
// the app's IdP issuer when it has one (as identity would create it at the
// user's first call).
func (s *Service) endUser(ctx context.Context, tx *gorm.DB, app models.App, subject string, actor apikeys.Actor) (string, error) {
	var idps []models.IdentityProvider
	if err := tx.Select("id", "issuer").Where("app_id = ?", app.ID).Limit(1).Find(&idps).Error; err != nil {
		return "", fmt.Errorf("secrets: load identity provider: %w", err)
	}
	issuer, source := "", models.EndUserSourceAppAsserted
	if len(idps) > 0 {
		issuer, source = idps[0].Issuer, models.EndUserSourceIdP
	}
	now := s.now().UTC()
	// LastSeenAt stays nil: nobody has signed in as this user yet.
	u, created, err := identity.FindOrCreateTx(ctx, tx, models.EndUser{AppID: app.ID, Issuer: issuer, Subject: subject,
		Source: source, Status: models.EndUserActive, CreatedAt: now, UpdatedAt: now})
	if err != nil {
		return "", fmt.Errorf("secrets: %w", err)
	}
	if created {
		if err := s.audit.InTx(ctx, tx, models.AuditEvent{OrganizationID: app.OrganizationID, AppID: app.ID,
			Action: identity.ActionEndUserCreate, ActorKind: actor.Kind, ActorID: actor.ID,
			PrincipalKind: models.PrincipalUser, PrincipalID: u.ID,
			Context: audit.EncodeContext(map[string]string{"source": source, "issuer": issuer, "reason": "managed secret grant"})}); err != nil {
			return "", err
		}
	}
	return u.ID, nil
}
