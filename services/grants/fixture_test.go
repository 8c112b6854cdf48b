package grants_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/grants"
	"github.com/latchkey/latchkey/services/sdkauth"
	"github.com/latchkey/latchkey/services/vault"
	"github.com/latchkey/latchkey/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// world is one database with a real vault and the service under test, and
// seed helpers that fill defaults. Its clock is fixed so expiry is exact.
type world struct {
	t     testing.TB
	db    *gorm.DB
	vault *vault.Vault
	svc   *grants.Service
	now   time.Time
	org   string
	app   string // the app under test
	other string // another app of another organization
}

func newWorld(t testing.TB, db *database.DB) *world {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	clock := func() time.Time { return now }
	v := vault.New(db.Gorm, testutil.Keeper(t))
	w := &world{t: t, db: db.Gorm, vault: v, now: now,
		svc: grants.New(db.Gorm, v, audit.New(db.Gorm, clock), clock)}
	app := testutil.SeedApp(t, db.Gorm, now)
	w.org, w.app = app.OrganizationID, app.ID
	w.other = testutil.SeedApp(t, db.Gorm, now).ID
	return w
}

func (w *world) id() string {
	w.t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		w.t.Fatal(err)
	}
	return id.String()
}

func (w *world) create(v any) {
	w.t.Helper()
	testutil.Insert(w.t, w.db, v)
}

func (w *world) endUser(app, subject, status string) string {
	w.t.Helper()
	u := models.EndUser{ID: w.id(), AppID: app, Subject: subject, Source: models.EndUserSourceAppAsserted,
		Status: status, CreatedAt: w.now, UpdatedAt: w.now}
	w.create(&u)
	return u.ID
}

func (w *world) agent(app, name string) string {
	w.t.Helper()
	return testutil.SeedAgent(w.t, w.db, w.now, app, name)
}

func (w *world) providerConfig(app, provider, status string) string {
	w.t.Helper()
	pc := models.ProviderConfig{ID: w.id(), AppID: app, Provider: provider, ClientID: "client", Status: status,
		CreatedAt: w.now, UpdatedAt: w.now}
	w.create(&pc)
	return pc.ID
}

// oauthCredential stores an OAuth credential whose access token is sealed
// by the real vault.
func (w *world) oauthCredential(app, configID, account, token string, expiresAt *time.Time) string {
	w.t.Helper()
	id := w.id()
	sealed, err := w.vault.Seal(context.Background(), grants.AccessTokenBinding(app, id), []byte(token))
	if err != nil {
		w.t.Fatal(err)
	}
	c := models.Credential{ID: id, AppID: app, Kind: models.CredentialOAuth, ProviderConfigID: &configID,
		AccountIdentifier: account, AccessTokenCiphertext: sealed, TokenType: "bearer", ExpiresAt: expiresAt,
		Version: 1, RefreshState: models.RefreshIdle, CreatedAt: w.now, UpdatedAt: w.now}
	w.create(&c)
	return id
}

// managedSecret stores a managed secret and its sealed credential.
func (w *world) managedSecret(app, name, value string) (secretID, credID string) {
	w.t.Helper()
	secretID, credID = w.id(), w.id()
	sealed, err := w.vault.Seal(context.Background(), grants.AccessTokenBinding(app, credID), []byte(value))
	if err != nil {
		w.t.Fatal(err)
	}
	w.create(&models.ManagedSecret{ID: secretID, AppID: app, Name: name, Injection: "header:Authorization:Bearer {secret}",
		AllowedHosts: `["api.` + name + `.test"]`, CreatedAt: w.now, UpdatedAt: w.now})
	w.create(&models.Credential{ID: credID, AppID: app, Kind: models.CredentialManagedSecret, ManagedSecretID: &secretID,
		AccessTokenCiphertext: sealed, Version: 1, RefreshState: models.RefreshIdle, CreatedAt: w.now, UpdatedAt: w.now})
	return secretID, credID
}

// gspec describes a grant to seed; zero fields take defaults (the world's
// app, status active).
type gspec struct {
	app, cred, kind, principal, provider, account, status string
	expires                                               *time.Time
	secret                                                string
}

func (w *world) grant(s gspec) string {
	w.t.Helper()
	if s.app == "" {
		s.app = w.app
	}
	if s.status == "" {
		s.status = models.GrantActive
	}
	g := models.Grant{ID: w.id(), AppID: s.app, CredentialID: &s.cred, PrincipalKind: s.kind, PrincipalID: s.principal,
		Provider: s.provider, AccountIdentifier: s.account, Status: s.status, Scopes: "read write",
		Metadata: `{"plan":"pro"}`, ExpiresAt: s.expires, CreatedAt: w.now, UpdatedAt: w.now}
	if s.secret != "" {
		g.ManagedSecretID = &s.secret
	}
	if s.status == models.GrantRevoked {
		g.RevokedAt = &w.now
	}
	w.create(&g)
	return g.ID
}

func (w *world) delegation(grantID, agentID, endUserID, status string) string {
	w.t.Helper()
	d := models.Delegation{ID: w.id(), AppID: w.app, GrantID: grantID, AgentID: agentID, EndUserID: endUserID,
		Status: status, CreatedAt: w.now, UpdatedAt: w.now}
	w.create(&d)
	return d.ID
}

// appKey, agentKey and impersonating build authenticated callers of the
// world's app.
func (w *world) appKey() sdkauth.Caller {
	return sdkauth.Caller{OrganizationID: w.org, AppID: w.app, KeyID: "lk_app_aaaaaaaaaaaaaaaa", KeyKind: "app", RequestID: "req-1"}
}

func (w *world) agentKey(agentID string) sdkauth.Caller {
	return sdkauth.Caller{OrganizationID: w.org, AppID: w.app, KeyID: "lk_agent_bbbbbbbbbbbbbbbb", KeyKind: "agent", AgentID: agentID}
}

func (w *world) impersonating(agentID string) sdkauth.Caller {
	c := w.appKey()
	c.AgentID, c.Impersonating = agentID, true
	return c
}

// scene is the shared cast of the resolution, listing and revocation
// tests: named ids of users, agents, grants and delegations.
type scene struct {
	*world
	ids   map[string]string
	users map[string]*grants.EndUser
}

// newScene seeds, in the world's app unless noted:
//
//	users alice (groups eng), bob, dave (groups eng), carol (disabled)
//	agents bot, bot2; provider configs github … figma, gitlab disabled
//	aliceGH, aliceWork   alice's two GitHub accounts
//	systemGH             a system GitHub grant
//	bobGH, carolGH       other users' GitHub grants
//	engLinear            a group grant
//	aliceNotion          needs_reauth; aliceJira past expires_at; aliceAsana revoked
//	aliceGitlab          on a disabled provider config
//	aliceStripe, engStripe   own and group grant on one managed secret
//	aliceFigma, engFigma     two credentials with the same account "shared"
//	botOpenAI, botRevoked    grants bound to bot (the second revoked)
//	otherGH              a grant of another app
//	delegations: aliceGH→bot active, bobGH→bot revoked, carolGH→bot active
//	(carol disabled), aliceNotion→bot2 active, aliceJira→bot active
func newScene(t testing.TB, db *database.DB) *scene {
	t.Helper()
	w := newWorld(t, db)
	s := &scene{world: w, ids: map[string]string{}, users: map[string]*grants.EndUser{}}
	user := func(name, status string, groups ...string) string {
		id := w.endUser(w.app, name, status)
		s.ids[name] = id
		s.users[name] = &grants.EndUser{ID: id, AppID: w.app, Subject: name, Groups: groups, Status: status}
		return id
	}
	alice := user("alice", models.EndUserActive, "eng")
	bob := user("bob", models.EndUserActive)
	user("dave", models.EndUserActive, "eng")
	carol := user("carol", models.EndUserDisabled)
	s.ids["bot"] = w.agent(w.app, "bot")
	s.ids["bot2"] = w.agent(w.app, "bot2")

	pc := map[string]string{}
	for _, p := range []string{"github", "linear", "notion", "jira", "asana", "figma"} {
		pc[p] = w.providerConfig(w.app, p, models.ProviderConfigActive)
	}
	pc["gitlab"] = w.providerConfig(w.app, "gitlab", models.ProviderConfigDisabled)
	oauth := func(name, kind, principal, provider, account, status string, expires *time.Time) {
		cred := w.oauthCredential(w.app, pc[provider], account, "token-"+name, nil)
		s.ids[name] = w.grant(gspec{cred: cred, kind: kind, principal: principal, provider: provider,
			account: account, status: status, expires: expires})
	}
	past := w.now.Add(-time.Hour)
	oauth("aliceGH", models.PrincipalUser, alice, "github", "alice-gh", "", nil)
	oauth("aliceWork", models.PrincipalUser, alice, "github", "alice-work", "", nil)
	oauth("systemGH", models.PrincipalSystem, "", "github", "acme-org", "", nil)
	oauth("bobGH", models.PrincipalUser, bob, "github", "bob-gh", "", nil)
	oauth("carolGH", models.PrincipalUser, carol, "github", "carol-gh", "", nil)
	oauth("engLinear", models.PrincipalGroup, "eng", "linear", "eng-team", "", nil)
	oauth("aliceNotion", models.PrincipalUser, alice, "notion", "alice-n", models.GrantNeedsReauth, nil)
	oauth("aliceJira", models.PrincipalUser, alice, "jira", "alice-j", "", &past)
	oauth("aliceAsana", models.PrincipalUser, alice, "asana", "alice-a", models.GrantRevoked, nil)
	oauth("aliceGitlab", models.PrincipalUser, alice, "gitlab", "alice-gl", "", nil)
	oauth("aliceFigma", models.PrincipalUser, alice, "figma", "shared", "", nil)
	oauth("engFigma", models.PrincipalGroup, "eng", "figma", "shared", "", nil)

	stripe, stripeCred := w.managedSecret(w.app, "stripe", "sk_test_stripe_value")
	s.ids["stripeSecret"] = stripe
	s.ids["aliceStripe"] = w.grant(gspec{cred: stripeCred, kind: models.PrincipalUser, principal: alice, provider: "secret:stripe", secret: stripe})
	s.ids["engStripe"] = w.grant(gspec{cred: stripeCred, kind: models.PrincipalGroup, principal: "eng", provider: "secret:stripe", secret: stripe})
	openai, openaiCred := w.managedSecret(w.app, "openai", "sk-openai-value")
	s.ids["botOpenAI"] = w.grant(gspec{cred: openaiCred, kind: models.PrincipalAgent, principal: s.ids["bot"], provider: "secret:openai", secret: openai})
	ops, opsCred := w.managedSecret(w.app, "ops", "ops-value")
	s.ids["botRevoked"] = w.grant(gspec{cred: opsCred, kind: models.PrincipalAgent, principal: s.ids["bot"], provider: "secret:ops", secret: ops, status: models.GrantRevoked})

	otherPC := w.providerConfig(w.other, "github", models.ProviderConfigActive)
	otherUser := w.endUser(w.other, "alice", models.EndUserActive)
	otherCred := w.oauthCredential(w.other, otherPC, "other-gh", "token-other", nil)
	s.ids["otherGH"] = w.grant(gspec{app: w.other, cred: otherCred, kind: models.PrincipalUser, principal: otherUser, provider: "github", account: "other-gh"})

	s.ids["d:aliceGH>bot"] = w.delegation(s.ids["aliceGH"], s.ids["bot"], alice, models.DelegationActive)
	s.ids["d:bobGH>bot"] = w.delegation(s.ids["bobGH"], s.ids["bot"], bob, models.DelegationRevoked)
	s.ids["d:carolGH>bot"] = w.delegation(s.ids["carolGH"], s.ids["bot"], carol, models.DelegationActive)
	s.ids["d:aliceNotion>bot2"] = w.delegation(s.ids["aliceNotion"], s.ids["bot2"], alice, models.DelegationActive)
	s.ids["d:aliceJira>bot"] = w.delegation(s.ids["aliceJira"], s.ids["bot"], alice, models.DelegationActive)
	return s
}

// name returns the scene name of a grant id, for readable failures.
func (s *scene) name(id string) string {
	for k, v := range s.ids {
		if v == id {
			return k
		}
	}
	return id
}
