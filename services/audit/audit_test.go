package audit_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.DropTemplate()
	os.Exit(code)
}

func countRows(t *testing.T, db *database.DB) int64 {
	t.Helper()
	var n int64
	if err := db.Gorm.Model(&models.AuditEvent{}).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBatcherCommitsEveryRowBeforeAcknowledging(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		l := audit.New(db.Gorm, nil)
		b := audit.NewBatcher(l, audit.BatchOptions{MaxBatch: 16})
		defer b.Close()
		const n = 300
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				errs <- b.Record(context.Background(), models.AuditEvent{AppID: "app-1", Action: "sdk.proxy", Path: fmt.Sprintf("/r/%d", i)})
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("record: %v", err)
			}
		}
		// Every acknowledged row is already there: no flush needed.
		if got := countRows(t, db); got != n {
			t.Fatalf("%d rows committed, want %d", got, n)
		}
	})
}

// BenchmarkBatcherManyCallers writes rows from 512 concurrent callers with
// batches bounded at 32 and at 256 rows. On SQLite the larger bound costs
// about twice as much per row (the driver binds parameters in quadratic
// time), which is why the server bounds SQLite's audit batches at 32.
func BenchmarkBatcherManyCallers(b *testing.B) {
	for _, d := range testutil.Dialects(b) {
		for _, max := range []int{32, 256} {
			b.Run(fmt.Sprintf("%s/max%d", d, max), func(b *testing.B) {
				benchmarkRecord(b, d, audit.BatchOptions{MaxBatch: max}, 256)
			})
		}
	}
}

// benchmarkRecord records benchEvent from parallelism × GOMAXPROCS
// goroutines through a batcher with o on a fresh database of dialect d.
func benchmarkRecord(b *testing.B, d string, o audit.BatchOptions, parallelism int) {
	db := testutil.NewDB(b, d)
	bt := audit.NewBatcher(audit.New(db.Gorm, nil), o)
	defer bt.Close()
	b.SetParallelism(parallelism)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := bt.Record(context.Background(), benchEvent); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// The batch INSERT names its columns by hand; a field of the model it
// forgot would be stored empty. Every field gets a distinct value here and
// must read back unchanged.
func TestBatchWritesEveryField(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		var want models.AuditEvent
		v := reflect.ValueOf(&want).Elem()
		for i := 0; i < v.NumField(); i++ {
			f := v.Field(i)
			switch f.Kind() {
			case reflect.String:
				f.SetString("v-" + v.Type().Field(i).Name)
			case reflect.Int, reflect.Int64:
				f.SetInt(int64(100 + i))
			}
		}
		want.ID = "0196f2a4-7c1e-7000-8000-0123456789ab"
		want.OccurredAt = time.Date(2026, 11, 27, 8, 30, 15, 123456000, time.UTC)
		want.Outcome = models.OutcomeUpstreamError
		want.Context = `{"run_id":"r-42"}`

		b := audit.NewBatcher(audit.New(db.Gorm, nil), audit.BatchOptions{})
		defer b.Close()
		if err := b.Record(context.Background(), want); err != nil {
			t.Fatal(err)
		}
		var got models.AuditEvent
		if err := db.Gorm.Take(&got, "id = ?", want.ID).Error; err != nil {
			t.Fatal(err)
		}
		got.OccurredAt = got.OccurredAt.UTC()
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("stored row differs:\n got %+v\nwant %+v", got, want)
		}
	})
}

// Callers wait for their row's verdict whatever their own context says, so
// a database that stops answering must fail them after the write timeout,
// not hold every SDK call. Here another session holds a lock the INSERT
// needs. PostgreSQL only: on SQLite the wait for the write lock is SQLite's
// own busy timeout (10 s, services/database), which the driver does not
// cut short, so that is the bound there.
func TestBatcherGivesUpOnAStuckDatabase(t *testing.T) {
	db := testutil.NewDB(t, database.Postgres)
	ctx := context.Background()
	other := testutil.Reopen(t, db)
	conn, err := other.SQL.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN; LOCK TABLE audit_events IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	b := audit.NewBatcher(audit.New(db.Gorm, nil), audit.BatchOptions{WriteTimeout: 300 * time.Millisecond})
	defer b.Close()
	start := time.Now()
	err = b.Record(ctx, benchEvent)
	if err == nil {
		t.Fatal("a row was acknowledged while the database could not write it")
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("the call waited %v for a stuck database", waited)
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	// Once the database answers again, so does the batcher.
	if err := b.Record(ctx, benchEvent); err != nil {
		t.Fatalf("after the lock: %v", err)
	}
	if n := countRows(t, db); n != 1 {
		t.Fatalf("%d rows, want 1", n)
	}
}

func TestBatcherReportsWriteFailureToEveryCaller(t *testing.T) {
	db := testutil.NewDB(t, database.SQLite)
	l := audit.New(db.Gorm, nil)
	b := audit.NewBatcher(l, audit.BatchOptions{})
	defer b.Close()
	// An outcome the schema's CHECK constraint refuses makes the write fail.
	err := b.Record(context.Background(), models.AuditEvent{AppID: "a", Action: "sdk.proxy", Outcome: "maybe"})
	if err == nil {
		t.Fatal("a failed audit write was acknowledged")
	}
	if countRows(t, db) != 0 {
		t.Fatal("a refused row was written")
	}
	// The batcher keeps working after a failure.
	if err := b.Record(context.Background(), models.AuditEvent{AppID: "a", Action: "sdk.proxy"}); err != nil {
		t.Fatal(err)
	}
}

func TestBatcherRefusesAfterClose(t *testing.T) {
	db := testutil.NewDB(t, database.SQLite)
	b := audit.NewBatcher(audit.New(db.Gorm, nil), audit.BatchOptions{})
	b.Close()
	if err := b.Record(context.Background(), models.AuditEvent{AppID: "a", Action: "x"}); !errors.Is(err, audit.ErrClosed) {
		t.Fatalf("record after close: %v", err)
	}
}

func TestListNewestFirstAndScopedByApp(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		tick := 0
		l := audit.New(db.Gorm, func() time.Time { tick++; return base.Add(time.Duration(tick) * time.Second) })
		for i := 0; i < 5; i++ {
			if err := l.Write(context.Background(), models.AuditEvent{AppID: "a", Action: fmt.Sprintf("act.%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
		_ = l.Write(context.Background(), models.AuditEvent{AppID: "other", Action: "act.x"})
		evs, err := l.List(context.Background(), audit.Query{AppID: "a", Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 3 || evs[0].Action != "act.4" || evs[2].Action != "act.2" {
			t.Fatalf("got %v", evs)
		}
		more, _ := l.List(context.Background(), audit.Query{AppID: "a", Limit: 10, Before: evs[2].ID})
		if len(more) != 2 || more[0].Action != "act.1" {
			t.Fatalf("cursor page: %v", more)
		}
	})
}

func TestContextIsBounded(t *testing.T) {
	big := map[string]string{}
	for i := 0; i < 200; i++ {
		big[fmt.Sprintf("key-%03d", i)] = strings.Repeat("v", 300)
	}
	got := audit.EncodeContext(big)
	if len(got) > audit.MaxContextBytes || !strings.Contains(got, "_truncated") {
		t.Fatalf("context not bounded: %d bytes", len(got))
	}
	if audit.EncodeContext(nil) != "{}" {
		t.Fatal("empty context")
	}
}

// benchEvent is shaped like a proxied call's row.
var benchEvent = models.AuditEvent{OrganizationID: "0196f2a4-7c1e-7000-8000-0123456789ab", AppID: "0196f2a4-7c1e-7000-8000-0123456789ac",
	Action: "sdk.proxy", ActorKind: "key", ActorID: "lk_app_abcdefghijklmnop", KeyID: "lk_app_abcdefghijklmnop",
	Caller: "weekly-digest", PrincipalKind: "system", GrantID: "0196f2a4-7c1e-7000-8000-0123456789ad", Provider: "github",
	Method: "GET", Host: "api.github.com", Path: "/user/repos", UpstreamStatus: 200, LatencyMS: 42,
	Reason: "list repos for the weekly digest", Context: `{"run_id":"r-42"}`, RequestID: "0196f2a4-7c1e-7000-8000-0123456789ae"}

func BenchmarkBatcherParallel(b *testing.B) {
	for _, d := range testutil.Dialects(b) {
		b.Run(d, func(b *testing.B) { benchmarkRecord(b, d, audit.BatchOptions{}, 16) })
	}
}

// Text from requests (a reason with a NUL, a path cut inside a rune) must
// not make a row unwritable: PostgreSQL refuses NUL and invalid UTF-8 in
// text, and a lost row would leave a credential use unaudited.
func TestHostileTextIsStoredCleaned(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		l := audit.New(db.Gorm, nil)
		b := audit.NewBatcher(l, audit.BatchOptions{})
		defer b.Close()
		long := strings.Repeat("é", 400) // 800 bytes: the cut must land on a rune boundary
		ev := models.AuditEvent{AppID: "a", Action: "sdk.proxy", Reason: "drop\x00table", Path: "/x/" + long,
			GrantID: "bad\xff\xfeid", Caller: "ok"}
		if err := b.Record(context.Background(), ev); err != nil {
			t.Fatalf("a row with hostile text was not written: %v", err)
		}
		var got models.AuditEvent
		if err := db.Gorm.Take(&got).Error; err != nil {
			t.Fatal(err)
		}
		if strings.ContainsRune(got.Reason, 0) || got.Reason != "droptable" {
			t.Fatalf("reason stored as %q", got.Reason)
		}
		if !utf8.ValidString(got.Path) || !utf8.ValidString(got.GrantID) || len(got.Path) > 512 {
			t.Fatalf("path %d bytes valid=%v, grant id %q", len(got.Path), utf8.ValidString(got.Path), got.GrantID)
		}
	})
}

// A row the database refuses fails its own call only, not the calls that
// shared its batch.
func TestOneBadRowFailsOnlyItsOwnCall(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		b := audit.NewBatcher(audit.New(db.Gorm, nil), audit.BatchOptions{MaxBatch: 64})
		defer b.Close()
		var wg sync.WaitGroup
		good, bad := make(chan error, 200), make(chan error, 20)
		for i := 0; i < 200; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				good <- b.Record(context.Background(), models.AuditEvent{AppID: "b", Action: "sdk.me"})
			}()
			if i%10 == 0 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					// The outcome CHECK constraint refuses this row.
					bad <- b.Record(context.Background(), models.AuditEvent{AppID: "a", Action: "sdk.proxy", Outcome: "maybe"})
				}()
			}
		}
		wg.Wait()
		close(good)
		close(bad)
		for err := range good {
			if err != nil {
				t.Fatalf("a good row failed because of another: %v", err)
			}
		}
		for err := range bad {
			if err == nil {
				t.Fatal("a refused row was acknowledged")
			}
		}
		if n := countRows(t, db); n != 200 {
			t.Fatalf("%d rows, want 200", n)
		}
	})
}

// The same oversized context always keeps the same entries.
func TestContextTruncationIsDeterministic(t *testing.T) {
	big := map[string]string{}
	for i := 0; i < 100; i++ {
		big[fmt.Sprintf("key-%03d", i)] = strings.Repeat("v", 100)
	}
	first := audit.EncodeContext(big)
	for i := 0; i < 20; i++ {
		if got := audit.EncodeContext(big); got != first {
			t.Fatal("two encodings of one context kept different entries")
		}
	}
	if !strings.Contains(first, `"key-000"`) || strings.Contains(first, `"key-099"`) {
		t.Fatal("truncation does not keep the first keys in order")
	}
}
