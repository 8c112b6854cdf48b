package models

import "time"

// Data-key statuses.
const (
	DataKeyActive  = "active"  // used for new seals
	DataKeyRetired = "retired" // opens old ciphertexts until re-encryption finishes
)

// DataKey is one version of an app's keyring: a random data key wrapped by
// the keeper's key-encryption key. The unwrapped key lives only in memory.
type DataKey struct {
	ID         string `gorm:"primaryKey"`
	AppID      string
	Version    int
	WrappedKey []byte
	Status     string
	CreatedAt  time.Time
}

func (DataKey) TableName() string { return "data_keys" }

// Agent statuses.
const (
	AgentActive   = "active"
	AgentDisabled = "disabled"
)

// Agent is a named, operator-provisioned workload identity inside an app.
type Agent struct {
	ID          string `gorm:"primaryKey"`
	AppID       string
	Name        string
	DisplayName string
	Description string
	Status      string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

func (Agent) TableName() string { return "agents" }

// API key kinds and statuses.
const (
	KeyKindApp   = "app"
	KeyKindAgent = "agent"

	KeyActive     = "active"
	KeyDeprecated = "deprecated" // still works; responses flag it
	KeyRevoked    = "revoked"
)

// APIKey records an SDK key. Only the signing key derived from the API key
// is kept, sealed; the API key itself is shown once and never stored.
type APIKey struct {
	ID                   string `gorm:"primaryKey"`
	KeyID                string // public part: lk_app_<id> / lk_agent_<id>
	AppID                string
	AgentID              *string
	Kind                 string
	Status               string
	Label                string
	SigningKeyCiphertext []byte
	LastUsedAt           *time.Time
	DeprecatedAt         *time.Time
	RevokedAt            *time.Time
	CreatedAt            time.Time
	UpdatedAt            time.Time
}

func (APIKey) TableName() string { return "api_keys" }
