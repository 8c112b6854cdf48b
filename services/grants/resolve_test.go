package grants_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/egress"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/grants"
	"github.com/latchkey/latchkey/services/sdkauth"
	"github.com/latchkey/latchkey/testutil"
)

func TestResolveFollowsDesign47(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		s := newScene(t, db)
		app := s.appKey()
		agent := func(name string) sdkauth.Caller { return s.agentKey(s.ids[name]) }
		imp := func(name string) sdkauth.Caller { return s.impersonating(s.ids[name]) }
		const unknownID = "0190f5d4-0000-7000-8000-000000000000"

		tests := []struct {
			name     string
			caller   sdkauth.Caller
			user     string // scene user name; "" for none
			grantID  string // scene grant name, or a literal id when not a scene name
			provider string
			account  string
			want     string // scene grant name resolved
			wantVia  string
			wantCode wire.ErrorCode
			wantAccs []string // ambiguous_grant details
		}{
			// Selection input.
			{name: "neither grant_id nor provider is invalid_request", caller: app, wantCode: wire.CodeInvalidRequest},
			{name: "both grant_id and provider is invalid_request", caller: app, grantID: "aliceGH", provider: "github", wantCode: wire.CodeInvalidRequest},
			{name: "account with grant_id is invalid_request", caller: app, grantID: "aliceGH", account: "alice-gh", wantCode: wire.CodeInvalidRequest},

			// App key + grant_id: any principal kind, must be usable.
			{name: "app key reaches a user grant by id", caller: app, grantID: "aliceGH", want: "aliceGH", wantVia: grants.ViaApp},
			{name: "app key reaches a system grant by id", caller: app, grantID: "systemGH", want: "systemGH", wantVia: grants.ViaApp},
			{name: "app key reaches a group grant by id", caller: app, grantID: "engLinear", want: "engLinear", wantVia: grants.ViaApp},
			{name: "app key reaches an agent grant by id", caller: app, grantID: "botOpenAI", want: "botOpenAI", wantVia: grants.ViaApp},
			{name: "app key reaches a managed secret grant by id", caller: app, grantID: "engStripe", want: "engStripe", wantVia: grants.ViaApp},
			{name: "upper-case grant id resolves on every dialect", caller: app, grantID: "UPPER:aliceGH", want: "aliceGH", wantVia: grants.ViaApp},
			{name: "revoked grant is grant_revoked", caller: app, grantID: "aliceAsana", wantCode: wire.CodeGrantRevoked},
			{name: "needs_reauth grant is reauth_required", caller: app, grantID: "aliceNotion", wantCode: wire.CodeReauthRequired},
			{name: "grant past expires_at is grant_expired", caller: app, grantID: "aliceJira", wantCode: wire.CodeGrantExpired},
			{name: "grant on a disabled provider config is provider_not_configured", caller: app, grantID: "aliceGitlab", wantCode: wire.CodeProviderNotConfigured},
			{name: "another app's grant id is grant_not_found", caller: app, grantID: "otherGH", wantCode: wire.CodeGrantNotFound},
			{name: "malformed grant id is grant_not_found", caller: app, grantID: "not-a-uuid", wantCode: wire.CodeGrantNotFound},
			{name: "unknown grant id is grant_not_found", caller: app, grantID: unknownID, wantCode: wire.CodeGrantNotFound},

			// App key + user + grant_id: the user's or their groups'.
			{name: "user reaches own grant by id", caller: app, user: "alice", grantID: "aliceGH", want: "aliceGH", wantVia: grants.ViaUser},
			{name: "user reaches a group grant by id", caller: app, user: "alice", grantID: "engLinear", want: "engLinear", wantVia: grants.ViaGroup},
			{name: "user cannot reach another user's grant", caller: app, user: "alice", grantID: "bobGH", wantCode: wire.CodeGrantNotFound},
			{name: "user cannot reach a system grant", caller: app, user: "alice", grantID: "systemGH", wantCode: wire.CodeGrantNotFound},
			{name: "user cannot reach an agent grant", caller: app, user: "alice", grantID: "botOpenAI", wantCode: wire.CodeGrantNotFound},
			{name: "user outside the group cannot reach a group grant", caller: app, user: "bob", grantID: "engLinear", wantCode: wire.CodeGrantNotFound},
			{name: "user's own revoked grant is grant_revoked", caller: app, user: "alice", grantID: "aliceAsana", wantCode: wire.CodeGrantRevoked},
			{name: "disabled user is forbidden", caller: app, user: "carol", grantID: "carolGH", wantCode: wire.CodeForbidden},

			// App key + user + provider (+ account).
			{name: "two accounts without account is ambiguous_grant listing them", caller: app, user: "alice", provider: "github",
				wantCode: wire.CodeAmbiguousGrant, wantAccs: []string{"alice-gh", "alice-work"}},
			{name: "account narrows to one grant", caller: app, user: "alice", provider: "github", account: "alice-work", want: "aliceWork", wantVia: grants.ViaUser},
			{name: "account matches case-insensitively", caller: app, user: "alice", provider: "github", account: "ALICE-GH", want: "aliceGH", wantVia: grants.ViaUser},
			{name: "unknown account is grant_not_found", caller: app, user: "alice", provider: "github", account: "nobody", wantCode: wire.CodeGrantNotFound},
			{name: "single own grant resolves by provider", caller: app, user: "bob", provider: "github", want: "bobGH", wantVia: grants.ViaUser},
			{name: "group grant resolves by provider", caller: app, user: "alice", provider: "linear", want: "engLinear", wantVia: grants.ViaGroup},
			{name: "user outside the group has no grant", caller: app, user: "bob", provider: "linear", wantCode: wire.CodeGrantNotFound},
			{name: "own and group grant on one secret resolve to the own grant", caller: app, user: "alice", provider: "secret:stripe", want: "aliceStripe", wantVia: grants.ViaUser},
			{name: "group member reaches a secret through the group", caller: app, user: "dave", provider: "secret:stripe", want: "engStripe", wantVia: grants.ViaGroup},
			{name: "one account on two credentials is ambiguous and listed once", caller: app, user: "alice", provider: "figma",
				wantCode: wire.CodeAmbiguousGrant, wantAccs: []string{"shared"}},
			{name: "needs_reauth grant by provider is reauth_required", caller: app, user: "alice", provider: "notion", wantCode: wire.CodeReauthRequired},
			{name: "only an expired grant by provider is grant_expired", caller: app, user: "alice", provider: "jira", wantCode: wire.CodeGrantExpired},
			{name: "only a revoked grant by provider is grant_not_found", caller: app, user: "alice", provider: "asana", wantCode: wire.CodeGrantNotFound},
			{name: "disabled provider config by provider is provider_not_configured", caller: app, user: "alice", provider: "gitlab", wantCode: wire.CodeProviderNotConfigured},
			{name: "unconfigured provider is provider_not_configured", caller: app, user: "alice", provider: "dropbox", wantCode: wire.CodeProviderNotConfigured},
			{name: "unknown managed secret is provider_not_configured", caller: app, user: "alice", provider: "secret:nope", wantCode: wire.CodeProviderNotConfigured},
			{name: "system grant is not reachable by provider", caller: app, provider: "github", wantCode: wire.CodeGrantNotFound},
			{name: "disabled user is forbidden by provider", caller: app, user: "carol", provider: "github", wantCode: wire.CodeForbidden},

			// Agents: bound grants and live delegations only.
			{name: "agent reaches a bound grant by id", caller: agent("bot"), grantID: "botOpenAI", want: "botOpenAI", wantVia: grants.ViaAgent},
			{name: "agent reaches a bound grant by provider", caller: agent("bot"), provider: "secret:openai", want: "botOpenAI", wantVia: grants.ViaAgent},
			{name: "agent reaches a delegated grant by id", caller: agent("bot"), grantID: "aliceGH", want: "aliceGH", wantVia: grants.ViaDelegation},
			{name: "agent resolves a provider within its live delegations", caller: agent("bot"), provider: "github", want: "aliceGH", wantVia: grants.ViaDelegation},
			{name: "revoked delegation is no_delegated_grant", caller: agent("bot"), grantID: "bobGH", wantCode: wire.CodeNoDelegatedGrant},
			{name: "delegation from a disabled user is no_delegated_grant", caller: agent("bot"), grantID: "carolGH", wantCode: wire.CodeNoDelegatedGrant},
			{name: "delegation of a needs_reauth grant is no_delegated_grant", caller: agent("bot2"), grantID: "aliceNotion", wantCode: wire.CodeNoDelegatedGrant},
			{name: "delegation of an expired grant is no_delegated_grant", caller: agent("bot"), grantID: "aliceJira", wantCode: wire.CodeNoDelegatedGrant},
			{name: "agent cannot reach a system grant by id", caller: agent("bot"), grantID: "systemGH", wantCode: wire.CodeNoDelegatedGrant},
			{name: "agent cannot reach an undelegated user grant", caller: agent("bot"), grantID: "aliceWork", wantCode: wire.CodeNoDelegatedGrant},
			{name: "agent cannot reach another agent's grant", caller: agent("bot2"), grantID: "botOpenAI", wantCode: wire.CodeNoDelegatedGrant},
			{name: "agent with no path for a provider is no_delegated_grant", caller: agent("bot2"), provider: "github", wantCode: wire.CodeNoDelegatedGrant},
			{name: "agent's revoked bound grant is grant_revoked", caller: agent("bot"), grantID: "botRevoked", wantCode: wire.CodeGrantRevoked},
			{name: "agent: another app's grant is grant_not_found", caller: agent("bot"), grantID: "otherGH", wantCode: wire.CodeGrantNotFound},
			{name: "agent: malformed grant id is grant_not_found", caller: agent("bot"), grantID: "42", wantCode: wire.CodeGrantNotFound},
			{name: "agent: unconfigured provider is provider_not_configured", caller: agent("bot"), provider: "dropbox", wantCode: wire.CodeProviderNotConfigured},

			// App key acting as an agent (Latchkey-Agent) is an agent.
			{name: "app key acting as agent reaches its delegation", caller: imp("bot"), grantID: "aliceGH", want: "aliceGH", wantVia: grants.ViaDelegation},
			{name: "app key acting as agent cannot reach a system grant", caller: imp("bot"), grantID: "systemGH", wantCode: wire.CodeNoDelegatedGrant},
			{name: "app key acting as agent cannot reach a user grant by id", caller: imp("bot"), grantID: "aliceWork", wantCode: wire.CodeNoDelegatedGrant},
			{name: "agent with an end user reaches that user's delegation", caller: imp("bot"), user: "alice", provider: "github", want: "aliceGH", wantVia: grants.ViaDelegation},
			{name: "agent with an end user does not reach another user's delegation", caller: imp("bot"), user: "bob", grantID: "aliceGH", wantCode: wire.CodeNoDelegatedGrant},
			{name: "agent with an end user still reaches its bound grants", caller: imp("bot"), user: "bob", provider: "secret:openai", want: "botOpenAI", wantVia: grants.ViaAgent},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				in := grants.ResolveInput{Caller: tt.caller, Provider: tt.provider, Account: tt.account}
				if tt.user != "" {
					in.EndUser = s.users[tt.user]
				}
				switch {
				case strings.HasPrefix(tt.grantID, "UPPER:"):
					in.GrantID = strings.ToUpper(s.ids[strings.TrimPrefix(tt.grantID, "UPPER:")])
				case s.ids[tt.grantID] != "":
					in.GrantID = s.ids[tt.grantID]
				default:
					in.GrantID = tt.grantID
				}
				got, err := s.svc.Resolve(context.Background(), in)
				if tt.wantCode != "" {
					if err == nil {
						t.Fatalf("resolved %s, want %s", s.name(got.Grant.ID), tt.wantCode)
					}
					if code := errs.CodeOf(err); code != tt.wantCode {
						t.Fatalf("error %v (code %s), want %s", err, code, tt.wantCode)
					}
					if tt.wantAccs != nil {
						var ce *errs.CodedError
						errors.As(err, &ce)
						accs, _ := ce.Details[wire.DetailAccountIdentifiers].([]string)
						if !slices.Equal(accs, tt.wantAccs) {
							t.Fatalf("account_identifiers %v, want %v", accs, tt.wantAccs)
						}
					}
					return
				}
				if err != nil {
					t.Fatalf("resolve: %v", err)
				}
				if got.Grant.ID != s.ids[tt.want] {
					t.Fatalf("resolved %s, want %s", s.name(got.Grant.ID), tt.want)
				}
				if got.Via != tt.wantVia {
					t.Fatalf("via %q, want %q", got.Via, tt.wantVia)
				}
				if got.Grant.CredentialID == nil || got.Credential.ID != *got.Grant.CredentialID || got.Credential.Kind == "" {
					t.Fatalf("credential metadata %+v does not describe the grant's credential", got.Credential)
				}
				if got.Via == grants.ViaDelegation && (got.DelegationID == "" || got.DelegatorID == "") {
					t.Fatalf("delegated resolution lacks its delegation: %+v", got)
				}
			})
		}
	})
}

func TestSecretOpensTheResolvedCredential(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		s := newScene(t, db)
		ctx := context.Background()
		resolve := func(in grants.ResolveInput) grants.Resolved {
			t.Helper()
			r, err := s.svc.Resolve(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}

		oauth, err := s.svc.Secret(ctx, resolve(grants.ResolveInput{Caller: s.appKey(), GrantID: s.ids["aliceGH"]}))
		if err != nil {
			t.Fatal(err)
		}
		if oauth.AccessToken != "token-aliceGH" || oauth.Injection != grants.DefaultOAuthInjection || oauth.AllowedHosts != nil {
			t.Fatalf("oauth credential %v (token ok: %v)", oauth, oauth.AccessToken == "token-aliceGH")
		}
		if inj, err := egress.ParseInjection(oauth.Injection); err != nil || inj != egress.Bearer() {
			t.Fatalf("the OAuth injection is not egress's bearer rule: %v %v", inj, err)
		}

		ms, err := s.svc.Secret(ctx, resolve(grants.ResolveInput{Caller: s.appKey(), EndUser: s.users["dave"], Provider: "secret:stripe"}))
		if err != nil {
			t.Fatal(err)
		}
		if ms.AccessToken != "sk_test_stripe_value" || ms.Injection != "header:Authorization:Bearer {secret}" ||
			!slices.Equal(ms.AllowedHosts, []string{"api.stripe.test"}) {
			t.Fatalf("managed secret credential %v", ms)
		}

		// Printing or logging a Credential never shows the token.
		var logged bytes.Buffer
		slog.New(slog.NewJSONHandler(&logged, nil)).Info("cred", "c", ms)
		for _, out := range []string{fmt.Sprint(ms), fmt.Sprintf("%+v", ms), fmt.Sprintf("%#v", ms), logged.String()} {
			if strings.Contains(out, "sk_test_stripe_value") {
				t.Fatalf("credential printed its token: %s", out)
			}
		}
	})
}

func TestSecretRefusesExpiredOAuthTokenWithoutRefresh(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		pc := w.providerConfig(w.app, "github", models.ProviderConfigActive)
		user := w.endUser(w.app, "alice", models.EndUserActive)
		expired := w.now.Add(-time.Minute)
		cred := w.oauthCredential(w.app, pc, "alice-gh", "stale-token", &expired)
		id := w.grant(gspec{cred: cred, kind: models.PrincipalUser, principal: user, provider: "github", account: "alice-gh"})

		r, err := w.svc.Resolve(context.Background(), grants.ResolveInput{Caller: w.appKey(), GrantID: id})
		if err != nil {
			t.Fatalf("the grant itself is usable: %v", err)
		}
		_, err = w.svc.Secret(context.Background(), r)
		if errs.CodeOf(err) != wire.CodeReauthRequired {
			t.Fatalf("expired access token: %v, want reauth_required", err)
		}
	})
}

func TestSecretFailsClosedWhenTheCiphertextWasMoved(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		w := newWorld(t, db)
		pc := w.providerConfig(w.app, "github", models.ProviderConfigActive)
		a := w.oauthCredential(w.app, pc, "a", "token-a", nil)
		b := w.oauthCredential(w.app, pc, "b", "token-b", nil)
		// Copy a's sealed token into b's row: the binding must refuse it.
		var ca models.Credential
		w.db.Where("id = ?", a).Take(&ca)
		w.db.Model(&models.Credential{}).Where("id = ?", b).Update("access_token_ciphertext", ca.AccessTokenCiphertext)
		id := w.grant(gspec{cred: b, kind: models.PrincipalSystem, provider: "github", account: "b"})
		r, err := w.svc.Resolve(context.Background(), grants.ResolveInput{Caller: w.appKey(), GrantID: id})
		if err != nil {
			t.Fatal(err)
		}
		c, err := w.svc.Secret(context.Background(), r)
		if err == nil || c.AccessToken != "" {
			t.Fatal("a ciphertext copied from another row opened")
		}
		if errs.CodeOf(err) != wire.CodeInternal {
			t.Fatalf("code %s, want internal", errs.CodeOf(err))
		}
	})
}

func TestResolveRefusesCallersThatAreNotAuthenticated(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		s := newScene(t, db)
		otherAppUser := *s.users["alice"]
		otherAppUser.AppID = s.other
		tests := []struct {
			name string
			in   grants.ResolveInput
		}{
			{"caller without an app", grants.ResolveInput{Caller: sdkauth.Caller{}, GrantID: s.ids["aliceGH"]}},
			{"agent key without an agent id", grants.ResolveInput{Caller: sdkauth.Caller{AppID: s.app, KeyKind: "agent"}, GrantID: s.ids["aliceGH"]}},
			{"end user of another app", grants.ResolveInput{Caller: s.appKey(), EndUser: &otherAppUser, GrantID: s.ids["aliceGH"]}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if _, err := s.svc.Resolve(context.Background(), tt.in); errs.CodeOf(err) != wire.CodeInternal {
					t.Fatalf("got %v, want a fail-closed internal error", err)
				}
			})
		}
	})
}
