package identity_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/identity"
	"github.com/latchkey/latchkey/testutil"
	"github.com/latchkey/latchkey/testutil/oidcissuer"
)

func TestVerifyCreatesEndUserOnceAndReusesIt(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newEnv(t, db)
		e.setIdP(nil)
		claims := map[string]any{"sub": "ada", "email": "ada@example.com", "name": "Ada Lovelace", "groups": []string{"eng"}}

		first := e.mustVerify(e.iss.Mint(t, claims))
		if first.ID == "" || first.AppID != e.appID || first.Subject != "ada" || first.Issuer != e.iss.URL ||
			first.Email != "ada@example.com" || first.DisplayName != "Ada Lovelace" ||
			first.Source != models.EndUserSourceIdP || first.Status != models.EndUserActive ||
			!slices.Equal(first.Groups, []string{"eng"}) {
			t.Fatalf("first verify: %+v", first)
		}
		// A different token for the same user, on the cached path and again
		// after the cache expired, finds the same row.
		e.clock.Advance(time.Second)
		second := e.mustVerify(e.iss.Mint(t, claims))
		e.clock.Advance(identity.DefaultSeenTTL + time.Second)
		third := e.mustVerify(e.iss.Mint(t, claims))
		if second.ID != first.ID || third.ID != first.ID {
			t.Fatalf("user ids differ: %s %s %s", first.ID, second.ID, third.ID)
		}
		if n := e.count(&models.EndUser{}); n != 1 {
			t.Fatalf("%d end users, want 1", n)
		}
		if n := e.auditCount(identity.ActionEndUserCreate); n != 1 {
			t.Fatalf("%d end_user.create audit rows, want 1", n)
		}
		// Another subject is another user.
		other := e.mustVerify(e.iss.Mint(t, map[string]any{"sub": "grace"}))
		if other.ID == first.ID {
			t.Fatal("two subjects share one end user")
		}
	})
}

func TestVerifySyncsGroupsFromTheLatestToken(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newEnv(t, db)
		e.setIdP(nil)
		steps := []struct {
			name   string
			groups any // nil: claim absent
			want   []string
		}{
			{"first token brings two groups", []string{"eng", "admins"}, []string{"admins", "eng"}},
			{"a group is added and one removed", []string{"eng", "ops"}, []string{"eng", "ops"}},
			{"duplicates and blanks are ignored", []string{"ops", "ops", " ", "eng"}, []string{"eng", "ops"}},
			{"a single string is one group", "ops", []string{"ops"}},
			{"an absent claim removes every group", nil, nil},
			{"groups come back", []string{"eng"}, []string{"eng"}},
		}
		var userID string
		for _, st := range steps {
			claims := map[string]any{"sub": "ada"}
			if st.groups != nil {
				claims["groups"] = st.groups
			}
			u := e.mustVerify(e.iss.Mint(t, claims))
			if userID == "" {
				userID = u.ID
			}
			if u.ID != userID {
				t.Fatalf("%s: user changed", st.name)
			}
			if !slices.Equal(u.Groups, st.want) {
				t.Fatalf("%s: returned groups %v, want %v", st.name, u.Groups, st.want)
			}
			if got := e.storedGroups(userID); !slices.Equal(got, st.want) {
				t.Fatalf("%s: stored groups %v, want %v", st.name, got, st.want)
			}
		}
		// Every step except the duplicates one changed the membership.
		if n := e.auditCount(identity.ActionEndUserGroups); n != 5 {
			t.Fatalf("%d end_user.groups audit rows, want 5", n)
		}
	})
}

func TestVerifyReadsConfiguredClaims(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newEnv(t, db)
		e.setIdP(func(in *identity.SetInput) {
			in.UserClaim = "oid"
			in.GroupsClaim = "realm_access.roles" // a dotted path into a nested object
		})
		u := e.mustVerify(e.iss.Mint(t, map[string]any{"sub": "ignored", "oid": "object-7",
			"realm_access": map[string]any{"roles": []string{"viewer"}}}))
		if u.Subject != "object-7" || !slices.Equal(u.Groups, []string{"viewer"}) {
			t.Fatalf("got %+v", u)
		}

		// A namespaced claim (Auth0 style) is looked up by its exact name.
		e.setIdP(func(in *identity.SetInput) { in.GroupsClaim = "https://acme.example/groups" })
		u = e.mustVerify(e.iss.Mint(t, map[string]any{"sub": "ada", "https://acme.example/groups": []string{"eng"}}))
		if !slices.Equal(u.Groups, []string{"eng"}) {
			t.Fatalf("namespaced groups: %v", u.Groups)
		}
	})
}

func TestVerifyRejectsBadTokens(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newEnv(t, db)
		e.setIdP(nil)
		iss := e.iss
		sub := map[string]any{"sub": "mallory"}
		now := e.clock.Now()
		tests := []struct {
			name string
			tok  string
		}{
			{"empty", ""},
			{"not a JWT", "not-a-jwt"},
			{"three garbage segments", "aaaa.bbbb.cccc"},
			{"bad signature", iss.MintBadSignature(t, sub)},
			{"payload swapped after signing", iss.MintTamperedPayload(t, map[string]any{"sub": "ada"}, sub)},
			{"signed by a key the issuer never published", iss.MintUnknownKey(t, sub)},
			{"published kid but another key signed", iss.Mint(t, sub, oidcissuer.WithKey(iss.NewUnpublishedKey(t, jose.RS256)), oidcissuer.WithKeyID(iss.SigningKey().ID))},
			{"wrong issuer", iss.MintWrongIssuer(t, sub)},
			{"wrong audience", iss.MintWrongAudience(t, sub)},
			{"audience list without ours", iss.Mint(t, map[string]any{"sub": "mallory", "aud": []string{"a", "b"}})},
			{"expired an hour ago", iss.MintExpired(t, sub)},
			{"expired just beyond the leeway", iss.Mint(t, map[string]any{"sub": "mallory", "exp": now.Add(-identity.DefaultLeeway - 2*time.Second).Unix()})},
			{"no exp", iss.Mint(t, map[string]any{"sub": "mallory", "exp": nil})},
			{"not yet valid", iss.MintNotYetValid(t, sub)},
			{"nbf just beyond the leeway", iss.Mint(t, map[string]any{"sub": "mallory", "nbf": now.Add(identity.DefaultLeeway + 2*time.Second).Unix()})},
			{"nbf not a number", iss.Mint(t, map[string]any{"sub": "mallory", "nbf": "soon"})},
			{"alg none", iss.MintAlgNone(t, sub)},
			{"HS256 keyed with the RSA public key PEM", iss.MintHS256WithPublicKey(t, sub)},
			{"HS256 keyed with the RSA public key DER", iss.MintHS256WithPublicKeyDER(t, sub)},
			{"missing user claim", iss.Mint(t, map[string]any{"sub": nil})},
			{"empty user claim", iss.Mint(t, map[string]any{"sub": ""})},
			{"user claim not a string", iss.Mint(t, map[string]any{"sub": 42})},
			{"user claim too long", iss.Mint(t, map[string]any{"sub": strings.Repeat("x", identity.MaxSubjectLen+1)})},
			{"groups claim an object", iss.Mint(t, map[string]any{"sub": "mallory", "groups": map[string]any{"a": 1}})},
			{"groups claim with a number", iss.Mint(t, map[string]any{"sub": "mallory", "groups": []any{"eng", 7}})},
			{"too many groups", iss.Mint(t, map[string]any{"sub": "mallory", "groups": manyGroups(identity.MaxGroups + 1)})},
			{"token too large", iss.Mint(t, map[string]any{"sub": "mallory", "pad": strings.Repeat("x", identity.MaxTokenBytes)})},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := e.verify(tt.tok)
				assertInvalidToken(t, err, tt.tok)
				var ce *errs.CodedError
				errors.As(err, &ce)
				if strings.Contains(ce.Message, "mallory") || ce.Message != "the user token is not valid" {
					t.Fatalf("client-facing message %q is not the generic one", ce.Message)
				}
				if ce.Cause == nil {
					t.Fatal("no reason kept for the logs")
				}
			})
		}
		if n := e.count(&models.EndUser{}); n != 0 {
			t.Fatalf("rejected tokens created %d end users", n)
		}
	})
}

func manyGroups(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("g%d", i)
	}
	return out
}

func TestVerifyToleratesSmallClockSkew(t *testing.T) {
	e := newEnv(t, testutil.NewDB(t, database.SQLite))
	e.setIdP(nil)
	now := e.clock.Now()
	for name, claims := range map[string]map[string]any{
		"expired a few seconds ago":  {"sub": "ada", "exp": now.Add(-10 * time.Second).Unix()},
		"nbf a few seconds from now": {"sub": "ada", "nbf": now.Add(10 * time.Second).Unix()},
	} {
		if _, err := e.verify(e.iss.Mint(t, claims)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestVerifyAcceptsEveryAsymmetricAlgorithm(t *testing.T) {
	e := newEnv(t, testutil.NewDB(t, database.SQLite))
	e.setIdP(nil)
	// Publish every key before the first fetch: go-oidc lets a refetch join
	// one already in flight, whose answer may predate a key added since.
	keys := map[jose.SignatureAlgorithm]*oidcissuer.Key{}
	algs := []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.ES256, jose.ES384, jose.ES512, jose.EdDSA}
	for _, alg := range algs {
		keys[alg] = e.iss.AddKey(t, alg)
	}
	for _, alg := range algs {
		t.Run(string(alg), func(t *testing.T) {
			if _, err := e.verify(e.iss.Mint(t, map[string]any{"sub": "ada"}, oidcissuer.WithKey(keys[alg]))); err != nil {
				t.Fatalf("%s token refused: %v", alg, err)
			}
		})
	}
}

func TestVerifyWithoutIdentityProvider(t *testing.T) {
	e := newEnv(t, testutil.NewDB(t, database.SQLite))
	tok := e.iss.Mint(t, nil)
	_, err := e.verify(tok)
	assertInvalidToken(t, err, tok)
	var ce *errs.CodedError
	errors.As(err, &ce)
	if ce.Message != "app has no identity provider" {
		t.Fatalf("message %q", ce.Message)
	}
	// A malformed app id is the same: nothing to verify against.
	_, err = e.svc.Verify(context.Background(), "not-an-app", tok)
	assertInvalidToken(t, err, tok)
}

func TestKeyRotationVerifiesAfterJWKSRefetch(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newEnv(t, db)
		e.setIdP(nil)
		e.mustVerify(e.iss.Mint(t, map[string]any{"sub": "ada"}))
		if n := e.iss.JWKSFetches(); n != 1 {
			t.Fatalf("%d JWKS fetches after the first token, want 1", n)
		}
		e.mustVerify(e.iss.Mint(t, map[string]any{"sub": "ada"}))
		if n := e.iss.JWKSFetches(); n != 1 {
			t.Fatalf("a known kid refetched the JWKS (%d fetches)", n)
		}

		old := e.iss.SigningKey()
		fresh := e.iss.Rotate(t, jose.RS256)
		if fresh.ID == old.ID {
			t.Fatal("rotation kept the kid")
		}
		e.mustVerify(e.iss.Mint(t, map[string]any{"sub": "ada"}))
		if n := e.iss.JWKSFetches(); n != 2 {
			t.Fatalf("%d JWKS fetches after rotation, want 2", n)
		}
		// Tokens from before the rotation keep verifying while the old key
		// is published, and the new key is now cached.
		e.mustVerify(e.iss.Mint(t, map[string]any{"sub": "ada"}, oidcissuer.WithKey(old)))
		e.mustVerify(e.iss.Mint(t, map[string]any{"sub": "ada"}))
		if n := e.iss.JWKSFetches(); n != 2 {
			t.Fatalf("%d JWKS fetches, want still 2", n)
		}
		if n := e.iss.DiscoveryFetches(); n != 1 {
			t.Fatalf("%d discovery fetches, want 1", n)
		}
	})
}

func TestVerifierCacheFollowsIdPChanges(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newEnv(t, db)
		e.setIdP(func(in *identity.SetInput) { in.Audience = "aud-one" })
		replica := e.newService() // another replica: sees the change only after its config TTL
		oneTok := e.iss.Mint(t, map[string]any{"sub": "ada", "aud": "aud-one"})
		twoTok := e.iss.Mint(t, map[string]any{"sub": "ada", "aud": "aud-two"})
		e.mustVerify(oneTok)
		if _, err := replica.Verify(context.Background(), e.appID, oneTok); err != nil {
			t.Fatalf("replica: %v", err)
		}

		e.setIdP(func(in *identity.SetInput) { in.Audience = "aud-two" })
		_, err := e.verify(oneTok)
		assertInvalidToken(t, err, oneTok)
		e.mustVerify(twoTok)

		// The other replica still trusts its cached configuration…
		if _, err := replica.Verify(context.Background(), e.appID, oneTok); err != nil {
			t.Fatalf("replica refused within its config TTL: %v", err)
		}
		// …until the TTL has passed.
		e.clock.Advance(identity.DefaultConfigTTL + time.Second)
		_, err = replica.Verify(context.Background(), e.appID, oneTok)
		assertInvalidToken(t, err, oneTok)
		if _, err := replica.Verify(context.Background(), e.appID, twoTok); err != nil {
			t.Fatalf("replica after TTL: %v", err)
		}
	})
}

func TestUnreachableIssuerFailsClosedAndRecovers(t *testing.T) {
	e := newEnv(t, testutil.NewDB(t, database.SQLite))
	e.setIdP(nil)
	e.iss.SetDown(true)
	tok := e.iss.Mint(t, map[string]any{"sub": "ada"})
	for range 3 {
		_, err := e.verify(tok)
		assertInvalidToken(t, err, tok)
	}
	if n := e.iss.DiscoveryFetches(); n != 1 {
		t.Fatalf("%d discovery attempts within the retry interval, want 1", n)
	}
	if err := e.svc.CheckDiscovery(context.Background(), e.iss.URL); err == nil {
		t.Fatal("CheckDiscovery succeeded against a down issuer")
	}
	e.iss.SetDown(false)
	e.clock.Advance(identity.DefaultDiscoveryRetry + time.Second)
	e.mustVerify(e.iss.Mint(t, map[string]any{"sub": "ada"}))
}

func TestDisabledEndUserVerifiesWithItsStatus(t *testing.T) {
	e := newEnv(t, testutil.NewDB(t, database.SQLite))
	e.setIdP(nil)
	u := e.mustVerify(e.iss.Mint(t, map[string]any{"sub": "ada"}))
	if err := e.db.Gorm.Model(&models.EndUser{}).Where("id = ?", u.ID).Update("status", models.EndUserDisabled).Error; err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(identity.DefaultSeenTTL + time.Second)
	got := e.mustVerify(e.iss.Mint(t, map[string]any{"sub": "ada"}))
	if got.ID != u.ID || got.Status != models.EndUserDisabled {
		t.Fatalf("got %+v, want the same user with status disabled", got)
	}
}

func TestVerifySkipsWritesWhenNothingChanged(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newEnv(t, db)
		e.setIdP(nil)
		claims := map[string]any{"sub": "ada", "email": "ada@example.com", "groups": []string{"eng"}}
		u := e.mustVerify(e.iss.Mint(t, claims))
		row := func() models.EndUser {
			var r models.EndUser
			if err := e.db.Gorm.Where("id = ?", u.ID).Take(&r).Error; err != nil {
				t.Fatal(err)
			}
			return r
		}
		auditRows := func() int64 { return e.count(&models.AuditEvent{}, "app_id = ?", e.appID) }
		before, events := row(), auditRows()

		// Past the seen cache but within the last-seen granularity: read, no write.
		e.clock.Advance(identity.DefaultSeenTTL + time.Second)
		e.mustVerify(e.iss.Mint(t, claims))
		if after := row(); !after.LastSeenAt.Equal(*before.LastSeenAt) || !after.UpdatedAt.Equal(before.UpdatedAt) || auditRows() != events {
			t.Fatal("an unchanged token wrote to the database")
		}

		// A token without email keeps the stored email.
		e.mustVerify(e.iss.Mint(t, map[string]any{"sub": "ada", "groups": []string{"eng"}}))
		if row().Email != "ada@example.com" {
			t.Fatal("a token without email erased the stored one")
		}

		// last_seen_at moves once its granularity has passed.
		e.clock.Advance(identity.DefaultLastSeenEvery)
		e.mustVerify(e.iss.Mint(t, claims))
		if after := row(); !after.LastSeenAt.After(*before.LastSeenAt) {
			t.Fatal("last_seen_at not refreshed")
		}

		// A new email is written and audited.
		e.mustVerify(e.iss.Mint(t, map[string]any{"sub": "ada", "email": "ada@new.example", "groups": []string{"eng"}}))
		if row().Email != "ada@new.example" || e.auditCount(identity.ActionEndUserProfile) != 1 {
			t.Fatal("changed email not stored and audited")
		}
	})
}

func TestConcurrentFirstVerifiesCreateOneEndUser(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newEnv(t, db)
		e.setIdP(nil)
		const n = 8
		ids := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			// Separate services: no shared seen cache, as on separate replicas.
			svc := e.newService()
			tok := e.iss.Mint(t, map[string]any{"sub": "ada", "groups": []string{"eng", "ops"}})
			wg.Add(1)
			go func() {
				defer wg.Done()
				u, err := svc.Verify(context.Background(), e.appID, tok)
				ids[i], errs[i] = u.ID, err
			}()
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("verify %d: %v", i, errs[i])
			}
			if ids[i] != ids[0] {
				t.Fatalf("concurrent verifies produced users %s and %s", ids[0], ids[i])
			}
		}
		if c := e.count(&models.EndUser{}); c != 1 {
			t.Fatalf("%d end users, want 1", c)
		}
		if g := e.storedGroups(ids[0]); !slices.Equal(g, []string{"eng", "ops"}) {
			t.Fatalf("groups %v", g)
		}
	})
}

func TestDetectPreset(t *testing.T) {
	tests := []struct {
		issuer, preset, groups string
	}{
		{"https://acme.us.auth0.com/", identity.PresetAuth0, ""},
		{"https://acme.eu.auth0.com/", identity.PresetAuth0, ""},
		{"https://busy-ant-12.clerk.accounts.dev", identity.PresetClerk, ""},
		{"https://clerk.acme.com", identity.PresetClerk, ""},
		{"https://acme.okta.com/oauth2/default", identity.PresetOkta, "groups"},
		{"https://acme.oktapreview.com", identity.PresetOkta, "groups"},
		{"https://ACME.OKTA.COM", identity.PresetOkta, "groups"},
		{"https://sso.acme.com/realms/staff", identity.PresetKeycloak, "groups"},
		{"http://127.0.0.1:8081/realms/demo", identity.PresetKeycloak, "groups"},
		{"https://api.workos.com/user_management/client_01H", identity.PresetWorkOS, ""},
		{"https://acme-88.authkit.app", identity.PresetWorkOS, ""},
		{"https://accounts.google.com", identity.PresetGeneric, ""},
		{"https://auth0.com.evil.example/", identity.PresetGeneric, ""},
		{"https://notokta.com", identity.PresetGeneric, ""},
		{"https://login.acme.com/clerk.", identity.PresetGeneric, ""},
	}
	for _, tt := range tests {
		t.Run(tt.issuer, func(t *testing.T) {
			p := identity.DetectPreset(tt.issuer)
			if p.Name != tt.preset || p.GroupsClaim != tt.groups || p.UserClaim != "sub" {
				t.Fatalf("DetectPreset(%q) = %+v, want %s with groups claim %q", tt.issuer, p, tt.preset, tt.groups)
			}
		})
	}
}

func TestSetIdPAppliesPresetsAndExplicitOverrides(t *testing.T) {
	e := newEnv(t, testutil.NewDB(t, database.SQLite))
	set := func(in identity.SetInput) identity.IdP {
		t.Helper()
		in.AppID, in.Actor = e.appID, testActor
		idp, err := e.svc.SetIdP(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		return idp
	}
	okta := set(identity.SetInput{Issuer: "https://acme.okta.com/oauth2/default", Audience: "api://default"})
	if okta.Preset != identity.PresetOkta || okta.GroupsClaim != "groups" || okta.UserClaim != "sub" {
		t.Fatalf("okta defaults: %+v", okta)
	}
	custom := set(identity.SetInput{Issuer: "https://acme.okta.com/oauth2/default", Audience: "api://default", GroupsClaim: "teams", UserClaim: "uid"})
	if custom.Preset != identity.PresetOkta || custom.GroupsClaim != "teams" || custom.UserClaim != "uid" {
		t.Fatalf("explicit claims did not win: %+v", custom)
	}
	if custom.ID != okta.ID {
		t.Fatal("a second set created another IdP for the app")
	}
	generic := set(identity.SetInput{Issuer: "https://idp.acme.example", Audience: "aud"})
	if generic.Preset != identity.PresetGeneric || generic.GroupsClaim != "" {
		t.Fatalf("generic: %+v", generic)
	}
	if n := e.count(&models.IdentityProvider{}); n != 1 {
		t.Fatalf("%d IdP rows, want one per app", n)
	}
	if n := e.auditCount(identity.ActionIdPSet); n != 3 {
		t.Fatalf("%d idp.set audit rows, want 3", n)
	}
}

func TestSetIdPRefusesBadInputAndWritesNothing(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newEnv(t, db)
		valid := identity.SetInput{AppID: e.appID, Issuer: "https://idp.acme.example", Audience: "aud", Actor: testActor}
		tests := []struct {
			name  string
			mod   func(*identity.SetInput)
			field string // "" for not found
		}{
			{"malformed app id", func(in *identity.SetInput) { in.AppID = "web" }, "app"},
			{"unknown app", func(in *identity.SetInput) { in.AppID = "3f1b2c4d-0000-4000-8000-000000000000" }, ""},
			{"missing issuer", func(in *identity.SetInput) { in.Issuer = "" }, "issuer"},
			{"relative issuer", func(in *identity.SetInput) { in.Issuer = "/realms/x" }, "issuer"},
			{"plain http issuer", func(in *identity.SetInput) { in.Issuer = "http://idp.acme.example" }, "issuer"},
			{"http issuer on a lookalike host", func(in *identity.SetInput) { in.Issuer = "http://localhost.evil.example" }, "issuer"},
			{"issuer with a query", func(in *identity.SetInput) { in.Issuer = "https://idp.acme.example/?x=1" }, "issuer"},
			{"issuer with user info", func(in *identity.SetInput) { in.Issuer = "https://u:p@idp.acme.example" }, "issuer"},
			{"ftp issuer", func(in *identity.SetInput) { in.Issuer = "ftp://idp.acme.example" }, "issuer"},
			{"missing audience", func(in *identity.SetInput) { in.Audience = " " }, "audience"},
			{"secret without client id", func(in *identity.SetInput) { in.ClientSecret = "s3cret" }, "client-secret"},
			{"claim with spaces", func(in *identity.SetInput) { in.GroupsClaim = "my groups" }, "groups-claim"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				in := valid
				tt.mod(&in)
				_, err := e.svc.SetIdP(context.Background(), in)
				if tt.field == "" {
					if !errors.Is(err, errs.ErrNotFound) {
						t.Fatalf("err %v, want not found", err)
					}
					return
				}
				var ve *errs.ValidationError
				if !errors.As(err, &ve) || ve.Problems[0].Field != tt.field {
					t.Fatalf("err %v, want a validation problem with %s", err, tt.field)
				}
			})
		}
		if n := e.count(&models.IdentityProvider{}); n != 0 {
			t.Fatalf("bad input wrote %d IdP rows", n)
		}
		if n := e.count(&models.AuditEvent{}); n != 0 {
			t.Fatalf("bad input wrote %d audit rows", n)
		}
		// Loopback http is fine (tests, the demo).
		for _, iss := range []string{"http://127.0.0.1:9/", "http://localhost:8080/realms/demo", "http://[::1]:9"} {
			in := valid
			in.Issuer = iss
			if _, err := e.svc.SetIdP(context.Background(), in); err != nil {
				t.Fatalf("%s refused: %v", iss, err)
			}
		}
	})
}

func TestClientSecretIsStoredSealed(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newEnv(t, db)
		const secret = "idp-client-secret-Zq8v1XkR3wPbn0Tf"
		idp := e.setIdP(func(in *identity.SetInput) { in.ClientID = "latchkey-web"; in.ClientSecret = secret })
		if !idp.HasClientSecret {
			t.Fatal("HasClientSecret false after setting one")
		}
		if rawDatabaseContains(t, e.db, secret) {
			t.Fatal("the client secret is in the database in plaintext")
		}
		var row models.IdentityProvider
		if err := e.db.Gorm.Where("id = ?", idp.ID).Take(&row).Error; err != nil {
			t.Fatal(err)
		}
		got, err := e.vault.Open(context.Background(), identity.ClientSecretBinding(e.appID, idp.ID), row.ClientSecretCiphertext)
		if err != nil || string(got) != secret {
			t.Fatalf("sealed secret does not open to the secret: %v", err)
		}
		if _, err := e.vault.Open(context.Background(), identity.ClientSecretBinding(e.appID, "00000000-0000-4000-8000-000000000000"), row.ClientSecretCiphertext); err == nil {
			t.Fatal("the ciphertext opens under another row's binding")
		}

		// Re-setting with the same client id and no secret keeps it…
		kept := e.setIdP(func(in *identity.SetInput) { in.ClientID = "latchkey-web"; in.Audience = "other" })
		if !kept.HasClientSecret {
			t.Fatal("the secret was dropped when re-setting the same client")
		}
		// …a new client id without a secret clears it.
		cleared := e.setIdP(func(in *identity.SetInput) { in.ClientID = "another-client" })
		if cleared.HasClientSecret {
			t.Fatal("a secret outlived its client id")
		}
		if rawDatabaseContains(t, e.db, secret) {
			t.Fatal("the client secret leaked into the database")
		}
	})
}

func TestAssertEndUser(t *testing.T) {
	testutil.ForEachDialect(t, func(t *testing.T, db *database.DB) {
		e := newEnv(t, db)
		ctx := context.Background()
		u, err := e.svc.AssertEndUser(ctx, e.appID, "u-123", "ada@example.com", "Ada")
		if err != nil {
			t.Fatal(err)
		}
		if u.Source != models.EndUserSourceAppAsserted || u.Issuer != "" || u.Subject != "u-123" || u.Email != "ada@example.com" || u.Status != models.EndUserActive {
			t.Fatalf("asserted user: %+v", u)
		}
		again, err := e.svc.AssertEndUser(ctx, e.appID, "u-123", "ada@new.example", "")
		if err != nil {
			t.Fatal(err)
		}
		if again.ID != u.ID || again.Email != "ada@new.example" || again.DisplayName != "Ada" {
			t.Fatalf("second assert: %+v", again)
		}
		for name, args := range map[string][3]string{
			"empty subject": {"", "", ""},
			"bad email":     {"u-1", "not an email", ""},
		} {
			var ve *errs.ValidationError
			if _, err := e.svc.AssertEndUser(ctx, e.appID, args[0], args[1], args[2]); !errors.As(err, &ve) {
				t.Errorf("%s: err %v, want validation error", name, err)
			}
		}
		if _, err := e.svc.AssertEndUser(ctx, "3f1b2c4d-0000-4000-8000-000000000000", "u-1", "", ""); !errors.Is(err, errs.ErrNotFound) {
			t.Fatalf("unknown app: %v", err)
		}

		// Once the app has an IdP, users come from tokens only, and a
		// verified user with the same subject is a different user.
		e.setIdP(nil)
		_, err = e.svc.AssertEndUser(ctx, e.appID, "u-123", "", "")
		if errs.CodeOf(err) != wire.CodeInvalidRequest {
			t.Fatalf("assert with an IdP: %v", err)
		}
		verified := e.mustVerify(e.iss.Mint(t, map[string]any{"sub": "u-123"}))
		if verified.ID == u.ID {
			t.Fatal("an app-asserted user was taken over by a token with the same subject")
		}
	})
}

func TestIdPNeverReturnsTheSecret(t *testing.T) {
	e := newEnv(t, testutil.NewDB(t, database.SQLite))
	if _, err := e.svc.IdP(context.Background(), e.appID); !errors.Is(err, errs.ErrNotFound) {
		t.Fatalf("IdP before set: %v", err)
	}
	e.setIdP(func(in *identity.SetInput) { in.ClientID = "web"; in.ClientSecret = "hunter2-hunter2-hunter2" })
	idp, err := e.svc.IdP(context.Background(), e.appID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(fmt.Sprintf("%+v", idp), "hunter2") {
		t.Fatal("IdP carries the secret")
	}
	var rows []models.AuditEvent
	e.db.Gorm.Where("app_id = ?", e.appID).Find(&rows)
	for _, r := range rows {
		if strings.Contains(fmt.Sprintf("%+v", r), "hunter2") {
			t.Fatal("an audit row carries the secret")
		}
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	db := testutil.NewDB(b, database.SQLite)
	e := newEnv(b, db)
	e.setIdP(nil)
	tok := e.iss.Mint(b, map[string]any{"sub": "ada", "email": "ada@example.com", "groups": []string{"eng", "ops"}})
	e.mustVerify(tok)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := e.svc.Verify(ctx, e.appID, tok); err != nil {
			b.Fatal(err)
		}
	}
}
