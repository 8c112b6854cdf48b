package vault

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/testutil"
)

func cred(appID, rowID string) Binding {
	return Binding{AppID: appID, Table: "credentials", RowID: rowID, Column: "access_token_ciphertext"}
}

func TestSealOpenRoundTrip(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		keeper, _ := newKeeper(t)
		v := newVault(t, db.Gorm, keeper)
		app := seedApp(t, db.Gorm, seedOrg(t, db.Gorm))
		cases := []struct {
			name  string
			plain []byte
		}{
			{"short token", []byte("gho_16C7e42F292c6912E7710c838347Ae178B4a")},
			{"empty plaintext", []byte{}},
			{"nil plaintext", nil},
			{"binary", randomBytes(t, 300)},
			{"large body", bytes.Repeat([]byte("x"), 1<<20)},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				b := cred(app, newID(t))
				ct, err := v.Seal(ctx, b, c.plain)
				if err != nil {
					t.Fatal(err)
				}
				if len(c.plain) > 8 && bytes.Contains(ct, c.plain[:8]) {
					t.Fatal("ciphertext contains plaintext")
				}
				if got, want := len(ct), minLen+len(c.plain); got != want {
					t.Fatalf("ciphertext length %d, want %d", got, want)
				}
				got, err := v.Open(ctx, b, ct)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, c.plain) || got == nil {
					t.Fatalf("round trip changed the plaintext (got nil: %v)", got == nil)
				}
			})
		}
	})
}

func TestSealUsesFreshNonces(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		keeper, _ := newKeeper(t)
		v := newVault(t, db.Gorm, keeper)
		b := cred(seedApp(t, db.Gorm, seedOrg(t, db.Gorm)), newID(t))
		a, c := mustSeal(t, v, b, "same"), mustSeal(t, v, b, "same")
		if bytes.Equal(a, c) {
			t.Fatal("two seals of the same value are identical")
		}
	})
}

func TestOpenRefusesMovedCiphertext(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		keeper, _ := newKeeper(t)
		v := newVault(t, db.Gorm, keeper)
		org := seedOrg(t, db.Gorm)
		app, other := seedApp(t, db.Gorm, org), seedApp(t, db.Gorm, org)
		mustSeal(t, v, cred(other, newID(t)), "gives the other app a keyring")

		orig := cred(app, newID(t))
		ct := mustSeal(t, v, orig, "refresh-me")
		cases := []struct {
			name string
			to   Binding
		}{
			{"another row", cred(app, newID(t))},
			{"another column", Binding{AppID: app, Table: "credentials", RowID: orig.RowID, Column: "refresh_token_ciphertext"}},
			{"another table", Binding{AppID: app, Table: "approvals", RowID: orig.RowID, Column: "request_sealed"}},
			{"another app", cred(other, orig.RowID)},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				_, err := v.Open(ctx, c.to, ct)
				if !errors.Is(err, ErrDecrypt) {
					t.Fatalf("want ErrDecrypt, got %v", err)
				}
				if err.Error() != ErrDecrypt.Error() {
					t.Fatalf("decrypt error carries detail: %q", err)
				}
			})
		}
		if _, err := v.Open(ctx, orig, ct); err != nil {
			t.Fatalf("original binding: %v", err)
		}
	})
}

// Field boundaries are length-prefixed: moving bytes from one field to the
// next must change the associated data.
func TestAssociatedDataIsUnambiguous(t *testing.T) {
	header := []byte{formatXChaCha20Poly1305, 0, 0, 0, 1}
	pairs := [][2]Binding{
		{{"ab", "c", "d", "e"}, {"a", "bc", "d", "e"}},
		{{"a", "b", "cd", "e"}, {"a", "b", "c", "de"}},
		{{"a|b", "c", "d", "e"}, {"a", "b|c", "d", "e"}},
		{{"a", "", "b", "c"}, {"a", "b", "", "c"}},
	}
	for _, p := range pairs {
		if bytes.Equal(associatedData(p[0], header), associatedData(p[1], header)) {
			t.Errorf("%+v and %+v share associated data", p[0], p[1])
		}
	}
	other := []byte{formatXChaCha20Poly1305, 0, 0, 0, 2}
	if bytes.Equal(associatedData(pairs[0][0], header), associatedData(pairs[0][0], other)) {
		t.Error("the key version is not bound")
	}
}

func TestOpenRefusesAnyFlippedByte(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		keeper, _ := newKeeper(t)
		v := newVault(t, db.Gorm, keeper)
		b := cred(seedApp(t, db.Gorm, seedOrg(t, db.Gorm)), newID(t))
		ct := mustSeal(t, v, b, "token")
		for i := range ct {
			for _, mask := range []byte{0x01, 0x80} {
				bad := bytes.Clone(ct)
				bad[i] ^= mask
				_, err := v.Open(ctx, b, bad)
				switch {
				case errors.Is(err, ErrDecrypt):
				case i >= 1 && i < headerLen && errors.Is(err, ErrUnknownKeyVersion):
					// the version bytes now name a version the keyring lacks
				default:
					t.Fatalf("byte %d ^ %#x: want ErrDecrypt, got %v", i, mask, err)
				}
			}
		}
	})
}

func TestOpenRefusesTruncatedInput(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		keeper, _ := newKeeper(t)
		v := newVault(t, db.Gorm, keeper)
		b := cred(seedApp(t, db.Gorm, seedOrg(t, db.Gorm)), newID(t))
		ct := mustSeal(t, v, b, "token")
		inputs := [][]byte{nil, {}, append(bytes.Clone(ct), 0)}
		for n := range len(ct) {
			inputs = append(inputs, ct[:n])
		}
		for _, in := range inputs {
			if _, err := v.Open(ctx, b, in); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("%d bytes: want ErrDecrypt, got %v", len(in), err)
			}
		}
	})
}

func TestSealRefusesInvalidBinding(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		keeper, _ := newKeeper(t)
		v := newVault(t, db.Gorm, keeper)
		app := seedApp(t, db.Gorm, seedOrg(t, db.Gorm))
		cases := []struct {
			name string
			b    Binding
		}{
			{"no app", Binding{Table: "credentials", RowID: "r", Column: "access_token_ciphertext"}},
			{"no table", Binding{AppID: app, RowID: "r", Column: "access_token_ciphertext"}},
			{"no row", Binding{AppID: app, Table: "credentials", Column: "access_token_ciphertext"}},
			{"no column", Binding{AppID: app, Table: "credentials", RowID: "r"}},
			{"column rotation would not cover", Binding{AppID: app, Table: "credentials", RowID: "r", Column: "scopes"}},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				if _, err := v.Seal(ctx, c.b, []byte("x")); !errors.Is(err, ErrInvalidBinding) {
					t.Fatalf("Seal: want ErrInvalidBinding, got %v", err)
				}
				if _, err := v.Open(ctx, c.b, make([]byte, minLen)); !errors.Is(err, ErrInvalidBinding) {
					t.Fatalf("Open: want ErrInvalidBinding, got %v", err)
				}
			})
		}
	})
}

func TestOpenWithoutKeyringReportsNoKeyring(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		keeper, _ := newKeeper(t)
		org := seedOrg(t, db.Gorm)
		a, b := seedApp(t, db.Gorm, org), seedApp(t, db.Gorm, org)
		v := newVault(t, db.Gorm, keeper)
		ct := mustSeal(t, v, cred(a, "r1"), "x")
		if _, err := v.Open(ctx, cred(b, "r1"), ct); !errors.Is(err, ErrNoKeyring) {
			t.Fatalf("want ErrNoKeyring, got %v", err)
		}
	})
}

func TestWrongKeeperFailsClosed(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		_, rightURL := newKeeper(t)
		_, wrongURL := newKeeper(t)
		right, err := OpenKeeper(ctx, nil, rightURL, "")
		if err != nil {
			t.Fatal(err)
		}
		defer right.Close()
		wrong, err := OpenKeeper(ctx, nil, wrongURL, "")
		if err != nil {
			t.Fatal(err)
		}
		defer wrong.Close()

		app := seedApp(t, db.Gorm, seedOrg(t, db.Gorm))
		b := cred(app, newID(t))
		ct := mustSeal(t, newVault(t, db.Gorm, right), b, "token")
		if err := newVault(t, db.Gorm, right).Check(ctx); err != nil {
			t.Fatalf("Check with the right keeper: %v", err)
		}

		v := newVault(t, db.Gorm, wrong)
		checks := map[string]func() error{
			"Check": func() error { return v.Check(ctx) },
			"Open":  func() error { _, err := v.Open(ctx, b, ct); return err },
			"Seal":  func() error { _, err := v.Seal(ctx, b, []byte("x")); return err },
			"Rotate": func() error {
				_, err := v.Rotate(ctx, "", nil)
				return err
			},
		}
		for name, call := range checks {
			t.Run(name, func(t *testing.T) {
				err := call()
				if !errors.Is(err, ErrKeeper) {
					t.Fatalf("want ErrKeeper, got %v", err)
				}
				msg := err.Error()
				for _, want := range []string{"the key-encryption key cannot unwrap the stored data keys",
					"is LATCHKEY_KEEPER_URL / the key file the one this database was sealed with?"} {
					if !strings.Contains(msg, want) {
						t.Fatalf("message %q lacks %q", msg, want)
					}
				}
				for _, leak := range []string{strings.TrimPrefix(rightURL, "base64key://"), strings.TrimPrefix(wrongURL, "base64key://")} {
					if strings.Contains(msg, leak) {
						t.Fatal("error message contains key material")
					}
				}
			})
		}
		if n := len(keyring(t, db.Gorm, app)); n != 1 {
			t.Fatalf("a failed rotation changed the keyring: %d versions", n)
		}
	})
}

func TestCheckOnEmptyDatabase(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		keeper, _ := newKeeper(t)
		if err := newVault(t, db.Gorm, keeper).Check(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCreateKeyringInsideCallersTransaction(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		keeper, _ := newKeeper(t)
		v := newVault(t, db.Gorm, keeper)
		org := seedOrg(t, db.Gorm)

		t.Run("committed with the app, idempotent", func(t *testing.T) {
			var appID string
			err := db.Gorm.Transaction(func(tx *gorm.DB) error {
				appID = seedApp(t, tx, org)
				if err := v.CreateKeyring(ctx, tx, appID); err != nil {
					return err
				}
				return v.CreateKeyring(ctx, tx, appID)
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := v.CreateKeyring(ctx, nil, appID); err != nil {
				t.Fatal(err)
			}
			if got := keyring(t, db.Gorm, appID); len(got) != 1 || got[0] != (keyRow{1, models.DataKeyActive}) {
				t.Fatalf("keyring %v, want one active version 1", got)
			}
			b := cred(appID, "r")
			if _, err := v.Open(ctx, b, mustSeal(t, v, b, "x")); err != nil {
				t.Fatal(err)
			}
		})

		t.Run("rolled back with the app", func(t *testing.T) {
			var appID string
			rollback := errors.New("rollback")
			err := db.Gorm.Transaction(func(tx *gorm.DB) error {
				appID = seedApp(t, tx, org)
				if err := v.CreateKeyring(ctx, tx, appID); err != nil {
					return err
				}
				return rollback
			})
			if !errors.Is(err, rollback) {
				t.Fatal(err)
			}
			if got := keyring(t, db.Gorm, appID); len(got) != 0 {
				t.Fatalf("keyring survived the rollback: %v", got)
			}
		})
	})
}

func TestReplicasRacingToCreateFirstKeyring(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		keeper, _ := newKeeper(t)
		replicas := []*Vault{newVault(t, db.Gorm, keeper), newVault(t, db.Gorm, keeper)}
		app := seedApp(t, db.Gorm, seedOrg(t, db.Gorm))

		const perReplica = 8
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			mu    sync.Mutex
			cts   = map[string][]byte{}
			errs  = make(chan error, 2*perReplica)
		)
		for r, v := range replicas {
			for i := range perReplica {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					b := cred(app, newID(t))
					ct, err := v.Seal(ctx, b, []byte(b.RowID))
					if err != nil {
						errs <- err
						return
					}
					// Half the seals go through CreateKeyring first, like app creation does.
					if i%2 == 0 {
						if err := replicas[1-r].CreateKeyring(ctx, nil, app); err != nil {
							errs <- err
						}
					}
					mu.Lock()
					cts[b.RowID] = ct
					mu.Unlock()
				}()
			}
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if got := keyring(t, db.Gorm, app); len(got) != 1 || got[0] != (keyRow{1, models.DataKeyActive}) {
			t.Fatalf("keyring %v, want exactly one active version 1", got)
		}
		for row, ct := range cts {
			for _, v := range replicas {
				if pt, err := v.Open(ctx, cred(app, row), ct); err != nil || string(pt) != row {
					t.Fatalf("a replica cannot open another's value: %v", err)
				}
			}
		}
	})
}

// A replica keeps sealing with the version it has cached until the TTL
// passes, but opens a newer version at once (unknown version → reload).
func TestReplicaPicksUpRotationAfterCacheTTL(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		keeper, _ := newKeeper(t)
		var now atomic.Int64
		now.Store(time.Now().UnixNano())
		clock := func() time.Time { return time.Unix(0, now.Load()) }
		replica := New(db.Gorm, keeper, WithClock(clock), WithCacheTTL(30*time.Second))
		rotator := newVault(t, db.Gorm, keeper)
		app := seedApp(t, db.Gorm, seedOrg(t, db.Gorm))
		b := cred(app, newID(t))

		mustSeal(t, replica, b, "prime the cache")
		if _, err := rotator.Rotate(ctx, app, nil); err != nil {
			t.Fatal(err)
		}
		newer := mustSeal(t, rotator, b, "sealed by the rotator")
		if v, _ := parseVersion(newer); v != 2 {
			t.Fatalf("rotator seals with version %d, want 2", v)
		}
		if _, err := replica.Open(ctx, b, newer); err != nil {
			t.Fatalf("replica opening a newer version: %v", err)
		}
		if v, _ := parseVersion(mustSeal(t, replica, b, "x")); v != 1 {
			t.Fatalf("within the TTL the replica sealed with version %d, want its cached 1", v)
		}
		now.Add(int64(31 * time.Second))
		if v, _ := parseVersion(mustSeal(t, replica, b, "x")); v != 2 {
			t.Fatalf("after the TTL the replica sealed with version %d, want 2", v)
		}
	})
}

func BenchmarkSeal(b *testing.B) {
	db := testutil.NewDB(b, database.SQLite)
	keeper, _ := newKeeper(b)
	v := New(db.Gorm, keeper)
	bind := cred(seedApp(b, db.Gorm, seedOrg(b, db.Gorm)), "row")
	plain := bytes.Repeat([]byte("t"), 64)
	mustSeal(b, v, bind, "warm the cache")
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Seal(ctx, bind, plain); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	db := testutil.NewDB(b, database.SQLite)
	keeper, _ := newKeeper(b)
	v := New(db.Gorm, keeper)
	bind := cred(seedApp(b, db.Gorm, seedOrg(b, db.Gorm)), "row")
	ct := mustSeal(b, v, bind, string(bytes.Repeat([]byte("t"), 64)))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := v.Open(ctx, bind, ct); err != nil {
			b.Fatal(err)
		}
	}
}

// Nothing secret at rest: the stored keyring row holds only the wrapped key.
func TestDataKeyIsStoredOnlyWrapped(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		keeper, _ := newKeeper(t)
		dataKey := randomBytes(t, dataKeyLen)
		// The first 32 bytes the vault draws become the first data key.
		v := newVault(t, db.Gorm, keeper, WithRand(io.MultiReader(bytes.NewReader(dataKey), rand.Reader)))
		app := seedApp(t, db.Gorm, seedOrg(t, db.Gorm))
		mustSeal(t, v, cred(app, "r"), "x")
		var rows []models.DataKey
		if err := db.Gorm.Where("app_id = ?", app).Find(&rows).Error; err != nil || len(rows) != 1 {
			t.Fatalf("keyring: %v (%d rows)", err, len(rows))
		}
		if bytes.Contains(rows[0].WrappedKey, dataKey) || bytes.Contains(rows[0].WrappedKey, dataKey[:16]) {
			t.Fatal("the data key is stored in the clear")
		}
		raw, err := keeper.Decrypt(context.Background(), rows[0].WrappedKey)
		if err != nil || !bytes.Equal(raw, dataKey) {
			t.Fatalf("the stored row is not the data key wrapped by the keeper (%v)", err)
		}
	})
}
