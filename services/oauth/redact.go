package oauth

import (
	"fmt"
	"log/slog"
)

// ClientConfig and Connected carry a client secret and tokens. Their
// String, GoString and LogValue methods redact them, so printing or logging
// one by accident shows no secret (DESIGN.md §3.3).

func (c ClientConfig) String() string {
	return fmt.Sprintf("oauth.ClientConfig{ProviderConfigID:%s AppID:%s Provider:%s ClientID:%q ClientSecret:[redacted] Scopes:%q RedirectURI:%s Status:%s}",
		c.ProviderConfigID, c.AppID, c.Provider.ID, c.ClientID, c.Scopes, c.RedirectURI, c.Status)
}

// GoString keeps %#v from printing the secret.
func (c ClientConfig) GoString() string { return c.String() }

// LogValue keeps slog from printing the secret.
func (c ClientConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("provider_config_id", c.ProviderConfigID), slog.String("app_id", c.AppID),
		slog.String("provider", c.Provider.ID), slog.String("client_id", c.ClientID),
		slog.String("client_secret", "[redacted]"), slog.String("status", c.Status))
}

func (c Connected) String() string {
	return fmt.Sprintf("oauth.Connected{AppID:%s ConnectSessionID:%s ProviderConfigID:%s Provider:%s AccountIdentifier:%q "+
		"Scopes:%q AccessToken:[redacted] RefreshToken:[redacted] TokenType:%q ExpiresAt:%v}",
		c.AppID, c.ConnectSessionID, c.ProviderConfigID, c.Provider, c.AccountIdentifier, c.Scopes, c.TokenType, c.ExpiresAt)
}

// GoString keeps %#v from printing the tokens.
func (c Connected) GoString() string { return c.String() }

// LogValue keeps slog from printing the tokens.
func (c Connected) LogValue() slog.Value {
	return slog.GroupValue(slog.String("app_id", c.AppID), slog.String("connect_session_id", c.ConnectSessionID),
		slog.String("provider", c.Provider), slog.String("account_identifier", c.AccountIdentifier),
		slog.String("access_token", "[redacted]"), slog.String("refresh_token", "[redacted]"))
}
