package models

import "time"

// Policy scopes.
const (
	PolicyScopeApp            = "app"
	PolicyScopeProviderConfig = "provider_config"
	PolicyScopeAgent          = "agent"
	PolicyScopeGrant          = "grant"
)

// Policy narrows the default-deny base with a rule (JSON document).
type Policy struct {
	ID        string `gorm:"primaryKey"`
	AppID     string
	ScopeKind string
	ScopeID   string
	Name      string
	Rule      string // JSON
	Enabled   bool
	Priority  int
	CreatedAt time.Time
	UpdatedAt time.Time
}

func (Policy) TableName() string { return "policies" }

// Approval statuses.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalDenied   = "denied"
	ApprovalExpired  = "expired"
	ApprovalExecuted = "executed"
)

// Approval is a proxied call held for a human decision. The held request and
// its eventual result are sealed.
type Approval struct {
	ID            string `gorm:"primaryKey"`
	AppID         string
	GrantID       string
	AgentID       *string
	EndUserID     *string
	KeyID         string
	PolicyID      *string
	Status        string
	Method        string
	Host          string
	Path          string
	Reason        string
	Context       string // JSON object
	RequestSealed []byte
	ResultSealed  []byte
	ResultStatus  int
	DecidedBy     string
	DecidedAt     *time.Time
	ExpiresAt     time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

func (Approval) TableName() string { return "approvals" }
