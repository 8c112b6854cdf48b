package oauth_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/catalog"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/oauth"
	"github.com/latchkey/latchkey/testutil"
)

// connected is a finished flow as Finish would return it, for Save tests
// that need no provider.
func (w *world) connected(configID, account, access, refresh string) oauth.Connected {
	exp := w.clock.Now().Add(time.Hour)
	return oauth.Connected{AppID: w.app, ProviderConfigID: configID, Provider: "acme", ProviderName: "Acme",
		AccountIdentifier: account, Scopes: []string{"read"}, AccessToken: access, RefreshToken: refresh,
		TokenType: "Bearer", ExpiresAt: &exp}
}

func (w *world) acmeConfig() string {
	return w.configure(oauth.ConfigureInput{Provider: "acme", ClientID: "id", ClientSecret: "s",
		Custom: &catalog.CustomDefinition{AuthorizeURL: "https://a.example/authorize", TokenURL: "https://a.example/token",
			UserinfoURL: "https://a.example/me", APIHosts: []string{"api.a.example"}}}).ProviderConfigID
}

func TestSaveRefusals(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		ctx := context.Background()
		cfg := w.acmeConfig()
		ada, bob := w.endUser(w.app, "ada"), w.endUser(w.app, "bob")
		stranger := w.endUser(w.other, "stranger")
		disabled := w.endUser(w.app, "gone")
		w.db.Model(&models.EndUser{}).Where("id = ?", disabled).Update("status", models.EndUserDisabled)
		agent := w.agent(w.app, "bot")
		foreignAgent := w.agent(w.other, "bot")
		off := w.agent(w.app, "off")
		w.db.Model(&models.Agent{}).Where("id = ?", off).Update("status", models.AgentDisabled)
		c := w.connected(cfg, "acct-1", "at-1", "rt-1")

		tests := []struct {
			name string
			in   oauth.SaveInput
			want string
		}{
			{"system grant delegated by an end user", oauth.SaveInput{Connected: c, PrincipalKind: models.PrincipalSystem, AgentID: agent}, "invalid_request"},
			{"system grant with a principal id", oauth.SaveInput{Connected: c, PrincipalKind: models.PrincipalSystem, PrincipalID: ada}, "invalid_request"},
			{"group principal", oauth.SaveInput{Connected: c, PrincipalKind: models.PrincipalGroup, PrincipalID: "eng"}, "invalid_request"},
			{"consent for someone else's grant", oauth.SaveInput{Connected: c, PrincipalKind: models.PrincipalUser, PrincipalID: ada, EndUserID: bob}, "invalid_request"},
			{"end user of another app", oauth.SaveInput{Connected: c, PrincipalKind: models.PrincipalUser, PrincipalID: stranger}, "not_found"},
			{"disabled end user", oauth.SaveInput{Connected: c, PrincipalKind: models.PrincipalUser, PrincipalID: disabled}, "forbidden"},
			{"agent of another app", oauth.SaveInput{Connected: c, PrincipalKind: models.PrincipalUser, PrincipalID: ada, AgentID: foreignAgent}, "not_found"},
			{"disabled agent", oauth.SaveInput{Connected: c, PrincipalKind: models.PrincipalUser, PrincipalID: ada, AgentID: off}, "forbidden"},
			{"no access token", oauth.SaveInput{Connected: w.connected(cfg, "acct-1", "", ""), PrincipalKind: models.PrincipalSystem}, "invalid_request"},
			{"unknown provider config", oauth.SaveInput{Connected: w.connected("3f1b2c4d-0000-4000-8000-000000000000", "a", "at", ""),
				PrincipalKind: models.PrincipalSystem}, "provider_not_configured"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				tt.in.Actor = browserActor
				_, err := w.svc.Save(ctx, tt.in)
				wantCode(t, err, tt.want)
			})
		}
		for _, table := range []string{"credentials", "grants", "delegations"} {
			if n := w.count(table); n != 0 {
				t.Fatalf("refused saves left %d rows in %s", n, table)
			}
		}
	})
}

func TestSaveReauthKeepsTheRefreshTokenAndRevokedGrantsStayRevoked(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		ctx := context.Background()
		cfg := w.acmeConfig()
		ada := w.endUser(w.app, "ada")
		agent := w.agent(w.app, "bot")
		save := func(c oauth.Connected, agentID string) oauth.Saved {
			t.Helper()
			s, err := w.svc.Save(ctx, oauth.SaveInput{Connected: c, PrincipalKind: models.PrincipalUser, PrincipalID: ada,
				AgentID: agentID, Actor: browserActor})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		first := save(w.connected(cfg, "acct-1", "at-1", "rt-1"), agent)
		// The provider answered the reconnect without a refresh token.
		second := save(w.connected(cfg, "acct-1", "at-2", ""), agent)
		if second.Grant.ID != first.Grant.ID || second.Operation != oauth.OperationReauth || second.DelegationID != first.DelegationID {
			t.Fatalf("reconnect %+v", second)
		}
		var cred models.Credential
		w.db.Where("id = ?", *first.Grant.CredentialID).Take(&cred)
		at, _ := w.vault.Open(ctx, oauth.AccessTokenBinding(w.app, cred.ID), cred.AccessTokenCiphertext)
		rt, _ := w.vault.Open(ctx, oauth.RefreshTokenBinding(w.app, cred.ID), cred.RefreshTokenCiphertext)
		if string(at) != "at-2" || string(rt) != "rt-1" {
			t.Fatal("reauth did not keep the old refresh token beside the new access token")
		}
		if n := w.count("audit_events", "action = ?", oauth.ActionDelegationCreate); n != 1 {
			t.Fatalf("%d delegation.create rows for one unchanged delegation", n)
		}

		// A revoked delegation is reactivated by a new consent.
		w.db.Model(&models.Delegation{}).Where("id = ?", first.DelegationID).
			Updates(map[string]any{"status": models.DelegationRevoked, "revoked_at": w.clock.Now()})
		third := save(w.connected(cfg, "acct-1", "at-3", "rt-3"), agent)
		var del models.Delegation
		w.db.Where("id = ?", third.DelegationID).Take(&del)
		if third.DelegationID != first.DelegationID || del.Status != models.DelegationActive || del.RevokedAt != nil {
			t.Fatalf("delegation after reconsent %+v", del)
		}

		// A revoked grant stays revoked history: connecting again is a new grant.
		w.db.Model(&models.Grant{}).Where("id = ?", first.Grant.ID).Updates(map[string]any{"status": models.GrantRevoked, "revoked_at": w.clock.Now()})
		fourth := save(w.connected(cfg, "acct-1", "at-4", "rt-4"), "")
		if fourth.Grant.ID == first.Grant.ID || fourth.Operation != oauth.OperationCreation {
			t.Fatalf("after revoke: %+v", fourth)
		}
		// Another account of the same user is another grant.
		fifth := save(w.connected(cfg, "acct-2", "at-5", "rt-5"), "")
		if fifth.Grant.ID == fourth.Grant.ID || fifth.Operation != oauth.OperationCreation {
			t.Fatalf("second account: %+v", fifth)
		}
	})
}

func TestConcurrentSavesOfOneAccountMakeOneGrant(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		cfg := w.acmeConfig()
		ada := w.endUser(w.app, "ada")
		const n = 6
		var wg sync.WaitGroup
		ids := make([]string, n)
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := w.svc.Save(context.Background(), oauth.SaveInput{Connected: w.connected(cfg, "acct-1", "at", "rt"),
					PrincipalKind: models.PrincipalUser, PrincipalID: ada, Actor: browserActor})
				ids[i], errs[i] = s.Grant.ID, err
			}()
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if ids[i] != ids[0] {
				t.Fatalf("concurrent saves made grants %v", ids)
			}
		}
		if c := w.count("credentials"); c != 1 {
			t.Fatalf("%d credentials", c)
		}
	})
}
