package sdk

import (
	"context"
	"iter"
	"net/http"

	"github.com/latchkey/latchkey/sdk/wire"
)

// App is a Latchkey client authenticated with an app key (lk_app_…). It is
// safe for concurrent use; build one per key and reuse it.
type App struct{ c *client }

// NewApp returns a client for an app key. The key is parsed strictly and
// must be an app key; errors never contain it. Only the derived signing key
// is kept.
func NewApp(apiKey string, opts ...Option) (*App, error) {
	c, err := newClient("NewApp", apiKey, wire.KeyKindApp, opts)
	if err != nil {
		return nil, err
	}
	return &App{c: c}, nil
}

// String shows the public key id only.
func (a *App) String() string { return "sdk.App{" + a.c.signer.KeyID() + "}" }

// KeyID is the public id of the app key, e.g. lk_app_k4v2m8q1x7c3z9p0.
func (a *App) KeyID() string { return a.c.signer.KeyID() }

// KeyDeprecated reports whether Latchkey has said this key is deprecated.
func (a *App) KeyDeprecated() bool { return a.c.notice.seen.Load() }

// GetAgent returns a handle that acts as the agent agentID (a UUID): its
// requests are signed with the app key and carry Latchkey-Agent, so they
// reach exactly the grants bound or delegated to that agent. The handle
// shares the app's settings except the user token, which an agent identity
// does not use. A malformed agentID is reported by the handle's first call.
func (a *App) GetAgent(agentID string) *Agent {
	c := *a.c
	c.agent = agentID
	c.userToken = nil
	return &Agent{c: &c}
}

// Proxy has Latchkey make r with the grant's credential injected and
// returns the upstream's response, whatever its status; the caller closes
// its body. A call held for approval returns *ApprovalPendingError, and
// Latchkey's own refusals return *Error (see the package documentation).
func (a *App) Proxy(ctx context.Context, r Request) (*http.Response, error) {
	return a.c.proxyCall(ctx, r)
}

// Token returns the grant's access token (retrieve mode), where the app
// allows it; otherwise ErrForbidden. Prefer Proxy, which never exposes the
// token to the caller.
func (a *App) Token(ctx context.Context, r TokenRequest) (*wire.TokenResponse, error) {
	return a.c.token(ctx, r)
}

// ListGrants returns one page of the grants visible to this key (and to the
// user, with WithUserToken).
func (a *App) ListGrants(ctx context.Context, opts ListGrantsOptions) (GrantPage, error) {
	return a.c.listGrants(ctx, opts)
}

// Grants iterates over every grant matching opts, fetching pages as needed.
// It yields at most one error, then stops.
func (a *App) Grants(ctx context.Context, opts ListGrantsOptions) iter.Seq2[wire.Grant, error] {
	return a.c.grants(ctx, opts)
}

// GetGrant returns one grant.
func (a *App) GetGrant(ctx context.Context, grantID string) (*wire.Grant, error) {
	return a.c.getGrant(ctx, grantID)
}

// RevokeGrant revokes a grant. The credential behind it is deleted (and
// revoked at the provider) only when no other grant uses it.
func (a *App) RevokeGrant(ctx context.Context, grantID string) error {
	return a.c.revokeGrant(ctx, grantID)
}

// RevokeDelegation removes agentID's path to grantID, leaving the grant.
func (a *App) RevokeDelegation(ctx context.Context, grantID, agentID string) error {
	return a.c.revokeDelegation(ctx, grantID, agentID)
}

// Me says who this key is.
func (a *App) Me(ctx context.Context) (*wire.Me, error) { return a.c.me(ctx) }

// GrantManagedSecret binds an operator-provisioned managed secret to a
// principal and returns the new grant.
func (a *App) GrantManagedSecret(ctx context.Context, secretID string, principal wire.Principal) (*wire.Grant, error) {
	return a.c.grantManagedSecret(ctx, secretID, principal)
}

// CreateConnectSession mints a single-use Connect session for the browser.
// The response's SessionToken is a bearer secret: hand it to the popup and
// do not log it.
func (a *App) CreateConnectSession(ctx context.Context, r wire.ConnectSessionRequest) (*wire.ConnectSessionResponse, error) {
	return a.c.createConnectSession(ctx, r)
}

// ConnectSessionStatus polls a Connect session.
func (a *App) ConnectSessionStatus(ctx context.Context, sessionID string) (*wire.ConnectSessionStatus, error) {
	return a.c.connectSessionStatus(ctx, sessionID)
}

// GetApproval returns a held call's approval state and, once Latchkey has
// executed it, its result.
func (a *App) GetApproval(ctx context.Context, approvalID string) (*wire.Approval, error) {
	return a.c.getApproval(ctx, approvalID)
}

// CreateAgent creates an agent with its first key.
func (a *App) CreateAgent(ctx context.Context, r wire.CreateAgentRequest) (*CreatedAgent, error) {
	return a.c.createAgent(ctx, r)
}

// ListAgents returns one page of the app's agents.
func (a *App) ListAgents(ctx context.Context, opts ListAgentsOptions) (AgentPage, error) {
	return a.c.listAgents(ctx, opts)
}

// Agents iterates over every agent, fetching pages as needed. It yields at
// most one error, then stops.
func (a *App) Agents(ctx context.Context, opts ListAgentsOptions) iter.Seq2[wire.Agent, error] {
	return a.c.agents(ctx, opts)
}

// GetAgentInfo returns one agent with its keys. (GetAgent returns a handle
// that acts as the agent.)
func (a *App) GetAgentInfo(ctx context.Context, agentID string) (*wire.Agent, error) {
	return a.c.getAgentInfo(ctx, agentID)
}

// MintAgentKey mints another key for an agent, e.g. to rotate: mint,
// deploy, deprecate the old key, then revoke it. r may be zero (no label).
func (a *App) MintAgentKey(ctx context.Context, agentID string, r wire.MintAgentKeyRequest) (*MintedKey, error) {
	return a.c.mintAgentKey(ctx, agentID, r)
}

// DeprecateAgentKey marks an agent key deprecated: it keeps working, and
// every answer to it says so, until it is revoked. It returns the key's new
// state (nil fields when Latchkey answers 204).
func (a *App) DeprecateAgentKey(ctx context.Context, agentID, keyID string) (*wire.AgentKey, error) {
	return a.c.deprecateAgentKey(ctx, agentID, keyID)
}

// RevokeAgentKey revokes an agent key at once. Revoking the agent's last
// usable key is refused with ErrConflict unless force is true, so an agent
// is not locked out by accident. It returns the key's new state.
func (a *App) RevokeAgentKey(ctx context.Context, agentID, keyID string, force bool) (*wire.AgentKey, error) {
	return a.c.revokeAgentKey(ctx, agentID, keyID, force)
}

// Agent is a Latchkey client acting as an agent: either with an agent key
// (NewAgent) or with an app key on the agent's behalf (App.GetAgent). It
// reaches only grants bound or delegated to the agent. It is safe for
// concurrent use.
type Agent struct{ c *client }

// NewAgent returns a client for an agent key. The key is parsed strictly and
// must be an agent key; errors never contain it. WithUserToken is refused:
// Latchkey does not accept user tokens from agents.
func NewAgent(apiKey string, opts ...Option) (*Agent, error) {
	c, err := newClient("NewAgent", apiKey, wire.KeyKindAgent, opts)
	if err != nil {
		return nil, err
	}
	return &Agent{c: c}, nil
}

// String shows the public key id (and the agent acted as) only.
func (g *Agent) String() string {
	if g.c.agent != "" {
		return "sdk.Agent{" + g.c.signer.KeyID() + " as " + g.c.agent + "}"
	}
	return "sdk.Agent{" + g.c.signer.KeyID() + "}"
}

// KeyID is the public id of the signing key: the agent key, or the app key
// for a handle from App.GetAgent.
func (g *Agent) KeyID() string { return g.c.signer.KeyID() }

// AgentID is the agent acted as for a handle from App.GetAgent, and "" for
// an agent key (ask Me).
func (g *Agent) AgentID() string { return g.c.agent }

// KeyDeprecated reports whether Latchkey has said the signing key is
// deprecated.
func (g *Agent) KeyDeprecated() bool { return g.c.notice.seen.Load() }

// Proxy is App.Proxy, resolved among the agent's grants.
func (g *Agent) Proxy(ctx context.Context, r Request) (*http.Response, error) {
	return g.c.proxyCall(ctx, r)
}

// Token is App.Token, resolved among the agent's grants.
func (g *Agent) Token(ctx context.Context, r TokenRequest) (*wire.TokenResponse, error) {
	return g.c.token(ctx, r)
}

// ListGrants returns one page of the grants bound or delegated to the agent.
func (g *Agent) ListGrants(ctx context.Context, opts ListGrantsOptions) (GrantPage, error) {
	return g.c.listGrants(ctx, opts)
}

// Grants iterates over the agent's grants; see App.Grants.
func (g *Agent) Grants(ctx context.Context, opts ListGrantsOptions) iter.Seq2[wire.Grant, error] {
	return g.c.grants(ctx, opts)
}

// GetGrant returns one of the agent's grants.
func (g *Agent) GetGrant(ctx context.Context, grantID string) (*wire.Grant, error) {
	return g.c.getGrant(ctx, grantID)
}

// RevokeDelegation gives up the agent's own delegation of grantID; agentID
// must be this agent.
func (g *Agent) RevokeDelegation(ctx context.Context, grantID, agentID string) error {
	return g.c.revokeDelegation(ctx, grantID, agentID)
}

// Me says who this agent is.
func (g *Agent) Me(ctx context.Context) (*wire.Me, error) { return g.c.me(ctx) }

// GetApproval returns the state of one of the agent's held calls.
func (g *Agent) GetApproval(ctx context.Context, approvalID string) (*wire.Approval, error) {
	return g.c.getApproval(ctx, approvalID)
}
