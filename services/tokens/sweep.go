package tokens

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/oauth"
)

// SweepReport says what one sweep did.
type SweepReport struct {
	// Refreshed counts credentials whose token the sweep refreshed (or
	// found refreshed by someone else since it listed them).
	Refreshed int
	// Failed counts credentials whose refresh failed (transiently, or for
	// good: needs_reauth, broken config).
	Failed int
	// Interrupted counts refreshes found stuck in_flight past the stale
	// threshold and resolved (grants to needs_reauth on rotating
	// providers, the claim released on the others).
	Interrupted int
}

// Run sweeps every interval (±20% jitter, so replicas started together
// drift apart) until ctx ends. Failures are logged and retried on the next
// tick; Run returns nil when ctx ends.
func (s *Service) Run(ctx context.Context) error {
	for {
		jitter := time.Duration((rand.Float64()*0.4 - 0.2) * float64(s.sweepInterval))
		if err := sleep(ctx, s.sweepInterval+jitter); err != nil {
			return nil
		}
		rep, err := s.Sweep(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Error("token sweep", "error", err)
		}
		if rep.Refreshed+rep.Failed+rep.Interrupted > 0 {
			s.log.Info("token sweep", "refreshed", rep.Refreshed, "failed", rep.Failed, "interrupted", rep.Interrupted)
		}
	}
}

// candidate is a credential the sweep looks at.
type candidate struct {
	ID      string
	AppID   string
	Version int64
}

// Sweep runs once: it resolves refreshes left in_flight past the stale
// threshold (crash detection), then refreshes up to the batch size of
// credentials that are due — expiring within the margin or past
// next_refresh_at — have a refresh token, an active provider config and at
// least one active grant, a few at a time. Every replica may sweep: the
// refreshes go through the same single-flight, row lock and re-read as
// requests do, so two sweeps never refresh one credential twice.
func (s *Service) Sweep(ctx context.Context) (SweepReport, error) {
	var rep SweepReport
	now := s.now()
	var stuck []candidate
	// The SQL bounds are coarse (whole seconds, text order on SQLite);
	// each credential is re-checked exactly under its lock.
	err := s.db.WithContext(ctx).Raw(`SELECT c.id, c.app_id FROM credentials c
		WHERE c.kind = ? AND c.refresh_state = ? AND (c.refresh_started_at IS NULL OR c.refresh_started_at <= ?)
		ORDER BY c.refresh_started_at LIMIT ?`,
		models.CredentialOAuth, models.RefreshInFlight, database.StoredTime(now.Add(-s.staleAfter)), s.sweepBatch).
		Scan(&stuck).Error
	if err != nil {
		return rep, fmt.Errorf("tokens: find interrupted refreshes: %w", err)
	}
	var errsSeen []error
	for _, c := range stuck {
		done, err := s.recover(ctx, c.AppID, c.ID)
		if err != nil {
			errsSeen = append(errsSeen, err)
			continue
		}
		if done {
			rep.Interrupted++
		}
	}

	var due []candidate
	err = s.db.WithContext(ctx).Raw(`SELECT c.id, c.app_id, c.version FROM credentials c
		JOIN provider_configs pc ON pc.id = c.provider_config_id AND pc.app_id = c.app_id
		WHERE c.kind = ? AND c.refresh_state = ? AND pc.status = ?
			AND c.expires_at IS NOT NULL AND c.refresh_token_ciphertext IS NOT NULL
			AND ((c.next_refresh_at IS NULL AND c.expires_at <= ?) OR c.next_refresh_at <= ?)
			AND EXISTS (SELECT 1 FROM grants g WHERE g.credential_id = c.id AND g.app_id = c.app_id AND g.status = ?)
		ORDER BY c.expires_at LIMIT ?`,
		models.CredentialOAuth, models.RefreshIdle, models.ProviderConfigActive,
		database.StoredTime(now.Add(s.margin+time.Second)), database.StoredTime(now.Add(time.Second)), models.GrantActive, s.sweepBatch).
		Scan(&due).Error
	if err != nil {
		return rep, errors.Join(append(errsSeen, fmt.Errorf("tokens: find due credentials: %w", err))...)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, s.sweepConcurrency)
	for _, c := range due {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			tok, err := s.AccessToken(ctx, c.AppID, c.ID, false)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				// An unchanged version means nothing was due after all
				// (or the config cannot be used and the token still can).
				if tok.Version > c.Version {
					rep.Refreshed++
				}
				return
			}
			rep.Failed++
			// An expected outcome (needs_reauth, broken config, provider
			// down) is already recorded on the row and in the audit
			// trail; only unexpected errors fail the sweep.
			if errs.CodeOf(err) == wire.CodeInternal {
				errsSeen = append(errsSeen, err)
			}
		}()
	}
	wg.Wait()
	return rep, errors.Join(errsSeen...)
}

// recover resolves one refresh found in_flight past the stale threshold:
// on a rotating provider its grants go to needs_reauth (see claim); on
// the others the claim is released and the next use or sweep refreshes
// normally. It reports whether it changed anything.
func (s *Service) recover(ctx context.Context, appID, credentialID string) (bool, error) {
	row, err := s.load(ctx, s.db, appID, credentialID, false)
	if errors.Is(err, errs.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	cfg, cfgErr := s.clientConfig(ctx, row)
	if cfgErr != nil && !notConfigured(cfgErr) {
		return false, cfgErr
	}
	changed, marked := false, false
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		row, err := s.load(ctx, tx, appID, credentialID, true)
		if err != nil {
			return err
		}
		now := s.now()
		if !s.stale(row, now) {
			return nil // finished, or taken over, meanwhile
		}
		changed = true
		if cfgErr != nil || cfg.Provider.RefreshTokenRotates {
			n, err := s.interrupted(ctx, tx, row, providerOf(cfg, cfgErr), now)
			marked = n > 0
			return err
		}
		return tx.Model(&models.Credential{}).Where("id = ? AND version = ?", row.ID, row.Version).
			Updates(map[string]any{
				"refresh_state":      models.RefreshIdle,
				"refresh_started_at": nil,
				"last_refresh_error": "refresh interrupted; the refresh token was kept (the provider does not rotate it)",
				"updated_at":         now.UTC(),
			}).Error
	})
	if err != nil {
		return false, fmt.Errorf("tokens: recover interrupted refresh of credential %s: %w", credentialID, err)
	}
	if marked {
		s.changed()
	}
	return changed, nil
}

func providerOf(cfg oauth.ClientConfig, cfgErr error) string {
	if cfgErr != nil {
		return ""
	}
	return cfg.Provider.ID
}
