package models

import "time"

// Connect session statuses.
const (
	ConnectPending   = "pending"
	ConnectCompleted = "completed"
	ConnectFailed    = "failed"
	ConnectExpired   = "expired"
)

// ConnectSession is a short-lived, single-use token an app backend mints so
// a browser can open the Connect popup for one end user. Only the SHA-256 of
// the token and of the browser binding cookie are stored.
type ConnectSession struct {
	ID                 string `gorm:"primaryKey"`
	AppID              string
	TokenHash          string
	EndUserID          *string
	PrincipalKind      string // user or system
	AgentID            *string
	AllowedProviders   string // JSON array of slugs
	AllowedOrigin      string
	ReturnURL          string
	Metadata           string // JSON object
	Status             string
	BrowserBindingHash string
	ResultGrants       string // JSON array of grant ids once completed
	ErrorCode          string
	ExpiresAt          time.Time
	OpenedAt           *time.Time
	CompletedAt        *time.Time
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

func (ConnectSession) TableName() string { return "connect_sessions" }

// OAuthFlow is the server side of one authorization-code flow: the hashed
// state, the sealed PKCE verifier and the browser it is bound to.
type OAuthFlow struct {
	ID                 string `gorm:"primaryKey"`
	AppID              string
	ConnectSessionID   string
	ProviderConfigID   string
	StateHash          string
	PKCEVerifierSealed []byte
	BrowserBindingHash string
	RedirectURI        string
	ExpiresAt          time.Time
	UsedAt             *time.Time
	CreatedAt          time.Time
}

func (OAuthFlow) TableName() string { return "oauth_flows" }
