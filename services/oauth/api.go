// Package oauth runs Latchkey's side of OAuth 2.0 with third-party
// providers: the per-app provider configurations (client id, sealed client
// secret, scopes, custom providers), the authorization-code flow with state
// and PKCE S256 (golang.org/x/oauth2), identification of the connected
// account, and storing the result as a credential and a grant (re-using the
// grant when the same account reconnects for the same principal).
package oauth

import (
	"time"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/catalog"
)

// CallbackPath is the one redirect URI path every provider config uses;
// the full redirect URI is LATCHKEY_PUBLIC_URL + CallbackPath.
const CallbackPath = "/sdk/oauth/callback"

// ClientConfig is an app's provider configuration, resolved and opened,
// ready to start a flow or refresh a token.
type ClientConfig struct {
	ProviderConfigID string
	AppID            string
	Provider         catalog.Provider // tenant params substituted
	ClientID         string
	ClientSecret     string // opened from the vault; never log it
	Scopes           []string
	RedirectURI      string
	Status           string // models.ProviderConfigActive / Disabled / Broken
}

// ConfigureInput is `latchkey admin providers configure`. The URL fields
// define a custom provider or override a catalog one.
type ConfigureInput struct {
	AppID        string
	Provider     string // catalog slug or the custom provider's slug
	ClientID     string
	ClientSecret string
	Scopes       []string
	Params       map[string]string // tenant params (e.g. shop, subdomain)
	Custom       *catalog.CustomDefinition
	Actor        apikeys.Actor
}

// ConfigureResult names the config and the redirect URI to register at the
// provider.
type ConfigureResult struct {
	ProviderConfigID string
	RedirectURI      string
}

// StartInput begins an authorization-code flow for one Connect session.
type StartInput struct {
	AppID            string
	ConnectSessionID string
	Provider         string // slug
	// BrowserBinding is the SHA-256 (hex) of the Connect cookie of the
	// browser that may finish this flow.
	BrowserBinding string
}

// FinishInput is what the provider sent back to the callback.
type FinishInput struct {
	State            string
	Code             string
	Error            string // the provider's error parameter (access_denied, …)
	ErrorDescription string
	BrowserBinding   string
}

// Connected is a finished flow: the account and its tokens.
type Connected struct {
	AppID             string
	ConnectSessionID  string
	ProviderConfigID  string
	Provider          string
	ProviderName      string
	AccountIdentifier string
	AccountDisplay    string
	Scopes            []string
	AccessToken       string // never log it
	RefreshToken      string // never log it
	TokenType         string
	ExpiresAt         *time.Time
}

// SaveInput stores a connection for a principal.
type SaveInput struct {
	Connected     Connected
	PrincipalKind string // models.PrincipalUser or models.PrincipalSystem
	PrincipalID   string // end user id for user grants; empty for system
	EndUserID     string // the consenting end user (for the delegation)
	AgentID       string // non-empty: also delegate the grant to this agent
	Metadata      map[string]string
	Actor         apikeys.Actor
}

// Operations reported by Save.
const (
	OperationCreation = "creation"
	OperationReauth   = "reauth"
)

// Saved is the stored grant.
type Saved struct {
	Grant        models.Grant
	Operation    string // OperationCreation or OperationReauth
	DelegationID string
}
