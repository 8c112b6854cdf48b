package secrets_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/grants"
	"github.com/latchkey/latchkey/services/sdkauth"
	"github.com/latchkey/latchkey/services/secrets"
	"github.com/latchkey/latchkey/services/vault"
	"github.com/latchkey/latchkey/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

var actor = apikeys.Actor{Kind: audit.ActorCLI, ID: "test"}

// world is one database with a real vault, the secrets service and the
// grants service (to prove what was stored resolves and opens).
type world struct {
	t       *testing.T
	db      *database.DB
	gdb     *gorm.DB
	vault   *vault.Vault
	svc     *secrets.Service
	grants  *grants.Service
	now     time.Time
	org     string
	app     string
	other   string // another app
	idpApp  string // an app with an identity provider
	agent   string // an agent of app
	foreign string // an agent of other
}

const idpIssuer = "https://idp.example.test/"

func newWorld(t *testing.T, db *database.DB) *world {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	clock := func() time.Time { return now }
	v := vault.New(db.Gorm, testutil.Keeper(t))
	al := audit.New(db.Gorm, clock)
	w := &world{t: t, db: db, gdb: db.Gorm, vault: v, now: now,
		svc: secrets.New(db.Gorm, v, al, clock), grants: grants.New(db.Gorm, v, al, clock)}
	app := testutil.SeedApp(t, db.Gorm, now)
	w.org, w.app = app.OrganizationID, app.ID
	w.other = testutil.SeedApp(t, db.Gorm, now).ID
	w.idpApp = testutil.SeedApp(t, db.Gorm, now).ID
	testutil.Insert(t, db.Gorm, &models.IdentityProvider{ID: uuid.NewString(), AppID: w.idpApp, Issuer: idpIssuer, Audience: "aud",
		UserClaim: "sub", Preset: "generic", CreatedAt: now, UpdatedAt: now})
	w.agent = testutil.SeedAgent(t, db.Gorm, now, w.app, "bot")
	w.foreign = testutil.SeedAgent(t, db.Gorm, now, w.other, "bot")
	return w
}

func (w *world) endUser(app, issuer, subject string) string {
	w.t.Helper()
	source := models.EndUserSourceAppAsserted
	if issuer != "" {
		source = models.EndUserSourceIdP
	}
	u := models.EndUser{ID: uuid.NewString(), AppID: app, Issuer: issuer, Subject: subject, Source: source,
		Status: models.EndUserActive, CreatedAt: w.now, UpdatedAt: w.now}
	testutil.Insert(w.t, w.gdb, &u)
	return u.ID
}

// createSecret stores a managed secret in app with sensible defaults.
func (w *world) createSecret(app, name, value string) string {
	w.t.Helper()
	id, err := w.svc.Create(context.Background(), secrets.CreateInput{AppID: app, Name: name, Value: value,
		Injection: "header:Authorization:Bearer {secret}", AllowedHosts: []string{"api.example.com"}, Actor: actor})
	if err != nil {
		w.t.Fatalf("create secret: %v", err)
	}
	return id
}

func (w *world) appKey(app string) sdkauth.Caller {
	return sdkauth.Caller{AppID: app, KeyID: "lk_app_aaaaaaaaaaaaaaaa", KeyKind: "app"}
}

func (w *world) agentKey(app, agent string) sdkauth.Caller {
	return sdkauth.Caller{AppID: app, KeyID: "lk_agent_bbbbbbbbbbbbbbbb", KeyKind: "agent", AgentID: agent}
}

// open resolves a grant by id with the app key and opens its credential.
func (w *world) open(app, grantID string) grants.Credential {
	w.t.Helper()
	ctx := context.Background()
	r, err := w.grants.Resolve(ctx, grants.ResolveInput{Caller: w.appKey(app), GrantID: grantID})
	if err != nil {
		w.t.Fatalf("resolve %s: %v", grantID, err)
	}
	c, err := w.grants.Secret(ctx, r)
	if err != nil {
		w.t.Fatalf("open %s: %v", grantID, err)
	}
	return c
}

// counts is the number of rows of every table a refused call must not
// touch.
type counts map[string]int64

func (w *world) counts() counts {
	w.t.Helper()
	out := counts{}
	for _, table := range []string{"managed_secrets", "credentials", "grants", "end_users", "audit_events", "data_keys"} {
		var n int64
		if err := w.gdb.Table(table).Count(&n).Error; err != nil {
			w.t.Fatal(err)
		}
		out[table] = n
	}
	return out
}
