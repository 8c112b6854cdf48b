package grants_test

import (
	"context"
	"testing"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/grants"
	"github.com/latchkey/latchkey/testutil"
)

func (w *world) auditRows(action, grantID string) []models.AuditEvent {
	w.t.Helper()
	var evs []models.AuditEvent
	if err := w.db.Where("action = ? AND grant_id = ?", action, grantID).Find(&evs).Error; err != nil {
		w.t.Fatal(err)
	}
	return evs
}

func TestRevokeEndsTheGrantAndItsDelegationsWithAnAuditRow(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		s := newScene(t, db)
		ctx := context.Background()
		id := s.ids["aliceGH"]

		g, err := s.svc.Revoke(ctx, s.appKey(), id)
		if err != nil {
			t.Fatal(err)
		}
		if g.Status != wire.GrantRevoked || g.Principal.ID != "alice" {
			t.Fatalf("revoke returned %+v", g)
		}
		var row models.Grant
		s.db.Where("id = ?", id).Take(&row)
		if row.Status != models.GrantRevoked || row.RevokedAt == nil {
			t.Fatalf("stored grant %s revoked_at %v", row.Status, row.RevokedAt)
		}
		var d models.Delegation
		s.db.Where("id = ?", s.ids["d:aliceGH>bot"]).Take(&d)
		if d.Status != models.DelegationRevoked || d.RevokedAt == nil {
			t.Fatalf("delegation still %s", d.Status)
		}
		evs := s.auditRows(grants.ActionGrantRevoke, id)
		if len(evs) != 1 || evs[0].AppID != s.app || evs[0].KeyID != s.appKey().KeyID || evs[0].Provider != "github" ||
			evs[0].PrincipalKind != models.PrincipalUser || evs[0].RequestID != "req-1" {
			t.Fatalf("audit rows %+v", evs)
		}

		// The agent loses its path; the app hears grant_revoked.
		if _, err := s.svc.Resolve(ctx, grants.ResolveInput{Caller: s.agentKey(s.ids["bot"]), GrantID: id}); errs.CodeOf(err) != wire.CodeNoDelegatedGrant {
			t.Fatalf("agent after revoke: %v", err)
		}
		if _, err := s.svc.Resolve(ctx, grants.ResolveInput{Caller: s.appKey(), GrantID: id}); errs.CodeOf(err) != wire.CodeGrantRevoked {
			t.Fatalf("app after revoke: %v", err)
		}
		// By provider, alice now has one GitHub account left: no ambiguity.
		r, err := s.svc.Resolve(ctx, grants.ResolveInput{Caller: s.appKey(), EndUser: s.users["alice"], Provider: "github"})
		if err != nil || r.Grant.ID != s.ids["aliceWork"] {
			t.Fatalf("after revoking one account: %v %v", s.name(r.Grant.ID), err)
		}

		// Revoking again changes nothing and writes nothing.
		if _, err := s.svc.Revoke(ctx, s.appKey(), id); err != nil {
			t.Fatal(err)
		}
		if n := len(s.auditRows(grants.ActionGrantRevoke, id)); n != 1 {
			t.Fatalf("%d audit rows after a repeated revoke, want 1", n)
		}
	})
}

func TestRevokeRefusals(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		s := newScene(t, db)
		tests := []struct {
			name     string
			do       func() error
			wantCode wire.ErrorCode
		}{
			{"agent key cannot revoke", func() error {
				_, err := s.svc.Revoke(context.Background(), s.agentKey(s.ids["bot"]), s.ids["botOpenAI"])
				return err
			}, wire.CodeForbidden},
			{"app key acting as an agent cannot revoke", func() error {
				_, err := s.svc.Revoke(context.Background(), s.impersonating(s.ids["bot"]), s.ids["botOpenAI"])
				return err
			}, wire.CodeForbidden},
			{"another app's grant is grant_not_found", func() error {
				_, err := s.svc.Revoke(context.Background(), s.appKey(), s.ids["otherGH"])
				return err
			}, wire.CodeGrantNotFound},
			{"malformed id is grant_not_found", func() error {
				_, err := s.svc.Revoke(context.Background(), s.appKey(), "x")
				return err
			}, wire.CodeGrantNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := tt.do(); errs.CodeOf(err) != tt.wantCode {
					t.Fatalf("got %v, want %s", err, tt.wantCode)
				}
			})
		}
		var n int64
		s.db.Model(&models.Grant{}).Where("status = ?", models.GrantRevoked).Count(&n)
		if n != 2 { // aliceAsana and botRevoked, as seeded
			t.Fatalf("%d revoked grants after refused revokes, want 2", n)
		}
		if evs := s.auditRows(grants.ActionGrantRevoke, s.ids["botOpenAI"]); len(evs) != 0 {
			t.Fatal("a refused revoke wrote an audit row")
		}
	})
}

func TestRevokingTheLastGrantKeepsTheManagedSecret(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		s := newScene(t, db)
		for _, g := range []string{"aliceStripe", "engStripe"} {
			if _, err := s.svc.Revoke(context.Background(), s.appKey(), s.ids[g]); err != nil {
				t.Fatal(err)
			}
		}
		var secrets, creds int64
		s.db.Model(&models.ManagedSecret{}).Where("id = ?", s.ids["stripeSecret"]).Count(&secrets)
		s.db.Model(&models.Credential{}).Where("managed_secret_id = ?", s.ids["stripeSecret"]).Count(&creds)
		if secrets != 1 || creds != 1 {
			t.Fatalf("managed secret rows %d, credential rows %d after revoking its grants; want both kept", secrets, creds)
		}
	})
}

func TestRevokeDelegation(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		s := newScene(t, db)
		ctx := context.Background()
		bot, bot2, grant := s.ids["bot"], s.ids["bot2"], s.ids["aliceGH"]

		refusals := []struct {
			name     string
			err      error
			wantCode wire.ErrorCode
		}{
			{"another agent's delegation is not_found", s.svc.RevokeDelegation(ctx, s.agentKey(bot2), grant, bot), wire.CodeNotFound},
			{"unknown delegation is not_found", s.svc.RevokeDelegation(ctx, s.appKey(), s.ids["aliceWork"], bot), wire.CodeNotFound},
			{"malformed agent id is not_found", s.svc.RevokeDelegation(ctx, s.appKey(), grant, "bot"), wire.CodeNotFound},
			{"another app's grant is grant_not_found", s.svc.RevokeDelegation(ctx, s.appKey(), s.ids["otherGH"], bot), wire.CodeGrantNotFound},
		}
		for _, tt := range refusals {
			if errs.CodeOf(tt.err) != tt.wantCode {
				t.Errorf("%s: got %v, want %s", tt.name, tt.err, tt.wantCode)
			}
		}

		// The agent revokes its own delegation.
		if err := s.svc.RevokeDelegation(ctx, s.agentKey(bot), grant, bot); err != nil {
			t.Fatal(err)
		}
		var d models.Delegation
		s.db.Where("id = ?", s.ids["d:aliceGH>bot"]).Take(&d)
		if d.Status != models.DelegationRevoked {
			t.Fatalf("delegation %s", d.Status)
		}
		evs := s.auditRows(grants.ActionDelegationRevoke, grant)
		if len(evs) != 1 || evs[0].AgentID != bot || evs[0].PrincipalID != s.ids["alice"] {
			t.Fatalf("audit rows %+v", evs)
		}
		if _, err := s.svc.Resolve(ctx, grants.ResolveInput{Caller: s.agentKey(bot), GrantID: grant}); errs.CodeOf(err) != wire.CodeNoDelegatedGrant {
			t.Fatalf("after revoking the delegation: %v", err)
		}
		// The grant itself is untouched: alice and the app still use it.
		if _, err := s.svc.Resolve(ctx, grants.ResolveInput{Caller: s.appKey(), EndUser: s.users["alice"], GrantID: grant}); err != nil {
			t.Fatalf("the user's grant was affected: %v", err)
		}
		// Again, by the app key: already revoked, nothing written.
		if err := s.svc.RevokeDelegation(ctx, s.appKey(), grant, bot); err != nil {
			t.Fatal(err)
		}
		if n := len(s.auditRows(grants.ActionDelegationRevoke, grant)); n != 1 {
			t.Fatalf("%d audit rows, want 1", n)
		}
		// The app key may revoke any delegation of its app.
		if err := s.svc.RevokeDelegation(ctx, s.appKey(), s.ids["carolGH"], bot); err != nil {
			t.Fatal(err)
		}
	})
}
