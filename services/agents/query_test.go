package agents_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/latchkey/latchkey/services/agents"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/vault"
	"github.com/latchkey/latchkey/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

var actor = apikeys.Actor{Kind: audit.ActorOperator, ID: "op-1"}

func newService(t *testing.T, db *database.DB) (*agents.Service, *vault.Vault) {
	t.Helper()
	v := vault.New(db.Gorm, testutil.Keeper(t))
	al := audit.New(db.Gorm, nil)
	return agents.New(db.Gorm, apikeys.New(db.Gorm, v, al, nil), al, nil), v
}

func seedApp(t *testing.T, db *database.DB, v *vault.Vault) string {
	t.Helper()
	app := testutil.SeedApp(t, db.Gorm, time.Now().UTC())
	if err := v.CreateKeyring(context.Background(), nil, app.ID); err != nil {
		t.Fatal(err)
	}
	return app.ID
}

func TestListPagesThroughAnAppsAgentsByName(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		svc, v := newService(t, db)
		ctx := context.Background()
		appA, appB := seedApp(t, db, v), seedApp(t, db, v)
		names := []string{"delta", "alpha", "echo", "charlie", "bravo"}
		for _, n := range names {
			if _, err := svc.Create(ctx, agents.CreateInput{AppID: appA, Name: n, Actor: actor}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := svc.Create(ctx, agents.CreateInput{AppID: appB, Name: "aaa-other-app", Actor: actor}); err != nil {
			t.Fatal(err)
		}
		var got []string
		cursor := ""
		for range 10 {
			page, err := svc.List(ctx, agents.ListInput{AppID: appA, Cursor: cursor, Limit: 2})
			if err != nil {
				t.Fatal(err)
			}
			for _, ag := range page.Agents {
				got = append(got, ag.Name)
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		want := slices.Sorted(slices.Values(names))
		if !slices.Equal(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
		// Exactly a full last page: no empty extra page.
		page, err := svc.List(ctx, agents.ListInput{AppID: appA, Limit: 5})
		if err != nil || len(page.Agents) != 5 || page.NextCursor != "" {
			t.Fatalf("full page: %d agents, cursor %q, %v", len(page.Agents), page.NextCursor, err)
		}
	})
}

func TestListRefusesBadPaging(t *testing.T) {
	db := testutil.NewDB(t, database.SQLite)
	svc, v := newService(t, db)
	app := seedApp(t, db, v)
	for _, in := range []agents.ListInput{
		{AppID: app, Limit: -1},
		{AppID: app, Limit: agents.MaxPageSize + 1},
		{AppID: app, Cursor: "!!"},
		{AppID: app, Cursor: "Tk9UIEEgTkFNRQ"}, // base64url of a string that is no agent name
	} {
		var ve *errs.ValidationError
		if _, err := svc.List(context.Background(), in); !errors.As(err, &ve) {
			t.Errorf("%+v: want a validation error, got %v", in, err)
		}
	}
}

func TestGetIsScopedToTheApp(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		svc, v := newService(t, db)
		ctx := context.Background()
		appA, appB := seedApp(t, db, v), seedApp(t, db, v)
		c, err := svc.Create(ctx, agents.CreateInput{AppID: appA, Name: "bot", Actor: actor})
		if err != nil {
			t.Fatal(err)
		}
		if ag, err := svc.Get(ctx, appA, c.Agent.ID); err != nil || ag.Name != "bot" {
			t.Fatalf("own agent: %+v %v", ag, err)
		}
		for name, id := range map[string][2]string{
			"another app":   {appB, c.Agent.ID},
			"no such agent": {appA, uuid.NewString()},
			"malformed id":  {appA, "bot"},
		} {
			if _, err := svc.Get(ctx, id[0], id[1]); !errors.Is(err, errs.ErrNotFound) {
				t.Errorf("%s: want not found, got %v", name, err)
			}
		}
	})
}
