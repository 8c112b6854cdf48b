package grants

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/ids"
	"github.com/latchkey/latchkey/services/sdkauth"
)

// maxProviderLen bounds a provider selector ("secret:" + a 63-character
// name fits easily); anything longer cannot name a grant.
const maxProviderLen = 200

// ResolveInput selects the grant of one call. Exactly one of GrantID and
// Provider is set; Account narrows Provider.
type ResolveInput struct {
	Caller   sdkauth.Caller
	EndUser  *EndUser // nil when the call carries no end user
	GrantID  string
	Provider string
	Account  string
}

// CredentialMeta describes the credential behind a grant, without secrets.
type CredentialMeta struct {
	ID               string
	Kind             string // models.CredentialOAuth or models.CredentialManagedSecret
	ProviderConfigID string // OAuth credentials
	ManagedSecretID  string // managed-secret credentials
	ExpiresAt        *time.Time
}

// Resolved is the grant a call will use and how the caller reached it.
type Resolved struct {
	Grant      models.Grant
	Credential CredentialMeta
	Via        string // ViaApp, ViaUser, ViaGroup, ViaAgent or ViaDelegation
	// DelegationID and DelegatorID (the delegating end user) are set when
	// Via is ViaDelegation.
	DelegationID string
	DelegatorID  string
}

// grantRow is one grant with what resolution needs from its credential, its
// provider config and, for agents, the delegation that may reach it.
type grantRow struct {
	models.Grant
	CredKind             string
	CredProviderConfigID *string
	CredManagedSecretID  *string
	CredExpiresAt        *time.Time
	ConfigStatus         *string
	Via                  string
	DelegationID         *string
	DelegationStatus     *string
	DelegatorID          *string
	DelegatorStatus      *string
}

const grantColumns = `g.id, g.app_id, g.credential_id, g.principal_kind, g.principal_id, g.provider,
	g.managed_secret_id, g.account_identifier, g.status, g.scopes, g.metadata, g.expires_at,
	g.last_used_at, g.revoked_at, g.created_at, g.updated_at,
	COALESCE(c.kind, '') AS cred_kind, c.provider_config_id AS cred_provider_config_id,
	c.managed_secret_id AS cred_managed_secret_id, c.expires_at AS cred_expires_at,
	pc.status AS config_status`

// The credential join repeats the app condition so a corrupt cross-app
// reference can never hand one app another app's credential. It is a LEFT
// JOIN because a revoked grant outlives its deleted credential, and asking
// for it by id must still answer grant_revoked, not grant_not_found.
const grantJoins = `grants g
	LEFT JOIN credentials c ON c.id = g.credential_id AND c.app_id = g.app_id
	LEFT JOIN provider_configs pc ON pc.id = c.provider_config_id`

// Resolve picks the grant a call uses, following DESIGN.md §4.7 (see
// docs/grants.md for the decisions it leaves open). Every refusal is a
// *errs.CodedError with an SDK code.
func (s *Service) Resolve(ctx context.Context, in ResolveInput) (Resolved, error) {
	a, err := actorOf(in.Caller, in.EndUser)
	if err != nil {
		return Resolved{}, err
	}
	switch {
	case in.GrantID == "" && in.Provider == "":
		return Resolved{}, invalidRequest("one of grant_id and provider is required")
	case in.GrantID != "" && in.Provider != "":
		return Resolved{}, invalidRequest("grant_id and provider are mutually exclusive")
	case in.Account != "" && in.Provider == "":
		return Resolved{}, invalidRequest("account narrows provider; it cannot be used with grant_id")
	case len(in.Provider) > maxProviderLen:
		return Resolved{}, invalidRequest("provider is too long")
	}
	if err := a.userAllowed(); err != nil {
		return Resolved{}, err
	}
	now := s.now()
	if in.GrantID != "" {
		return s.resolveByID(ctx, a, in.GrantID, now)
	}
	return s.resolveByProvider(ctx, a, in.Provider, in.Account, now)
}

// resolveByID resolves an explicit grant_id: one query by primary key.
func (s *Service) resolveByID(ctx context.Context, a actor, grantID string, now time.Time) (Resolved, error) {
	row, err := s.loadForActor(ctx, a, grantID)
	if err != nil {
		return Resolved{}, err
	}
	if err := reachable(a, &row, now); err != nil {
		return Resolved{}, err
	}
	if err := usable(row, now); err != nil {
		return Resolved{}, err
	}
	return row.resolved(), nil
}

// loadForActor reads one grant of the caller's app by id, with the
// caller-agent's delegation of it when the caller acts as an agent. A
// malformed id and another app's grant are both grant_not_found.
func (s *Service) loadForActor(ctx context.Context, a actor, grantID string) (grantRow, error) {
	id, ok := ids.Canonical(grantID)
	if !ok {
		return grantRow{}, grantNotFound("grant not found")
	}
	db := s.db.WithContext(ctx)
	var rows []grantRow
	var err error
	if a.mode == modeAgent {
		err = db.Raw(`SELECT `+grantColumns+`, d.id AS delegation_id, d.status AS delegation_status,
				d.end_user_id AS delegator_id, u.status AS delegator_status
			FROM `+grantJoins+`
			LEFT JOIN delegations d ON d.grant_id = g.id AND d.app_id = g.app_id AND d.agent_id = ?
			LEFT JOIN end_users u ON u.id = d.end_user_id
			WHERE g.id = ? AND g.app_id = ?`, a.caller.AgentID, id, a.caller.AppID).Scan(&rows).Error
	} else {
		err = db.Raw(`SELECT `+grantColumns+` FROM `+grantJoins+` WHERE g.id = ? AND g.app_id = ?`,
			id, a.caller.AppID).Scan(&rows).Error
	}
	if err != nil {
		return grantRow{}, fmt.Errorf("grants: load grant: %w", err)
	}
	if len(rows) == 0 {
		return grantRow{}, grantNotFound("grant not found")
	}
	return rows[0], nil
}

// reachable decides whether the actor may use (or see) the loaded grant at
// all, and records how in row.Via. Its status is checked later by usable.
func reachable(a actor, row *grantRow, now time.Time) error {
	g := row.Grant
	switch a.mode {
	case modeApp:
		row.Via = ViaApp
		return nil
	case modeUser:
		switch {
		case g.PrincipalKind == models.PrincipalUser && g.PrincipalID == a.user.ID:
			row.Via = ViaUser
			return nil
		case g.PrincipalKind == models.PrincipalGroup && slices.Contains(a.user.Groups, g.PrincipalID):
			row.Via = ViaGroup
			return nil
		}
		// Another user's, a system or an agent grant: to this user it does
		// not exist.
		return grantNotFound("grant not found for this end user")
	}
	if g.PrincipalKind == models.PrincipalAgent && g.PrincipalID == a.caller.AgentID {
		row.Via = ViaAgent
		return nil
	}
	if row.delegationLive(a, now) {
		row.Via = ViaDelegation
		return nil
	}
	return noDelegatedGrant("the agent has no binding or active delegation for this grant")
}

// delegationLive is the delegated half of an agent's reachable set: the
// delegation is active, the delegating user is active (and is the call's
// end user when one is given), and the source grant itself is usable. An
// agent is told only that it has no path, never why the user's grant is
// unusable: that is the user's business, shown in their wallet.
func (r grantRow) delegationLive(a actor, now time.Time) bool {
	if r.DelegationID == nil || deref(r.DelegationStatus) != models.DelegationActive ||
		deref(r.DelegatorStatus) != models.EndUserActive {
		return false
	}
	if a.user != nil && deref(r.DelegatorID) != a.user.ID {
		return false
	}
	return grantLive(r.Grant, now)
}

// grantLive reports whether a grant is active and not past its expiry.
func grantLive(g models.Grant, now time.Time) bool {
	return g.Status == models.GrantActive && (g.ExpiresAt == nil || g.ExpiresAt.After(now))
}

// usable maps a reachable grant that cannot be used to its SDK code.
func usable(row grantRow, now time.Time) error {
	g := row.Grant
	details := map[string]any{"grant_id": g.ID}
	switch g.Status {
	case models.GrantActive:
		if g.ExpiresAt != nil && !g.ExpiresAt.After(now) {
			return &errs.CodedError{Code: wire.CodeGrantExpired, Message: "the grant has expired", Details: details}
		}
	case models.GrantRevoked:
		return &errs.CodedError{Code: wire.CodeGrantRevoked, Message: "the grant has been revoked", Details: details}
	case models.GrantExpired:
		return &errs.CodedError{Code: wire.CodeGrantExpired, Message: "the grant has expired", Details: details}
	case models.GrantNeedsReauth:
		return &errs.CodedError{Code: wire.CodeReauthRequired, Message: "the end user must reconnect this account", Details: details}
	default:
		return fmt.Errorf("grants: grant %s has unknown status %q", g.ID, g.Status)
	}
	// An operator who disabled the app's provider config has switched the
	// provider off for every grant on it. A "broken" config (the provider
	// rejected our client) only stops refresh; unexpired tokens still work.
	if row.CredKind == models.CredentialOAuth && deref(row.ConfigStatus) == models.ProviderConfigDisabled {
		return errs.Coded(wire.CodeProviderNotConfigured, "the app has disabled provider %s", g.Provider)
	}
	return nil
}

// resolveByProvider resolves provider (+ account) among the grants the
// actor reaches, in one query.
func (s *Service) resolveByProvider(ctx context.Context, a actor, provider, account string, now time.Time) (Resolved, error) {
	var rows []grantRow
	var err error
	switch a.mode {
	case modeApp:
		// System grants are reachable only by explicit grant_id, and without
		// an end user or agent there is nobody else's grant to look up.
	case modeUser:
		rows, err = s.userCandidates(ctx, a, provider)
	case modeAgent:
		rows, err = s.agentCandidates(ctx, a, provider, now)
	}
	if err != nil {
		return Resolved{}, err
	}
	row, err := choose(rows, account, now)
	if err != nil {
		return Resolved{}, err
	}
	if row == nil {
		return Resolved{}, s.nothingFor(ctx, a, provider, account)
	}
	if err := usable(*row, now); err != nil {
		return Resolved{}, err
	}
	return row.resolved(), nil
}

// candidateStatuses are the statuses a provider lookup considers. Revoked
// grants are gone as far as lookups are concerned; expired and needs_reauth
// ones are read so the caller hears why nothing is usable.
var candidateStatuses = []string{models.GrantActive, models.GrantExpired, models.GrantNeedsReauth}

// userCandidates reads the user's own grants and their groups' grants for
// provider. Two UNION ALL branches rather than one OR, so each is an
// equality prefix of grants_resolution_idx (app, kind, principal, provider,
// status) on both dialects; SQLite would otherwise use only the app prefix.
func (s *Service) userCandidates(ctx context.Context, a actor, provider string) ([]grantRow, error) {
	q := `SELECT ` + grantColumns + `, 'user' AS via
		FROM ` + grantJoins + `
		WHERE g.app_id = ? AND g.principal_kind = 'user' AND g.principal_id = ?
			AND g.provider = ? AND g.status IN ?`
	args := []any{a.caller.AppID, a.user.ID, provider, candidateStatuses}
	if len(a.user.Groups) > 0 {
		q += `
		UNION ALL
		SELECT ` + grantColumns + `, 'group' AS via
		FROM ` + grantJoins + `
		WHERE g.app_id = ? AND g.principal_kind = 'group' AND g.principal_id IN ?
			AND g.provider = ? AND g.status IN ?`
		args = append(args, a.caller.AppID, a.user.Groups, provider, candidateStatuses)
	}
	var rows []grantRow
	if err := s.db.WithContext(ctx).Raw(q, args...).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("grants: load user grants: %w", err)
	}
	return rows, nil
}

// agentCandidates reads the grants bound to the agent and the live grants
// delegated to it for provider, as one UNION ALL.
func (s *Service) agentCandidates(ctx context.Context, a actor, provider string, now time.Time) ([]grantRow, error) {
	q := `SELECT ` + grantColumns + `, 'agent' AS via, NULL AS delegation_id, NULL AS delegator_id
		FROM ` + grantJoins + `
		WHERE g.app_id = ? AND g.principal_kind = 'agent' AND g.principal_id = ?
			AND g.provider = ? AND g.status IN ?
		UNION ALL
		SELECT ` + grantColumns + `, 'delegation' AS via, d.id AS delegation_id, d.end_user_id AS delegator_id
		FROM delegations d
			JOIN end_users u ON u.id = d.end_user_id AND u.app_id = d.app_id
			JOIN grants g ON g.id = d.grant_id AND g.app_id = d.app_id
			JOIN credentials c ON c.id = g.credential_id AND c.app_id = g.app_id
			LEFT JOIN provider_configs pc ON pc.id = c.provider_config_id
		WHERE d.app_id = ? AND d.agent_id = ? AND d.status = 'active' AND u.status = 'active'
			AND g.provider = ? AND g.status = 'active'`
	args := []any{a.caller.AppID, a.caller.AgentID, provider, candidateStatuses,
		a.caller.AppID, a.caller.AgentID, provider}
	if a.user != nil {
		q += ` AND d.end_user_id = ?`
		args = append(args, a.user.ID)
	}
	var rows []grantRow
	if err := s.db.WithContext(ctx).Raw(q, args...).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("grants: load agent grants: %w", err)
	}
	// A delegated grant past its expiry is no path at all (see
	// delegationLive); SQL cannot compare times the same way on both
	// dialects' stored forms cheaply, and the set is small.
	return slices.DeleteFunc(rows, func(r grantRow) bool {
		return r.Via == ViaDelegation && !grantLive(r.Grant, now)
	}), nil
}

// choose applies the ambiguity rules to the candidates of a provider
// lookup. It returns nil, nil when nothing matches.
//
//   - account, when given, keeps the candidates with that account identifier
//     (case-insensitively: providers treat logins and emails so).
//   - Live candidates (active and unexpired, or needs_reauth) compete;
//     expired ones only explain an empty result (grant_expired).
//   - Candidates sharing one credential are one choice: the same secret
//     reached by several paths (own grant and group grant of one managed
//     secret). The usable, most specific path wins: own or bound before group
//     or delegated, then the oldest grant.
//   - More than one credential left is ambiguous_grant, listing the account
//     identifiers sorted and deduplicated.
func choose(rows []grantRow, account string, now time.Time) (*grantRow, error) {
	if account != "" {
		rows = slices.DeleteFunc(rows, func(r grantRow) bool { return !strings.EqualFold(r.AccountIdentifier, account) })
	}
	var live, dead []grantRow
	for _, r := range rows {
		if grantLive(r.Grant, now) || r.Status == models.GrantNeedsReauth {
			live = append(live, r)
		} else {
			dead = append(dead, r)
		}
	}
	if len(live) == 0 {
		if len(dead) == 0 {
			return nil, nil
		}
		newest := slices.MaxFunc(dead, func(x, y grantRow) int { return x.CreatedAt.Compare(y.CreatedAt) })
		return &newest, nil // usable reports it as grant_expired
	}
	best := map[string]grantRow{}
	for _, r := range live {
		if cur, ok := best[deref(r.CredentialID)]; !ok || better(r, cur, now) {
			best[deref(r.CredentialID)] = r
		}
	}
	if len(best) > 1 {
		accounts := make([]string, 0, len(best))
		for _, r := range best {
			accounts = append(accounts, r.AccountIdentifier)
		}
		slices.Sort(accounts)
		accounts = slices.Compact(accounts)
		return nil, &errs.CodedError{
			Code:    wire.CodeAmbiguousGrant,
			Message: "several grants match; pass account (or grant_id) to choose one",
			Details: map[string]any{wire.DetailAccountIdentifiers: accounts},
		}
	}
	for _, r := range best {
		return &r, nil
	}
	return nil, nil
}

// better orders two paths to one credential.
func better(x, y grantRow, now time.Time) bool {
	if lx, ly := grantLive(x.Grant, now), grantLive(y.Grant, now); lx != ly {
		return lx
	}
	if sx, sy := specificity(x.Via), specificity(y.Via); sx != sy {
		return sx < sy
	}
	if c := x.CreatedAt.Compare(y.CreatedAt); c != 0 {
		return c < 0
	}
	return cmp.Less(x.ID, y.ID)
}

func specificity(via string) int {
	if via == ViaUser || via == ViaAgent {
		return 0
	}
	return 1
}

// nothingFor explains an empty provider lookup: provider_not_configured when
// the app has no such provider (or managed secret) at all, otherwise
// no_delegated_grant for agents (the remedy is a Connect consent naming the
// agent) and grant_not_found for everyone else. This runs off the hot path.
func (s *Service) nothingFor(ctx context.Context, a actor, provider, account string) error {
	db := s.db.WithContext(ctx)
	var n int64
	var err error
	if name, ok := strings.CutPrefix(provider, SecretProviderPrefix); ok {
		err = db.Model(&models.ManagedSecret{}).Where("app_id = ? AND name = ?", a.caller.AppID, name).Count(&n).Error
	} else {
		err = db.Model(&models.ProviderConfig{}).
			Where("app_id = ? AND provider = ? AND status <> ?", a.caller.AppID, provider, models.ProviderConfigDisabled).
			Count(&n).Error
	}
	if err != nil {
		return fmt.Errorf("grants: check provider: %w", err)
	}
	if n == 0 {
		return errs.Coded(wire.CodeProviderNotConfigured, "provider %q is not configured for this app", provider)
	}
	what := "provider " + provider
	if account != "" {
		what += " and account " + account
	}
	switch a.mode {
	case modeAgent:
		return noDelegatedGrant("the agent has no binding or active delegation for %s", what)
	case modeApp:
		return grantNotFound("no grant for %s: without an end user, select a system grant by grant_id", what)
	}
	return grantNotFound("no grant for %s", what)
}

func (r grantRow) resolved() Resolved {
	out := Resolved{
		Grant: r.Grant,
		Credential: CredentialMeta{
			ID:               deref(r.CredentialID),
			Kind:             r.CredKind,
			ProviderConfigID: deref(r.CredProviderConfigID),
			ManagedSecretID:  deref(r.CredManagedSecretID),
			ExpiresAt:        r.CredExpiresAt,
		},
		Via: r.Via,
	}
	if r.Via == ViaDelegation {
		out.DelegationID, out.DelegatorID = deref(r.DelegationID), deref(r.DelegatorID)
	}
	return out
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
