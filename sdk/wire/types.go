package wire

import (
	"encoding/json"
	"time"
)

// Fixed SDK endpoint paths (DESIGN.md §4.6). Paths with an id in them are
// built from these prefixes, e.g. PathGrants + "/" + grantID.
const (
	PathProxy           = "/sdk/v1/proxy"
	PathToken           = "/sdk/v1/token"
	PathGrants          = "/sdk/v1/grants"
	PathMe              = "/sdk/v1/me"
	PathManagedSecrets  = "/sdk/v1/managed-secrets"
	PathConnectSession  = "/sdk/oauth/connect/session" // POST: mint
	PathConnectSessions = "/sdk/v1/connect/sessions"   // GET …/{session_id}: poll
	PathConnectPopup    = "/sdk/oauth/connect"         // browser, #session=<token>
	PathApprovals       = "/sdk/v1/approvals"
	PathAgents          = "/sdk/v1/agents"
)

// PrincipalKind is who owns a grant. The kinds are never interchangeable.
type PrincipalKind string

// Principal kinds.
const (
	PrincipalUser   PrincipalKind = "user"
	PrincipalGroup  PrincipalKind = "group"
	PrincipalSystem PrincipalKind = "system"
	PrincipalAgent  PrincipalKind = "agent"
)

// Principal identifies a grant's owner. ID is the IdP subject for a user, the
// group name for a group, the agent UUID for an agent, and empty for system.
type Principal struct {
	Kind PrincipalKind `json:"kind"`
	ID   string        `json:"id,omitempty"`
}

// GrantStatus is a grant's lifecycle state.
type GrantStatus string

// Grant statuses.
const (
	GrantActive      GrantStatus = "active"
	GrantExpired     GrantStatus = "expired"
	GrantRevoked     GrantStatus = "revoked"
	GrantNeedsReauth GrantStatus = "needs_reauth"
)

// ProxyRequest is the body of POST /sdk/v1/proxy. Exactly one of GrantID and
// Provider selects the grant (Account narrows Provider); at most one of JSON
// and BodyBase64 is the upstream body.
type ProxyRequest struct {
	Method     string            `json:"method"`
	URL        string            `json:"url"`
	GrantID    string            `json:"grant_id,omitempty"`
	Provider   string            `json:"provider,omitempty"`
	Account    string            `json:"account,omitempty"`
	Headers    map[string]string `json:"headers,omitempty"`
	JSON       json.RawMessage   `json:"json,omitempty"`
	BodyBase64 string            `json:"body_base64,omitempty"`
	Reason     string            `json:"reason,omitempty"`
	Context    map[string]string `json:"context,omitempty"`
	TimeoutMS  int               `json:"timeout_ms,omitempty"`
}

// TokenRequest is the body of POST /sdk/v1/token (retrieve mode); the grant
// is selected as in ProxyRequest.
type TokenRequest struct {
	GrantID  string            `json:"grant_id,omitempty"`
	Provider string            `json:"provider,omitempty"`
	Account  string            `json:"account,omitempty"`
	Reason   string            `json:"reason,omitempty"`
	Context  map[string]string `json:"context,omitempty"`
}

// TokenResponse is the answer of retrieve mode: an access token (never a
// refresh token) and how to put it on a request.
type TokenResponse struct {
	AccessToken string     `json:"access_token"`
	TokenType   string     `json:"token_type"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	GrantID     string     `json:"grant_id,omitempty"`
	Injection   Injection  `json:"injection"`
}

// Injection says where a credential goes: In is "header" or "query", Name the
// header or parameter name, and Format the value with "{token}" standing for
// the credential, e.g. {"in": "header", "name": "Authorization",
// "format": "Bearer {token}"}.
type Injection struct {
	In     string `json:"in"`
	Name   string `json:"name"`
	Format string `json:"format"`
}

// Grant is one consent record as the SDK sees it.
type Grant struct {
	GrantID           string            `json:"grant_id"`
	Provider          string            `json:"provider"`
	ProviderName      string            `json:"provider_name"`
	AccountIdentifier string            `json:"account_identifier"`
	Principal         Principal         `json:"principal"`
	Status            GrantStatus       `json:"status"`
	Scopes            []string          `json:"scopes"`
	CreatedAt         time.Time         `json:"created_at"`
	UpdatedAt         time.Time         `json:"updated_at"`
	ExpiresAt         *time.Time        `json:"expires_at,omitempty"`
	Metadata          map[string]string `json:"metadata,omitempty"`
}

// GrantList is a page of GET /sdk/v1/grants; NextCursor is empty on the last
// page and is passed back as the cursor query parameter.
type GrantList struct {
	Grants     []Grant `json:"grants"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

// ManagedSecretGrantRequest is the body of
// POST /sdk/v1/managed-secrets/{id}/grants; the answer is the new Grant.
type ManagedSecretGrantRequest struct {
	Principal Principal `json:"principal"`
}

// Me is GET /sdk/v1/me. Kind is "agent" for an agent key and for an app key
// acting as an agent through Latchkey-Agent (then KeyID is the app key's);
// the agent fields are empty otherwise.
type Me struct {
	Kind      KeyKind   `json:"kind"`
	AppID     string    `json:"app_id"`
	AppName   string    `json:"app_name"`
	AgentID   string    `json:"agent_id,omitempty"`
	AgentName string    `json:"agent_name,omitempty"`
	KeyID     string    `json:"key_id"`
	KeyStatus KeyStatus `json:"key_status"`
}

// EndUser is an app-asserted end user, accepted only from an app without an
// identity provider.
type EndUser struct {
	ID          string `json:"id"`
	Email       string `json:"email,omitempty"`
	DisplayName string `json:"display_name,omitempty"`
}

// ConnectSessionRequest is the body of POST /sdk/oauth/connect/session.
type ConnectSessionRequest struct {
	AllowedProviders []string          `json:"allowed_providers,omitempty"`
	AllowedOrigin    string            `json:"allowed_origin,omitempty"`
	ReturnURL        string            `json:"return_url,omitempty"`
	AgentID          string            `json:"agent_id,omitempty"`
	EndUser          *EndUser          `json:"end_user,omitempty"`
	Metadata         map[string]string `json:"metadata,omitempty"`
}

// ConnectSessionResponse is the minted session. SessionToken is a bearer
// secret for the browser; hand it to the popup and do not log it.
type ConnectSessionResponse struct {
	SessionID    string    `json:"session_id"`
	SessionToken string    `json:"session_token"`
	ConnectURL   string    `json:"connect_url"`
	ExpiresAt    time.Time `json:"expires_at"`
}

// ConnectSessionState is the state of a Connect session.
type ConnectSessionState string

// Connect session states.
const (
	ConnectPending   ConnectSessionState = "pending"
	ConnectCompleted ConnectSessionState = "completed"
	ConnectFailed    ConnectSessionState = "failed"
	ConnectExpired   ConnectSessionState = "expired"
)

// ConnectSessionStatus is GET /sdk/v1/connect/sessions/{session_id}. Grants
// is set when completed; ErrorCode and ErrorDescription when failed (the same
// names the Connect redirect uses). They are not called "error" so a 200
// body is never mistaken for the error shape.
type ConnectSessionStatus struct {
	SessionID        string              `json:"session_id"`
	Status           ConnectSessionState `json:"status"`
	Grants           []Grant             `json:"grants,omitempty"`
	ErrorCode        string              `json:"error_code,omitempty"`
	ErrorDescription string              `json:"error_description,omitempty"`
	ExpiresAt        time.Time           `json:"expires_at"`
}

// ApprovalStatus is the state of a call held for approval.
type ApprovalStatus string

// Approval states. Approved means a human said yes; Result appears once
// Latchkey has executed the call.
const (
	ApprovalPending  ApprovalStatus = "pending"
	ApprovalApproved ApprovalStatus = "approved"
	ApprovalDenied   ApprovalStatus = "denied"
	ApprovalExpired  ApprovalStatus = "expired"
)

// ApprovalEnvelope is the 202 body of a held proxy call and the body of
// GET /sdk/v1/approvals/{approval_id}: {"approval": {…}}.
type ApprovalEnvelope struct {
	Approval Approval `json:"approval"`
}

// Approval is a held call and, once executed, its result.
type Approval struct {
	ApprovalID  string          `json:"approval_id"`
	Status      ApprovalStatus  `json:"status"`
	ApprovalURL string          `json:"approval_url,omitempty"`
	Reason      string          `json:"reason,omitempty"`
	CreatedAt   *time.Time      `json:"created_at,omitempty"`
	ExpiresAt   time.Time       `json:"expires_at"`
	DecidedAt   *time.Time      `json:"decided_at,omitempty"`
	Result      *ApprovalResult `json:"result,omitempty"`
}

// ApprovalResult is the upstream response to an executed held call, or the
// Latchkey error that stopped it (then Status is that error's HTTP status).
type ApprovalResult struct {
	Status     int               `json:"status"`
	Headers    map[string]string `json:"headers,omitempty"`
	BodyBase64 string            `json:"body_base64,omitempty"`
	Error      *ErrorDetail      `json:"error,omitempty"`
}

// Agent is a named workload identity inside an app.
type Agent struct {
	AgentID     string     `json:"agent_id"`
	AppID       string     `json:"app_id"`
	Name        string     `json:"name"`
	DisplayName string     `json:"display_name,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	Keys        []AgentKey `json:"keys,omitempty"`
}

// AgentKey describes one key of an agent. APIKey is set only in the response
// that mints the key, the one time it is ever shown.
type AgentKey struct {
	KeyID        string     `json:"key_id"`
	Status       KeyStatus  `json:"status"`
	Label        string     `json:"label,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	DeprecatedAt *time.Time `json:"deprecated_at,omitempty"`
	RevokedAt    *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt   *time.Time `json:"last_used_at,omitempty"`
	APIKey       string     `json:"api_key,omitempty"`
}

// CreateAgentRequest is the body of POST /sdk/v1/agents.
type CreateAgentRequest struct {
	Name        string `json:"name"`
	DisplayName string `json:"display_name,omitempty"`
}

// MintAgentKeyRequest is the optional body of
// POST /sdk/v1/agents/{agent_id}/keys; an empty body or {} mints an
// unlabelled key. The answer is the AgentKey with APIKey set.
type MintAgentKeyRequest struct {
	Label string `json:"label,omitempty"`
}

// CreateAgentResponse is the new agent with its first key (APIKey set).
type CreateAgentResponse struct {
	Agent Agent    `json:"agent"`
	Key   AgentKey `json:"key"`
}

// AgentList is a page of GET /sdk/v1/agents.
type AgentList struct {
	Agents     []Agent `json:"agents"`
	NextCursor string  `json:"next_cursor,omitempty"`
}

// PopupGrant is one grant as the Connect popup posts it to the app
// (alter_connect_success) and as the redirect flow's query spells it
// (DESIGN.md §5, compatible with @alter-ai/connect 0.8).
type PopupGrant struct {
	GrantID           string            `json:"grant_id"`
	Provider          string            `json:"provider"`
	ProviderName      string            `json:"provider_name"`
	AccountIdentifier string            `json:"account_identifier"`
	Timestamp         string            `json:"timestamp"`
	Operation         string            `json:"operation"`
	Scopes            []string          `json:"scopes"`
	Status            string            `json:"status"`
	Metadata          map[string]string `json:"metadata,omitempty"`
}
