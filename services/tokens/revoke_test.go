package tokens_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/catalog"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/tokens"
	"github.com/latchkey/latchkey/testutil"
)

// revokedCredential seeds a credential whose only grant is revoked and
// delegated (so the test can check the history survives), and returns the
// credential and grant ids.
func (w *world) revokedCredential(pc, access, refresh string) (string, string, string) {
	w.t.Helper()
	id, _ := w.credential(cred{pc: pc, access: access, refresh: refresh, expiresIn: time.Hour, grants: -1})
	gid := w.grant(id, models.GrantRevoked)
	now := time.Now().UTC()
	user := models.EndUser{ID: w.id(), AppID: w.app, Issuer: "https://idp.test", Subject: "ada-" + w.id(),
		Source: models.EndUserSourceAppAsserted, Status: models.EndUserActive, CreatedAt: now, UpdatedAt: now}
	w.create(&user)
	agent := models.Agent{ID: w.id(), AppID: w.app, Name: "bot-" + w.id(), Status: models.AgentActive, CreatedAt: now, UpdatedAt: now}
	w.create(&agent)
	d := models.Delegation{ID: w.id(), AppID: w.app, GrantID: gid, AgentID: agent.ID, EndUserID: user.ID,
		Status: models.DelegationRevoked, RevokedAt: &now, CreatedAt: now, UpdatedAt: now}
	w.create(&d)
	return id, gid, d.ID
}

// assertDeletedKeepingHistory checks the credential is gone while its
// revoked grant and the grant's delegation remain.
func (w *world) assertDeletedKeepingHistory(id, gid, did string) {
	w.t.Helper()
	var n int64
	if err := w.db.Gorm.Model(&models.Credential{}).Where("id = ?", id).Count(&n).Error; err != nil || n != 0 {
		w.t.Fatalf("credential still there (%d, %v)", n, err)
	}
	g := w.grantRow(gid)
	if g.Status != models.GrantRevoked || g.CredentialID != nil {
		w.t.Fatalf("grant after deletion: status %s, credential %v", g.Status, g.CredentialID)
	}
	if err := w.db.Gorm.Model(&models.Delegation{}).Where("id = ?", did).Count(&n).Error; err != nil || n != 1 {
		w.t.Fatalf("the delegation of the revoked grant is gone (%d, %v)", n, err)
	}
}

func (w *world) revokeAudit() models.AuditEvent {
	w.t.Helper()
	evs := w.auditActions(tokens.ActionTokenRevoke)
	if len(evs) != 1 {
		w.t.Fatalf("%d token.revoke rows, want 1", len(evs))
	}
	return evs[0]
}

func auditResult(t *testing.T, ev models.AuditEvent) string {
	t.Helper()
	var c map[string]string
	if err := json.Unmarshal([]byte(ev.Context), &c); err != nil {
		t.Fatal(err)
	}
	return c["result"]
}

func TestRevokeRFC7009(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		tok := w.provider.IssueInitial("")
		id, gid, did := w.revokedCredential(w.pc, tok.AccessToken, tok.RefreshToken)
		if err := w.service(nil).RevokeCredential(context.Background(), w.app, id); err != nil {
			t.Fatal(err)
		}
		if !w.provider.WasRevoked(tok.RefreshToken) || w.provider.RevokeCalls() != 1 {
			t.Fatalf("revoked at the provider: %v", w.provider.Revoked())
		}
		if w.provider.AccessTokenValid(tok.AccessToken) {
			t.Fatal("revoking the refresh token should end its family")
		}
		w.assertDeletedKeepingHistory(id, gid, did)
		ev := w.revokeAudit()
		if ev.Outcome != models.OutcomeSuccess || auditResult(t, ev) != tokens.RevokeResultRevoked || ev.UpstreamStatus != 200 {
			t.Fatalf("audit %+v", ev)
		}
		// Revoking again is a no-op.
		if err := w.service(nil).RevokeCredential(context.Background(), w.app, id); err != nil {
			t.Fatalf("second revocation: %v", err)
		}
	})
}

// fakeRevoker records the one revocation request it gets.
type fakeRevoker struct {
	srv    *httptest.Server
	status int

	mu     sync.Mutex
	method string
	path   string
	auth   string
	user   string
	pass   string
	body   string
}

func newFakeRevoker(t *testing.T, status int) *fakeRevoker {
	f := &fakeRevoker{status: status}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.method, f.path, f.auth, f.body = r.Method, r.URL.Path, r.Header.Get("Authorization"), string(b)
		f.user, f.pass, _ = r.BasicAuth()
		f.mu.Unlock()
		w.WriteHeader(f.status)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func TestRevokeStyles(t *testing.T) {
	tests := []struct {
		style      catalog.RevokeStyle
		path       string
		wantMethod string
		wantPath   string
		wantBearer bool
		wantBasic  bool
		wantBody   map[string]string
		status     int
	}{
		{catalog.RevokeGitHub, "/applications/{client_id}/token", "DELETE", "/applications/quirky-client/token", false, true,
			map[string]string{"access_token": "at_live"}, http.StatusNoContent},
		{catalog.RevokeBearerPost, "/auth.revoke", "POST", "/auth.revoke", true, false, nil, http.StatusOK},
		{catalog.RevokeBearerDelete, "/tokens/current", "DELETE", "/tokens/current", true, false, nil, http.StatusNoContent},
		{catalog.RevokeJSON, "/oauth/revoke", "POST", "/oauth/revoke", false, true, map[string]string{"token": "at_live"}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(string(tt.style), func(t *testing.T) {
			w := newWorld(t, testutil.NewDB(t, database.SQLite))
			f := newFakeRevoker(t, tt.status)
			pc := w.providerConfig(catalog.Provider{ID: "styled", TokenURL: f.srv.URL + "/token",
				RevokeURL: f.srv.URL + tt.path, RevokeStyle: tt.style, TokenAuthStyle: catalog.AuthStyleHeader})
			id, gid, did := w.revokedCredential(pc, "at_live", "rt_live")
			if err := w.service(nil).RevokeCredential(context.Background(), w.app, id); err != nil {
				t.Fatal(err)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.method != tt.wantMethod || f.path != tt.wantPath {
				t.Fatalf("request %s %s, want %s %s", f.method, f.path, tt.wantMethod, tt.wantPath)
			}
			if tt.wantBearer && f.auth != "Bearer at_live" {
				t.Fatalf("Authorization %q, want the access token as bearer", f.auth)
			}
			if tt.wantBasic && (f.user != w.provider.ClientID() || f.pass != w.provider.ClientSecret()) {
				t.Fatal("want HTTP Basic client authentication")
			}
			if tt.wantBody == nil && f.body != "" {
				t.Fatalf("body %q, want none", f.body)
			}
			if tt.wantBody != nil {
				var got map[string]string
				if err := json.Unmarshal([]byte(f.body), &got); err != nil || len(got) != len(tt.wantBody) {
					t.Fatalf("body %q, want %v", f.body, tt.wantBody)
				}
				for k, v := range tt.wantBody {
					if got[k] != v {
						t.Fatalf("body %q, want %v", f.body, tt.wantBody)
					}
				}
			}
			w.assertDeletedKeepingHistory(id, gid, did)
			if ev := w.revokeAudit(); ev.Outcome != models.OutcomeSuccess || auditResult(t, ev) != tokens.RevokeResultRevoked {
				t.Fatalf("audit %+v", ev)
			}
		})
	}
}

func TestRevokeIsBestEffort(t *testing.T) {
	t.Run("provider error", func(t *testing.T) {
		w := newWorld(t, testutil.NewDB(t, database.SQLite))
		f := newFakeRevoker(t, http.StatusServiceUnavailable)
		pc := w.providerConfig(catalog.Provider{ID: "flaky", TokenURL: f.srv.URL + "/token", RevokeURL: f.srv.URL + "/revoke",
			RevokeStyle: catalog.RevokeRFC7009, TokenAuthStyle: catalog.AuthStyleHeader})
		id, gid, did := w.revokedCredential(pc, "at", "rt")
		if err := w.service(nil).RevokeCredential(context.Background(), w.app, id); err != nil {
			t.Fatal(err)
		}
		w.assertDeletedKeepingHistory(id, gid, did)
		ev := w.revokeAudit()
		if ev.Outcome != models.OutcomeUpstreamError || auditResult(t, ev) != tokens.RevokeResultFailed || ev.UpstreamStatus != 503 {
			t.Fatalf("audit %+v", ev)
		}
	})
	t.Run("no revocation endpoint", func(t *testing.T) {
		w := newWorld(t, testutil.NewDB(t, database.SQLite))
		pc := w.providerConfig(catalog.Provider{ID: "norevoke", TokenURL: w.provider.TokenURL()})
		id, gid, did := w.revokedCredential(pc, "at", "rt")
		if err := w.service(nil).RevokeCredential(context.Background(), w.app, id); err != nil {
			t.Fatal(err)
		}
		w.assertDeletedKeepingHistory(id, gid, did)
		if ev := w.revokeAudit(); auditResult(t, ev) != tokens.RevokeResultNotSupported {
			t.Fatalf("audit %+v", ev)
		}
	})
}

func TestRevokeRefusesWhileGrantsRemain(t *testing.T) {
	for _, status := range []string{models.GrantActive, models.GrantNeedsReauth} {
		t.Run(status, func(t *testing.T) {
			w := newWorld(t, testutil.NewDB(t, database.SQLite))
			tok := w.provider.IssueInitial("")
			id, _, _ := w.revokedCredential(w.pc, tok.AccessToken, tok.RefreshToken)
			w.grant(id, status)
			err := w.service(nil).RevokeCredential(context.Background(), w.app, id)
			if !errors.Is(err, errs.ErrConflict) {
				t.Fatalf("want ErrConflict, got %v", err)
			}
			if w.provider.RevokeCalls() != 0 || w.row(id).ID != id {
				t.Fatal("a credential in use was revoked")
			}
		})
	}
}

// TestMigrationKeepsHistoryBothWays checks migration 00002 on a populated
// database: the SQLite table rebuild must not cascade into delegations,
// and going down drops only grants whose credential is gone.
func TestMigrationKeepsHistoryBothWays(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		w := newWorld(t, db)
		kept, keptGrant, keptDelegation := w.revokedCredential(w.pc, "at1", "rt1")
		gone, goneGrant, goneDelegation := w.revokedCredential(w.pc, "at2", "rt2")
		if err := w.service(nil).RevokeCredential(ctx, w.app, gone); err != nil {
			t.Fatal(err)
		}
		m, err := database.NewMigrator(db)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.DownTo(ctx, 1); err != nil {
			t.Fatal(err)
		}
		count := func(model any, id string) int64 {
			var n int64
			if err := db.Gorm.Model(model).Where("id = ?", id).Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			return n
		}
		if count(&models.Grant{}, keptGrant) != 1 || count(&models.Delegation{}, keptDelegation) != 1 {
			t.Fatal("down migration lost a grant or delegation that still has its credential")
		}
		if count(&models.Grant{}, goneGrant) != 0 || count(&models.Delegation{}, goneDelegation) != 0 {
			t.Fatal("down migration kept a grant without a credential")
		}
		if _, err := m.Up(ctx); err != nil {
			t.Fatal(err)
		}
		if count(&models.Grant{}, keptGrant) != 1 || count(&models.Delegation{}, keptDelegation) != 1 {
			t.Fatal("up migration lost a grant or delegation")
		}
		// Foreign keys are back on (SQLite) and set NULL again.
		if err := w.service(nil).RevokeCredential(ctx, w.app, kept); err != nil {
			t.Fatal(err)
		}
		w.assertDeletedKeepingHistory(kept, keptGrant, keptDelegation)
	})
}
