package models

import "time"

// Audit outcomes.
const (
	OutcomeSuccess       = "success"
	OutcomeDenied        = "denied"
	OutcomeError         = "error"
	OutcomeUpstreamError = "upstream_error"
)

// AuditEvent is one append-only audit row: an SDK call or a change of access.
// It never holds a secret, a query-string value or a body.
type AuditEvent struct {
	ID             string `gorm:"primaryKey"` // UUIDv7, so ids sort by time
	OccurredAt     time.Time
	OrganizationID string
	AppID          string
	Action         string // e.g. sdk.proxy, grant.revoke, key.mint
	ActorKind      string // key, operator, end_user, system
	ActorID        string
	KeyID          string
	AgentID        string
	Caller         string
	PrincipalKind  string
	PrincipalID    string
	GrantID        string
	Provider       string
	Method         string
	Host           string
	Path           string
	UpstreamStatus int
	LatencyMS      int64
	Outcome        string
	ErrorCode      string
	Reason         string
	Context        string // JSON object, bounded size
	RequestID      string
}

func (AuditEvent) TableName() string { return "audit_events" }
