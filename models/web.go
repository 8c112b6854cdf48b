package models

import "time"

// RequestNonce remembers a request's (key id, timestamp, nonce) until its
// timestamp window has passed; the primary key makes replay refusal hold
// across replicas. ExpiresAt stands for the signed timestamp (it is the
// timestamp plus a fixed retention) and leads the key, so new rows append.
type RequestNonce struct {
	ExpiresAt time.Time `gorm:"primaryKey"`
	KeyID     string    `gorm:"primaryKey"`
	Nonce     string    `gorm:"primaryKey"`
}

func (RequestNonce) TableName() string { return "request_nonces" }

// Web session kinds.
const (
	WebSessionOperator = "operator"
	WebSessionEndUser  = "end_user"
)

// WebSession is a server-side browser session. The cookie carries only a
// random id; this row stores its SHA-256 so logout and revocation work.
type WebSession struct {
	ID            string `gorm:"primaryKey"`
	TokenHash     string
	Kind          string
	OperatorID    *string
	EndUserID     *string
	AppID         *string
	CSRFTokenHash string
	ExpiresAt     time.Time
	LastSeenAt    time.Time
	RevokedAt     *time.Time
	CreatedAt     time.Time
}

func (WebSession) TableName() string { return "web_sessions" }
