// Package sdkauth authenticates signed SDK requests (DESIGN.md §4.1–4.4):
// key lookup, timestamp window, constant-time signature check and nonce
// replay refusal that holds across replicas sharing one database.
package sdkauth

import "context"

// Caller is who an authenticated SDK request comes from. Every later
// decision (grant resolution, policy, audit) starts from it.
type Caller struct {
	OrganizationID string
	AppID          string
	AppName        string
	KeyRowID       string // api_keys.id
	KeyID          string // public key id, lk_app_… / lk_agent_…
	KeyKind        string // "app" or "agent" (wire.KeyKindApp / wire.KeyKindAgent)
	KeyDeprecated  bool   // responses carry Latchkey-Key-Deprecated: true

	// AgentID is set for an agent key, or for an app key acting as an agent
	// through Latchkey-Agent (Impersonating is then true).
	AgentID       string
	AgentName     string
	Impersonating bool

	// UserToken is the raw Latchkey-User-Token JWT; never log it. Identity
	// verification happens later, only when a call needs the end user.
	UserToken string
	// CallerLabel is the free-form Latchkey-Caller audit attribution.
	CallerLabel string
	RequestID   string
}

// IsAgent reports whether the request acts as an agent (agent key or
// impersonation): such requests reach only bound and delegated grants.
func (c Caller) IsAgent() bool { return c.AgentID != "" }

type callerKey struct{}

// WithCaller returns a context carrying c, so services deeper in an SDK
// request can attribute their work without the HTTP layer's help.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the authenticated caller of the request ctx belongs to.
// ok is false outside an authenticated SDK request; callers must then deny.
func CallerFrom(ctx context.Context) (c Caller, ok bool) {
	c, ok = ctx.Value(callerKey{}).(Caller)
	return c, ok
}
