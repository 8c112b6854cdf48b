package models

import "time"

// Provider-config statuses.
const (
	ProviderConfigActive   = "active"
	ProviderConfigDisabled = "disabled"
	ProviderConfigBroken   = "broken" // the provider rejected our client (invalid_client)
)

// ProviderConfig enables a catalog (or custom) provider for an app with the
// app's own OAuth client.
type ProviderConfig struct {
	ID                     string `gorm:"primaryKey"`
	AppID                  string
	Provider               string // catalog slug, or the custom provider's slug
	ClientID               string
	ClientSecretCiphertext []byte
	Scopes                 string // space separated
	Status                 string
	BrokenReason           string
	CustomDefinition       string // JSON provider definition for custom providers; empty for catalog ones
	CreatedAt              time.Time
	UpdatedAt              time.Time
}

func (ProviderConfig) TableName() string { return "provider_configs" }

// ManagedSecret is an operator-provisioned backend credential. Its sealed
// value lives in the Credential that points back at it.
type ManagedSecret struct {
	ID           string `gorm:"primaryKey"`
	AppID        string
	Name         string
	Description  string
	Injection    string // template such as "header:Authorization:Bearer {secret}"
	AllowedHosts string // JSON array of host patterns; required, never empty
	CreatedAt    time.Time
	UpdatedAt    time.Time
	RotatedAt    *time.Time
}

func (ManagedSecret) TableName() string { return "managed_secrets" }

// Credential kinds and refresh states.
const (
	CredentialOAuth         = "oauth"
	CredentialManagedSecret = "managed_secret"

	RefreshIdle     = "idle"
	RefreshInFlight = "in_flight" // recorded before the provider is called
)

// Credential is sealed secret material. Several grants may share one.
type Credential struct {
	ID                     string `gorm:"primaryKey"`
	AppID                  string
	Kind                   string
	ProviderConfigID       *string
	ManagedSecretID        *string
	AccountIdentifier      string
	AccessTokenCiphertext  []byte // OAuth access token, or the managed secret value
	RefreshTokenCiphertext []byte
	TokenType              string
	Scopes                 string
	ExpiresAt              *time.Time
	Version                int64 // bumped on every token change; optimistic check
	RefreshState           string
	RefreshStartedAt       *time.Time
	RefreshFailures        int
	NextRefreshAt          *time.Time
	LastRefreshError       string
	CreatedAt              time.Time
	UpdatedAt              time.Time
}

func (Credential) TableName() string { return "credentials" }

// Principal kinds. Never interchangeable.
const (
	PrincipalUser   = "user"
	PrincipalGroup  = "group"
	PrincipalSystem = "system"
	PrincipalAgent  = "agent"
)

// Grant statuses.
const (
	GrantActive      = "active"
	GrantExpired     = "expired"
	GrantRevoked     = "revoked"
	GrantNeedsReauth = "needs_reauth"
)

// Grant lets one principal use one credential.
type Grant struct {
	ID    string `gorm:"primaryKey"`
	AppID string
	// CredentialID is nil once the credential is deleted: revoking the
	// last grant on an OAuth credential deletes it, and the revoked grants
	// stay as history (migration 00002, ON DELETE SET NULL).
	CredentialID      *string
	PrincipalKind     string
	PrincipalID       string // end user id, group name, agent id; empty for system
	Provider          string // provider slug, or "secret:<name>" for managed secrets
	ManagedSecretID   *string
	AccountIdentifier string
	Status            string
	Scopes            string
	Metadata          string // JSON object
	ExpiresAt         *time.Time
	LastUsedAt        *time.Time
	RevokedAt         *time.Time
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

func (Grant) TableName() string { return "grants" }

// Delegation statuses.
const (
	DelegationActive  = "active"
	DelegationRevoked = "revoked"
)

// Delegation lets agent AgentID use end user EndUserID's grant GrantID.
type Delegation struct {
	ID        string `gorm:"primaryKey"`
	AppID     string
	GrantID   string
	AgentID   string
	EndUserID string
	Status    string
	RevokedAt *time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
}

func (Delegation) TableName() string { return "delegations" }
