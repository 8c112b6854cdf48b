package models

import "time"

// Organization is a company account owning apps and operators.
type Organization struct {
	ID        string `gorm:"primaryKey"`
	Name      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

func (Organization) TableName() string { return "organizations" }

// Operator is a person who signs in to the portal.
type Operator struct {
	ID           string `gorm:"primaryKey"`
	Email        string // stored lower-cased; unique
	DisplayName  string
	PasswordHash string // argon2id PHC string, never the password
	DisabledAt   *time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

func (Operator) TableName() string { return "operators" }

// Operator roles inside an organization.
const (
	RoleOwner  = "owner"
	RoleAdmin  = "admin"
	RoleViewer = "viewer"
)

// Membership places an operator in an organization with a role.
type Membership struct {
	ID             string `gorm:"primaryKey"`
	OrganizationID string
	OperatorID     string
	Role           string
	CreatedAt      time.Time
}

func (Membership) TableName() string { return "memberships" }

// App is the isolation boundary for keys, configs, grants, agents and audit.
type App struct {
	ID                  string `gorm:"primaryKey"`
	OrganizationID      string
	Name                string
	DisplayName         string
	BrandColor          string
	LogoURL             string
	RetrieveModeEnabled bool // POST /sdk/v1/token; off unless the operator opts in
	CreatedAt           time.Time
	UpdatedAt           time.Time
}

func (App) TableName() string { return "apps" }

// Kinds of AppURL.
const (
	AppURLOrigin    = "origin"
	AppURLReturnURL = "return_url"
)

// AppURL is an origin allowed to receive Connect results by postMessage, or
// a return URL allowed for the redirect flow. Exact match only.
type AppURL struct {
	ID        string `gorm:"primaryKey"`
	AppID     string
	Kind      string
	Value     string
	CreatedAt time.Time
}

func (AppURL) TableName() string { return "app_urls" }
