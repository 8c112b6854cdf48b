package vault

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
)

// Rotation phases reported through RotateProgress.
const (
	PhaseRewrap    = "rewrap"    // data keys rewrapped with the keeper's current key
	PhaseActivate  = "activate"  // a new data-key version became active
	PhaseResume    = "resume"    // an unfinished rotation was found: finishing it, no new version
	PhaseReencrypt = "reencrypt" // one batch of one sealed column scanned
	PhaseWait      = "wait"      // waiting for other replicas' caches to pick up the new version
	PhaseVerify    = "verify"    // second scan after the wait: catches values sealed by stale replicas
	PhaseDelete    = "delete"    // unused retired versions deleted
)

// RotateProgress is reported after each phase of each app and after each
// batch of rows. PhaseWait is reported once per run, with no AppID.
type RotateProgress struct {
	AppID         string
	Phase         string
	ActiveVersion int
	Table, Column string        // PhaseReencrypt / PhaseVerify
	Rows          int           // values re-encrypted for this app so far
	Wait          time.Duration // PhaseWait
}

// RotateReport sums up a Rotate run.
type RotateReport struct {
	Apps            int // apps whose rotation completed
	KeysRewrapped   int // data-key versions rewrapped with the keeper's current key
	VersionsAdded   int
	Resumed         int // apps where an unfinished rotation was completed instead of adding a version
	RowsReencrypted int // values re-encrypted (a row with two sealed columns counts twice)
	Conflicts       int // lost compare-and-swaps: a concurrent writer got there first
	VersionsDeleted int
}

// maxCASAttempts bounds retries on one value that keeps being rewritten
// with an old version (a replica that has not seen the rotation yet).
const maxCASAttempts = 5

// Rotate rotates the keyring of appID, or of every app when appID is "".
//
// Per app: every data key is rewrapped with the keeper's current key (so a
// key-encryption-key rotation in the KMS is absorbed); a new version becomes
// active and the others are retired; every sealed value on a retired version
// is re-encrypted under the active one, one compare-and-swap per value so a
// concurrent writer is never clobbered; once no value references a retired
// version any more, that version is deleted.
//
// It runs online and is resumable: it never makes a value unreadable, and
// retired versions still present mark an unfinished rotation, which the next
// run completes instead of adding yet another version. Before deleting,
// Rotate waits out the rotation grace after activation (every replica's
// cached "active version" answer has expired and in-flight writes have
// landed; see WithRotationGrace) and scans again, so values sealed meanwhile
// with a retired version are re-encrypted too.
func (v *Vault) Rotate(ctx context.Context, appID string, progress func(RotateProgress)) (RotateReport, error) {
	var rep RotateReport
	if progress == nil {
		progress = func(RotateProgress) {}
	}
	var apps []string
	if appID != "" {
		apps = []string{appID}
	} else if err := v.db.WithContext(ctx).Model(&models.DataKey{}).Distinct("app_id").Order("app_id").Pluck("app_id", &apps).Error; err != nil {
		return rep, fmt.Errorf("vault: rotate: list keyrings: %w", err)
	}

	// Stage one for every app, then one shared wait, then stage two: the
	// grace is paid once per run, not once per app.
	var (
		errs    []error
		started []appRotation
		waitTil time.Time
	)
	fail := func(app string, err error) error {
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("vault: rotate interrupted; every value is still readable, run it again to finish: %w", ctx.Err())
		case errors.Is(err, ErrKeeper):
			// The same keeper serves every app: no point going on.
			return fmt.Errorf("vault: rotate app %s: %w", app, err)
		}
		errs = append(errs, fmt.Errorf("app %s: %w", app, err))
		return nil
	}
	for _, app := range apps {
		r, err := v.rotateStart(ctx, app, progress, &rep)
		if err != nil {
			if err := fail(app, err); err != nil {
				return rep, err
			}
			continue
		}
		started = append(started, r)
		if r.needVerify && r.graceEnd.After(waitTil) {
			waitTil = r.graceEnd
		}
	}
	if wait := waitTil.Sub(v.now()); wait > 0 {
		progress(RotateProgress{Phase: PhaseWait, Wait: wait})
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return rep, fail("", ctx.Err())
		case <-t.C:
		}
	}
	for _, r := range started {
		if err := v.rotateFinish(ctx, r, progress, &rep); err != nil {
			if err := fail(r.appID, err); err != nil {
				return rep, err
			}
			continue
		}
		rep.Apps++
	}
	if len(errs) > 0 {
		return rep, fmt.Errorf("vault: rotate: %w", errors.Join(errs...))
	}
	return rep, nil
}

// appRotation carries one app from the first stage of Rotate to the second.
type appRotation struct {
	appID      string
	active     models.DataKey
	graceEnd   time.Time
	needVerify bool
	scan       scanResult
}

// rotateStart rewraps the app's keyring, activates a new version (or picks
// up an unfinished rotation) and re-encrypts everything once.
func (v *Vault) rotateStart(ctx context.Context, appID string, progress func(RotateProgress), rep *RotateReport) (appRotation, error) {
	r := appRotation{appID: appID}
	var ring []models.DataKey
	if err := v.db.WithContext(ctx).Where("app_id = ?", appID).Order("version").Find(&ring).Error; err != nil {
		return r, fmt.Errorf("read keyring: %w", err)
	}
	if len(ring) == 0 {
		return r, ErrNoKeyring
	}

	for _, k := range ring {
		if err := v.rewrap(ctx, k); err != nil {
			return r, err
		}
		rep.KeysRewrapped++
	}
	progress(RotateProgress{AppID: appID, Phase: PhaseRewrap})

	unfinished := false
	for _, k := range ring {
		unfinished = unfinished || k.Status == models.DataKeyRetired
	}
	var err error
	if !unfinished {
		r.active, err = v.addVersion(ctx, appID, ring[len(ring)-1].Version+1)
		switch {
		case errors.Is(err, errVersionTaken):
			unfinished = true // a concurrent rotation won the race: help it finish
		case err != nil:
			return r, err
		default:
			rep.VersionsAdded++
			progress(RotateProgress{AppID: appID, Phase: PhaseActivate, ActiveVersion: r.active.Version})
		}
	}
	if unfinished {
		if r.active, err = v.loadActive(ctx, appID); err != nil {
			return r, err
		}
		rep.Resumed++
		progress(RotateProgress{AppID: appID, Phase: PhaseResume, ActiveVersion: r.active.Version})
	}
	v.forgetActive(appID)

	// Until the grace has passed, another replica may still seal with a
	// retired version; a value it writes behind our scan cursor is only
	// caught by a second scan after the grace.
	r.graceEnd = r.active.CreatedAt.Add(v.grace)
	r.needVerify = v.now().Before(r.graceEnd)
	r.scan, err = v.reencryptApp(ctx, appID, r.active, PhaseReencrypt, progress, rep)
	return r, err
}

// rotateFinish runs after the grace: it scans again when values may have
// been sealed with a retired version meanwhile, then deletes every retired
// version no value uses any more.
func (v *Vault) rotateFinish(ctx context.Context, r appRotation, progress func(RotateProgress), rep *RotateReport) error {
	scan := r.scan
	if r.needVerify {
		var err error
		if scan, err = v.reencryptApp(ctx, r.appID, r.active, PhaseVerify, progress, rep); err != nil {
			return err
		}
	}
	var retired []models.DataKey
	err := v.db.WithContext(ctx).
		Where("app_id = ? AND status = ? AND version < ?", r.appID, models.DataKeyRetired, r.active.Version).
		Order("version").Find(&retired).Error
	if err != nil {
		return fmt.Errorf("read retired keys: %w", err)
	}
	deleted := 0
	for _, k := range retired {
		if scan.refs[uint32(k.Version)] > 0 {
			continue
		}
		res := v.db.WithContext(ctx).Where("id = ? AND status = ?", k.ID, models.DataKeyRetired).Delete(&models.DataKey{})
		if res.Error != nil {
			return fmt.Errorf("delete data-key version %d: %w", k.Version, res.Error)
		}
		deleted += int(res.RowsAffected)
	}
	rep.VersionsDeleted += deleted
	progress(RotateProgress{AppID: r.appID, Phase: PhaseDelete, ActiveVersion: r.active.Version})
	return scan.problem()
}

// rewrap re-encrypts one data key with the keeper's current key-encryption
// key. A lost compare-and-swap means another rotation rewrapped it already.
func (v *Vault) rewrap(ctx context.Context, k models.DataKey) error {
	raw, err := v.unwrap(ctx, k)
	if err != nil {
		return err
	}
	wrapped, err := v.keeper.Encrypt(ctx, raw)
	clear(raw)
	if err != nil {
		return fmt.Errorf("%w: rewrap data-key version %d: %w", ErrKeeper, k.Version, err)
	}
	err = v.db.WithContext(ctx).Model(&models.DataKey{}).
		Where("id = ? AND wrapped_key = ?", k.ID, k.WrappedKey).
		Update("wrapped_key", wrapped).Error
	if err != nil {
		return fmt.Errorf("store rewrapped data-key version %d: %w", k.Version, err)
	}
	return nil
}

var errVersionTaken = errors.New("vault: data-key version already exists")

// addVersion inserts version as the app's active data key and retires every
// other version, in one transaction so there is always exactly one active.
func (v *Vault) addVersion(ctx context.Context, appID string, version int) (models.DataKey, error) {
	row, err := v.newDataKey(ctx, appID, version)
	if err != nil {
		return row, err
	}
	err = v.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Create(&row).Error; err != nil {
			return err
		}
		return tx.Model(&models.DataKey{}).
			Where("app_id = ? AND version <> ? AND status = ?", appID, version, models.DataKeyActive).
			Update("status", models.DataKeyRetired).Error
	})
	if err == nil {
		return row, nil
	}
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return row, errVersionTaken
	}
	// Not every driver translates unique violations; look before giving up.
	var n int64
	if cerr := v.db.WithContext(ctx).Model(&models.DataKey{}).
		Where("app_id = ? AND version >= ?", appID, version).Count(&n).Error; cerr == nil && n > 0 {
		return row, errVersionTaken
	}
	return row, fmt.Errorf("add data-key version %d: %w", version, err)
}

// scanResult is what one pass over an app's sealed values left behind.
type scanResult struct {
	refs     map[uint32]int // retired versions still referenced, with counts
	problems []string       // where values could not be re-encrypted (never the bytes)
	failures []error
}

func (s scanResult) problem() error {
	if len(s.problems) == 0 {
		return nil
	}
	shown := s.problems
	if len(shown) > 10 {
		shown = shown[:10]
	}
	return fmt.Errorf("%d sealed values could not be re-encrypted, so the versions they use were kept (%s): %w",
		len(s.problems), strings.Join(shown, "; "), errors.Join(s.failures...))
}

type sealedRow struct {
	ID  string
	Val []byte
}

// reencryptApp scans every sealed column of the app in primary-key batches
// and re-encrypts values sealed with a version other than active.
func (v *Vault) reencryptApp(ctx context.Context, appID string, active models.DataKey, phase string,
	progress func(RotateProgress), rep *RotateReport) (scanResult, error) {
	res := scanResult{refs: map[uint32]int{}}
	aead, err := v.cacheKey(ctx, active)
	if err != nil {
		return res, err
	}
	activeVersion := uint32(active.Version)
	start := rep.RowsReencrypted
	for _, sc := range sealedColumns {
		last := ""
		for {
			var rows []sealedRow
			q := v.db.WithContext(ctx).Table(sc.Table).
				Select(sc.RowIDColumn+" AS id, "+sc.Column+" AS val").
				Where(sc.AppIDColumn+" = ? AND "+sc.Column+" IS NOT NULL", appID)
			if last != "" {
				q = q.Where(sc.RowIDColumn+" > ?", last)
			}
			if err := q.Order(sc.RowIDColumn).Limit(v.batch).Scan(&rows).Error; err != nil {
				return res, fmt.Errorf("scan %s.%s: %w", sc.Table, sc.Column, err)
			}
			for _, r := range rows {
				if len(r.Val) == 0 {
					continue
				}
				ver, ok := parseVersion(r.Val)
				if ok && ver == activeVersion {
					continue
				}
				var err error
				if !ok {
					err = ErrDecrypt
				} else {
					err = v.reencryptValue(ctx, sc, appID, r.ID, r.Val, activeVersion, aead, rep)
				}
				if err != nil {
					if ctx.Err() != nil {
						return res, ctx.Err()
					}
					if errors.Is(err, ErrKeeper) {
						return res, err
					}
					if ok {
						res.refs[ver]++
					}
					res.problems = append(res.problems, fmt.Sprintf("%s.%s row %s", sc.Table, sc.Column, r.ID))
					res.failures = append(res.failures, err)
				}
			}
			progress(RotateProgress{AppID: appID, Phase: phase, ActiveVersion: active.Version,
				Table: sc.Table, Column: sc.Column, Rows: rep.RowsReencrypted - start})
			if err := ctx.Err(); err != nil {
				return res, err
			}
			if len(rows) < v.batch {
				break
			}
			last = rows[len(rows)-1].ID
		}
	}
	return res, nil
}

// reencryptValue moves one value to the active version with a
// compare-and-swap on the value read. A lost swap means a concurrent writer
// replaced it: re-read, and stop if the new value already uses the active
// version (the writer's value is newer and must win), else try again.
func (v *Vault) reencryptValue(ctx context.Context, sc SealedColumn, appID, rowID string, val []byte,
	activeVersion uint32, aead cipher.AEAD, rep *RotateReport) error {
	b := Binding{AppID: appID, Table: sc.Table, RowID: rowID, Column: sc.Column}
	update := "UPDATE " + sc.Table + " SET " + sc.Column + " = ? WHERE " +
		sc.RowIDColumn + " = ? AND " + sc.AppIDColumn + " = ? AND " + sc.Column + " = ?"
	cur := val
	for range maxCASAttempts {
		pt, err := v.Open(ctx, b, cur)
		if err != nil {
			return err
		}
		ct, err := v.sealWith(activeVersion, aead, b, pt)
		clear(pt)
		if err != nil {
			return err
		}
		if v.beforeCAS != nil {
			v.beforeCAS(sc.Table, sc.Column, rowID)
		}
		res := v.db.WithContext(ctx).Exec(update, ct, rowID, appID, cur)
		if res.Error != nil {
			return fmt.Errorf("update %s.%s: %w", sc.Table, sc.Column, res.Error)
		}
		if res.RowsAffected == 1 {
			rep.RowsReencrypted++
			return nil
		}
		rep.Conflicts++
		var now []sealedRow
		err = v.db.WithContext(ctx).Table(sc.Table).Select(sc.Column+" AS val").
			Where(sc.RowIDColumn+" = ? AND "+sc.AppIDColumn+" = ?", rowID, appID).Limit(1).Scan(&now).Error
		if err != nil {
			return fmt.Errorf("re-read %s.%s: %w", sc.Table, sc.Column, err)
		}
		if len(now) == 0 || len(now[0].Val) == 0 {
			return nil // deleted or cleared meanwhile: nothing left to protect
		}
		if ver, ok := parseVersion(now[0].Val); ok && ver == activeVersion {
			return nil
		}
		cur = now[0].Val
	}
	return fmt.Errorf("vault: value kept being rewritten with an old key version; run rotate again")
}
