package vault

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"gocloud.dev/secrets"
	// The five keeper drivers DESIGN.md names. gocloud registers each on its
	// default URL mux from the driver's own init; Latchkey has no init().
	_ "gocloud.dev/secrets/awskms"
	_ "gocloud.dev/secrets/azurekeyvault"
	_ "gocloud.dev/secrets/gcpkms"
	_ "gocloud.dev/secrets/hashivault"
	"gocloud.dev/secrets/localsecrets"
	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
)

// KeyFileName is the local key-encryption key file inside the data dir.
const KeyFileName = "master.key"

// KeeperSchemes are the keeper URL schemes Latchkey accepts.
func KeeperSchemes() []string {
	return []string{localsecrets.Scheme, "awskms", "gcpkms", "azurekeyvault", "hashivault"}
}

// ErrKeyFile is wrapped by every refusal to use the local key file.
var ErrKeyFile = errors.New("vault: key file")

// OpenKeeper opens the key-encryption keeper. keeperURL is any
// gocloud.dev/secrets URL of a scheme in KeeperSchemes; empty means the local
// key file <dataDir>/master.key, created (mode 0600, 32 random bytes, base64)
// only when the database holds no data keys yet. The caller closes the
// keeper with its Close method.
//
// A missing key file over existing data keys, or an unreadable, malformed or
// group/world-accessible one, is refused: generating a fresh key there would
// silently make every stored secret unreadable.
func OpenKeeper(ctx context.Context, db *gorm.DB, keeperURL, dataDir string) (*secrets.Keeper, error) {
	if keeperURL != "" {
		return openKeeperURL(ctx, keeperURL)
	}
	if dataDir == "" {
		return nil, fmt.Errorf("%w: no data dir and no LATCHKEY_KEEPER_URL", ErrKeyFile)
	}
	key, err := loadOrCreateKeyFile(ctx, db, filepath.Join(dataDir, KeyFileName))
	if err != nil {
		return nil, err
	}
	return localsecrets.NewKeeper(key), nil
}

// openKeeperURL never echoes the URL: a base64key:// URL is the key itself.
func openKeeperURL(ctx context.Context, raw string) (*secrets.Keeper, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("vault: LATCHKEY_KEEPER_URL is not a valid URL")
	}
	known := false
	for _, s := range KeeperSchemes() {
		known = known || u.Scheme == s
	}
	if !known {
		return nil, fmt.Errorf("vault: LATCHKEY_KEEPER_URL scheme %q is not supported (use one of %s)",
			u.Scheme, strings.Join(KeeperSchemes(), ", "))
	}
	if u.Scheme == localsecrets.Scheme && u.Host == "" {
		// gocloud would generate a random key per process: every restart would
		// lose every secret sealed before it.
		return nil, errors.New("vault: LATCHKEY_KEEPER_URL base64key:// needs a key (base64key://<base64 of 32 bytes>); " +
			"leave the variable empty to use the key file in the data dir")
	}
	k, err := secrets.DefaultURLMux().OpenKeeperURL(ctx, u)
	if err != nil {
		if u.Scheme == localsecrets.Scheme {
			return nil, errors.New("vault: LATCHKEY_KEEPER_URL base64key:// does not hold a URL-safe base64 encoding of exactly 32 bytes")
		}
		return nil, fmt.Errorf("vault: open %s keeper: %w", u.Scheme, err)
	}
	return k, nil
}

func loadOrCreateKeyFile(ctx context.Context, db *gorm.DB, path string) ([32]byte, error) {
	key, err := readKeyFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if db == nil {
		return key, fmt.Errorf("%w: %s does not exist and no database was given to check it is safe to create", ErrKeyFile, path)
	}
	var n int64
	if err := db.WithContext(ctx).Model(&models.DataKey{}).Count(&n).Error; err != nil {
		return key, fmt.Errorf("vault: count data keys: %w", err)
	}
	if n > 0 {
		return key, fmt.Errorf("%w: %s is missing but the database holds %d sealed data keys; "+
			"restore the key file this database was sealed with (or set LATCHKEY_KEEPER_URL to its keeper). "+
			"Refusing to create a new key: it would make every stored secret unreadable", ErrKeyFile, path, n)
	}
	return createKeyFile(path)
}

// readKeyFile refuses a key file anyone but its owner can read or write.
func readKeyFile(path string) ([32]byte, error) {
	var key [32]byte
	info, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return key, err
		}
		return key, fmt.Errorf("%w: %s is not accessible: %w", ErrKeyFile, path, err)
	}
	if !info.Mode().IsRegular() {
		return key, fmt.Errorf("%w: %s is not a regular file", ErrKeyFile, path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return key, fmt.Errorf("%w: %s has mode %04o; it must be readable by its owner only (chmod 600 %s)",
			ErrKeyFile, path, perm, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return key, fmt.Errorf("%w: %s is unreadable: %w", ErrKeyFile, path, err)
	}
	defer clear(data)
	raw, ok := decodeKey(strings.TrimSpace(string(data)))
	if !ok {
		return key, fmt.Errorf("%w: %s is malformed: it must hold the base64 encoding of exactly 32 bytes", ErrKeyFile, path)
	}
	copy(key[:], raw)
	clear(raw)
	return key, nil
}

func decodeKey(s string) ([]byte, bool) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		raw, err := enc.DecodeString(s)
		if err == nil && len(raw) == 32 {
			return raw, true
		}
		clear(raw)
	}
	return nil, false
}

// createKeyFile writes the key to a private temporary file and links it into
// place, so a concurrent first start never reads a half-written key: the
// loser of the link race reads the winner's complete file instead.
func createKeyFile(path string) ([32]byte, error) {
	var key [32]byte
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return key, fmt.Errorf("%w: create data dir: %w", ErrKeyFile, err)
	}
	if _, err := rand.Read(key[:]); err != nil {
		return key, fmt.Errorf("%w: generate key: %w", ErrKeyFile, err)
	}
	tmp, err := os.CreateTemp(dir, ".master.key-*")
	if err != nil {
		return key, fmt.Errorf("%w: create %s: %w", ErrKeyFile, path, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	// CreateTemp already uses 0600; Chmod makes it explicit and umask-proof.
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.WriteString(base64.StdEncoding.EncodeToString(key[:]) + "\n")
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return key, fmt.Errorf("%w: write %s: %w", ErrKeyFile, path, err)
	}
	if err := os.Link(tmpName, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			clear(key[:]) // another process won the race: use its key
			return readKeyFile(path)
		}
		return key, fmt.Errorf("%w: install %s: %w", ErrKeyFile, path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new directory entry durable
		_ = d.Close()
	}
	return key, nil
}
