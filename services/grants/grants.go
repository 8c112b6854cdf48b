// Package grants decides which grant an SDK call uses (DESIGN.md §4.7),
// lists, shows and revokes grants and delegations, and opens the credential
// behind a resolved grant for the proxy and retrieve mode.
//
// Resolution runs on every proxied call, so it reads with one query shaped
// for grants_resolution_idx (app, principal kind, principal id, provider,
// status) and decides in memory; nothing here writes on the hot path.
package grants

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/ids"
	"github.com/latchkey/latchkey/services/sdkauth"
	"github.com/latchkey/latchkey/services/vault"
)

// Audit actions written for grants and delegations. They live here because
// services/audit is owned elsewhere; the strings are the contract.
const (
	ActionGrantCreate      = "grant.create"
	ActionGrantRevoke      = "grant.revoke"
	ActionDelegationRevoke = "delegation.revoke"
)

// SecretProviderPrefix marks the provider of a managed-secret grant:
// "secret:<name>", so `provider: "secret:stripe"` selects it like any other
// provider.
const SecretProviderPrefix = "secret:"

// SecretProvider is the provider slug of the managed secret named name.
func SecretProvider(name string) string { return SecretProviderPrefix + name }

// AccessTokenBinding is the vault binding of a credential's access token,
// which is also where a managed secret's value is sealed.
func AccessTokenBinding(appID, credentialID string) vault.Binding {
	return vault.Binding{AppID: appID, Table: "credentials", RowID: credentialID, Column: "access_token_ciphertext"}
}

// RefreshTokenBinding is the vault binding of an OAuth credential's refresh
// token.
func RefreshTokenBinding(appID, credentialID string) vault.Binding {
	return vault.Binding{AppID: appID, Table: "credentials", RowID: credentialID, Column: "refresh_token_ciphertext"}
}

// Opener opens sealed values; *vault.Vault implements it.
type Opener interface {
	Open(ctx context.Context, b vault.Binding, ciphertext []byte) ([]byte, error)
}

// Service resolves, lists and revokes grants.
type Service struct {
	db    *gorm.DB
	vault Opener
	audit *audit.Log
	now   func() time.Time
	// changed is called after every committed change of who may use what,
	// so caches of resolved grants (services/proxy) drop their entries.
	changed func()
	// tokens keeps OAuth access tokens fresh and revokes them at the
	// provider; nil leaves OAuth credentials as stored (tests of resolution).
	tokens Tokens
	logger *slog.Logger
}

// WithLogger receives what cannot be returned to a caller (a provider-side
// revocation that failed after the grant itself was revoked).
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.logger = l } }

// Tokens is the OAuth token lifecycle (services/tokens), as grants uses it.
// Its own Token type keeps grants free of an import cycle (tokens needs
// oauth, which needs grants); the server adapts one to the other.
type Tokens interface {
	AccessToken(ctx context.Context, appID, credentialID string) (Token, error)
	ForceAfter(ctx context.Context, appID, credentialID string, seenVersion int64) (Token, error)
	RevokeCredential(ctx context.Context, appID, credentialID string) error
}

// Token is a current OAuth access token. Never log Value.
type Token struct {
	Value     string
	Type      string
	ExpiresAt *time.Time
	Version   int64
}

// WithTokens refreshes OAuth access tokens on use and revokes them at the
// provider when their last grant goes.
func WithTokens(t Tokens) Option { return func(s *Service) { s.tokens = t } }

// Option tunes the service.
type Option func(*Service)

// WithOnChange registers fn to run after every committed change.
func WithOnChange(fn func()) Option { return func(s *Service) { s.changed = fn } }

// New builds the service. now nil means time.Now.
func New(db *gorm.DB, v Opener, a *audit.Log, now func() time.Time, opts ...Option) *Service {
	if now == nil {
		now = time.Now
	}
	s := &Service{db: db, vault: v, audit: a, now: now, changed: func() {}, logger: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(s)
	}
	return s
}

// EndUser is the end user of a call, already verified by the identity
// service (or asserted by an app without an IdP). ID is end_users.id, which
// user grants name as their principal; Groups are the group names whose
// group grants the user reaches.
type EndUser struct {
	ID      string
	AppID   string
	Subject string
	Groups  []string
	Status  string
}

// Ways a caller reaches a grant, reported in Resolved.Via for audit and
// policy.
const (
	ViaApp        = "app"        // app key and an explicit grant_id
	ViaUser       = "user"       // the end user's own grant
	ViaGroup      = "group"      // a grant of one of the end user's groups
	ViaAgent      = "agent"      // a grant bound to the agent
	ViaDelegation = "delegation" // a user's grant delegated to the agent
)

// mode is who a call acts as; it decides which grants are reachable.
type mode int

const (
	modeApp   mode = iota // app key, no end user, no agent
	modeUser              // app key with a verified end user
	modeAgent             // agent key, or app key acting as an agent
)

// actor is the validated caller: its app, mode and identities.
type actor struct {
	caller sdkauth.Caller
	mode   mode
	user   *EndUser // the end user; with modeAgent it narrows delegations
}

// actorOf validates the caller and the end user. Problems here are
// programming errors of the edge (an unauthenticated caller, a user of
// another app), so they fail closed as internal errors.
func actorOf(c sdkauth.Caller, u *EndUser) (actor, error) {
	if _, ok := ids.Canonical(c.AppID); !ok {
		return actor{}, fmt.Errorf("grants: caller has no app")
	}
	a := actor{caller: c, mode: modeApp}
	if u != nil {
		if _, ok := ids.Canonical(u.ID); !ok {
			return actor{}, fmt.Errorf("grants: end user has no id")
		}
		if u.AppID != "" && u.AppID != c.AppID {
			return actor{}, fmt.Errorf("grants: end user belongs to another app")
		}
		a.user = u
		a.mode = modeUser
	}
	if c.KeyKind == string(wire.KeyKindAgent) && c.AgentID == "" {
		return actor{}, fmt.Errorf("grants: agent key without an agent id")
	}
	if c.IsAgent() {
		if _, ok := ids.Canonical(c.AgentID); !ok {
			return actor{}, fmt.Errorf("grants: malformed agent id")
		}
		a.mode = modeAgent
	}
	return a, nil
}

// userAllowed refuses a disabled end user outright: their own and their
// groups' grants are unusable while they are disabled (agent mode instead
// simply loses the delegations of disabled users).
func (a actor) userAllowed() error {
	if a.mode == modeUser && a.user.Status != models.EndUserActive {
		return errs.Coded(wire.CodeForbidden, "the end user is disabled")
	}
	return nil
}

// Coded errors of resolution. Messages never carry secrets; a grant id is
// not a secret.
func grantNotFound(format string, args ...any) error {
	return errs.Coded(wire.CodeGrantNotFound, format, args...)
}

func noDelegatedGrant(format string, args ...any) error {
	return errs.Coded(wire.CodeNoDelegatedGrant, format, args...)
}

func invalidRequest(format string, args ...any) error {
	return errs.Coded(wire.CodeInvalidRequest, format, args...)
}

// keyEvent starts the audit row of a change made by an SDK caller.
func keyEvent(c sdkauth.Caller, action string) models.AuditEvent {
	return models.AuditEvent{
		OrganizationID: c.OrganizationID, AppID: c.AppID, Action: action,
		ActorKind: audit.ActorKey, ActorID: c.KeyID, KeyID: c.KeyID, AgentID: c.AgentID,
		Caller: c.CallerLabel, RequestID: c.RequestID,
	}
}

// providerName is what wire.Grant shows as provider_name until the provider
// catalog exists: the managed secret's name, or the provider slug.
func providerName(provider string) string {
	if name, ok := strings.CutPrefix(provider, SecretProviderPrefix); ok {
		return name
	}
	return provider
}
