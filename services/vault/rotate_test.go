package vault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gocloud.dev/gcerrors"
	"gocloud.dev/secrets"
	"gocloud.dev/secrets/driver"
	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/testutil"
)

type seededApp struct {
	id     string
	values []sealed
}

func seedApps(t *testing.T, db *gorm.DB, v *Vault, apps, credsPerApp int) []seededApp {
	t.Helper()
	org := seedOrg(t, db)
	out := make([]seededApp, apps)
	for i := range out {
		out[i].id = seedApp(t, db, org)
		out[i].values = seedSecrets(t, db, v, out[i].id, credsPerApp)
	}
	return out
}

func allValues(apps []seededApp) []sealed {
	var out []sealed
	for _, a := range apps {
		out = append(out, a.values...)
	}
	return out
}

func TestRotateKeepsEveryValueReadable(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		keeper, _ := newKeeper(t)
		v := newVault(t, db.Gorm, keeper, WithBatchSize(2))
		apps := seedApps(t, db.Gorm, v, 3, 4)
		values := allValues(apps)

		var phases []string
		rep, err := v.Rotate(ctx, "", func(p RotateProgress) { phases = append(phases, p.Phase) })
		if err != nil {
			t.Fatal(err)
		}
		want := RotateReport{Apps: 3, KeysRewrapped: 3, VersionsAdded: 3, RowsReencrypted: len(values), VersionsDeleted: 3}
		if rep != want {
			t.Fatalf("report %+v, want %+v", rep, want)
		}
		if len(phases) == 0 || phases[len(phases)-1] != PhaseDelete {
			t.Fatalf("progress phases %v", phases)
		}

		// A fresh process (no cached keys) must read everything: no value may
		// still need a deleted version.
		fresh := newVault(t, db.Gorm, keeper)
		if got := assertReadable(t, db.Gorm, fresh, values); got[2] != len(values) {
			t.Fatalf("versions in use after rotation: %v, want all on 2", got)
		}
		for _, a := range apps {
			if got := keyring(t, db.Gorm, a.id); len(got) != 1 || got[0] != (keyRow{2, models.DataKeyActive}) {
				t.Fatalf("keyring %v, want only active version 2", got)
			}
			if ver, _ := parseVersion(mustSeal(t, v, cred(a.id, newID(t)), "new")); ver != 2 {
				t.Fatalf("new seals use version %d, want 2", ver)
			}
		}

		// Again, for one app only: the others stay untouched.
		rep, err = v.Rotate(ctx, apps[0].id, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Apps != 1 || rep.VersionsAdded != 1 || rep.VersionsDeleted != 1 || rep.RowsReencrypted != len(apps[0].values) {
			t.Fatalf("second rotation report %+v", rep)
		}
		if got := assertReadable(t, db.Gorm, newVault(t, db.Gorm, keeper), apps[0].values); got[3] != len(apps[0].values) {
			t.Fatalf("versions %v, want all on 3", got)
		}
		if got := assertReadable(t, db.Gorm, fresh, apps[1].values); got[2] != len(apps[1].values) {
			t.Fatalf("another app was touched: %v", got)
		}
	})
}

// The wait for replicas is paid once per run, not once per app.
func TestRotateWaitsOnceForAllApps(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		keeper, _ := newKeeper(t)
		const grace = 150 * time.Millisecond
		v := newVault(t, db.Gorm, keeper, WithRotationGrace(grace))
		apps := seedApps(t, db.Gorm, v, 3, 1)
		waits, verified := 0, map[string]bool{}
		began := time.Now()
		rep, err := v.Rotate(context.Background(), "", func(p RotateProgress) {
			switch p.Phase {
			case PhaseWait:
				waits++
			case PhaseVerify:
				verified[p.AppID] = true
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if waits != 1 || len(verified) != len(apps) || rep.Apps != len(apps) {
			t.Fatalf("%d waits, %d apps verified, report %+v", waits, len(verified), rep)
		}
		if elapsed := time.Since(began); elapsed < grace {
			t.Fatalf("rotation finished after %v, before the %v grace", elapsed, grace)
		}
		assertReadable(t, db.Gorm, newVault(t, db.Gorm, keeper), allValues(apps))

		// Zero grace: no wait and no second scan (nothing else is sealing).
		v0 := newVault(t, db.Gorm, keeper, WithRotationGrace(0))
		waits, verified = 0, map[string]bool{}
		if _, err := v0.Rotate(context.Background(), "", func(p RotateProgress) {
			if p.Phase == PhaseWait {
				waits++
			}
			if p.Phase == PhaseVerify {
				verified[p.AppID] = true
			}
		}); err != nil {
			t.Fatal(err)
		}
		if waits != 0 || len(verified) != 0 {
			t.Fatalf("zero grace still waited (%d) or verified (%d)", waits, len(verified))
		}
		assertReadable(t, db.Gorm, newVault(t, db.Gorm, keeper), allValues(apps))
	})
}

func TestRotateUnknownAppHasNoKeyring(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		keeper, _ := newKeeper(t)
		v := newVault(t, db.Gorm, keeper)
		if _, err := v.Rotate(context.Background(), seedApp(t, db.Gorm, seedOrg(t, db.Gorm)), nil); !errors.Is(err, ErrNoKeyring) {
			t.Fatalf("want ErrNoKeyring, got %v", err)
		}
		rep, err := v.Rotate(context.Background(), "", nil)
		if err != nil || rep != (RotateReport{}) {
			t.Fatalf("rotating an empty database: %+v, %v", rep, err)
		}
	})
}

func TestInterruptedRotationResumesWithoutPilingUpVersions(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		keeper, _ := newKeeper(t)
		v := newVault(t, db.Gorm, keeper, WithBatchSize(2))
		apps := seedApps(t, db.Gorm, v, 2, 5)
		values := allValues(apps)

		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		batches := 0
		_, err := v.Rotate(ctx, "", func(p RotateProgress) {
			if p.Phase == PhaseReencrypt {
				if batches++; batches == 3 {
					cancel() // midway through the first app's values
				}
			}
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("want context.Canceled, got %v", err)
		}
		versions := assertReadable(t, db.Gorm, newVault(t, db.Gorm, keeper), values)
		if versions[1] == 0 || versions[2] == 0 {
			t.Fatalf("interruption was not midway: versions in use %v", versions)
		}
		if got := keyring(t, db.Gorm, apps[0].id); len(got) != 2 ||
			got[0] != (keyRow{1, models.DataKeyRetired}) || got[1] != (keyRow{2, models.DataKeyActive}) {
			t.Fatalf("interrupted app keyring %v", got)
		}

		// A second interrupted attempt must not add a version either.
		ctx2, cancel2 := context.WithCancel(context.Background())
		defer cancel2()
		_, err = v.Rotate(ctx2, apps[0].id, func(p RotateProgress) {
			if p.Phase == PhaseReencrypt {
				cancel2()
			}
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("want context.Canceled, got %v", err)
		}

		rep, err := v.Rotate(context.Background(), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		// apps[0] resumes; apps[1] was never reached, so it rotates normally.
		if rep.Apps != 2 || rep.Resumed != 1 || rep.VersionsAdded != 1 || rep.VersionsDeleted != 2 {
			t.Fatalf("resumed run report %+v", rep)
		}
		if got := assertReadable(t, db.Gorm, newVault(t, db.Gorm, keeper), values); got[2] != len(values) {
			t.Fatalf("versions after resuming %v, want all on 2", got)
		}
		for _, a := range apps {
			if got := keyring(t, db.Gorm, a.id); len(got) != 1 || got[0] != (keyRow{2, models.DataKeyActive}) {
				t.Fatalf("keyring %v, want only active version 2", got)
			}
		}
	})
}

// A value that cannot be opened is never silently orphaned: the version it
// uses is kept and Rotate says where the value is.
func TestRotateKeepsVersionsOfUnreadableValues(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		keeper, _ := newKeeper(t)
		v := newVault(t, db.Gorm, keeper)
		apps := seedApps(t, db.Gorm, v, 1, 2)
		app := apps[0]
		var victim sealed
		for _, s := range app.values {
			if s.b.Table == "credentials" && s.b.Column == "refresh_token_ciphertext" {
				victim = s
				break
			}
		}
		// A version-1 ciphertext of another row: well formed, but it does not open here.
		moved := mustSeal(t, v, cred(app.id, newID(t)), "elsewhere")
		if err := db.Gorm.Table("credentials").Where("id = ?", victim.b.RowID).Update(victim.b.Column, moved).Error; err != nil {
			t.Fatal(err)
		}

		rep, err := v.Rotate(ctx, app.id, nil)
		if !errors.Is(err, ErrDecrypt) {
			t.Fatalf("want an ErrDecrypt report, got %v", err)
		}
		if want := fmt.Sprintf("credentials.refresh_token_ciphertext row %s", victim.b.RowID); !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not say where the value is", err)
		}
		if rep.VersionsDeleted != 0 {
			t.Fatalf("deleted %d versions while a value still uses one", rep.VersionsDeleted)
		}
		if got := keyring(t, db.Gorm, app.id); len(got) != 2 {
			t.Fatalf("keyring %v, want version 1 kept", got)
		}
		var rest []sealed
		for _, s := range app.values {
			if s.b != victim.b {
				rest = append(rest, s)
			}
		}
		if got := assertReadable(t, db.Gorm, newVault(t, db.Gorm, keeper), rest); got[2] != len(rest) {
			t.Fatalf("the other values were not re-encrypted: %v", got)
		}
	})
}

func containsStr(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestRotateDoesNotClobberConcurrentWrite(t *testing.T) {
	cases := []struct {
		name string
		// writerTTL: a long TTL with a primed cache makes the writer a replica
		// that still seals with the retired version.
		writerTTL   time.Duration
		wantVersion uint32
	}{
		{"writer already on the new version", testTTL, 2},
		{"writer still on the retired version", time.Hour, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
				ctx := context.Background()
				keeper, _ := newKeeper(t)
				v := newVault(t, db.Gorm, keeper)
				apps := seedApps(t, db.Gorm, v, 1, 3)
				app := apps[0]
				writer := New(db.Gorm, keeper, WithCacheTTL(c.writerTTL))
				mustSeal(t, writer, cred(app.id, "prime"), "prime the writer's cache")

				var target Binding
				for _, s := range app.values {
					if s.b.Table == "credentials" && s.b.Column == "access_token_ciphertext" {
						target = s.b
						break
					}
				}
				const refreshed = "refreshed by a concurrent token refresh"
				var fired atomic.Bool
				v.beforeCAS = func(table, column, rowID string) {
					if table != target.Table || column != target.Column || rowID != target.RowID || fired.Swap(true) {
						return
					}
					ct := mustSeal(t, writer, target, refreshed)
					if err := db.Gorm.Table(table).Where("id = ?", rowID).Update(column, ct).Error; err != nil {
						t.Error(err)
					}
				}

				rep, err := v.Rotate(ctx, app.id, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !fired.Load() || rep.Conflicts == 0 {
					t.Fatalf("no compare-and-swap conflict happened (report %+v)", rep)
				}
				ct := stored(t, db.Gorm, target)
				pt, err := newVault(t, db.Gorm, keeper).Open(ctx, target, ct)
				if err != nil {
					t.Fatal(err)
				}
				if string(pt) != refreshed {
					t.Fatal("rotation overwrote the concurrent write")
				}
				if ver, _ := parseVersion(ct); ver != c.wantVersion {
					t.Fatalf("value on version %d, want %d", ver, c.wantVersion)
				}
			})
		})
	}
}

// Replicas keep serving (sealing, opening, refreshing tokens) while another
// process rotates; nothing fails and nothing is left unreadable.
func TestRotateOnlineWithConcurrentSealOpen(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		keeper, _ := newKeeper(t)
		// The grace must cover the replica's TTL plus its Seal-to-write time,
		// which SQLite's single writer stretches under this load.
		rotator := newVault(t, db.Gorm, keeper, WithBatchSize(3), WithRotationGrace(500*time.Millisecond))
		replica := newVault(t, db.Gorm, keeper)
		apps := seedApps(t, db.Gorm, rotator, 2, 6)

		// Each refresher owns some credential rows and rewrites their access
		// token, tracking the last value it wrote.
		var owned [][]int
		values := allValues(apps)
		var access []int
		for i, s := range values {
			if s.b.Table == "credentials" && s.b.Column == "access_token_ciphertext" {
				access = append(access, i)
			}
		}
		const refreshers = 3
		owned = make([][]int, refreshers)
		for i, idx := range access {
			owned[i%refreshers] = append(owned[i%refreshers], idx)
		}

		stop := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		var ops atomic.Int64
		var mu sync.Mutex // guards values[i].plain updates
		for r := range refreshers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					i := owned[r][n%len(owned[r])]
					mu.Lock()
					b := values[i].b
					mu.Unlock()
					plain := fmt.Sprintf("refreshed %d by %d", n, r)
					ct, err := replica.Seal(ctx, b, []byte(plain))
					if err == nil {
						err = db.Gorm.WithContext(ctx).Table(b.Table).Where("id = ?", b.RowID).Update(b.Column, ct).Error
					}
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					values[i].plain = []byte(plain)
					mu.Unlock()
					ops.Add(1)
				}
			}()
		}
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					a := apps[(g+n)%len(apps)]
					b := cred(a.id, fmt.Sprintf("scratch-%d-%d", g, n))
					ct, err := replica.Seal(ctx, b, []byte(b.RowID))
					if err != nil {
						errs <- err
						return
					}
					pt, err := replica.Open(ctx, b, ct)
					if err != nil || string(pt) != b.RowID {
						errs <- fmt.Errorf("round trip during rotation: %v", err)
						return
					}
					ops.Add(1)
				}
			}()
		}

		for range 2 {
			if _, err := rotator.Rotate(ctx, "", nil); err != nil {
				t.Error(err)
			}
		}
		close(stop)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if ops.Load() == 0 {
			t.Fatal("no concurrent operation ran")
		}
		assertReadable(t, db.Gorm, newVault(t, db.Gorm, keeper), values)
	})
}

// twoKeyKeeper models a KMS after a key-encryption-key rotation: it still
// decrypts with the old key but encrypts with the new one.
type twoKeyKeeper struct {
	next, prev *secrets.Keeper
}

func (k twoKeyKeeper) Encrypt(ctx context.Context, pt []byte) ([]byte, error) {
	return k.next.Encrypt(ctx, pt)
}

func (k twoKeyKeeper) Decrypt(ctx context.Context, ct []byte) ([]byte, error) {
	if pt, err := k.next.Decrypt(ctx, ct); err == nil {
		return pt, nil
	}
	return k.prev.Decrypt(ctx, ct)
}
func (twoKeyKeeper) Close() error                       { return nil }
func (twoKeyKeeper) ErrorAs(error, any) bool            { return false }
func (twoKeyKeeper) ErrorCode(error) gcerrors.ErrorCode { return gcerrors.Unknown }
func (twoKeyKeeper) _assert() driver.Keeper             { return twoKeyKeeper{} }

func TestRotateAbsorbsKeyEncryptionKeyRotation(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		oldKEK, _ := newKeeper(t)
		newKEK, _ := newKeeper(t)
		apps := seedApps(t, db.Gorm, newVault(t, db.Gorm, oldKEK), 2, 2)
		values := allValues(apps)

		both := secrets.NewKeeper(twoKeyKeeper{next: newKEK, prev: oldKEK})
		defer both.Close()
		v := newVault(t, db.Gorm, both)
		// Stop each app's rotation right after the rewrap, so the only thing
		// that can make the old versions readable under the new KEK is the rewrap.
		for _, a := range apps {
			stop, cancel := context.WithCancel(ctx)
			_, err := v.Rotate(stop, a.id, func(p RotateProgress) {
				if p.Phase == PhaseRewrap {
					cancel()
				}
			})
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("want context.Canceled, got %v", err)
			}
			if got := keyring(t, db.Gorm, a.id); len(got) != 1 {
				t.Fatalf("keyring %v, want version 1 only", got)
			}
		}
		onlyNew := newVault(t, db.Gorm, newKEK)
		if err := onlyNew.Check(ctx); err != nil {
			t.Fatal(err)
		}
		assertReadable(t, db.Gorm, onlyNew, values)
		if err := newVault(t, db.Gorm, oldKEK).Check(ctx); !errors.Is(err, ErrKeeper) {
			t.Fatalf("the old KEK still unwraps after the rewrap: %v", err)
		}

		if _, err := onlyNew.Rotate(ctx, "", nil); err != nil {
			t.Fatal(err)
		}
		assertReadable(t, db.Gorm, newVault(t, db.Gorm, newKEK), values)
	})
}
