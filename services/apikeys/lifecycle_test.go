package apikeys_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"gocloud.dev/secrets"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/agents"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/vault"
	"github.com/latchkey/latchkey/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

var actor = apikeys.Actor{Kind: audit.ActorOperator, ID: "op-1", Caller: "console"}

type fixture struct {
	db     *database.DB
	keeper *secrets.Keeper
	vault  *vault.Vault
	keys   *apikeys.Service
	agents *agents.Service
	now    time.Time
}

func newFixture(t *testing.T, db *database.DB) *fixture {
	t.Helper()
	keeper := testutil.Keeper(t)
	f := &fixture{db: db, keeper: keeper, now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	clock := func() time.Time { return f.now }
	v := vault.New(db.Gorm, keeper)
	f.vault = v
	al := audit.New(db.Gorm, clock)
	f.keys = apikeys.New(db.Gorm, v, al, clock)
	f.agents = agents.New(db.Gorm, f.keys, al, clock)
	return f
}

func (f *fixture) app(t *testing.T) models.App {
	t.Helper()
	app := testutil.SeedApp(t, f.db.Gorm, time.Now().UTC())
	// The keyring exists from app creation on, as tenancy makes it.
	if err := f.vault.CreateKeyring(context.Background(), nil, app.ID); err != nil {
		t.Fatal(err)
	}
	return app
}

func (f *fixture) mint(t *testing.T, appID, agentID string) apikeys.Minted {
	t.Helper()
	m, err := f.keys.Mint(context.Background(), apikeys.MintInput{AppID: appID, AgentID: agentID, Actor: actor})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (f *fixture) status(t *testing.T, keyID string) string {
	t.Helper()
	var k models.APIKey
	if err := f.db.Gorm.Where("key_id = ?", keyID).Take(&k).Error; err != nil {
		t.Fatal(err)
	}
	return k.Status
}

func TestRevokeTheLastUsableKeyNeedsForce(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		f := newFixture(t, db)
		ctx := context.Background()
		app := f.app(t)
		appKey := f.mint(t, app.ID, "")
		agent, err := f.agents.Create(ctx, agents.CreateInput{AppID: app.ID, Name: "bot", Actor: actor})
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name    string
			agentID string
			keyID   string
		}{
			{"an agent's only key", agent.Agent.ID, agent.Key.KeyID},
			{"an app's only app key", "", appKey.KeyID},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ref := apikeys.KeyRef{AppID: app.ID, AgentID: tt.agentID, KeyID: tt.keyID}
				_, err := f.keys.Revoke(ctx, apikeys.RevokeInput{Key: ref, Actor: actor})
				if !errors.Is(err, apikeys.ErrLastUsableKey) || errs.CodeOf(err) != wire.CodeConflict {
					t.Fatalf("want a last-key conflict, got %v", err)
				}
				if got := f.status(t, tt.keyID); got != models.KeyActive {
					t.Fatalf("refused revoke changed the key to %s", got)
				}
				row, err := f.keys.Revoke(ctx, apikeys.RevokeInput{Key: ref, Force: true, Actor: actor})
				if err != nil || row.Status != models.KeyRevoked || row.RevokedAt == nil {
					t.Fatalf("forced revoke: %+v %v", row, err)
				}
			})
		}
	})
}

func TestADeprecatedSiblingCountsAsUsable(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		f := newFixture(t, db)
		ctx := context.Background()
		app := f.app(t)
		a, b := f.mint(t, app.ID, ""), f.mint(t, app.ID, "")
		if _, err := f.keys.Deprecate(ctx, apikeys.KeyRef{AppID: app.ID, KeyID: b.KeyID}, actor); err != nil {
			t.Fatal(err)
		}
		if _, err := f.keys.Revoke(ctx, apikeys.RevokeInput{Key: apikeys.KeyRef{AppID: app.ID, KeyID: a.KeyID}, Actor: actor}); err != nil {
			t.Fatalf("revoke with a deprecated sibling left: %v", err)
		}
	})
}

func TestConcurrentRevocationsCannotBothTakeTheLastKeys(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		f := newFixture(t, db)
		ctx := context.Background()
		app := f.app(t)
		agent, err := f.agents.Create(ctx, agents.CreateInput{AppID: app.ID, Name: "bot", Actor: actor})
		if err != nil {
			t.Fatal(err)
		}
		second := f.mint(t, app.ID, agent.Agent.ID)
		other := testutil.Reopen(t, db) // a second replica's pool
		otherKeys := apikeys.New(other.Gorm, vault.New(other.Gorm, f.keeper), audit.New(other.Gorm, nil), nil)

		var wg sync.WaitGroup
		errsOut := make([]error, 2)
		for i, svc := range []*apikeys.Service{f.keys, otherKeys} {
			keyID := []string{agent.Key.KeyID, second.KeyID}[i]
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errsOut[i] = svc.Revoke(ctx, apikeys.RevokeInput{
					Key: apikeys.KeyRef{AppID: app.ID, AgentID: agent.Agent.ID, KeyID: keyID}, Actor: actor})
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errsOut {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, apikeys.ErrLastUsableKey):
			default:
				t.Fatalf("unexpected error: %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d of 2 concurrent revocations succeeded; the agent must keep one key", ok)
		}
	})
}

func TestKeyLifecycleIsScopedAndAudited(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		f := newFixture(t, db)
		ctx := context.Background()
		appA, appB := f.app(t), f.app(t)
		agentA, err := f.agents.Create(ctx, agents.CreateInput{AppID: appA.ID, Name: "bot", Actor: actor})
		if err != nil {
			t.Fatal(err)
		}
		keyA := agentA.Key
		f.mint(t, appA.ID, agentA.Agent.ID)

		notFound := []struct {
			name string
			ref  apikeys.KeyRef
		}{
			{"another app", apikeys.KeyRef{AppID: appB.ID, AgentID: agentA.Agent.ID, KeyID: keyA.KeyID}},
			{"the app's scope without the agent", apikeys.KeyRef{AppID: appA.ID, KeyID: keyA.KeyID}},
			{"another agent", apikeys.KeyRef{AppID: appA.ID, AgentID: uuid.NewString(), KeyID: keyA.KeyID}},
			{"a malformed agent id", apikeys.KeyRef{AppID: appA.ID, AgentID: "nope", KeyID: keyA.KeyID}},
			{"a malformed key id", apikeys.KeyRef{AppID: appA.ID, AgentID: agentA.Agent.ID, KeyID: "lk_app_x"}},
		}
		for _, tt := range notFound {
			t.Run("not found through "+tt.name, func(t *testing.T) {
				if _, err := f.keys.Deprecate(ctx, tt.ref, actor); !errors.Is(err, errs.ErrNotFound) {
					t.Fatalf("deprecate: %v", err)
				}
				if _, err := f.keys.Revoke(ctx, apikeys.RevokeInput{Key: tt.ref, Force: true, Actor: actor}); !errors.Is(err, errs.ErrNotFound) {
					t.Fatalf("revoke: %v", err)
				}
			})
		}
		if got := f.status(t, keyA.KeyID); got != models.KeyActive {
			t.Fatalf("out-of-scope calls changed the key to %s", got)
		}

		ref := apikeys.KeyRef{AppID: appA.ID, AgentID: agentA.Agent.ID, KeyID: keyA.KeyID}
		row, err := f.keys.Deprecate(ctx, ref, actor)
		if err != nil || row.Status != models.KeyDeprecated || row.DeprecatedAt == nil || !row.DeprecatedAt.Equal(f.now) {
			t.Fatalf("deprecate: %+v %v", row, err)
		}
		if _, err := f.keys.Deprecate(ctx, ref, actor); err != nil {
			t.Fatalf("deprecating twice: %v", err)
		}
		if _, err := f.keys.Revoke(ctx, apikeys.RevokeInput{Key: ref, Actor: actor}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.keys.Revoke(ctx, apikeys.RevokeInput{Key: ref, Actor: actor}); err != nil {
			t.Fatalf("revoking twice: %v", err)
		}
		if _, err := f.keys.Deprecate(ctx, ref, actor); errs.CodeOf(err) != wire.CodeConflict {
			t.Fatalf("deprecating a revoked key: %v", err)
		}

		var rows []models.AuditEvent
		if err := db.Gorm.Where("key_id = ? AND action IN ?", keyA.KeyID,
			[]string{audit.ActionKeyDeprecate, audit.ActionKeyRevoke}).Order("id").Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		// One row per change; repeats that changed nothing wrote none.
		if len(rows) != 2 || rows[0].Action != audit.ActionKeyDeprecate || rows[1].Action != audit.ActionKeyRevoke {
			t.Fatalf("audit rows %+v", rows)
		}
		for _, ev := range rows {
			if ev.AppID != appA.ID || ev.OrganizationID != appA.OrganizationID || ev.AgentID != agentA.Agent.ID ||
				ev.ActorKind != actor.Kind || ev.ActorID != actor.ID || ev.Caller != actor.Caller {
				t.Fatalf("audit row %+v", ev)
			}
		}

		list, err := f.keys.List(ctx, appA.ID, agentA.Agent.ID)
		if err != nil || len(list) != 2 || (list[0].KeyID != keyA.KeyID && list[1].KeyID != keyA.KeyID) {
			t.Fatalf("list: %+v %v", list, err)
		}
		if other, err := f.keys.List(ctx, appB.ID, agentA.Agent.ID); err != nil || len(other) != 0 {
			t.Fatalf("another app lists the agent's keys: %+v %v", other, err)
		}
	})
}
