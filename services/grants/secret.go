package grants

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/errs"
)

// DefaultOAuthInjection is how an OAuth access token is put on a request
// unless the provider's catalog entry says otherwise (RFC 6750 bearer).
const DefaultOAuthInjection = "header:Authorization:Bearer {secret}"

// Credential is the plaintext credential of a resolved grant, for the proxy
// and retrieve mode only. Its String, GoString and LogValue methods redact
// AccessToken, so printing or logging it by accident shows no secret.
type Credential struct {
	AccessToken string
	TokenType   string
	ExpiresAt   *time.Time
	// Version is the OAuth credential's version when AccessToken was read;
	// after an upstream 401 the proxy asks for a refresh past it, so many
	// concurrent 401s cause one refresh.
	Version int64
	// Injection is the template that places AccessToken on the request,
	// e.g. "header:Authorization:Bearer {secret}".
	Injection string
	// AllowedHosts is the managed secret's allowed-hosts list. It is nil for
	// OAuth credentials: their API hosts come from the provider's catalog
	// entry or custom definition.
	AllowedHosts []string
}

func (c Credential) String() string {
	return fmt.Sprintf("grants.Credential{AccessToken:[redacted] TokenType:%q Injection:%q AllowedHosts:%q}",
		c.TokenType, c.Injection, c.AllowedHosts)
}

// GoString keeps %#v from printing the token.
func (c Credential) GoString() string { return c.String() }

// LogValue keeps slog from printing the token.
func (c Credential) LogValue() slog.Value {
	return slog.GroupValue(slog.String("access_token", "[redacted]"), slog.String("token_type", c.TokenType),
		slog.String("injection", c.Injection), slog.Any("allowed_hosts", c.AllowedHosts))
}

// credentialRow is a credential with its managed secret's injection rule.
type credentialRow struct {
	ID                    string
	AppID                 string
	Kind                  string
	AccessTokenCiphertext []byte
	TokenType             string
	ExpiresAt             *time.Time
	Injection             *string
	AllowedHosts          *string
}

// Secret opens the credential of r with the vault: one primary-key read and
// one decryption. OAuth refresh does not exist yet, so an OAuth access token
// that has expired is refused with reauth_required rather than sent; the
// refresh service will refresh it here instead. Any failure to read or open
// the sealed value fails closed as an internal error.
func (s *Service) Secret(ctx context.Context, r Resolved) (Credential, error) {
	if r.Credential.Kind == models.CredentialOAuth && s.tokens != nil {
		// The token service reads the credential itself (app-scoped, kind
		// checked), refreshes within the margin — one refresh per credential
		// across replicas — and classifies provider failures; reading the
		// row here first would be a second round trip for nothing.
		tok, err := s.tokens.AccessToken(ctx, r.Grant.AppID, r.Credential.ID)
		if err != nil {
			return Credential{}, err
		}
		return Credential{AccessToken: tok.Value, TokenType: tok.Type, ExpiresAt: tok.ExpiresAt, Version: tok.Version,
			Injection: DefaultOAuthInjection}, nil
	}
	var rows []credentialRow
	err := s.db.WithContext(ctx).Raw(`SELECT c.id, c.app_id, c.kind, c.access_token_ciphertext, c.token_type,
			c.expires_at, m.injection, m.allowed_hosts
		FROM credentials c LEFT JOIN managed_secrets m ON m.id = c.managed_secret_id AND m.app_id = c.app_id
		WHERE c.id = ? AND c.app_id = ?`, r.Credential.ID, r.Grant.AppID).Scan(&rows).Error
	if err != nil {
		return Credential{}, fmt.Errorf("grants: load credential: %w", err)
	}
	if len(rows) == 0 {
		return Credential{}, fmt.Errorf("grants: credential of grant %s is missing", r.Grant.ID)
	}
	row := rows[0]
	out := Credential{TokenType: row.TokenType, ExpiresAt: row.ExpiresAt}
	switch row.Kind {
	case models.CredentialOAuth:
		out.Injection = DefaultOAuthInjection
		if row.ExpiresAt != nil && !row.ExpiresAt.After(s.now()) {
			return Credential{}, &errs.CodedError{Code: wire.CodeReauthRequired,
				Message: "the access token has expired and cannot be refreshed yet; the end user must reconnect",
				Details: map[string]any{"grant_id": r.Grant.ID}}
		}
	case models.CredentialManagedSecret:
		if row.Injection == nil || row.AllowedHosts == nil {
			return Credential{}, fmt.Errorf("grants: managed secret of credential %s is missing", row.ID)
		}
		out.Injection = *row.Injection
		if err := json.Unmarshal([]byte(*row.AllowedHosts), &out.AllowedHosts); err != nil {
			return Credential{}, fmt.Errorf("grants: managed secret allowed hosts: %w", err)
		}
		if len(out.AllowedHosts) == 0 {
			// Egress is closed by default: a secret with no hosts goes nowhere.
			return Credential{}, fmt.Errorf("grants: managed secret of credential %s has no allowed hosts", row.ID)
		}
	default:
		return Credential{}, fmt.Errorf("grants: credential %s has unknown kind %q", row.ID, row.Kind)
	}
	if len(row.AccessTokenCiphertext) == 0 {
		return Credential{}, fmt.Errorf("grants: credential %s holds no access token", row.ID)
	}
	pt, err := s.vault.Open(ctx, AccessTokenBinding(row.AppID, row.ID), row.AccessTokenCiphertext)
	if err != nil {
		return Credential{}, fmt.Errorf("grants: open credential %s: %w", row.ID, err)
	}
	out.AccessToken = string(pt)
	clear(pt)
	return out, nil
}

// Refreshed answers an upstream 401 on an OAuth grant: one forced refresh
// past the version the failed call used (several concurrent 401s cause one
// refresh), returning the new credential for exactly one retry.
func (s *Service) Refreshed(ctx context.Context, r Resolved, used Credential) (Credential, error) {
	if s.tokens == nil || r.Credential.Kind != models.CredentialOAuth {
		return Credential{}, errs.Coded(wire.CodeReauthRequired, "the provider refused the access token")
	}
	tok, err := s.tokens.ForceAfter(ctx, r.Grant.AppID, r.Credential.ID, used.Version)
	if err != nil {
		return Credential{}, err
	}
	out := used
	out.AccessToken, out.TokenType, out.ExpiresAt, out.Version = tok.Value, tok.Type, tok.ExpiresAt, tok.Version
	return out, nil
}
