package vault

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gocloud.dev/secrets"

	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/testutil"
)

func TestKeeperDriversAreRegistered(t *testing.T) {
	for _, s := range KeeperSchemes() {
		if !secrets.DefaultURLMux().ValidKeeperScheme(s) {
			t.Errorf("no keeper driver registered for %s://", s)
		}
	}
}

func TestOpenKeeperKeyFile(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		dir := filepath.Join(t.TempDir(), "data")
		path := filepath.Join(dir, KeyFileName)

		// First start: no key file, no data keys → created 0600.
		k1, err := OpenKeeper(ctx, db.Gorm, "", dir)
		if err != nil {
			t.Fatal(err)
		}
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Fatalf("key file mode %04o, want 0600", perm)
		}
		content, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(content))); err != nil || len(raw) != 32 {
			t.Fatalf("key file is not base64 of 32 bytes (%v)", err)
		}
		app := seedApp(t, db.Gorm, seedOrg(t, db.Gorm))
		b := cred(app, newID(t))
		ct := mustSeal(t, newVault(t, db.Gorm, k1), b, "token")
		_ = k1.Close()

		// Next start: the same key, so old ciphertexts open.
		k2, err := OpenKeeper(ctx, db.Gorm, "", dir)
		if err != nil {
			t.Fatal(err)
		}
		defer k2.Close()
		v2 := newVault(t, db.Gorm, k2)
		if err := v2.Check(ctx); err != nil {
			t.Fatal(err)
		}
		if pt, err := v2.Open(ctx, b, ct); err != nil || string(pt) != "token" {
			t.Fatalf("reopened key file cannot open old values: %v", err)
		}
		if after, _ := os.ReadFile(path); string(after) != string(content) {
			t.Fatal("key file was rewritten")
		}

		refusals := []struct {
			name    string
			prepare func(t *testing.T) string // returns the data dir
			want    string
		}{
			{"missing key file over existing data keys", func(t *testing.T) string {
				return t.TempDir()
			}, "is missing but the database holds"},
			{"group and world readable", func(t *testing.T) string {
				d := t.TempDir()
				writeFile(t, filepath.Join(d, KeyFileName), string(content), 0o644)
				return d
			}, "has mode 0644"},
			{"group readable", func(t *testing.T) string {
				d := t.TempDir()
				writeFile(t, filepath.Join(d, KeyFileName), string(content), 0o640)
				return d
			}, "has mode 0640"},
			{"not base64", func(t *testing.T) string {
				d := t.TempDir()
				writeFile(t, filepath.Join(d, KeyFileName), "not a key at all!\n", 0o600)
				return d
			}, "is malformed"},
			{"wrong length", func(t *testing.T) string {
				d := t.TempDir()
				writeFile(t, filepath.Join(d, KeyFileName), base64.StdEncoding.EncodeToString(make([]byte, 16)), 0o600)
				return d
			}, "is malformed"},
			{"empty", func(t *testing.T) string {
				d := t.TempDir()
				writeFile(t, filepath.Join(d, KeyFileName), "", 0o600)
				return d
			}, "is malformed"},
			{"a directory", func(t *testing.T) string {
				d := t.TempDir()
				if err := os.Mkdir(filepath.Join(d, KeyFileName), 0o700); err != nil {
					t.Fatal(err)
				}
				return d
			}, "is not a regular file"},
		}
		for _, c := range refusals {
			t.Run(c.name, func(t *testing.T) {
				d := c.prepare(t)
				k, err := OpenKeeper(ctx, db.Gorm, "", d)
				if err == nil {
					_ = k.Close()
					t.Fatal("OpenKeeper accepted it")
				}
				if !errors.Is(err, ErrKeyFile) || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("want ErrKeyFile mentioning %q, got %v", c.want, err)
				}
				if c.name == "missing key file over existing data keys" {
					if _, err := os.Stat(filepath.Join(d, KeyFileName)); !errors.Is(err, os.ErrNotExist) {
						t.Fatal("a new key file was created over existing data")
					}
				}
			})
		}

		t.Run("owner read-only file is accepted", func(t *testing.T) {
			d := t.TempDir()
			writeFile(t, filepath.Join(d, KeyFileName), string(content), 0o400)
			k, err := OpenKeeper(ctx, db.Gorm, "", d)
			if err != nil {
				t.Fatal(err)
			}
			defer k.Close()
			if err := newVault(t, db.Gorm, k).Check(ctx); err != nil {
				t.Fatal(err)
			}
		})
	})
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask-proof
		t.Fatal(err)
	}
}

func TestOpenKeeperURL(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		_, u := newKeeper(t)
		dir := t.TempDir()
		k, err := OpenKeeper(ctx, db.Gorm, u, dir)
		if err != nil {
			t.Fatal(err)
		}
		b := cred(seedApp(t, db.Gorm, seedOrg(t, db.Gorm)), newID(t))
		ct := mustSeal(t, newVault(t, db.Gorm, k), b, "token")
		_ = k.Close()
		if _, err := os.Stat(filepath.Join(dir, KeyFileName)); !errors.Is(err, os.ErrNotExist) {
			t.Fatal("a keeper URL must not create a key file")
		}
		k2, err := OpenKeeper(ctx, db.Gorm, u, dir)
		if err != nil {
			t.Fatal(err)
		}
		defer k2.Close()
		if _, err := newVault(t, db.Gorm, k2).Open(ctx, b, ct); err != nil {
			t.Fatalf("same URL, new process: %v", err)
		}

		keyPart := strings.TrimPrefix(u, "base64key://")
		bad := []struct {
			name, url, want string
		}{
			{"random per-process key", "base64key://", "needs a key"},
			{"short key", "base64key://" + base64.URLEncoding.EncodeToString(make([]byte, 16)), "exactly 32 bytes"},
			{"query parameter", u + "?x=1", "exactly 32 bytes"},
			{"unsupported scheme", "mem://" + keyPart, "not supported"},
			{"no scheme", keyPart, "not supported"},
			{"unparseable", "base64key://%zz" + keyPart, "not a valid URL"},
		}
		for _, c := range bad {
			t.Run(c.name, func(t *testing.T) {
				k, err := OpenKeeper(ctx, db.Gorm, c.url, dir)
				if err == nil {
					_ = k.Close()
					t.Fatal("accepted")
				}
				if !strings.Contains(err.Error(), c.want) {
					t.Fatalf("want %q in %q", c.want, err)
				}
				if strings.Contains(err.Error(), keyPart) {
					t.Fatal("error message echoes key material from the URL")
				}
			})
		}
	})
}
