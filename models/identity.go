package models

import "time"

// IdentityProvider is the OIDC issuer that authenticates an app's end users.
type IdentityProvider struct {
	ID                     string `gorm:"primaryKey"`
	AppID                  string
	Issuer                 string
	Audience               string
	UserClaim              string
	GroupsClaim            string
	Preset                 string
	ClientID               string
	ClientSecretCiphertext []byte
	CreatedAt              time.Time
	UpdatedAt              time.Time
}

func (IdentityProvider) TableName() string { return "identity_providers" }

// Sources of an end user's identity.
const (
	EndUserSourceIdP         = "idp"          // verified JWT
	EndUserSourceAppAsserted = "app_asserted" // the app said so (no IdP configured)

	EndUserActive   = "active"
	EndUserDisabled = "disabled"
)

// EndUser is a human whose credentials are stored, identified by
// (app, issuer, subject). App-asserted users carry an empty issuer.
type EndUser struct {
	ID          string `gorm:"primaryKey"`
	AppID       string
	Issuer      string
	Subject     string
	Source      string
	Email       string
	DisplayName string
	Status      string
	LastSeenAt  *time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

func (EndUser) TableName() string { return "end_users" }

// EndUserGroup is one group membership synced from the IdP's groups claim.
type EndUserGroup struct {
	ID        string `gorm:"primaryKey"`
	AppID     string
	EndUserID string
	GroupName string
	CreatedAt time.Time
}

func (EndUserGroup) TableName() string { return "end_user_groups" }
