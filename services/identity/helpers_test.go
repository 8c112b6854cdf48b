package identity_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/identity"
	"github.com/latchkey/latchkey/services/vault"
	"github.com/latchkey/latchkey/testutil"
	"github.com/latchkey/latchkey/testutil/oidcissuer"
	"github.com/latchkey/latchkey/testutil/testclock"
)

func TestMain(m *testing.M) { testutil.Main(m) }

var testActor = apikeys.Actor{Kind: audit.ActorCLI, ID: "test"}

// env is one app with a service, a vault and an issuer on loopback.
type env struct {
	t     testing.TB
	db    *database.DB
	clock *testclock.Clock // shared by the service, the audit log and the issuer
	vault *vault.Vault
	audit *audit.Log
	iss   *oidcissuer.Issuer
	svc   *identity.Service
	orgID string
	appID string
}

func newEnv(t testing.TB, db *database.DB, opts ...identity.Option) *env {
	t.Helper()
	clk := testclock.New(time.Now().UTC().Truncate(time.Second))
	e := &env{t: t, db: db, clock: clk, vault: vault.New(db.Gorm, testutil.Keeper(t)), audit: audit.New(db.Gorm, clk.Now)}
	e.iss = oidcissuer.New(t, oidcissuer.WithClock(clk.Now))
	e.svc = e.newService(opts...)
	app := testutil.SeedApp(t, db.Gorm, time.Now().UTC())
	e.orgID, e.appID = app.OrganizationID, app.ID
	return e
}

// newService builds another Service over the same database, as a second
// replica would have.
func (e *env) newService(opts ...identity.Option) *identity.Service {
	return identity.New(e.db.Gorm, e.vault, e.audit, &http.Client{Timeout: 5 * time.Second}, e.clock.Now, opts...)
}

// setIdP points the app at the env's issuer.
func (e *env) setIdP(mod func(*identity.SetInput)) identity.IdP {
	e.t.Helper()
	in := identity.SetInput{AppID: e.appID, Issuer: e.iss.URL, Audience: e.iss.Audience, GroupsClaim: "groups", Actor: testActor}
	if mod != nil {
		mod(&in)
	}
	idp, err := e.svc.SetIdP(context.Background(), in)
	if err != nil {
		e.t.Fatalf("SetIdP: %v", err)
	}
	return idp
}

func (e *env) verify(tok string) (identity.EndUser, error) {
	return e.svc.Verify(context.Background(), e.appID, tok)
}

func (e *env) mustVerify(tok string) identity.EndUser {
	e.t.Helper()
	u, err := e.verify(tok)
	if err != nil {
		e.t.Fatalf("Verify: %v", err)
	}
	return u
}

func (e *env) count(model any, where ...any) int64 {
	e.t.Helper()
	q := e.db.Gorm.Model(model)
	if len(where) > 0 {
		q = q.Where(where[0], where[1:]...)
	}
	var n int64
	if err := q.Count(&n).Error; err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) auditCount(action string) int64 {
	e.t.Helper()
	return e.count(&models.AuditEvent{}, "app_id = ? AND action = ?", e.appID, action)
}

func (e *env) storedGroups(userID string) []string {
	e.t.Helper()
	var out []string
	if err := e.db.Gorm.Model(&models.EndUserGroup{}).Where("end_user_id = ?", userID).Order("group_name").Pluck("group_name", &out).Error; err != nil {
		e.t.Fatal(err)
	}
	return out
}

// assertInvalidToken checks that err is the one generic invalid_user_token
// error and that it does not carry the token or any part of it.
func assertInvalidToken(t testing.TB, err error, tok string) {
	t.Helper()
	if err == nil {
		t.Fatal("token accepted")
	}
	var ce *errs.CodedError
	if !errors.As(err, &ce) || ce.Code != wire.CodeInvalidUserToken {
		t.Fatalf("error %v, want code %s", err, wire.CodeInvalidUserToken)
	}
	if errs.CodeOf(err) != wire.CodeInvalidUserToken {
		t.Fatalf("CodeOf = %s", errs.CodeOf(err))
	}
	if tok == "" {
		return
	}
	msg := err.Error()
	if strings.Contains(msg, tok) {
		t.Fatal("the error text contains the token")
	}
	for _, part := range strings.Split(tok, ".") {
		if len(part) >= 16 && strings.Contains(msg, part) {
			t.Fatalf("the error text contains a token segment: %q", msg)
		}
	}
}

// rawDatabaseContains reports whether secret appears anywhere in the
// database's stored bytes: the SQLite file and its WAL, or, on PostgreSQL,
// the text form of every row of every table (bytea renders as hex, so the
// hex of the secret is looked for too).
func rawDatabaseContains(t testing.TB, db *database.DB, secret string) bool {
	t.Helper()
	needles := [][]byte{[]byte(secret), []byte(hex.EncodeToString([]byte(secret)))}
	var haystacks [][]byte
	switch db.Dialect {
	case database.SQLite:
		var file string
		if err := db.SQL.QueryRow("SELECT file FROM pragma_database_list WHERE name = 'main'").Scan(&file); err != nil {
			t.Fatal(err)
		}
		for _, suffix := range []string{"", "-wal", "-shm"} {
			b, err := os.ReadFile(file + suffix)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			haystacks = append(haystacks, b)
		}
	default:
		var tables []string
		if err := db.Gorm.Raw("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'").Scan(&tables).Error; err != nil {
			t.Fatal(err)
		}
		for _, tbl := range tables {
			var rows []string
			if err := db.Gorm.Raw(`SELECT t::text FROM "` + tbl + `" t`).Scan(&rows).Error; err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				haystacks = append(haystacks, []byte(r))
			}
		}
	}
	for _, h := range haystacks {
		for _, n := range needles {
			if bytes.Contains(h, n) {
				return true
			}
		}
	}
	return false
}
