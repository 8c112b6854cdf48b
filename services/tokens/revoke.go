package tokens

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/catalog"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/oauth"
	"github.com/latchkey/latchkey/services/vault"
)

// Results of a revocation at the provider, recorded in the audit row's
// context ("result").
const (
	RevokeResultRevoked      = "revoked"       // the provider answered 2xx
	RevokeResultFailed       = "failed"        // it answered otherwise, or could not be reached
	RevokeResultNotSupported = "not_supported" // the provider has no revocation endpoint
	RevokeResultSkipped      = "skipped"       // no usable provider config, or no token to send
)

// revocation is what the provider call did, for the audit row.
type revocation struct {
	result string
	style  catalog.RevokeStyle
	method string
	target string // URL without query
	status int
	detail string
}

// RevokeCredential revokes an OAuth credential whose last grant has been
// revoked: it revokes the token at the provider when the provider has a
// revocation endpoint (best effort: the outcome is audited, a failure does
// not stop the rest), then deletes the credential. The revoked grants stay
// as history; their credential_id becomes NULL (migration 00002).
//
// It refuses (errs.ErrConflict) while any grant on the credential is not
// revoked, and keeps the credential if a grant came back (a reconnect)
// while the provider was being called. Deleting an already deleted
// credential is not an error.
func (s *Service) RevokeCredential(ctx context.Context, appID, credentialID string) error {
	// Once started it finishes: a caller going away between the provider's
	// revocation and the deletion would leave a credential holding dead
	// tokens that nothing deletes later. The provider call is bounded by
	// the request timeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*s.requestTimeout)
	defer cancel()
	row, err := s.load(ctx, s.db, appID, credentialID, false)
	if errors.Is(err, errs.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if n, err := s.liveGrants(ctx, s.db, row); err != nil {
		return err
	} else if n > 0 {
		return fmt.Errorf("tokens: credential %s still has %d grants that are not revoked: %w", row.ID, n, errs.ErrConflict)
	}
	cfg, cfgErr := s.clientConfig(ctx, row)
	if cfgErr != nil && !notConfigured(cfgErr) {
		return cfgErr
	}
	var rev revocation
	if cfgErr != nil {
		// A broken or disabled config still names the provider, but we
		// cannot authenticate as the app; the credential goes anyway.
		rev = revocation{result: RevokeResultSkipped, detail: "no usable provider configuration"}
	} else {
		rev = s.revokeAtProvider(ctx, cfg, row)
	}

	kept := false
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		cur, err := s.load(ctx, tx, appID, credentialID, true)
		if errors.Is(err, errs.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		n, err := s.liveGrants(ctx, tx, cur)
		if err != nil {
			return err
		}
		kept = n > 0
		provider := providerOf(cfg, cfgErr)
		if provider == "" {
			// The config is unusable; the grants still name the provider.
			var names []string
			if err := tx.Model(&models.Grant{}).Where("credential_id = ? AND app_id = ?", cur.ID, cur.AppID).
				Limit(1).Pluck("provider", &names).Error; err != nil {
				return fmt.Errorf("tokens: load grant provider: %w", err)
			}
			if len(names) > 0 {
				provider = names[0]
			}
		}
		if !kept {
			if err := tx.Where("id = ? AND app_id = ?", cur.ID, cur.AppID).Delete(&models.Credential{}).Error; err != nil {
				return fmt.Errorf("tokens: delete credential: %w", err)
			}
		}
		org, err := orgOf(ctx, tx, cur.AppID)
		if err != nil {
			return err
		}
		c := map[string]string{"credential_id": cur.ID, "account_identifier": cur.AccountIdentifier,
			"result": rev.result, "credential_deleted": strconv.FormatBool(!kept)}
		if rev.style != "" {
			c["revoke_style"] = string(rev.style)
		}
		if rev.detail != "" {
			c["detail"] = rev.detail
		}
		if kept {
			c["kept_because"] = "a grant on the credential was reactivated during revocation"
		}
		ev := models.AuditEvent{OrganizationID: org, AppID: cur.AppID, Action: ActionTokenRevoke,
			ActorKind: audit.ActorSystem, Provider: provider, Method: rev.method,
			Host: hostOf(rev.target), Path: pathOf(rev.target), UpstreamStatus: rev.status,
			Outcome: models.OutcomeSuccess, Context: audit.EncodeContext(c)}
		if rev.result == RevokeResultFailed {
			ev.Outcome, ev.ErrorCode = models.OutcomeUpstreamError, string(wire.CodeUpstreamUnreachable)
			ev.Reason = "the provider did not confirm the revocation"
			if !kept {
				ev.Reason += "; the credential was deleted anyway"
			}
		}
		return s.audit.InTx(ctx, tx, ev)
	})
	if err != nil {
		return err
	}
	if !kept {
		s.changed()
	}
	if rev.result == RevokeResultFailed {
		s.log.Warn("token revocation at the provider failed; credential deleted", "credential_id", row.ID,
			"provider", providerOf(cfg, cfgErr), "detail", rev.detail, "status", rev.status)
	}
	return nil
}

func (s *Service) liveGrants(ctx context.Context, db *gorm.DB, row models.Credential) (int64, error) {
	var n int64
	if err := db.WithContext(ctx).Model(&models.Grant{}).
		Where("credential_id = ? AND app_id = ? AND status <> ?", row.ID, row.AppID, models.GrantRevoked).
		Count(&n).Error; err != nil {
		return 0, fmt.Errorf("tokens: count grants: %w", err)
	}
	return n, nil
}

// revokeAtProvider sends the provider's revocation request (catalog
// RevokeStyle). Which token each style sends:
//
//   - rfc7009: the refresh token when there is one (RFC 7009 §2.1: the
//     server then also invalidates the access tokens of the same grant),
//     else the access token, with token_type_hint; client authentication
//     as at the token endpoint.
//   - bearer-post, bearer-delete: the access token as the bearer
//     credential, no body.
//   - json: POST {"token": access token} with HTTP Basic client
//     authentication (Notion documents the access token; Intuit accepts
//     either and revokes both).
//   - github: DELETE {"access_token": …} with HTTP Basic client
//     authentication to RevokeEndpoint(client id).
func (s *Service) revokeAtProvider(ctx context.Context, cfg oauth.ClientConfig, row models.Credential) revocation {
	p := cfg.Provider
	if p.RevokeURL == "" {
		return revocation{result: RevokeResultNotSupported}
	}
	style := p.RevokeStyle
	if style == "" {
		style = catalog.RevokeRFC7009
	}
	rev := revocation{style: style, target: p.RevokeEndpoint(cfg.ClientID)}
	access, err := s.openOptional(ctx, oauth.AccessTokenBinding(row.AppID, row.ID), row.AccessTokenCiphertext)
	if err != nil {
		rev.result, rev.detail = RevokeResultSkipped, "the access token cannot be opened"
		return rev
	}
	refresh, err := s.openOptional(ctx, oauth.RefreshTokenBinding(row.AppID, row.ID), row.RefreshTokenCiphertext)
	if err != nil {
		rev.result, rev.detail = RevokeResultSkipped, "the refresh token cannot be opened"
		return rev
	}

	var (
		body        []byte
		contentType string
		bearer      string
		basic       bool
	)
	switch style {
	case catalog.RevokeRFC7009:
		rev.method = http.MethodPost
		tok, hint := refresh, "refresh_token"
		if tok == "" {
			tok, hint = access, "access_token"
		}
		if tok == "" {
			rev.result, rev.detail = RevokeResultSkipped, "no token to revoke"
			return rev
		}
		form := url.Values{"token": {tok}, "token_type_hint": {hint}}
		if p.TokenAuthStyle == catalog.AuthStyleParams {
			form.Set("client_id", cfg.ClientID)
			if cfg.ClientSecret != "" {
				form.Set("client_secret", cfg.ClientSecret)
			}
		} else {
			basic = true
		}
		body, contentType = []byte(form.Encode()), "application/x-www-form-urlencoded"
	case catalog.RevokeBearerPost, catalog.RevokeBearerDelete:
		rev.method = http.MethodPost
		if style == catalog.RevokeBearerDelete {
			rev.method = http.MethodDelete
		}
		bearer = access
	case catalog.RevokeJSON:
		rev.method, basic = http.MethodPost, true
		body, _ = json.Marshal(map[string]string{"token": access})
		contentType = "application/json"
	case catalog.RevokeGitHub:
		rev.method, basic = http.MethodDelete, true
		body, _ = json.Marshal(map[string]string{"access_token": access})
		contentType = "application/json"
	default:
		rev.result, rev.detail = RevokeResultSkipped, "unknown revocation style"
		return rev
	}
	if (style != catalog.RevokeRFC7009) && access == "" {
		rev.result, rev.detail = RevokeResultSkipped, "no access token to revoke"
		return rev
	}

	ctx, cancel := context.WithTimeout(ctx, s.requestTimeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, rev.method, rev.target, rd)
	if err != nil {
		rev.result, rev.detail = RevokeResultFailed, "the revocation URL is not usable"
		return rev
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if style == catalog.RevokeGitHub {
		req.Header.Set("Accept", "application/vnd.github+json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if basic {
		setClientBasic(req, cfg.ClientID, cfg.ClientSecret)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		rev.result, rev.detail = RevokeResultFailed, networkFailure(err).summary
		return rev
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	_ = resp.Body.Close()
	rev.status = resp.StatusCode
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		rev.result = RevokeResultRevoked
	} else {
		rev.result, rev.detail = RevokeResultFailed, "the provider answered "+strconv.Itoa(resp.StatusCode)
	}
	return rev
}

func (s *Service) openOptional(ctx context.Context, b vault.Binding, ct []byte) (string, error) {
	if len(ct) == 0 {
		return "", nil
	}
	pt, err := s.vault.Open(ctx, b, ct)
	if err != nil {
		return "", err
	}
	out := string(pt)
	clear(pt)
	return out, nil
}

// hostOf and pathOf split a provider URL for audit rows (never a query
// string: it might carry something secret).
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

func pathOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Path
}
