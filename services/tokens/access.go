package tokens

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/ids"
	"github.com/latchkey/latchkey/services/oauth"
)

// want is what a caller needs from a credential.
type want struct {
	// force: the caller's token was refused upstream; refresh unless the
	// credential's version moved past seen (someone refreshed since).
	force bool
	seen  int64
}

// key is the singleflight key: callers wanting the same thing share one
// flight. Different keys for one credential still serialise on the row.
func (w want) key(credentialID string) string {
	if w.force {
		return "force/" + credentialID + "/" + strconv.FormatInt(w.seen, 10)
	}
	return "due/" + credentialID
}

// AccessToken returns the credential's current access token, refreshing it
// first when it expires within the margin (or has expired). force refreshes
// even a fresh token, unless a refresh is already under way; after an
// upstream 401 prefer ForceAfter with the version of the refused token, so
// a burst of 401s causes one refresh.
//
// Errors are *errs.CodedError with reauth_required (the user must
// reconnect), provider_not_configured (the app's OAuth client is missing or
// broken) or upstream_unreachable (the token has expired and the provider
// cannot be reached; details.retry_after_seconds says when the next attempt
// is due); anything else is internal.
func (s *Service) AccessToken(ctx context.Context, appID, credentialID string, force bool) (Token, error) {
	row, err := s.load(ctx, s.db, appID, credentialID, false)
	if err != nil {
		return Token{}, err
	}
	w := want{}
	if force {
		w = want{force: true, seen: row.Version}
	}
	return s.get(ctx, appID, credentialID, w, row)
}

// ForceAfter refreshes the credential because the token of version
// seenVersion was refused upstream (a 401), and returns the new token. If
// the credential has moved past seenVersion — another caller refreshed in
// the meantime — it returns the current token without calling the
// provider. The caller retries its request once with the result, never
// more (DESIGN.md §6).
func (s *Service) ForceAfter(ctx context.Context, appID, credentialID string, seenVersion int64) (Token, error) {
	row, err := s.load(ctx, s.db, appID, credentialID, false)
	if err != nil {
		return Token{}, err
	}
	return s.get(ctx, appID, credentialID, want{force: true, seen: seenVersion}, row)
}

// get answers from the row when it can (the hot path: one primary-key read
// and one decryption) and otherwise joins or starts the credential's
// refresh flight.
func (s *Service) get(ctx context.Context, appID, credentialID string, w want, row models.Credential) (Token, error) {
	if s.servable(row, w, s.now()) {
		return s.current(ctx, row)
	}
	// The flight runs on a context detached from this caller: callers
	// share it, and a refresh abandoned halfway (after the provider
	// rotated, before the commit) is exactly what must not happen because
	// one HTTP client went away. It is bounded by flightTimeout instead.
	ch := s.flights.DoChan(w.key(row.ID), func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.flightTimeout())
		defer cancel()
		return s.refresh(fctx, appID, credentialID, w)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return Token{}, r.Err
		}
		return r.Val.(Token), nil
	case <-ctx.Done():
		return Token{}, fmt.Errorf("tokens: waiting for the refresh of credential %s: %w", row.ID, ctx.Err())
	}
}

// flightTimeout bounds one flight: waiting for another replica's refresh
// (until it goes stale), then our own request, possibly twice ("auto"
// client authentication).
func (s *Service) flightTimeout() time.Duration {
	return s.staleAfter + 3*s.requestTimeout
}

// servable reports whether the row's token can be handed out as it is.
func (s *Service) servable(row models.Credential, w want, now time.Time) bool {
	if w.force {
		return row.Version != w.seen
	}
	if !s.needed(row, now) {
		return true
	}
	// Someone is refreshing right now and our token still works: use it
	// rather than queue behind them.
	return row.RefreshState == models.RefreshInFlight && !s.stale(row, now) && !expired(row, now)
}

// needed reports whether the token is due for a refresh: expired, or past
// next_refresh_at (set after every refresh and after every failure), or —
// for rows nobody scheduled yet — within the margin of its expiry.
func (s *Service) needed(row models.Credential, now time.Time) bool {
	if row.ExpiresAt == nil {
		return false
	}
	if expired(row, now) {
		return true
	}
	if row.NextRefreshAt != nil {
		return !now.Before(*row.NextRefreshAt)
	}
	return !now.Before(row.ExpiresAt.Add(-s.margin))
}

func expired(row models.Credential, now time.Time) bool {
	return row.ExpiresAt != nil && !now.Before(*row.ExpiresAt)
}

func (s *Service) stale(row models.Credential, now time.Time) bool {
	return row.RefreshState == models.RefreshInFlight &&
		(row.RefreshStartedAt == nil || now.Sub(*row.RefreshStartedAt) >= s.staleAfter)
}

// inBackoff reports whether a failed refresh asked us to wait.
func inBackoff(row models.Credential, now time.Time) bool {
	return row.RefreshFailures > 0 && row.NextRefreshAt != nil && now.Before(*row.NextRefreshAt)
}

// nextRefresh schedules the next refresh of a token expiring at exp: the
// margin before it, or half its lifetime when that is shorter, so a
// five-minute token is not refreshed on every use.
func (s *Service) nextRefresh(exp *time.Time, now time.Time) *time.Time {
	if exp == nil {
		return nil
	}
	lead := min(s.margin, exp.Sub(now)/2)
	t := database.StoredTime(exp.Add(-lead))
	return &t
}

// current opens the row's access token.
func (s *Service) current(ctx context.Context, row models.Credential) (Token, error) {
	if len(row.AccessTokenCiphertext) == 0 {
		return Token{}, fmt.Errorf("tokens: credential %s holds no access token", row.ID)
	}
	pt, err := s.vault.Open(ctx, oauth.AccessTokenBinding(row.AppID, row.ID), row.AccessTokenCiphertext)
	if err != nil {
		return Token{}, fmt.Errorf("tokens: open access token of credential %s: %w", row.ID, err)
	}
	tok := Token{Value: string(pt), Type: row.TokenType, ExpiresAt: row.ExpiresAt, Version: row.Version}
	clear(pt)
	return tok, nil
}

// load reads a credential of the app; lock takes the row lock (PostgreSQL
// FOR UPDATE; on SQLite the IMMEDIATE transaction already holds the
// database's write lock and GORM drops the clause).
func (s *Service) load(ctx context.Context, db *gorm.DB, appID, credentialID string, lock bool) (models.Credential, error) {
	if !isUUID(appID) || !isUUID(credentialID) {
		return models.Credential{}, fmt.Errorf("tokens: credential: %w", errs.ErrNotFound)
	}
	q := db.WithContext(ctx)
	if lock {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	var row models.Credential
	err := q.Where("id = ? AND app_id = ?", credentialID, appID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return models.Credential{}, fmt.Errorf("tokens: credential: %w", errs.ErrNotFound)
	}
	if err != nil {
		return models.Credential{}, fmt.Errorf("tokens: load credential: %w", err)
	}
	if row.Kind != models.CredentialOAuth {
		return models.Credential{}, fmt.Errorf("tokens: credential %s is not an OAuth credential", row.ID)
	}
	return row, nil
}

func isUUID(s string) bool {
	_, ok := ids.Canonical(s)
	return ok
}

// Actions of a claim.
type claimAction int

const (
	actDone    claimAction = iota // answer with token / err
	actWait                       // another refresh is live; poll and retry
	actRefresh                    // we own the refresh: call the provider
)

type claimResult struct {
	action claimAction
	token  Token
	err    error
	row    models.Credential // actRefresh: the row as claimed
}

// refresh is one flight: it waits for a refresh running elsewhere, claims
// the credential, calls the provider and commits the outcome.
func (s *Service) refresh(ctx context.Context, appID, credentialID string, w want) (Token, error) {
	delay := 20 * time.Millisecond
	for {
		// Unlocked look first: waiting for another replica must not hold
		// the row lock (or, on SQLite, the database's write lock).
		row, err := s.load(ctx, s.db, appID, credentialID, false)
		if err != nil {
			return Token{}, err
		}
		now := s.now()
		if s.servable(row, w, now) {
			return s.current(ctx, row)
		}
		if row.RefreshState == models.RefreshInFlight && !s.stale(row, now) {
			if err := sleep(ctx, delay); err != nil {
				return Token{}, fmt.Errorf("tokens: waiting for another replica's refresh of credential %s: %w", row.ID, err)
			}
			delay = min(2*delay, 500*time.Millisecond)
			continue
		}
		cfg, cfgErr := s.clientConfig(ctx, row)
		if cfgErr != nil && !notConfigured(cfgErr) {
			return Token{}, cfgErr
		}
		c, err := s.claim(ctx, appID, credentialID, w, cfg, cfgErr)
		if err != nil {
			return Token{}, err
		}
		switch c.action {
		case actDone:
			return c.token, c.err
		case actWait:
			if err := sleep(ctx, delay); err != nil {
				return Token{}, fmt.Errorf("tokens: waiting for another replica's refresh of credential %s: %w", row.ID, err)
			}
			delay = min(2*delay, 500*time.Millisecond)
			continue
		}
		return s.exchange(ctx, c.row, cfg, w)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// clientConfig opens the credential's OAuth client configuration.
func (s *Service) clientConfig(ctx context.Context, row models.Credential) (oauth.ClientConfig, error) {
	if row.ProviderConfigID == nil {
		return oauth.ClientConfig{}, errs.Coded(wire.CodeProviderNotConfigured, "the credential has no provider configuration")
	}
	return s.clients.ClientByID(ctx, row.AppID, *row.ProviderConfigID)
}

// notConfigured reports a provider config that is missing, disabled or
// broken (as opposed to a failure to read it).
func notConfigured(err error) bool {
	return errs.CodeOf(err) == wire.CodeProviderNotConfigured || errors.Is(err, errs.ErrNotFound)
}

// claim decides, under the row lock, what this flight does, and records a
// refresh it takes on before the provider is called.
func (s *Service) claim(ctx context.Context, appID, credentialID string, w want, cfg oauth.ClientConfig, cfgErr error) (claimResult, error) {
	var out claimResult
	var current *models.Credential // answer with this row's token after the commit
	marked := false
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		row, err := s.load(ctx, tx, appID, credentialID, true)
		if err != nil {
			return err
		}
		now := s.now()
		provider := cfg.Provider.ID

		if s.stale(row, now) {
			// A refresh was recorded and never finished: its replica died
			// or lost the database between calling the provider and
			// committing. If the provider rotates refresh tokens, it may
			// have issued a new pair and retired ours; retrying with ours
			// would at best fail and at worst trip reuse detection, so the
			// user reconnects. Without a config we cannot know: assume the
			// worst.
			if cfgErr != nil || cfg.Provider.RefreshTokenRotates {
				n, err := s.interrupted(ctx, tx, row, provider, now)
				if err != nil {
					return err
				}
				marked = n > 0
				out = claimResult{action: actDone, err: reauthRequired("a token refresh was interrupted after the provider may have rotated the refresh token; the end user must reconnect")}
				return nil
			}
			// The refresh token survives a non-rotating refresh: take over.
		}
		if w.force && row.Version != w.seen || !w.force && !s.needed(row, now) {
			current = &row
			return nil
		}
		if row.RefreshState == models.RefreshInFlight && !s.stale(row, now) {
			if !w.force && !expired(row, now) {
				current = &row
			} else {
				out.action = actWait
			}
			return nil
		}
		if cfgErr != nil {
			if !w.force && !expired(row, now) {
				current = &row
			} else {
				out = claimResult{action: actDone, err: cfgErr}
			}
			return nil
		}
		if inBackoff(row, now) {
			// Here the token has expired or was refused upstream: the
			// provider asked us to wait, and we do.
			out = claimResult{action: actDone, err: unreachable(row.NextRefreshAt.Sub(now))}
			return nil
		}
		var active int64
		if err := tx.Model(&models.Grant{}).Where("credential_id = ? AND app_id = ? AND status = ?",
			row.ID, row.AppID, models.GrantActive).Count(&active).Error; err != nil {
			return fmt.Errorf("tokens: count grants: %w", err)
		}
		if active == 0 {
			// Nobody may use the credential (revoked, or already waiting
			// for a reconnect): do not spend a refresh token on it.
			out = claimResult{action: actDone, err: reauthRequired("no active grant uses this credential")}
			return nil
		}
		if len(row.RefreshTokenCiphertext) == 0 {
			switch {
			case expired(row, now):
				n, err := s.markReauth(ctx, tx, row, provider, "the access token expired and the provider issued no refresh token")
				if err != nil {
					return err
				}
				marked = n > 0
				out = claimResult{action: actDone, err: reauthRequired("the access token has expired and cannot be refreshed; the end user must reconnect")}
			case w.force:
				out = claimResult{action: actDone, err: reauthRequired("the provider refused the access token and there is no refresh token")}
			default:
				current = &row
			}
			return nil
		}
		started := database.StoredTime(now)
		res := tx.Model(&models.Credential{}).Where("id = ? AND version = ?", row.ID, row.Version).
			Updates(map[string]any{"refresh_state": models.RefreshInFlight, "refresh_started_at": started, "updated_at": now.UTC()})
		if res.Error != nil {
			return fmt.Errorf("tokens: record refresh: %w", res.Error)
		}
		if res.RowsAffected != 1 {
			return fmt.Errorf("tokens: record refresh: credential %s changed under its lock", row.ID)
		}
		row.RefreshState, row.RefreshStartedAt = models.RefreshInFlight, &started
		out = claimResult{action: actRefresh, row: row}
		return nil
	})
	if err != nil {
		return claimResult{}, err
	}
	if marked {
		s.changed()
	}
	if current != nil {
		tok, err := s.current(ctx, *current)
		return claimResult{action: actDone, token: tok, err: err}, nil
	}
	return out, nil
}

// interrupted records a refresh found interrupted on a rotating provider:
// the credential goes idle, its grants to needs_reauth.
func (s *Service) interrupted(ctx context.Context, tx *gorm.DB, row models.Credential, provider string, now time.Time) (int, error) {
	const reason = "refresh interrupted after the provider may have rotated the refresh token"
	if err := tx.Model(&models.Credential{}).Where("id = ?", row.ID).Updates(map[string]any{
		"refresh_state": models.RefreshIdle, "refresh_started_at": nil, "next_refresh_at": nil,
		"last_refresh_error": reason, "updated_at": now.UTC(),
	}).Error; err != nil {
		return 0, fmt.Errorf("tokens: record interrupted refresh: %w", err)
	}
	org, err := orgOf(ctx, tx, row.AppID)
	if err != nil {
		return 0, err
	}
	started := ""
	if row.RefreshStartedAt != nil {
		started = row.RefreshStartedAt.UTC().Format(time.RFC3339)
	}
	if err := s.audit.InTx(ctx, tx, models.AuditEvent{OrganizationID: org, AppID: row.AppID, Action: ActionTokenRefresh,
		ActorKind: audit.ActorSystem, Provider: provider, Outcome: models.OutcomeError,
		ErrorCode: string(wire.CodeReauthRequired), Reason: reason,
		Context: audit.EncodeContext(map[string]string{"credential_id": row.ID, "refresh_started_at": started})}); err != nil {
		return 0, err
	}
	return s.markReauth(ctx, tx, row, provider, reason)
}

// markReauth moves the credential's active grants to needs_reauth, with
// one audit row per grant, inside tx.
func (s *Service) markReauth(ctx context.Context, tx *gorm.DB, row models.Credential, provider, reason string) (int, error) {
	var gs []models.Grant
	if err := tx.Where("credential_id = ? AND app_id = ? AND status = ?", row.ID, row.AppID, models.GrantActive).
		Order("id").Find(&gs).Error; err != nil {
		return 0, fmt.Errorf("tokens: load grants: %w", err)
	}
	if len(gs) == 0 {
		return 0, nil
	}
	now := s.now().UTC()
	if err := tx.Model(&models.Grant{}).Where("credential_id = ? AND app_id = ? AND status = ?",
		row.ID, row.AppID, models.GrantActive).
		Updates(map[string]any{"status": models.GrantNeedsReauth, "updated_at": now}).Error; err != nil {
		return 0, fmt.Errorf("tokens: mark grants needs_reauth: %w", err)
	}
	org, err := orgOf(ctx, tx, row.AppID)
	if err != nil {
		return 0, err
	}
	for _, g := range gs {
		if err := s.audit.InTx(ctx, tx, models.AuditEvent{OrganizationID: org, AppID: row.AppID,
			Action: ActionGrantNeedsReauth, ActorKind: audit.ActorSystem, GrantID: g.ID, Provider: g.Provider,
			PrincipalKind: g.PrincipalKind, PrincipalID: g.PrincipalID, Outcome: models.OutcomeSuccess,
			ErrorCode: string(wire.CodeReauthRequired), Reason: reason,
			Context: audit.EncodeContext(map[string]string{"credential_id": row.ID})}); err != nil {
			return 0, err
		}
	}
	if provider == "" {
		provider = gs[0].Provider
	}
	s.log.Info("grants need reauthorization", "credential_id", row.ID, "provider", provider, "grants", len(gs), "reason", reason)
	return len(gs), nil
}

func orgOf(ctx context.Context, tx *gorm.DB, appID string) (string, error) {
	var app models.App
	if err := tx.WithContext(ctx).Select("id", "organization_id").Where("id = ?", appID).Take(&app).Error; err != nil {
		return "", fmt.Errorf("tokens: load app: %w", err)
	}
	return app.OrganizationID, nil
}

// exchange calls the provider for a claimed credential and commits the
// outcome.
func (s *Service) exchange(ctx context.Context, row models.Credential, cfg oauth.ClientConfig, w want) (Token, error) {
	rt, err := s.vault.Open(ctx, oauth.RefreshTokenBinding(row.AppID, row.ID), row.RefreshTokenCiphertext)
	if err != nil {
		// Nothing was sent: give the claim back.
		s.release(ctx, row, "the refresh token cannot be opened")
		return Token{}, fmt.Errorf("tokens: open refresh token of credential %s: %w", row.ID, err)
	}
	start := time.Now()
	res, f := s.refreshRequest(ctx, cfg, string(rt))
	clear(rt)
	latency := time.Since(start)
	if f == nil {
		return s.commitSuccess(ctx, row, cfg, res, latency)
	}
	return s.commitFailure(ctx, row, cfg, w, f, latency)
}

// release returns a claim without a provider call having happened.
func (s *Service) release(ctx context.Context, row models.Credential, reason string) {
	err := s.db.WithContext(ctx).Model(&models.Credential{}).
		Where("id = ? AND version = ? AND refresh_state = ?", row.ID, row.Version, models.RefreshInFlight).
		Updates(map[string]any{"refresh_state": models.RefreshIdle, "refresh_started_at": nil,
			"last_refresh_error": reason, "updated_at": s.now().UTC()}).Error
	if err != nil {
		s.log.Error("release refresh claim", "credential_id", row.ID, "error", err)
	}
}

// commitSuccess stores the new pair (sealed; the old refresh token stays
// when the response has none) and only then hands the token out.
func (s *Service) commitSuccess(ctx context.Context, row models.Credential, cfg oauth.ClientConfig, res tokenResult, latency time.Duration) (Token, error) {
	now := s.now()
	exp := expiry(cfg.Provider, res.expiresIn, res.refreshToken != "" || len(row.RefreshTokenCiphertext) > 0, now)
	// Seal before the transaction: the vault uses its own connection, and
	// on SQLite a second connection cannot write while we hold the lock.
	at, err := s.vault.Seal(ctx, oauth.AccessTokenBinding(row.AppID, row.ID), []byte(res.accessToken))
	if err != nil {
		return Token{}, s.lost(row, fmt.Errorf("seal access token: %w", err))
	}
	rt := row.RefreshTokenCiphertext
	if res.refreshToken != "" {
		if rt, err = s.vault.Seal(ctx, oauth.RefreshTokenBinding(row.AppID, row.ID), []byte(res.refreshToken)); err != nil {
			return Token{}, s.lost(row, fmt.Errorf("seal refresh token: %w", err))
		}
	}
	tokenType := row.TokenType
	if res.tokenType != "" {
		tokenType = res.tokenType
	}
	updates := map[string]any{
		"access_token_ciphertext": at, "refresh_token_ciphertext": rt, "token_type": tokenType,
		"expires_at": exp, "version": row.Version + 1,
		"refresh_state": models.RefreshIdle, "refresh_started_at": nil, "refresh_failures": 0,
		"next_refresh_at": s.nextRefresh(exp, now), "last_refresh_error": "", "updated_at": now.UTC(),
	}
	if res.scope != "" {
		updates["scopes"] = res.scope
	}
	var theirs *models.Credential
	err = s.retry(ctx, func() error {
		theirs = nil
		return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			cur, err := s.load(ctx, tx, row.AppID, row.ID, true)
			if err != nil {
				return err
			}
			if cur.Version != row.Version {
				// Another replica took over a refresh it believed
				// interrupted (non-rotating providers only) and committed
				// first. Both pairs are valid; keep theirs.
				theirs = &cur
				return nil
			}
			if err := tx.Model(&models.Credential{}).Where("id = ? AND version = ?", row.ID, row.Version).
				Updates(updates).Error; err != nil {
				return fmt.Errorf("tokens: store refreshed tokens: %w", err)
			}
			org, err := orgOf(ctx, tx, row.AppID)
			if err != nil {
				return err
			}
			c := map[string]string{"credential_id": row.ID, "version": strconv.FormatInt(row.Version+1, 10),
				"refresh_token_rotated": strconv.FormatBool(res.refreshToken != "")}
			if exp != nil {
				c["expires_at"] = exp.Format(time.RFC3339)
			}
			return s.audit.InTx(ctx, tx, models.AuditEvent{OrganizationID: org, AppID: row.AppID,
				Action: ActionTokenRefresh, ActorKind: audit.ActorSystem, Provider: cfg.Provider.ID,
				Method: "POST", Host: hostOf(cfg.Provider.RefreshEndpoint()), Path: pathOf(cfg.Provider.RefreshEndpoint()),
				UpstreamStatus: 200, LatencyMS: latency.Milliseconds(), Outcome: models.OutcomeSuccess,
				Context: audit.EncodeContext(c)})
		})
	})
	if err != nil {
		return Token{}, s.lost(row, err)
	}
	if theirs != nil {
		return s.current(ctx, *theirs)
	}
	return Token{Value: res.accessToken, Type: tokenType, ExpiresAt: exp, Version: row.Version + 1}, nil
}

// lost reports new tokens that could not be stored. The row stays
// in_flight on purpose: it is exactly a crash between rotation and commit,
// and crash detection handles it the same way.
func (s *Service) lost(row models.Credential, err error) error {
	s.log.Error("refreshed tokens could not be stored; the refresh will be treated as interrupted",
		"credential_id", row.ID, "error", err)
	return fmt.Errorf("tokens: credential %s: %w", row.ID, err)
}

// retry runs fn up to three times: a database blip must not throw away a
// pair the provider has already rotated to.
func (s *Service) retry(ctx context.Context, fn func() error) error {
	var err error
	for i, wait := range []time.Duration{0, 200 * time.Millisecond, time.Second} {
		if i > 0 {
			if serr := sleep(ctx, wait); serr != nil {
				return errors.Join(err, serr)
			}
		}
		if err = fn(); err == nil || errors.Is(err, errs.ErrNotFound) {
			return err
		}
	}
	return err
}

// commitFailure records a failed refresh and answers the caller.
func (s *Service) commitFailure(ctx context.Context, row models.Credential, cfg oauth.ClientConfig, w want, f *refreshFailure, latency time.Duration) (Token, error) {
	now := s.now()
	failures := row.RefreshFailures + 1
	var next *time.Time
	var wait time.Duration
	code := wire.CodeUpstreamUnreachable
	switch f.kind {
	case failInvalidGrant:
		code = wire.CodeReauthRequired
	case failInvalidClient:
		code = wire.CodeProviderNotConfigured
		// The config is marked broken below and the sweep skips broken
		// configs; the backoff only spaces out callers racing the mark.
		wait = s.backoff(failures)
	default:
		wait = max(s.backoff(failures), f.retryAfter)
	}
	if wait > 0 {
		t := database.StoredTime(now.Add(wait))
		next = &t
	}
	marked := false
	var theirs *models.Credential
	err := s.retry(ctx, func() error {
		theirs, marked = nil, false
		return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			cur, err := s.load(ctx, tx, row.AppID, row.ID, true)
			if err != nil {
				return err
			}
			if cur.Version != row.Version {
				theirs = &cur
				return nil
			}
			if err := tx.Model(&models.Credential{}).Where("id = ? AND version = ?", row.ID, row.Version).
				Updates(map[string]any{"refresh_state": models.RefreshIdle, "refresh_started_at": nil,
					"refresh_failures": failures, "next_refresh_at": next, "last_refresh_error": f.summary,
					"updated_at": now.UTC()}).Error; err != nil {
				return fmt.Errorf("tokens: record failed refresh: %w", err)
			}
			org, err := orgOf(ctx, tx, row.AppID)
			if err != nil {
				return err
			}
			c := map[string]string{"credential_id": row.ID, "failures": strconv.Itoa(failures)}
			if f.code != "" {
				c["oauth_error"] = f.code
			}
			if next != nil {
				c["next_refresh_at"] = next.Format(time.RFC3339)
			}
			if err := s.audit.InTx(ctx, tx, models.AuditEvent{OrganizationID: org, AppID: row.AppID,
				Action: ActionTokenRefresh, ActorKind: audit.ActorSystem, Provider: cfg.Provider.ID,
				Method: "POST", Host: hostOf(cfg.Provider.RefreshEndpoint()), Path: pathOf(cfg.Provider.RefreshEndpoint()),
				UpstreamStatus: f.status, LatencyMS: latency.Milliseconds(), Outcome: models.OutcomeUpstreamError,
				ErrorCode: string(code), Reason: f.summary, Context: audit.EncodeContext(c)}); err != nil {
				return err
			}
			if f.kind == failInvalidGrant {
				n, err := s.markReauth(ctx, tx, row, cfg.Provider.ID, "the provider refused the refresh token ("+f.code+")")
				if err != nil {
					return err
				}
				marked = n > 0
			}
			return nil
		})
	})
	if err != nil {
		// Nothing new to lose: the old pair is still in the row, which
		// crash detection will find in_flight.
		return Token{}, fmt.Errorf("tokens: credential %s: %w", row.ID, err)
	}
	if theirs != nil {
		return s.current(ctx, *theirs)
	}
	if marked {
		s.changed()
	}
	s.log.Warn("token refresh failed", "credential_id", row.ID, "provider", cfg.Provider.ID,
		"failure", f.summary, "failures", failures)
	switch f.kind {
	case failInvalidGrant:
		return Token{}, reauthRequired("the provider refused the refresh token; the end user must reconnect")
	case failInvalidClient:
		reason := "the provider answered " + f.code + " to a token refresh: the app's OAuth client id or secret is no longer accepted"
		if err := s.clients.MarkBroken(ctx, cfg.ProviderConfigID, reason); err != nil {
			s.log.Error("mark provider config broken", "provider_config_id", cfg.ProviderConfigID, "error", err)
		}
		// A broken config stops refreshing, not using: an unexpired token
		// keeps working (as it does for every later call, see claim).
		if !w.force && !expired(row, now) {
			return s.current(ctx, row)
		}
		return Token{}, &errs.CodedError{Code: wire.CodeProviderNotConfigured,
			Message: "the provider refused the app's OAuth client; an operator must configure the provider again",
			Details: map[string]any{"provider": cfg.Provider.ID, "status": models.ProviderConfigBroken}}
	}
	if !w.force && !expired(row, now) {
		// The token we have still works: keep serving it while the
		// provider recovers.
		return s.current(ctx, row)
	}
	return Token{}, unreachable(wait)
}

// backoff is base·2^(failures-1), capped.
func (s *Service) backoff(failures int) time.Duration {
	d := s.backoffBase
	for i := 1; i < failures && d < s.backoffMax; i++ {
		d *= 2
	}
	return min(d, s.backoffMax)
}

func reauthRequired(msg string) error {
	return &errs.CodedError{Code: wire.CodeReauthRequired, Message: msg}
}

// unreachable is the error of an expired (or refused) token whose refresh
// failed transiently.
func unreachable(retry time.Duration) error {
	secs := int64(max(retry, time.Second).Round(time.Second) / time.Second)
	return &errs.CodedError{Code: wire.CodeUpstreamUnreachable,
		Message: "the access token has expired and the provider's token endpoint is unavailable; retry later",
		Details: map[string]any{"retry_after_seconds": secs}}
}
