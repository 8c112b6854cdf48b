// Package vault seals Latchkey's secrets at rest with envelope encryption
// (DESIGN.md §3.1–3.2).
//
// Every app has a keyring of versioned random 32-byte data keys, stored in
// data_keys wrapped by the keeper's key-encryption key (a gocloud.dev/secrets
// Keeper: the local key file or a KMS). Values are sealed with
// XChaCha20-Poly1305 under the app's active data key, and the associated data
// binds each ciphertext to (app id, table, row id, column), so a ciphertext
// copied anywhere else does not open.
//
// Seal and Open use the vault's own database handle and never run inside a
// caller's transaction: callers seal first, then write. The app row must be
// committed before the first Seal for that app, because the keyring row
// references it.
package vault

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"gocloud.dev/secrets"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/sync/singleflight"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/latchkey/latchkey/models"
)

// Errors. None of them ever carries plaintext, key bytes or ciphertext bytes.
var (
	// ErrNoKeyring means the app has no data key at all (nothing was ever
	// sealed for it), or its keyring has no active version.
	ErrNoKeyring = errors.New("vault: app has no keyring")
	// ErrDecrypt means the ciphertext does not open under its binding: it was
	// moved to another app, table, row or column, tampered with, truncated, or
	// is not a vault ciphertext. Deliberately one error with no detail.
	ErrDecrypt = errors.New("vault: cannot decrypt value")
	// ErrKeeper means the keeper cannot unwrap a stored data key: the wrong
	// key-encryption key, or the KMS is unreachable.
	ErrKeeper = errors.New("vault: the key-encryption key cannot unwrap the stored data keys; " +
		"is LATCHKEY_KEEPER_URL / the key file the one this database was sealed with?")
	// ErrUnknownKeyVersion means the ciphertext names a data-key version the
	// app's keyring does not hold (deleted, or never existed).
	ErrUnknownKeyVersion = errors.New("vault: ciphertext names an unknown data-key version")
	// ErrInvalidBinding is a programming error: an empty binding field, or a
	// (table, column) that is not in SealedColumns.
	ErrInvalidBinding = errors.New("vault: invalid binding")
)

// Binding is the associated data of a ciphertext: app id | table | row id | column.
type Binding struct{ AppID, Table, RowID, Column string }

func (b Binding) validate() error {
	if b.AppID == "" || b.Table == "" || b.RowID == "" || b.Column == "" {
		return fmt.Errorf("%w: app id, table, row id and column are all required", ErrInvalidBinding)
	}
	if !isSealedColumn(b.Table, b.Column) {
		return fmt.Errorf("%w: %s.%s is not a registered sealed column (add it to SealedColumns so rotation covers it)",
			ErrInvalidBinding, b.Table, b.Column)
	}
	return nil
}

// DefaultCacheTTL bounds how long a replica keeps sealing with a data-key
// version after another replica rotated.
const DefaultCacheTTL = 30 * time.Second

// DefaultWriteAllowance is the part of the default rotation grace that
// covers a sealed value still on its way to the database.
const DefaultWriteAllowance = 30 * time.Second

// DefaultBatchSize is how many rows Rotate reads per query.
const DefaultBatchSize = 500

// Option configures a Vault.
type Option func(*Vault)

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(v *Vault) { v.now = now } }

// WithRand replaces crypto/rand as the source of data keys and nonces (tests).
func WithRand(r io.Reader) Option { return func(v *Vault) { v.rand = r } }

// WithCacheTTL sets how long the "which version is active" answer is cached.
// Every replica and the rotating process must use the same value.
func WithCacheTTL(d time.Duration) Option { return func(v *Vault) { v.ttl = d } }

// WithRotationGrace sets how long after activating a new version Rotate waits
// before its final scan and the deletion of retired versions. It must exceed
// the replicas' cache TTL plus the longest time a caller may take between
// Seal and writing the result; a value sealed with a retired version and
// written after the final scan would name a deleted key. The default (and
// what a negative d selects) is twice the cache TTL plus
// DefaultWriteAllowance. Zero means no wait: only safe when nothing else
// seals against the database while Rotate runs (tests, a stopped fleet).
func WithRotationGrace(d time.Duration) Option {
	return func(v *Vault) {
		if d >= 0 {
			v.grace, v.graceSet = d, true
		}
	}
}

// WithBatchSize sets how many rows Rotate re-encrypts per query.
func WithBatchSize(n int) Option {
	return func(v *Vault) {
		if n > 0 {
			v.batch = n
		}
	}
}

type keyRef struct {
	app     string
	version uint32
}

type activeEntry struct {
	version  uint32
	loadedAt time.Time
}

// Vault seals and opens values. It is safe for concurrent use.
type Vault struct {
	db     *gorm.DB
	keeper *secrets.Keeper
	now    func() time.Time
	rand   io.Reader
	ttl    time.Duration
	grace  time.Duration
	// graceSet records WithRotationGrace; the default depends on the TTL,
	// which may be set by a later option.
	graceSet bool
	batch    int

	mu sync.RWMutex
	// keys holds unwrapped data keys (as ready AEADs) of committed keyring
	// rows only: versions are never reused, so an entry never goes stale.
	keys   map[keyRef]cipher.AEAD
	active map[string]activeEntry
	loads  singleflight.Group // one keeper call per cold key, not one per request

	// beforeCAS, when set, runs between Rotate's read of a row and its
	// compare-and-swap write (tests simulate a concurrent writer with it).
	beforeCAS func(table, column, rowID string)
}

// New returns a Vault over db whose data keys are wrapped by keeper.
func New(db *gorm.DB, keeper *secrets.Keeper, opts ...Option) *Vault {
	v := &Vault{
		db:     db,
		keeper: keeper,
		now:    time.Now,
		rand:   rand.Reader,
		ttl:    DefaultCacheTTL,
		batch:  DefaultBatchSize,
		keys:   map[keyRef]cipher.AEAD{},
		active: map[string]activeEntry{},
	}
	for _, o := range opts {
		o(v)
	}
	if !v.graceSet {
		v.grace = 2*v.ttl + DefaultWriteAllowance
	}
	return v
}

// Check unwraps the newest data key, if any, to prove the keeper holds the
// key-encryption key this database was sealed with. Start-up refuses to
// serve when it fails.
func (v *Vault) Check(ctx context.Context) error {
	var rows []models.DataKey
	if err := v.db.WithContext(ctx).Order("created_at DESC").Order("id").Limit(1).Find(&rows).Error; err != nil {
		return fmt.Errorf("vault: check: read data keys: %w", err)
	}
	if len(rows) == 0 {
		return nil
	}
	raw, err := v.unwrap(ctx, rows[0])
	if err != nil {
		return err
	}
	clear(raw)
	return nil
}

// Seal encrypts plaintext for b under the app's active data key, creating the
// app's keyring (version 1) when it has none.
func (v *Vault) Seal(ctx context.Context, b Binding, plaintext []byte) ([]byte, error) {
	if err := b.validate(); err != nil {
		return nil, err
	}
	version, aead, err := v.activeKey(ctx, b.AppID)
	if err != nil {
		return nil, err
	}
	return v.sealWith(version, aead, b, plaintext)
}

func (v *Vault) sealWith(version uint32, aead cipher.AEAD, b Binding, plaintext []byte) ([]byte, error) {
	out := make([]byte, headerLen+nonceLen, headerLen+nonceLen+len(plaintext)+tagLen)
	out[0] = formatXChaCha20Poly1305
	binary.BigEndian.PutUint32(out[1:headerLen], version)
	nonce := out[headerLen:]
	if _, err := io.ReadFull(v.rand, nonce); err != nil {
		return nil, fmt.Errorf("vault: seal: read nonce: %w", err)
	}
	return aead.Seal(out, nonce, plaintext, associatedData(b, out[:headerLen])), nil
}

// Open decrypts a ciphertext made by Seal for exactly the same binding.
func (v *Vault) Open(ctx context.Context, b Binding, ciphertext []byte) ([]byte, error) {
	if err := b.validate(); err != nil {
		return nil, err
	}
	version, ok := parseVersion(ciphertext)
	if !ok {
		return nil, ErrDecrypt
	}
	aead, err := v.keyVersion(ctx, b.AppID, version)
	if err != nil {
		return nil, err
	}
	return openWith(aead, b, ciphertext)
}

func openWith(aead cipher.AEAD, b Binding, ciphertext []byte) ([]byte, error) {
	nonce := ciphertext[headerLen : headerLen+nonceLen]
	pt, err := aead.Open(nil, nonce, ciphertext[headerLen+nonceLen:], associatedData(b, ciphertext[:headerLen]))
	if err != nil {
		return nil, ErrDecrypt
	}
	if pt == nil {
		pt = []byte{}
	}
	return pt, nil
}

// CreateKeyring gives a new app its first data key (version 1) inside the
// caller's transaction tx (nil means the vault's own handle). It is a no-op
// when the app already has a keyring, and safe against a concurrent creator:
// the unique (app_id, version) index decides and the loser does nothing.
// Nothing is cached here because tx may still roll back.
func (v *Vault) CreateKeyring(ctx context.Context, tx *gorm.DB, appID string) error {
	if appID == "" {
		return fmt.Errorf("%w: app id is required", ErrInvalidBinding)
	}
	if tx == nil {
		tx = v.db
	}
	tx = tx.WithContext(ctx)
	var n int64
	if err := tx.Model(&models.DataKey{}).Where("app_id = ?", appID).Count(&n).Error; err != nil {
		return fmt.Errorf("vault: create keyring: %w", err)
	}
	if n > 0 {
		return nil
	}
	row, err := v.newDataKey(ctx, appID, 1)
	if err != nil {
		return err
	}
	err = tx.Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "app_id"}, {Name: "version"}},
		DoNothing: true,
	}).Create(&row).Error
	if err != nil {
		return fmt.Errorf("vault: create keyring for app %s: %w", appID, err)
	}
	return nil
}

// newDataKey draws a random data key and wraps it with the keeper.
func (v *Vault) newDataKey(ctx context.Context, appID string, version int) (models.DataKey, error) {
	raw := make([]byte, dataKeyLen)
	defer clear(raw)
	if _, err := io.ReadFull(v.rand, raw); err != nil {
		return models.DataKey{}, fmt.Errorf("vault: generate data key: %w", err)
	}
	wrapped, err := v.keeper.Encrypt(ctx, raw)
	if err != nil {
		return models.DataKey{}, fmt.Errorf("%w: wrap a new data key: %w", ErrKeeper, err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return models.DataKey{}, fmt.Errorf("vault: data key id: %w", err)
	}
	return models.DataKey{
		ID:         id.String(),
		AppID:      appID,
		Version:    version,
		WrappedKey: wrapped,
		Status:     models.DataKeyActive,
		CreatedAt:  v.now().UTC(),
	}, nil
}

// activeKey returns the app's active version and its AEAD, from the cache
// while the answer is younger than the TTL, creating the keyring on first use.
func (v *Vault) activeKey(ctx context.Context, appID string) (uint32, cipher.AEAD, error) {
	v.mu.RLock()
	e, ok := v.active[appID]
	var aead cipher.AEAD
	if ok && v.now().Sub(e.loadedAt) < v.ttl {
		aead = v.keys[keyRef{appID, e.version}]
	}
	v.mu.RUnlock()
	if aead != nil {
		return e.version, aead, nil
	}

	res, err, _ := v.loads.Do("active/"+appID, func() (any, error) {
		row, err := v.loadActive(ctx, appID)
		if errors.Is(err, ErrNoKeyring) {
			// Lazy keyring: the first Seal for an app creates version 1. A
			// concurrent creator (another replica) makes our insert a no-op;
			// either way the re-read below sees the one version 1.
			if err := v.CreateKeyring(ctx, v.db, appID); err != nil {
				return nil, err
			}
			row, err = v.loadActive(ctx, appID)
		}
		if err != nil {
			return nil, err
		}
		aead, err := v.cacheKey(ctx, row)
		if err != nil {
			return nil, err
		}
		v.mu.Lock()
		v.active[appID] = activeEntry{version: uint32(row.Version), loadedAt: v.now()}
		v.mu.Unlock()
		return activeResult{uint32(row.Version), aead}, nil
	})
	if err != nil {
		return 0, nil, err
	}
	r := res.(activeResult)
	return r.version, r.aead, nil
}

type activeResult struct {
	version uint32
	aead    cipher.AEAD
}

func (v *Vault) loadActive(ctx context.Context, appID string) (models.DataKey, error) {
	var rows []models.DataKey
	err := v.db.WithContext(ctx).
		Where("app_id = ? AND status = ?", appID, models.DataKeyActive).
		Order("version DESC").Limit(1).Find(&rows).Error
	if err != nil {
		return models.DataKey{}, fmt.Errorf("vault: read active data key: %w", err)
	}
	if len(rows) == 0 {
		return models.DataKey{}, v.missingKeyError(ctx, appID, ErrNoKeyring)
	}
	return rows[0], nil
}

// keyVersion returns the AEAD of one version, reading the database only when
// this process has not unwrapped it yet (e.g. another replica rotated).
func (v *Vault) keyVersion(ctx context.Context, appID string, version uint32) (cipher.AEAD, error) {
	v.mu.RLock()
	aead := v.keys[keyRef{appID, version}]
	v.mu.RUnlock()
	if aead != nil {
		return aead, nil
	}
	res, err, _ := v.loads.Do("version/"+appID+"/"+strconv.FormatUint(uint64(version), 10), func() (any, error) {
		var rows []models.DataKey
		err := v.db.WithContext(ctx).Where("app_id = ? AND version = ?", appID, version).Limit(1).Find(&rows).Error
		if err != nil {
			return nil, fmt.Errorf("vault: read data key: %w", err)
		}
		if len(rows) == 0 {
			return nil, v.missingKeyError(ctx, appID, ErrUnknownKeyVersion)
		}
		return v.cacheKey(ctx, rows[0])
	})
	if err != nil {
		return nil, err
	}
	return res.(cipher.AEAD), nil
}

// missingKeyError reports ErrNoKeyring when the app has no data key at all,
// else fallback.
func (v *Vault) missingKeyError(ctx context.Context, appID string, fallback error) error {
	var n int64
	if err := v.db.WithContext(ctx).Model(&models.DataKey{}).Where("app_id = ?", appID).Count(&n).Error; err != nil {
		return fmt.Errorf("vault: read data keys: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("%w: app %s", ErrNoKeyring, appID)
	}
	return fmt.Errorf("%w: app %s", fallback, appID)
}

// cacheKey unwraps a committed keyring row (unless already cached) and
// caches its AEAD.
func (v *Vault) cacheKey(ctx context.Context, row models.DataKey) (cipher.AEAD, error) {
	ref := keyRef{row.AppID, uint32(row.Version)}
	v.mu.RLock()
	aead := v.keys[ref]
	v.mu.RUnlock()
	if aead != nil {
		return aead, nil
	}
	raw, err := v.unwrap(ctx, row)
	if err != nil {
		return nil, err
	}
	aead, err = chacha20poly1305.NewX(raw) // copies the key
	clear(raw)
	if err != nil {
		return nil, fmt.Errorf("vault: data key: %w", err)
	}
	v.mu.Lock()
	if cached := v.keys[ref]; cached != nil {
		aead = cached
	} else {
		v.keys[ref] = aead
	}
	v.mu.Unlock()
	return aead, nil
}

// unwrap asks the keeper for the raw data key of row. The caller clears it.
func (v *Vault) unwrap(ctx context.Context, row models.DataKey) ([]byte, error) {
	raw, err := v.keeper.Decrypt(ctx, row.WrappedKey)
	if err != nil {
		return nil, fmt.Errorf("%w (app %s, data-key version %d): %w", ErrKeeper, row.AppID, row.Version, err)
	}
	if len(raw) != dataKeyLen {
		clear(raw)
		return nil, fmt.Errorf("%w (app %s, data-key version %d): unwrapped key has the wrong length", ErrKeeper, row.AppID, row.Version)
	}
	return raw, nil
}

// forgetActive drops the cached active version of an app, so this process
// seals with a version it has just activated without waiting for the TTL.
func (v *Vault) forgetActive(appID string) {
	v.mu.Lock()
	delete(v.active, appID)
	v.mu.Unlock()
}
