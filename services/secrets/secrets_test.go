package secrets_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/grants"
	"github.com/latchkey/latchkey/services/identity"
	"github.com/latchkey/latchkey/services/secrets"
	"github.com/latchkey/latchkey/testutil"
)

// value is distinctive so a scan of the database cannot match by accident.
const value = "lkTEST-sk_live_5f1e2d3c4b5a69788796a5b4c3d2e1f0"

func TestCreateSealsTheValueInOneTransactionWithAnAuditRow(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		ctx := context.Background()
		id, err := w.svc.Create(ctx, secrets.CreateInput{AppID: w.app, Name: "stripe", Description: "billing",
			Value: value, Injection: "header:Authorization:Bearer {secret}",
			AllowedHosts: []string{"API.Stripe.com", "*.stripe.com:8443", "api.stripe.com"}, Actor: actor})
		if err != nil {
			t.Fatal(err)
		}
		var ms models.ManagedSecret
		if err := w.gdb.Where("id = ? AND app_id = ?", id, w.app).Take(&ms).Error; err != nil {
			t.Fatal(err)
		}
		if ms.Name != "stripe" || ms.Injection != "header:Authorization:Bearer {secret}" ||
			ms.AllowedHosts != `["api.stripe.com","*.stripe.com:8443"]` {
			t.Fatalf("stored secret %+v (hosts canonical and deduplicated?)", ms)
		}
		var cred models.Credential
		if err := w.gdb.Where("managed_secret_id = ?", id).Take(&cred).Error; err != nil {
			t.Fatal(err)
		}
		if cred.Kind != models.CredentialManagedSecret || cred.AppID != w.app || cred.Version != 1 {
			t.Fatalf("credential %+v", cred)
		}
		if bytes.Contains(cred.AccessTokenCiphertext, []byte(value)) {
			t.Fatal("value stored in plaintext")
		}
		pt, err := w.vault.Open(ctx, grants.AccessTokenBinding(w.app, cred.ID), cred.AccessTokenCiphertext)
		if err != nil || string(pt) != value {
			t.Fatalf("sealed value does not open to the value: %v", err)
		}
		var evs []models.AuditEvent
		w.gdb.Where("app_id = ? AND action = ?", w.app, secrets.ActionSecretCreate).Find(&evs)
		if len(evs) != 1 || evs[0].Provider != "secret:stripe" || evs[0].ActorKind != actor.Kind || !strings.Contains(evs[0].Context, id) {
			t.Fatalf("audit rows %+v", evs)
		}
	})
}

func TestCreateRefusesBadInputAndWritesNothing(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		w.createSecret(w.app, "taken", "first-value")
		before := w.counts()
		ok := secrets.CreateInput{AppID: w.app, Name: "fresh", Value: value,
			Injection: "header:Authorization:Bearer {secret}", AllowedHosts: []string{"api.example.com"}, Actor: actor}
		with := func(f func(*secrets.CreateInput)) secrets.CreateInput {
			in := ok
			f(&in)
			return in
		}
		var validation *errs.ValidationError
		tests := []struct {
			name  string
			in    secrets.CreateInput
			want  error // errs sentinel, or nil for a *ValidationError
			field string
		}{
			{"no allowed hosts", with(func(in *secrets.CreateInput) { in.AllowedHosts = nil }), nil, "allowed-host"},
			{"bare wildcard host", with(func(in *secrets.CreateInput) { in.AllowedHosts = []string{"*"} }), nil, "allowed-host"},
			{"wildcard over a public suffix", with(func(in *secrets.CreateInput) { in.AllowedHosts = []string{"*.com"} }), nil, "allowed-host"},
			{"url instead of host", with(func(in *secrets.CreateInput) { in.AllowedHosts = []string{"https://api.example.com/v1"} }), nil, "allowed-host"},
			{"one bad host among good ones", with(func(in *secrets.CreateInput) { in.AllowedHosts = []string{"api.example.com", "bad host"} }), nil, "allowed-host"},
			{"template without placeholder", with(func(in *secrets.CreateInput) { in.Injection = "header:Authorization:Bearer " + value }), nil, "inject"},
			{"template of unknown kind", with(func(in *secrets.CreateInput) { in.Injection = "cookie:session:{secret}" }), nil, "inject"},
			{"template with another placeholder", with(func(in *secrets.CreateInput) { in.Injection = "header:Authorization:Bearer {token}" }), nil, "inject"},
			{"template on a reserved header", with(func(in *secrets.CreateInput) { in.Injection = "header:Host:{secret}" }), nil, "inject"},
			{"template with a bad header name", with(func(in *secrets.CreateInput) { in.Injection = "header:X Key:{secret}" }), nil, "inject"},
			{"template with an empty query name", with(func(in *secrets.CreateInput) { in.Injection = "query::{secret}" }), nil, "inject"},
			{"template with the placeholder twice", with(func(in *secrets.CreateInput) { in.Injection = "basic:{secret}:{secret}" }), nil, "inject"},
			{"template with a newline", with(func(in *secrets.CreateInput) { in.Injection = "header:X-Key:{secret}\r\nX-Evil: 1" }), nil, "inject"},
			{"basic template without placeholder", with(func(in *secrets.CreateInput) { in.Injection = "basic:user:pass" }), nil, "inject"},
			{"no template", with(func(in *secrets.CreateInput) { in.Injection = "" }), nil, "inject"},
			{"empty value", with(func(in *secrets.CreateInput) { in.Value = "" }), nil, "value"},
			{"value with a newline", with(func(in *secrets.CreateInput) { in.Value = value + "\n" }), nil, "value"},
			{"upper-case name", with(func(in *secrets.CreateInput) { in.Name = "Stripe" }), nil, "name"},
			{"name with a colon", with(func(in *secrets.CreateInput) { in.Name = "a:b" }), nil, "name"},
			{"malformed app id", with(func(in *secrets.CreateInput) { in.AppID = "app-1" }), nil, "app"},
			{"duplicate name", with(func(in *secrets.CreateInput) { in.Name = "taken" }), errs.ErrConflict, ""},
			{"unknown app", with(func(in *secrets.CreateInput) { in.AppID = "0190f5d4-0000-7000-8000-000000000000" }), errs.ErrNotFound, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				id, err := w.svc.Create(context.Background(), tt.in)
				if err == nil {
					t.Fatalf("created %s", id)
				}
				if tt.want != nil && !errors.Is(err, tt.want) {
					t.Fatalf("error %v, want %v", err, tt.want)
				}
				if tt.want == nil {
					if !errors.As(err, &validation) || validation.Problems[0].Field != tt.field {
						t.Fatalf("error %v, want a validation problem with %s", err, tt.field)
					}
				}
				if strings.Contains(err.Error(), value) {
					t.Fatalf("the error quotes the secret value: %v", err)
				}
			})
		}
		if after := w.counts(); !maps.Equal(before, after) {
			t.Fatalf("refused creates wrote rows: %v → %v", before, after)
		}
	})
}

func TestInjectionTemplatesAccepted(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		for i, tmpl := range []string{
			"header:Authorization:Bearer {secret}",
			"header:X-Api-Key:{secret}",
			"query:api_key:{secret}",
			"basic:api:{secret}",
			"basic:{secret}:",
		} {
			_, err := w.svc.Create(context.Background(), secrets.CreateInput{AppID: w.app, Name: fmt.Sprintf("s%d", i), Value: value,
				Injection: tmpl, AllowedHosts: []string{"api.example.com"}, Actor: actor})
			if err != nil {
				t.Errorf("%s refused: %v", tmpl, err)
			}
		}
	})
}

func TestRotateResealsTheSameCredential(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		ctx := context.Background()
		id := w.createSecret(w.app, "stripe", "old-value")
		g, err := w.svc.Grant(ctx, secrets.GrantInput{AppID: w.app, SecretID: id, Principal: "system", Actor: actor})
		if err != nil {
			t.Fatal(err)
		}
		if c := w.open(w.app, g.GrantID); c.AccessToken != "old-value" {
			t.Fatal("before rotation the grant does not open to the old value")
		}

		if err := w.svc.Rotate(ctx, w.app, id, value, actor); err != nil {
			t.Fatal(err)
		}
		c := w.open(w.app, g.GrantID) // the same grant id
		if c.AccessToken != value || c.Injection != "header:Authorization:Bearer {secret}" {
			t.Fatalf("after rotation the grant opens to the old value or lost its rule: %v", c)
		}
		var cred models.Credential
		w.gdb.Where("managed_secret_id = ?", id).Take(&cred)
		var ms models.ManagedSecret
		w.gdb.Where("id = ?", id).Take(&ms)
		if cred.Version != 2 || ms.RotatedAt == nil {
			t.Fatalf("version %d rotated_at %v", cred.Version, ms.RotatedAt)
		}
		var n int64
		w.gdb.Model(&models.AuditEvent{}).Where("action = ? AND app_id = ?", secrets.ActionSecretRotate, w.app).Count(&n)
		if n != 1 {
			t.Fatalf("%d secret.rotate rows", n)
		}

		before := w.counts()
		for name, err := range map[string]error{
			"another app's secret": w.svc.Rotate(ctx, w.other, id, "x", actor),
			"malformed id":         w.svc.Rotate(ctx, w.app, "nope", "x", actor),
		} {
			if !errors.Is(err, errs.ErrNotFound) {
				t.Errorf("%s: %v, want not found", name, err)
			}
		}
		var ve *errs.ValidationError
		if err := w.svc.Rotate(ctx, w.app, id, "", actor); !errors.As(err, &ve) {
			t.Errorf("empty value: %v", err)
		}
		if after := w.counts(); !maps.Equal(before, after) {
			t.Fatalf("refused rotations wrote rows: %v → %v", before, after)
		}
		if c := w.open(w.app, g.GrantID); c.AccessToken != value {
			t.Fatal("a refused rotation changed the value")
		}
	})
}

func TestGrantBindsEachPrincipalKind(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		ctx := context.Background()
		id := w.createSecret(w.app, "stripe", value)
		alice := w.endUser(w.app, "", "alice")
		idpSecret := w.createSecret(w.idpApp, "stripe", value)

		tests := []struct {
			name          string
			app, secret   string
			principal     string
			wantKind      string
			wantPrincipal func() string // grants.principal_id
			resolve       func(grantID, principalID string) grants.ResolveInput
		}{
			{name: "system", app: w.app, secret: id, principal: "system", wantKind: models.PrincipalSystem,
				wantPrincipal: func() string { return "" },
				resolve: func(g, _ string) grants.ResolveInput {
					return grants.ResolveInput{Caller: w.appKey(w.app), GrantID: g}
				}},
			{name: "existing user by subject", app: w.app, secret: id, principal: "user:alice", wantKind: models.PrincipalUser,
				wantPrincipal: func() string { return alice },
				resolve: func(_, p string) grants.ResolveInput {
					return grants.ResolveInput{Caller: w.appKey(w.app), Provider: "secret:stripe",
						EndUser: &grants.EndUser{ID: p, AppID: w.app, Subject: "alice", Status: models.EndUserActive}}
				}},
			{name: "unseen user is pre-provisioned", app: w.app, secret: id, principal: "user:newbie@example.com", wantKind: models.PrincipalUser,
				resolve: func(_, p string) grants.ResolveInput {
					return grants.ResolveInput{Caller: w.appKey(w.app), Provider: "secret:stripe",
						EndUser: &grants.EndUser{ID: p, AppID: w.app, Subject: "newbie@example.com", Status: models.EndUserActive}}
				}},
			{name: "group", app: w.app, secret: id, principal: "group:eng", wantKind: models.PrincipalGroup,
				wantPrincipal: func() string { return "eng" },
				resolve: func(_, _ string) grants.ResolveInput {
					return grants.ResolveInput{Caller: w.appKey(w.app), Provider: "secret:stripe",
						EndUser: &grants.EndUser{ID: w.endUser(w.app, "", "member"), AppID: w.app, Groups: []string{"eng"}, Status: models.EndUserActive}}
				}},
			{name: "agent", app: w.app, secret: id, principal: "agent:" + strings.ToUpper(w.agent), wantKind: models.PrincipalAgent,
				wantPrincipal: func() string { return w.agent },
				resolve: func(_, _ string) grants.ResolveInput {
					return grants.ResolveInput{Caller: w.agentKey(w.app, w.agent), Provider: "secret:stripe"}
				}},
			{name: "user of an app with an IdP is keyed by its issuer", app: w.idpApp, secret: idpSecret, principal: "user:idp-sub", wantKind: models.PrincipalUser,
				resolve: func(_, p string) grants.ResolveInput {
					return grants.ResolveInput{Caller: w.appKey(w.idpApp), Provider: "secret:stripe",
						EndUser: &grants.EndUser{ID: p, AppID: w.idpApp, Subject: "idp-sub", Status: models.EndUserActive}}
				}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := w.svc.Grant(ctx, secrets.GrantInput{AppID: tt.app, SecretID: tt.secret, Principal: tt.principal, Actor: actor})
				if err != nil {
					t.Fatal(err)
				}
				if !got.Created {
					t.Fatal("first grant reported as existing")
				}
				var g models.Grant
				w.gdb.Where("id = ?", got.GrantID).Take(&g)
				if g.AppID != tt.app || g.PrincipalKind != tt.wantKind || g.Provider != "secret:stripe" ||
					g.ManagedSecretID == nil || *g.ManagedSecretID != tt.secret || g.Status != models.GrantActive {
					t.Fatalf("stored grant %+v", g)
				}
				if tt.wantPrincipal != nil && g.PrincipalID != tt.wantPrincipal() {
					t.Fatalf("principal id %q, want %q", g.PrincipalID, tt.wantPrincipal())
				}
				if tt.wantKind == models.PrincipalUser {
					var u models.EndUser
					w.gdb.Where("id = ?", g.PrincipalID).Take(&u)
					wantIssuer, wantSource := "", models.EndUserSourceAppAsserted
					if tt.app == w.idpApp {
						wantIssuer, wantSource = idpIssuer, models.EndUserSourceIdP
					}
					if u.AppID != tt.app || u.Issuer != wantIssuer || u.Source != wantSource || u.Status != models.EndUserActive {
						t.Fatalf("end user %+v", u)
					}
				}
				var evs []models.AuditEvent
				w.gdb.Where("action = ? AND grant_id = ?", grants.ActionGrantCreate, g.ID).Find(&evs)
				if len(evs) != 1 || evs[0].PrincipalKind != tt.wantKind {
					t.Fatalf("audit rows %+v", evs)
				}

				// Usable through resolution, opening to the value.
				r, err := w.grants.Resolve(ctx, tt.resolve(g.ID, g.PrincipalID))
				if err != nil {
					t.Fatalf("resolve: %v", err)
				}
				if r.Grant.ID != g.ID {
					t.Fatalf("resolved %s, want %s", r.Grant.ID, g.ID)
				}
				if c, err := w.grants.Secret(ctx, r); err != nil || c.AccessToken != value {
					t.Fatalf("secret: %v", err)
				}

				// Idempotent: the same grant back, nothing written.
				again, err := w.svc.Grant(ctx, secrets.GrantInput{AppID: tt.app, SecretID: tt.secret, Principal: tt.principal, Actor: actor})
				if err != nil || again.GrantID != got.GrantID || again.Created {
					t.Fatalf("second grant %+v %v", again, err)
				}
				w.gdb.Where("action = ? AND grant_id = ?", grants.ActionGrantCreate, g.ID).Find(&evs)
				if len(evs) != 1 {
					t.Fatalf("%d grant.create rows after a repeated grant", len(evs))
				}
			})
		}
	})
}

func TestGrantAfterRevocationIsANewGrant(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		ctx := context.Background()
		id := w.createSecret(w.app, "stripe", value)
		first, err := w.svc.Grant(ctx, secrets.GrantInput{AppID: w.app, SecretID: id, Principal: "group:eng", Actor: actor})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.grants.Revoke(ctx, w.appKey(w.app), first.GrantID); err != nil {
			t.Fatal(err)
		}
		second, err := w.svc.Grant(ctx, secrets.GrantInput{AppID: w.app, SecretID: id, Principal: "group:eng", Actor: actor})
		if err != nil || !second.Created || second.GrantID == first.GrantID {
			t.Fatalf("grant after revoke: %+v %v", second, err)
		}
		if _, err := w.grants.Resolve(ctx, grants.ResolveInput{Caller: w.appKey(w.app), GrantID: first.GrantID}); errs.CodeOf(err) != wire.CodeGrantRevoked {
			t.Fatalf("the revoked grant came back: %v", err)
		}
	})
}

func TestGrantRefusesBadInputAndWritesNothing(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		id := w.createSecret(w.app, "stripe", value)
		otherSecret := w.createSecret(w.other, "stripe", value)
		before := w.counts()
		tests := []struct {
			name      string
			app       string
			secret    string
			principal string
			want      error // nil: a *ValidationError
		}{
			{"another app's secret", w.app, otherSecret, "system", errs.ErrNotFound},
			{"unknown secret", w.app, "0190f5d4-0000-7000-8000-000000000000", "system", errs.ErrNotFound},
			{"malformed secret id", w.app, "stripe", "system", errs.ErrNotFound},
			{"unknown agent", w.app, id, "agent:0190f5d4-0000-7000-8000-000000000000", errs.ErrNotFound},
			{"another app's agent", w.app, id, "agent:" + w.foreign, errs.ErrNotFound},
			{"another app's secret for a new user creates no user", w.app, otherSecret, "user:ghost", errs.ErrNotFound},
			{"malformed agent id", w.app, id, "agent:bot", nil},
			{"unknown principal kind", w.app, id, "team:eng", nil},
			{"no principal", w.app, id, "", nil},
			{"user without subject", w.app, id, "user:", nil},
			{"group without name", w.app, id, "group:", nil},
			{"group name with a newline", w.app, id, "group:a\nb", nil},
			{"malformed app id", "app", id, "system", nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				g, err := w.svc.Grant(context.Background(), secrets.GrantInput{AppID: tt.app, SecretID: tt.secret, Principal: tt.principal, Actor: actor})
				if err == nil {
					t.Fatalf("granted %+v", g)
				}
				var ve *errs.ValidationError
				if tt.want == nil && !errors.As(err, &ve) || tt.want != nil && !errors.Is(err, tt.want) {
					t.Fatalf("error %v, want %v", err, tt.want)
				}
			})
		}
		if after := w.counts(); !maps.Equal(before, after) {
			t.Fatalf("refused grants wrote rows: %v → %v", before, after)
		}
	})
}

func TestParsePrincipal(t *testing.T) {
	for in, want := range map[string]secrets.Principal{
		"system":         {Kind: "system"},
		"user:auth0|123": {Kind: "user", Value: "auth0|123"},
		"user:a:b":       {Kind: "user", Value: "a:b"}, // subjects may contain colons
		"group:eng":      {Kind: "group", Value: "eng"},
		"agent:0190F5D4-0000-7000-8000-000000000000": {Kind: "agent", Value: "0190f5d4-0000-7000-8000-000000000000"},
	} {
		got, err := secrets.ParsePrincipal(in)
		if err != nil || got != want {
			t.Errorf("ParsePrincipal(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if err == nil && got.String() != strings.Replace(in, "0190F5D4", "0190f5d4", 1) {
			t.Errorf("%+v renders as %q", got, got.String())
		}
	}
}

// Granting secrets to a user nobody has seen yet, from several calls at
// once, provisions that user once, with one end_user.create row naming who
// provisioned it.
func TestGrantsToAnUnseenUserProvisionItOnce(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		ctx := context.Background()
		const n = 6
		var wg sync.WaitGroup
		errc := make(chan error, n)
		for i := 0; i < n; i++ {
			id := w.createSecret(w.app, fmt.Sprintf("key-%d", i), value)
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := w.svc.Grant(ctx, secrets.GrantInput{AppID: w.app, SecretID: id, Principal: "user:first-seen", Actor: actor})
				errc <- err
			}()
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			if err != nil {
				t.Fatal(err)
			}
		}
		var users []models.EndUser
		w.gdb.Where("app_id = ? AND subject = ?", w.app, "first-seen").Find(&users)
		if len(users) != 1 || users[0].LastSeenAt != nil || users[0].Source != models.EndUserSourceAppAsserted {
			t.Fatalf("end users %+v, want one never seen, app-asserted", users)
		}
		var evs []models.AuditEvent
		w.gdb.Where("action = ? AND principal_id = ?", identity.ActionEndUserCreate, users[0].ID).Find(&evs)
		if len(evs) != 1 || evs[0].ActorKind != actor.Kind || evs[0].ActorID != actor.ID {
			t.Fatalf("end_user.create rows %+v, want one by %+v", evs, actor)
		}
		var grantsTo int64
		w.gdb.Model(&models.Grant{}).Where("principal_kind = ? AND principal_id = ?", models.PrincipalUser, users[0].ID).Count(&grantsTo)
		if grantsTo != n {
			t.Fatalf("%d grants to the user, want %d", grantsTo, n)
		}
	})
}
