package e2e

// The "done means" test of the SDK API: a real Latchkey (core and HTTP
// server, in process) with an app, an identity provider (a real OIDC
// issuer), managed secrets, seeded OAuth grants and agents, driven through
// the Go SDK against a local upstream. Every endpoint, every grant-selection
// mode, every refused input; then the audit trail is cross-checked against
// every exchange on the wire, and the database, the logs and every error
// are searched for every secret the run handled. Once per dialect.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/egress"
	"github.com/latchkey/latchkey/services/grants"
	"github.com/latchkey/latchkey/services/identity"
	"github.com/latchkey/latchkey/services/secrets"
	"github.com/latchkey/latchkey/services/vault"
	"github.com/latchkey/latchkey/testutil"
	"github.com/latchkey/latchkey/testutil/oidcissuer"
	"github.com/latchkey/latchkey/testutil/testserver"
)

const (
	sdkapiAudience = oidcissuer.DefaultAudience // "latchkey-test"
	sdkapiCaller   = "sdkapi-e2e/1"
)

var sdkapiActor = apikeys.Actor{Kind: "system", ID: "sdkapi-e2e"}

func TestSDKAPI(t *testing.T) {
	for _, d := range testutil.Dialects(t) {
		t.Run(d, func(t *testing.T) { runSDKAPISuite(t, d) })
	}
}

// sdkapiWorld is everything one dialect's run set up.
type sdkapiWorld struct {
	t       *testing.T
	dialect string
	ctx     context.Context
	logs    *sdkapiLog
	up      *sdkapiUpstream
	perm    *sdkapiServer // LATCHKEY_ALLOW_PRIVATE_UPSTREAMS=true
	replica *sdkapiServer // a second replica of perm, same database
	strict  *sdkapiServer // the default: closed egress
	sec     *sdkapiSecrets
	iss     *oidcissuer.Issuer
	rogue   *oidcissuer.Issuer // another issuer, for "from another issuer"

	// Development-mode server.
	appID, otherAppID  string
	appKey, otherKey   wire.APIKey
	bearerID, queryID  string // managed secret ids
	headerID, otherSec string
	basicID, closedID  string
	corruptID          string
	values             map[string]string // secret name → value

	sysBearer, sysQuery, otherSys   string // system grants
	sysBasic, sysClosed             string
	sysCorrupt                      string
	aliceBearer, aliceHeader, engHd string // user and group grants
	agentBearer, carolQuery         string
	opsBearer                       string // a group grant the revocation test revokes
	oauthOcto, oauthHubot           string // seeded OAuth grants of alice
	aliceUserID, carolUserID        string

	agentID, otherAgentID string
	agentKey              wire.APIKey
	disabledAgentID       string
	disabledAgentKey      wire.APIKey

	jwt map[string]string // subject → valid token

	// Strict server.
	strictAppID string
	strictKey   wire.APIKey
	strictSys   string

	// agentOfKey maps agent key ids to their agent, for the audit check.
	agentOfKey map[string]string
	// expectAction overrides the audit action an exchange must have
	// (sdk.authenticate for refused authentications), by request id.
	expectAction map[string]string
	// errs collects the text of every error the SDK returned.
	errs []string
}

func runSDKAPISuite(t *testing.T, dialect string) {
	w := newSDKAPIWorld(t, dialect)

	t.Run("grant_id mode injects the system grant's header credential exactly once", w.testGrantIDHeader)
	t.Run("grant_id mode injects a query credential exactly once", w.testGrantIDQuery)
	t.Run("a JSON body reaches the upstream unchanged", w.testJSONBody)
	t.Run("upstream 404 and 500 are relayed as responses", w.testUpstreamStatuses)
	t.Run("a basic credential is injected as Authorization Basic exactly once", w.testBasicInjection)
	t.Run("upstream redirects are relayed, never followed", w.testRedirect)
	t.Run("an unreachable or slow upstream is Latchkey's error, audited as upstream_error", w.testUpstreamFailures)
	t.Run("JWT mode uses the user's own grant", w.testJWTOwnGrant)
	t.Run("JWT mode reaches a group grant", w.testJWTGroupGrant)
	t.Run("own and group grant on one secret resolve to the own grant", w.testOwnBeatsGroup)
	t.Run("two accounts of one provider are ambiguous until account picks one", w.testAmbiguity)
	t.Run("an agent key reaches its bound grant", w.testAgentBound)
	t.Run("app.GetAgent behaves like the agent", w.testImpersonation)
	t.Run("a delegated grant works until the agent gives up the delegation", w.testDelegation)
	t.Run("retrieve mode is forbidden until enabled and never returns a refresh token", w.testToken)
	t.Run("grants are listed and shown per caller", w.testListAndGet)
	t.Run("GrantManagedSecret binds through the SDK and is idempotent", w.testGrantManagedSecret)
	t.Run("a grant made and revoked through the SDK is audited with the calling key, caller and request", w.testGrantChangeAttribution)
	t.Run("a rotated managed secret is sent with its new value under the same grant", w.testRotation)
	t.Run("Me tells app, agent and impersonation apart", w.testMe)
	t.Run("agent management creates, lists, mints, deprecates and revokes", w.testAgentManagement)
	t.Run("a revoked grant answers grant_revoked", w.testRevokeGrant)
	t.Run("a corrupt stored injection rule or host list fails closed as internal", w.testCorruptConfig)
	t.Run("bad inputs are refused before any upstream request", w.testBadInputs)

	// These read what everything above left behind.
	t.Run("every upstream request is one proxied answer with one credential and nothing else", w.testUpstreamLedger)
	t.Run("every SDK exchange has exactly one matching audit row", w.testAuditMatchesExchanges)
	t.Run("no secret in the database, the logs or any error", w.testNoSecretLeaks)
}

func newSDKAPIWorld(t *testing.T, dialect string) *sdkapiWorld {
	t.Helper()
	w := &sdkapiWorld{
		t: t, dialect: dialect, ctx: context.Background(),
		logs: &sdkapiLog{}, sec: &sdkapiSecrets{},
		values:       map[string]string{},
		jwt:          map[string]string{},
		agentOfKey:   map[string]string{},
		expectAction: map[string]string{},
	}
	w.up = newSDKAPIUpstream(t)
	w.perm = startSDKAPIServer(t, dialect, "dev", true, w.logs)
	w.replica = startSDKAPIReplica(t, w.perm, w.logs)
	w.strict = startSDKAPIServer(t, dialect, "strict", false, w.logs)
	w.iss = oidcissuer.New(t)
	w.rogue = oidcissuer.New(t)
	ctx := w.ctx
	core := w.perm.Core

	// Apps.
	seed := testserver.NewSeed(t, core)
	app, key := seed.App("sdkapi-app")
	w.appID, w.appKey = app.ID, key.APIKey
	w.sec.AddKey("app key", key.APIKey)
	other, okey := seed.App("sdkapi-other")
	w.otherAppID, w.otherKey = other.ID, okey.APIKey
	w.sec.AddKey("other app key", okey.APIKey)

	// The app's identity provider: the test issuer, with a groups claim
	// and a client secret (sealed; it must never appear either).
	idpSecret := "idp-client-secret-" + uuid.NewString()
	w.sec.Add("idp client secret", idpSecret)
	if _, err := core.Identity.SetIdP(ctx, identity.SetInput{AppID: w.appID, Issuer: w.iss.URL, Audience: sdkapiAudience,
		GroupsClaim: "groups", ClientID: "latchkey-test-client", ClientSecret: idpSecret, Actor: sdkapiActor}); err != nil {
		t.Fatalf("set IdP: %v", err)
	}

	// Managed secrets: header, query and a custom header injection.
	mk := func(appID, name, inject string, hosts ...string) string {
		v := "lkv-" + name + "-" + strings.ReplaceAll(uuid.NewString(), "-", "")
		w.values[name] = v
		w.sec.Add("managed secret "+name, v)
		id, err := core.Secrets.Create(ctx, secrets.CreateInput{AppID: appID, Name: name, Value: v, Injection: inject,
			AllowedHosts: hosts, Actor: sdkapiActor})
		if err != nil {
			t.Fatalf("create secret %s: %v", name, err)
		}
		return id
	}
	hp := w.up.HostPort()
	w.bearerID = mk(w.appID, "bearer-api", "header:Authorization:Bearer {secret}", hp)
	w.queryID = mk(w.appID, "query-api", "query:api_key:{secret}", hp)
	w.headerID = mk(w.appID, "header-api", "header:X-Api-Key:{secret}", hp)
	w.otherSec = mk(w.otherAppID, "other-api", "header:Authorization:Bearer {secret}", hp)
	w.basicID = mk(w.appID, "basic-api", "basic:svc:{secret}", hp)
	// On the wire a basic credential is base64("svc:" + value).
	w.values["basic-api (as sent)"] = base64.StdEncoding.EncodeToString([]byte("svc:" + w.values["basic-api"]))
	w.sec.Add("managed secret basic-api (as sent)", w.values["basic-api (as sent)"])
	// Query injection, so an error quoting the upstream URL would quote
	// the credential.
	w.closedID = mk(w.appID, "closed-api", "query:api_key:{secret}", closedLoopbackPort(t))

	// An agent, created through the SDK (its first key is a secret too).
	created, err := w.app().CreateAgent(ctx, wire.CreateAgentRequest{Name: "research-bot", DisplayName: "Research bot"})
	if err != nil {
		t.Fatalf("create agent: %v", err)
	}
	w.agentID, w.agentKey = created.Agent.AgentID, created.Key.APIKey
	w.agentOfKey[created.Key.APIKey.KeyID()] = w.agentID
	w.sec.AddKey("agent key", created.Key.APIKey)
	otherAgent := seed.Agent(w.otherAppID, "other-bot")
	w.otherAgentID = otherAgent.Agent.ID
	w.agentOfKey[otherAgent.Key.KeyID] = otherAgent.Agent.ID
	w.sec.AddKey("other agent key", otherAgent.Key.APIKey)

	// Grants through the real service.
	grant := func(appID, secretID, principal string) string {
		g, err := core.Secrets.Grant(ctx, secrets.GrantInput{AppID: appID, SecretID: secretID, Principal: principal, Actor: sdkapiActor})
		if err != nil {
			t.Fatalf("grant %s to %s: %v", secretID, principal, err)
		}
		return g.GrantID
	}
	w.sysBearer = grant(w.appID, w.bearerID, "system")
	w.sysQuery = grant(w.appID, w.queryID, "system")
	w.aliceBearer = grant(w.appID, w.bearerID, "user:alice")
	w.aliceHeader = grant(w.appID, w.headerID, "user:alice")
	w.engHd = grant(w.appID, w.headerID, "group:eng")
	w.agentBearer = grant(w.appID, w.bearerID, "agent:"+w.agentID)
	w.carolQuery = grant(w.appID, w.queryID, "user:carol")
	w.opsBearer = grant(w.appID, w.bearerID, "group:ops")
	w.otherSys = grant(w.otherAppID, w.otherSec, "system")
	w.sysBasic = grant(w.appID, w.basicID, "system")
	w.sysClosed = grant(w.appID, w.closedID, "system")
	w.corruptID = mk(w.appID, "corrupt-api", "header:Authorization:Bearer {secret}", hp)
	w.sysCorrupt = grant(w.appID, w.corruptID, "system")
	grant(w.appID, w.bearerID, "user:erin")
	if err := core.DB.Gorm.Model(&models.EndUser{}).Where("app_id = ? AND subject = ?", w.appID, "erin").
		Update("status", models.EndUserDisabled).Error; err != nil {
		t.Fatal(err)
	}
	disabled := seed.Agent(w.appID, "disabled-bot")
	w.disabledAgentID, w.disabledAgentKey = disabled.Agent.ID, disabled.Key.APIKey
	w.agentOfKey[disabled.Key.KeyID] = disabled.Agent.ID
	w.sec.AddKey("disabled agent key", disabled.Key.APIKey)
	grant(w.appID, w.bearerID, "agent:"+w.disabledAgentID)
	if err := core.DB.Gorm.Model(&models.Agent{}).Where("id = ?", w.disabledAgentID).Update("status", models.AgentDisabled).Error; err != nil {
		t.Fatal(err)
	}

	w.aliceUserID = w.endUserID("alice")
	w.carolUserID = w.endUserID("carol")

	// Alice connected two GitHub accounts (no Connect flow yet: seeded the
	// way the OAuth callback will store them, sealed by the vault).
	w.oauthOcto = w.seedOAuthGrant("octocat")
	w.oauthHubot = w.seedOAuthGrant("hubot")

	// Carol delegated her query-api grant to the agent.
	now := time.Now().UTC()
	w.seedDelegation(w.carolQuery, w.carolUserID, now)

	// End-user tokens.
	for sub, groups := range map[string][]string{"alice": {"eng"}, "bob": {"eng", "ops"}, "carol": {}, "dave": {}, "erin": {}} {
		tok := w.iss.Mint(t, map[string]any{"sub": sub, "groups": groups, "email": sub + "@example.test"})
		w.jwt[sub] = tok
		w.sec.AddJWT("jwt of "+sub, tok)
	}

	// The strict server: its own app, secret and system grant. The secret
	// allows the upstream by IP literal, by a loopback name and by IPv6, so
	// only the SSRF guards stand between a call and the upstream.
	sseed := testserver.NewSeed(t, w.strict.Core)
	sapp, skey := sseed.App("sdkapi-strict")
	w.strictAppID, w.strictKey = sapp.ID, skey.APIKey
	w.sec.AddKey("strict app key", skey.APIKey)
	sv := "lkv-strict-" + strings.ReplaceAll(uuid.NewString(), "-", "")
	w.sec.Add("strict managed secret", sv)
	sid, err := w.strict.Core.Secrets.Create(ctx, secrets.CreateInput{AppID: w.strictAppID, Name: "strict-api", Value: sv,
		Injection: "header:Authorization:Bearer {secret}", Actor: sdkapiActor,
		AllowedHosts: []string{hp, "localhost:" + w.up.Port(), "[::1]:" + w.up.Port(), "api.example.com"}})
	if err != nil {
		t.Fatalf("strict secret: %v", err)
	}
	g, err := w.strict.Core.Secrets.Grant(ctx, secrets.GrantInput{AppID: w.strictAppID, SecretID: sid, Principal: "system", Actor: sdkapiActor})
	if err != nil {
		t.Fatal(err)
	}
	w.strictSys = g.GrantID
	return w
}

// endUserID is the end_users.id of a subject of the app (pre-provisioned by
// a user grant).
func (w *sdkapiWorld) endUserID(subject string) string {
	w.t.Helper()
	var u models.EndUser
	if err := w.perm.Core.DB.Gorm.Where("app_id = ? AND subject = ?", w.appID, subject).Take(&u).Error; err != nil {
		w.t.Fatalf("end user %s: %v", subject, err)
	}
	return u.ID
}

// seedOAuthGrant stores a GitHub credential of alice for account, with its
// access and refresh tokens sealed under their vault bindings, and a user
// grant on it; it returns the grant id.
func (w *sdkapiWorld) seedOAuthGrant(account string) string {
	t := w.t
	t.Helper()
	ctx, core := w.ctx, w.perm.Core
	db := core.DB.Gorm
	now := time.Now().UTC()
	// Rows are inserted as column maps, not model structs, so the seed does
	// not depend on how the models spell their Go fields.
	var pcID string
	if err := db.Table("provider_configs").Select("id").Where("app_id = ? AND provider = ?", w.appID, "github").Scan(&pcID).Error; err != nil {
		t.Fatal(err)
	}
	if pcID == "" {
		pcID = uuid.Must(uuid.NewV7()).String()
		cs := "gh-client-secret-" + uuid.NewString()
		w.sec.Add("github client secret", cs)
		sealed, err := core.Vault.Seal(ctx, vault.Binding{AppID: w.appID, Table: "provider_configs", RowID: pcID, Column: "client_secret_ciphertext"}, []byte(cs))
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Table("provider_configs").Create(map[string]any{"id": pcID, "app_id": w.appID, "provider": "github",
			"client_id": "gh-client-id", "client_secret_ciphertext": sealed, "scopes": "repo read:user",
			"status": models.ProviderConfigActive, "created_at": now, "updated_at": now}).Error; err != nil {
			t.Fatalf("seed provider config: %v", err)
		}
	}
	credID := uuid.Must(uuid.NewV7()).String()
	access := "gho_access_" + account + "_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	refresh := "ghr_refresh_" + account + "_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	w.values["oauth access "+account] = access
	w.values["oauth refresh "+account] = refresh
	w.sec.Add("oauth access token "+account, access)
	w.sec.Add("oauth refresh token "+account, refresh)
	at, err := core.Vault.Seal(ctx, grants.AccessTokenBinding(w.appID, credID), []byte(access))
	if err != nil {
		t.Fatal(err)
	}
	rt, err := core.Vault.Seal(ctx, vault.Binding{AppID: w.appID, Table: "credentials", RowID: credID, Column: "refresh_token_ciphertext"}, []byte(refresh))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Table("credentials").Create(map[string]any{"id": credID, "app_id": w.appID, "kind": models.CredentialOAuth,
		"provider_config_id": pcID, "account_identifier": account, "access_token_ciphertext": at,
		"refresh_token_ciphertext": rt, "token_type": "bearer", "scopes": "repo read:user", "expires_at": now.Add(2 * time.Hour),
		"version": 1, "refresh_state": models.RefreshIdle, "created_at": now, "updated_at": now}).Error; err != nil {
		t.Fatalf("seed credential: %v", err)
	}
	gid := uuid.Must(uuid.NewV7()).String()
	if err := db.Table("grants").Create(map[string]any{"id": gid, "app_id": w.appID, "credential_id": credID,
		"principal_kind": models.PrincipalUser, "principal_id": w.aliceUserID, "provider": "github", "account_identifier": account,
		"status": models.GrantActive, "scopes": "repo read:user", "metadata": "{}", "created_at": now, "updated_at": now}).Error; err != nil {
		t.Fatalf("seed grant: %v", err)
	}
	return gid
}

// seedDelegation records that end user userID delegated grantID to the
// agent, as an approved Connect consent will.
func (w *sdkapiWorld) seedDelegation(grantID, userID string, now time.Time) {
	w.t.Helper()
	if err := w.perm.Core.DB.Gorm.Table("delegations").Create(map[string]any{"id": uuid.Must(uuid.NewV7()).String(),
		"app_id": w.appID, "grant_id": grantID, "agent_id": w.agentID, "end_user_id": userID,
		"status": models.DelegationActive, "created_at": now, "updated_at": now}).Error; err != nil {
		w.t.Fatalf("seed delegation: %v", err)
	}
}

// Clients.

func (w *sdkapiWorld) newApp(s *sdkapiServer, key wire.APIKey, wrap func(http.RoundTripper) http.RoundTripper, extra ...sdk.Option) *sdk.App {
	w.t.Helper()
	a, err := sdk.NewApp(key.Reveal(), s.Opts(wrap, append([]sdk.Option{sdk.WithCaller(sdkapiCaller)}, extra...)...)...)
	if err != nil {
		w.t.Fatal(err)
	}
	return a
}

// app is the development server's app client, acting as itself.
func (w *sdkapiWorld) app() *sdk.App { return w.newApp(w.perm, w.appKey, nil) }

// user is the app client carrying an end user's token.
func (w *sdkapiWorld) user(token string) *sdk.App {
	return w.newApp(w.perm, w.appKey, nil, sdk.WithUserToken(func(context.Context) (string, error) { return token, nil }))
}

func (w *sdkapiWorld) newAgent(key wire.APIKey, extra ...sdk.Option) *sdk.Agent {
	w.t.Helper()
	a, err := sdk.NewAgent(key.Reveal(), w.perm.Opts(nil, append([]sdk.Option{sdk.WithCaller(sdkapiCaller)}, extra...)...)...)
	if err != nil {
		w.t.Fatal(err)
	}
	return a
}

func (w *sdkapiWorld) agent() *sdk.Agent { return w.newAgent(w.agentKey) }

// note keeps the text of every error the SDK returned, for the leak scan.
func (w *sdkapiWorld) note(err error) error {
	if err != nil {
		w.errs = append(w.errs, err.Error())
	}
	return err
}

type sdkapiProxier interface {
	Proxy(ctx context.Context, r sdk.Request) (*http.Response, error)
}

// proxyOK makes a proxied call that must come back from the upstream, and
// checks what Latchkey adds to (and strips from) the upstream's answer.
func (w *sdkapiWorld) proxyOK(t *testing.T, c sdkapiProxier, r sdk.Request, wantStatus int, wantGrant string) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Proxy(w.ctx, r)
	if w.note(err) != nil {
		t.Fatalf("proxy %s %s: %v", r.Method, r.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != wantStatus {
		t.Fatalf("proxy status %d, want %d: %s", resp.StatusCode, wantStatus, body)
	}
	if got := resp.Header.Get(wire.HeaderProxied); got != "true" {
		t.Errorf("Latchkey-Proxied = %q, want true (an upstream forgery must not pass either)", got)
	}
	if got := resp.Header.Get(wire.HeaderGrantID); got != wantGrant {
		t.Errorf("Latchkey-Grant-Id = %q, want %q", got, wantGrant)
	}
	if resp.Header.Get(wire.HeaderRequestID) == "" {
		t.Error("no Latchkey-Request-Id on a proxied answer")
	}
	if resp.Header.Get("X-Upstream") != "yes" {
		t.Error("the upstream's own headers were not relayed")
	}
	if resp.Header.Get("Set-Cookie") != "" {
		t.Error("the upstream's Set-Cookie was relayed")
	}
	if resp.Header.Get(wire.HeaderKeyDeprecated) != "" {
		t.Error("the upstream's forged Latchkey-Key-Deprecated was relayed")
	}
	return resp, body
}

// wantErr asserts err is Latchkey's own error with status and code.
func (w *sdkapiWorld) wantErr(t *testing.T, err error, status int, code wire.ErrorCode) *sdk.Error {
	t.Helper()
	w.note(err)
	var e *sdk.Error
	if !errors.As(err, &e) {
		t.Fatalf("want Latchkey error %d %s, got %v", status, code, err)
	}
	if e.Status != status || e.Code != code {
		t.Errorf("got %d %s (%s), want %d %s", e.Status, e.Code, e.Message, status, code)
	}
	if e.RequestID == "" {
		t.Error("error without a request id")
	}
	return e
}

// checkUpstreamCredential asserts the upstream's last request carried the
// secret exactly once, and none of the others.
func (w *sdkapiWorld) checkUpstreamCredential(t *testing.T, req sdkapiUpstreamReq, secretName string) {
	t.Helper()
	v := w.values[secretName]
	dump := req.Dump()
	if n := strings.Count(dump, v); n != 1 {
		t.Errorf("the upstream saw the %s credential %d times, want exactly once", secretName, n)
	}
	for name, other := range w.values {
		if name != secretName && strings.Contains(dump, other) {
			t.Errorf("the upstream saw the %s credential too", name)
		}
	}
}

// The tests.

func (w *sdkapiWorld) testGrantIDHeader(t *testing.T) {
	before := w.up.Count()
	resp, body := w.proxyOK(t, w.app(), sdk.Request{Method: "GET", URL: w.up.URL("/v1/items?page=2&sort=asc"),
		GrantID: w.sysBearer, Headers: map[string]string{"Accept": "application/json", "X-Trace": "t-1"},
		Reason: "list items", Context: map[string]string{"run_id": "r-42"}}, 200, w.sysBearer)
	if w.up.Count() != before+1 {
		t.Fatalf("upstream got %d requests, want 1", w.up.Count()-before)
	}
	if !bytes.Contains(body, []byte(`"/v1/items"`)) {
		t.Errorf("body is not the upstream's: %s", body)
	}
	_ = resp
	req := w.up.Last(t)
	if req.Method != "GET" || req.Path != "/v1/items" || req.RawQuery != "page=2&sort=asc" {
		t.Errorf("upstream got %s %s?%s", req.Method, req.Path, req.RawQuery)
	}
	if got := req.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+w.values["bearer-api"] {
		t.Errorf("upstream Authorization has %d values, want exactly the injected bearer credential", len(got))
	}
	if req.Header.Get("X-Trace") != "t-1" || req.Header.Get("Accept") != "application/json" {
		t.Errorf("caller headers not forwarded: %v", req.Header)
	}
	if ua := req.Header.Get("User-Agent"); ua != egress.DefaultUserAgent {
		t.Errorf("User-Agent %q, want %q", ua, egress.DefaultUserAgent)
	}
	w.checkUpstreamCredential(t, req, "bearer-api")

	ex := w.perm.Rec.Last(t)
	row := w.oneSDKRow(t, w.perm, ex.RequestID)
	if row.Action != "sdk.proxy" || row.Outcome != models.OutcomeSuccess || row.GrantID != w.sysBearer ||
		row.UpstreamStatus != 200 || row.KeyID != w.appKey.KeyID() || row.Caller != sdkapiCaller ||
		row.PrincipalKind != models.PrincipalSystem || row.Provider != "secret:bearer-api" || row.Path != "/v1/items" ||
		row.Method != "POST" || row.Reason != "list items" || !strings.Contains(row.Context, "r-42") {
		t.Errorf("audit row %+v", row)
	}
	if strings.Contains(row.Path, "page=") || strings.Contains(row.Host, "page=") {
		t.Error("the audit row kept the upstream query string")
	}
}

func (w *sdkapiWorld) testGrantIDQuery(t *testing.T) {
	w.proxyOK(t, w.app(), sdk.Request{URL: w.up.URL("/v1/search?q=latchkey"), GrantID: w.sysQuery}, 200, w.sysQuery)
	req := w.up.Last(t)
	q, err := url.ParseQuery(req.RawQuery)
	if err != nil {
		t.Fatal(err)
	}
	if got := q["api_key"]; len(got) != 1 || got[0] != w.values["query-api"] {
		t.Errorf("upstream api_key has %d values, want exactly the injected one", len(got))
	}
	if q.Get("q") != "latchkey" {
		t.Errorf("the caller's query was not kept: %q", req.RawQuery)
	}
	if req.Header.Get("Authorization") != "" {
		t.Error("a query-injected credential also sent an Authorization header")
	}
	w.checkUpstreamCredential(t, req, "query-api")
	// The audit row must not keep the query (it holds the credential).
	row := w.oneSDKRow(t, w.perm, w.perm.Rec.Last(t).RequestID)
	if strings.Contains(row.Path, "api_key") || strings.Contains(row.Path, "?") {
		t.Errorf("audit path %q keeps the query", row.Path)
	}
}

func (w *sdkapiWorld) testJSONBody(t *testing.T) {
	payload := map[string]any{"title": "hello", "n": 3}
	w.proxyOK(t, w.app(), sdk.Request{Method: "POST", URL: w.up.URL("/v1/items"), GrantID: w.sysBearer, JSON: payload}, 200, w.sysBearer)
	req := w.up.Last(t)
	if req.Method != "POST" || req.Header.Get("Content-Type") != "application/json" {
		t.Errorf("upstream got %s with Content-Type %q", req.Method, req.Header.Get("Content-Type"))
	}
	var got map[string]any
	if err := json.Unmarshal(req.Body, &got); err != nil || got["title"] != "hello" || got["n"] != float64(3) {
		t.Errorf("upstream body %s (%v)", req.Body, err)
	}
	raw := []byte("raw\x00bytes\xff")
	w.proxyOK(t, w.app(), sdk.Request{Method: "PUT", URL: w.up.URL("/v1/blob"), GrantID: w.sysBearer, Body: raw,
		Headers: map[string]string{"Content-Type": "application/octet-stream"}}, 200, w.sysBearer)
	if req := w.up.Last(t); !bytes.Equal(req.Body, raw) || req.Method != "PUT" {
		t.Errorf("raw body changed on the way: %q", req.Body)
	}
}

func (w *sdkapiWorld) testUpstreamStatuses(t *testing.T) {
	for _, tc := range []struct {
		status  int
		outcome string
	}{{404, models.OutcomeSuccess}, {500, models.OutcomeUpstreamError}} {
		_, body := w.proxyOK(t, w.app(), sdk.Request{URL: w.up.URL("/status/" + strconv.Itoa(tc.status)), GrantID: w.sysBearer}, tc.status, w.sysBearer)
		if !bytes.Contains(body, []byte(`"status":`+strconv.Itoa(tc.status))) {
			t.Errorf("upstream %d body not relayed: %s", tc.status, body)
		}
		row := w.oneSDKRow(t, w.perm, w.perm.Rec.Last(t).RequestID)
		if row.Outcome != tc.outcome || row.UpstreamStatus != tc.status || row.ErrorCode != "" || row.GrantID != w.sysBearer {
			t.Errorf("upstream %d: audit outcome %q status %d code %q grant %q, want %q", tc.status, row.Outcome, row.UpstreamStatus, row.ErrorCode, row.GrantID, tc.outcome)
		}
	}
}

func (w *sdkapiWorld) testBasicInjection(t *testing.T) {
	w.proxyOK(t, w.app(), sdk.Request{URL: w.up.URL("/v1/basic"), GrantID: w.sysBasic}, 200, w.sysBasic)
	req := w.up.Last(t)
	if got := req.Header.Values("Authorization"); len(got) != 1 || got[0] != "Basic "+w.values["basic-api (as sent)"] {
		t.Errorf("upstream Authorization has %d values, want exactly Basic base64(svc:<secret>)", len(got))
	}
	w.checkUpstreamCredential(t, req, "basic-api (as sent)")
}

func (w *sdkapiWorld) testRedirect(t *testing.T) {
	before := w.up.Count()
	resp, _ := w.proxyOK(t, w.app(), sdk.Request{URL: w.up.URL("/redirect"), GrantID: w.sysBearer}, http.StatusFound, w.sysBearer)
	if resp.Header.Get("Location") != "/v1/after-redirect" {
		t.Errorf("Location %q not relayed", resp.Header.Get("Location"))
	}
	if n := w.up.Count() - before; n != 1 {
		t.Errorf("the upstream received %d requests; a redirect was followed", n)
	}
}

func (w *sdkapiWorld) testUpstreamFailures(t *testing.T) {
	app := w.app()
	_, err := app.Proxy(w.ctx, sdk.Request{URL: "http://" + w.closedHost(t) + "/v1/x", GrantID: w.sysClosed})
	e := w.wantErr(t, err, 502, wire.CodeUpstreamUnreachable)
	if row := w.oneSDKRow(t, w.perm, e.RequestID); row.Outcome != models.OutcomeUpstreamError || row.ErrorCode != "upstream_unreachable" || row.GrantID != w.sysClosed {
		t.Errorf("unreachable audit row %+v", row)
	}
	before := w.up.Count()
	_, err = app.Proxy(w.ctx, sdk.Request{URL: w.up.URL("/slow"), GrantID: w.sysQuery, Timeout: 200 * time.Millisecond})
	e = w.wantErr(t, err, 504, wire.CodeUpstreamTimeout)
	if row := w.oneSDKRow(t, w.perm, e.RequestID); row.Outcome != models.OutcomeUpstreamError || row.ErrorCode != "upstream_timeout" {
		t.Errorf("timeout audit row %+v", row)
	}
	// At most one: the call is never retried (and on a very slow machine
	// the deadline may pass before the request arrives).
	if n := w.up.Count() - before; n > 1 {
		t.Errorf("the slow upstream received %d requests, want at most 1", n)
	}
}

// closedHost is the allowed host of the closed-api secret.
func (w *sdkapiWorld) closedHost(t *testing.T) string {
	t.Helper()
	var m models.ManagedSecret
	if err := w.perm.Core.DB.Gorm.Where("id = ?", w.closedID).Take(&m).Error; err != nil {
		t.Fatal(err)
	}
	var hosts []string
	if err := json.Unmarshal([]byte(m.AllowedHosts), &hosts); err != nil || len(hosts) != 1 {
		t.Fatalf("closed-api hosts %q (%v)", m.AllowedHosts, err)
	}
	return hosts[0]
}

// closedLoopbackPort is 127.0.0.1:<a port nothing listens on>.
func closedLoopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// testGrantChangeAttribution: besides the sdk.* row of the call, a change
// of access writes its own row; made through the SDK, that row names the
// calling key, its Latchkey-Caller and the request, like grant.revoke and
// key.mint do, so an operator can tie the change to the call.
func (w *sdkapiWorld) testGrantChangeAttribution(t *testing.T) {
	app := w.app()
	g, err := app.GrantManagedSecret(w.ctx, w.headerID, wire.Principal{Kind: wire.PrincipalGroup, ID: "audit-team"})
	if w.note(err) != nil {
		t.Fatal(err)
	}
	granted := w.perm.Rec.Last(t)
	if err := w.note(app.RevokeGrant(w.ctx, g.GrantID)); err != nil {
		t.Fatal(err)
	}
	revoked := w.perm.Rec.Last(t)
	for _, tc := range []struct {
		action, requestID string
	}{{"grant.create", granted.RequestID}, {"grant.revoke", revoked.RequestID}} {
		var rows []models.AuditEvent
		if err := w.perm.Core.DB.Gorm.Where("action = ? AND grant_id = ?", tc.action, g.GrantID).Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 {
			t.Errorf("%d %s rows for grant %s, want 1", len(rows), tc.action, g.GrantID)
			continue
		}
		r := rows[0]
		if r.ActorKind != "key" || r.ActorID != w.appKey.KeyID() || r.KeyID != w.appKey.KeyID() ||
			r.Caller != sdkapiCaller || r.RequestID != tc.requestID {
			t.Errorf("%s row: actor %s/%q key %q caller %q request %q; want key/%s key %s caller %q request %q",
				tc.action, r.ActorKind, r.ActorID, r.KeyID, r.Caller, r.RequestID,
				w.appKey.KeyID(), w.appKey.KeyID(), sdkapiCaller, tc.requestID)
		}
	}
}

func (w *sdkapiWorld) testRotation(t *testing.T) {
	old := w.values["header-api"]
	next := "lkv-header-api-rotated-" + strings.ReplaceAll(uuid.NewString(), "-", "")
	w.sec.Add("managed secret header-api (rotated)", next)
	if err := w.perm.Core.Secrets.Rotate(w.ctx, w.appID, w.headerID, next, sdkapiActor); err != nil {
		t.Fatal(err)
	}
	w.values["header-api (before rotation)"] = old
	w.values["header-api"] = next
	w.proxyOK(t, w.user(w.jwt["bob"]), sdk.Request{URL: w.up.URL("/v1/team"), Provider: "secret:header-api"}, 200, w.engHd)
	req := w.up.Last(t)
	if req.Header.Get("X-Api-Key") != next {
		t.Error("the upstream did not get the rotated value")
	}
	w.checkUpstreamCredential(t, req, "header-api")
}

func (w *sdkapiWorld) testJWTOwnGrant(t *testing.T) {
	alice := w.user(w.jwt["alice"])
	w.proxyOK(t, alice, sdk.Request{URL: w.up.URL("/v1/me"), Provider: "secret:bearer-api"}, 200, w.aliceBearer)
	req := w.up.Last(t)
	w.checkUpstreamCredential(t, req, "bearer-api")
	if req.Header.Get(wire.HeaderUserToken) != "" || strings.Contains(req.Dump(), w.jwt["alice"]) {
		t.Error("the user token reached the upstream")
	}
	row := w.oneSDKRow(t, w.perm, w.perm.Rec.Last(t).RequestID)
	if row.PrincipalKind != models.PrincipalUser || row.PrincipalID != w.aliceUserID || row.GrantID != w.aliceBearer {
		t.Errorf("audit principal %s/%s grant %s", row.PrincipalKind, row.PrincipalID, row.GrantID)
	}
	// The user's own grant by id works too.
	w.proxyOK(t, alice, sdk.Request{URL: w.up.URL("/v1/me"), GrantID: w.aliceBearer}, 200, w.aliceBearer)
}

func (w *sdkapiWorld) testJWTGroupGrant(t *testing.T) {
	bob := w.user(w.jwt["bob"])
	w.proxyOK(t, bob, sdk.Request{URL: w.up.URL("/v1/team"), Provider: "secret:header-api"}, 200, w.engHd)
	req := w.up.Last(t)
	if got := req.Header.Values("X-Api-Key"); len(got) != 1 || got[0] != w.values["header-api"] {
		t.Errorf("upstream X-Api-Key has %d values, want exactly the injected one", len(got))
	}
	w.checkUpstreamCredential(t, req, "header-api")
	// Bob is in ops too: the ops group grant on bearer-api is his way in.
	w.proxyOK(t, bob, sdk.Request{URL: w.up.URL("/v1/ops"), Provider: "secret:bearer-api"}, 200, w.opsBearer)
}

func (w *sdkapiWorld) testOwnBeatsGroup(t *testing.T) {
	w.proxyOK(t, w.user(w.jwt["alice"]), sdk.Request{URL: w.up.URL("/v1/team"), Provider: "secret:header-api"}, 200, w.aliceHeader)
}

func (w *sdkapiWorld) testAmbiguity(t *testing.T) {
	alice := w.user(w.jwt["alice"])
	before, conns := w.up.Count(), w.up.Conns()
	_, err := alice.Proxy(w.ctx, sdk.Request{URL: "https://api.github.com/user", Provider: "github"})
	w.note(err)
	var amb *sdk.AmbiguousGrantError
	if !errors.As(err, &amb) {
		t.Fatalf("want *sdk.AmbiguousGrantError, got %v", err)
	}
	if !slices.Equal(amb.Accounts, []string{"hubot", "octocat"}) || amb.Err == nil || amb.Err.Status != 409 {
		t.Errorf("ambiguity lists %v (status %v), want [hubot octocat] 409", amb.Accounts, amb.Err)
	}
	if !errors.Is(err, sdk.ErrAmbiguousGrant) {
		t.Error("errors.Is(err, ErrAmbiguousGrant) is false")
	}
	row := w.oneSDKRow(t, w.perm, amb.Err.RequestID)
	if row.Outcome != models.OutcomeDenied || row.ErrorCode != "ambiguous_grant" || row.GrantID != "" {
		t.Errorf("ambiguity audit row %+v", row)
	}

	// Account picks one. The URL is the local upstream, which is not one of
	// GitHub's API hosts: resolution succeeds (the audit row names the
	// octocat grant) and egress refuses before any connection, so nothing
	// is sent to github.com either.
	_, err = alice.Proxy(w.ctx, sdk.Request{URL: w.up.URL("/user"), Provider: "github", Account: "OctoCat"})
	e := w.wantErr(t, err, 403, wire.CodeHostNotAllowed)
	if row := w.oneSDKRow(t, w.perm, e.RequestID); row.GrantID != w.oauthOcto || row.Provider != "github" {
		t.Errorf("account narrowing resolved grant %q, want octocat's %q", row.GrantID, w.oauthOcto)
	}
	_, err = alice.Proxy(w.ctx, sdk.Request{URL: w.up.URL("/user"), Provider: "github", Account: "nobody"})
	w.wantErr(t, err, 404, wire.CodeGrantNotFound)
	if w.up.Count() != before || w.up.Conns() != conns {
		t.Error("an ambiguous or refused call reached the upstream")
	}
}

func (w *sdkapiWorld) testAgentBound(t *testing.T) {
	ag := w.agent()
	w.proxyOK(t, ag, sdk.Request{URL: w.up.URL("/v1/agent"), GrantID: w.agentBearer}, 200, w.agentBearer)
	w.checkUpstreamCredential(t, w.up.Last(t), "bearer-api")
	w.proxyOK(t, ag, sdk.Request{URL: w.up.URL("/v1/agent"), Provider: "secret:bearer-api"}, 200, w.agentBearer)
	row := w.oneSDKRow(t, w.perm, w.perm.Rec.Last(t).RequestID)
	if row.AgentID != w.agentID || row.KeyID != w.agentKey.KeyID() || row.PrincipalKind != models.PrincipalAgent {
		t.Errorf("agent audit row %+v", row)
	}
	before := w.up.Count()
	_, err := ag.Proxy(w.ctx, sdk.Request{URL: w.up.URL("/v1/agent"), GrantID: w.sysBearer})
	w.wantErr(t, err, 403, wire.CodeNoDelegatedGrant)
	_, err = ag.Proxy(w.ctx, sdk.Request{URL: w.up.URL("/v1/agent"), Provider: "secret:header-api"})
	w.wantErr(t, err, 403, wire.CodeNoDelegatedGrant)
	if w.up.Count() != before {
		t.Error("an unbound grant reached the upstream")
	}
}

func (w *sdkapiWorld) testImpersonation(t *testing.T) {
	as := w.app().GetAgent(w.agentID)
	w.proxyOK(t, as, sdk.Request{URL: w.up.URL("/v1/as-agent"), GrantID: w.agentBearer}, 200, w.agentBearer)
	row := w.oneSDKRow(t, w.perm, w.perm.Rec.Last(t).RequestID)
	if row.AgentID != w.agentID || row.KeyID != w.appKey.KeyID() {
		t.Errorf("impersonation audit row agent %q key %q", row.AgentID, row.KeyID)
	}
	before := w.up.Count()
	_, err := as.Proxy(w.ctx, sdk.Request{URL: w.up.URL("/v1/as-agent"), GrantID: w.sysBearer})
	w.wantErr(t, err, 403, wire.CodeNoDelegatedGrant)
	_, err = as.Proxy(w.ctx, sdk.Request{URL: w.up.URL("/v1/as-agent"), Provider: "secret:header-api"})
	w.wantErr(t, err, 403, wire.CodeNoDelegatedGrant)
	if w.up.Count() != before {
		t.Error("an unbound grant reached the upstream through impersonation")
	}
	page, err := as.ListGrants(w.ctx, sdk.ListGrantsOptions{})
	if w.note(err) != nil {
		t.Fatal(err)
	}
	if ids := grantIDs(page.Grants); !slices.Contains(ids, w.agentBearer) || slices.Contains(ids, w.sysBearer) {
		t.Errorf("impersonated agent lists %v", ids)
	}
	// Agents cannot revoke grants, and neither can an app acting as one.
	if e := w.perm.Raw(t, w.appKey.Reveal(), http.MethodDelete, wire.PathGrants+"/"+w.agentBearer, nil, "",
		map[string]string{wire.HeaderAgent: w.agentID}).Err; e == nil || e.Code != wire.CodeForbidden {
		t.Errorf("impersonated revoke: %v, want forbidden", e)
	}
}

func (w *sdkapiWorld) testDelegation(t *testing.T) {
	ag := w.agent()
	w.proxyOK(t, ag, sdk.Request{URL: w.up.URL("/v1/delegated"), GrantID: w.carolQuery}, 200, w.carolQuery)
	w.checkUpstreamCredential(t, w.up.Last(t), "query-api")
	page, err := ag.ListGrants(w.ctx, sdk.ListGrantsOptions{})
	if w.note(err) != nil {
		t.Fatal(err)
	}
	if ids := grantIDs(page.Grants); !slices.Contains(ids, w.carolQuery) || !slices.Contains(ids, w.agentBearer) {
		t.Errorf("agent lists %v, want its bound and delegated grants", ids)
	}
	// Another agent's delegation is not this agent's to see: not found.
	err = ag.RevokeDelegation(w.ctx, w.carolQuery, w.otherAgentID)
	w.wantErr(t, err, 404, wire.CodeNotFound)
	if err := w.note(ag.RevokeDelegation(w.ctx, w.carolQuery, w.agentID)); err != nil {
		t.Fatalf("revoke own delegation: %v", err)
	}
	before := w.up.Count()
	_, err = ag.Proxy(w.ctx, sdk.Request{URL: w.up.URL("/v1/delegated"), GrantID: w.carolQuery})
	w.wantErr(t, err, 403, wire.CodeNoDelegatedGrant)
	if w.up.Count() != before {
		t.Error("a revoked delegation reached the upstream")
	}
	// The grant itself is untouched: Carol still uses it.
	w.proxyOK(t, w.user(w.jwt["carol"]), sdk.Request{URL: w.up.URL("/v1/carol"), GrantID: w.carolQuery}, 200, w.carolQuery)
	var d models.Delegation
	if err := w.perm.Core.DB.Gorm.Where("grant_id = ? AND agent_id = ?", w.carolQuery, w.agentID).Take(&d).Error; err != nil || d.Status != models.DelegationRevoked {
		t.Errorf("delegation status %q (%v)", d.Status, err)
	}

	// Alice delegates her bearer grant too. An app acting as the agent for
	// an end user reaches only that user's delegations.
	now := time.Now().UTC()
	w.seedDelegation(w.aliceBearer, w.aliceUserID, now)
	body := []byte(`{"method":"GET","url":"` + w.up.URL("/v1/for-user") + `","grant_id":"` + w.aliceBearer + `"}`)
	forUser := func(sub string) sdkapiRaw {
		return w.perm.Raw(t, w.appKey.Reveal(), http.MethodPost, wire.PathProxy, body, "application/json",
			map[string]string{wire.HeaderAgent: w.agentID, wire.HeaderUserToken: w.jwt[sub]})
	}
	if r := forUser("alice"); r.Status != 200 || r.Header.Get(wire.HeaderProxied) != "true" || r.Header.Get(wire.HeaderGrantID) != w.aliceBearer {
		t.Errorf("agent acting for alice on her delegation: %d %s", r.Status, r.Body)
	}
	if r := forUser("bob"); r.Err == nil || r.Err.Code != wire.CodeNoDelegatedGrant {
		t.Errorf("agent acting for bob on alice's delegation: %d %s, want no_delegated_grant", r.Status, r.Body)
	} else {
		w.note(r.Err)
	}
	// The app revokes the agent's path; the agent loses it at once.
	app := w.app()
	if err := w.note(app.RevokeDelegation(w.ctx, w.aliceBearer, w.agentID)); err != nil {
		t.Fatalf("app revokes a delegation: %v", err)
	}
	if row := w.oneSDKRow(t, w.perm, w.perm.Rec.Last(t).RequestID); row.Action != "sdk.delegations.revoke" || row.GrantID != w.aliceBearer || row.Outcome != models.OutcomeSuccess {
		t.Errorf("delegation revoke audit row %+v", row)
	}
	_, err = ag.Proxy(w.ctx, sdk.Request{URL: w.up.URL("/v1/delegated"), GrantID: w.aliceBearer})
	w.wantErr(t, err, 403, wire.CodeNoDelegatedGrant)
	err = app.RevokeDelegation(w.ctx, w.aliceBearer, w.otherAgentID)
	w.wantErr(t, err, 404, wire.CodeNotFound)
	err = app.RevokeDelegation(w.ctx, w.otherSys, w.agentID)
	w.wantErr(t, err, 404, wire.CodeGrantNotFound)
}

func (w *sdkapiWorld) testToken(t *testing.T) {
	app := w.app()
	_, err := app.Token(w.ctx, sdk.TokenRequest{GrantID: w.sysBearer})
	w.wantErr(t, err, 403, wire.CodeForbidden)
	if !errors.Is(err, sdk.ErrForbidden) {
		t.Error("errors.Is(err, ErrForbidden) is false")
	}
	if err := w.perm.Core.DB.Gorm.Model(&models.App{}).Where("id = ?", w.appID).Update("retrieve_mode_enabled", true).Error; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = w.perm.Core.DB.Gorm.Model(&models.App{}).Where("id = ?", w.appID).Update("retrieve_mode_enabled", false).Error
	})

	tok, err := app.Token(w.ctx, sdk.TokenRequest{GrantID: w.sysBearer, Reason: "debug"})
	if w.note(err) != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != w.values["bearer-api"] || tok.GrantID != w.sysBearer ||
		tok.Injection != (wire.Injection{In: "header", Name: "Authorization", Format: "Bearer {token}"}) ||
		!strings.EqualFold(tok.TokenType, "bearer") {
		t.Errorf("token response: grant %q injection %+v type %q", tok.GrantID, tok.Injection, tok.TokenType)
	}
	q, err := app.Token(w.ctx, sdk.TokenRequest{GrantID: w.sysQuery})
	if w.note(err) != nil {
		t.Fatal(err)
	}
	if q.AccessToken != w.values["query-api"] || q.Injection != (wire.Injection{In: "query", Name: "api_key", Format: "{token}"}) {
		t.Errorf("query token injection %+v", q.Injection)
	}

	// OAuth: alice's two GitHub accounts are ambiguous here too; account
	// picks one, and the answer carries the access token, never the
	// refresh token (checked on the raw JSON, not just the SDK's struct).
	_, err = w.user(w.jwt["alice"]).Token(w.ctx, sdk.TokenRequest{Provider: "github"})
	w.note(err)
	if !errors.Is(err, sdk.ErrAmbiguousGrant) {
		t.Errorf("token without account: %v, want ambiguous_grant", err)
	}
	body, _ := json.Marshal(wire.TokenRequest{Provider: "github", Account: "hubot"})
	raw := w.perm.Raw(t, w.appKey.Reveal(), http.MethodPost, wire.PathToken, body, "application/json",
		map[string]string{wire.HeaderUserToken: w.jwt["alice"]})
	if raw.Status != 200 {
		t.Errorf("retrieve mode for alice's hubot GitHub grant: %d %s", raw.Status, raw.Body)
	} else if !bytes.Contains(raw.Body, []byte(w.values["oauth access hubot"])) || bytes.Contains(raw.Body, []byte(w.values["oauth access octocat"])) {
		t.Error("the token answer does not carry exactly hubot's access token")
	}
	if bytes.Contains(bytes.ToLower(raw.Body), []byte("refresh")) || bytes.Contains(raw.Body, []byte(w.values["oauth refresh hubot"])) {
		t.Error("the token answer mentions a refresh token")
	}
	var tr map[string]any
	if err := json.Unmarshal(raw.Body, &tr); raw.Status == 200 && (err != nil || tr["grant_id"] != w.oauthHubot) {
		t.Errorf("token answer %v (%v)", tr["grant_id"], err)
	}
	if row := w.oneSDKRow(t, w.perm, raw.Header.Get(wire.HeaderRequestID)); row.Action != "sdk.token" || row.GrantID != w.oauthHubot {
		t.Errorf("token audit row %+v", row)
	}

	// Agents use retrieve mode within their own grants.
	at, err := w.agent().Token(w.ctx, sdk.TokenRequest{Provider: "secret:bearer-api"})
	if w.note(err) != nil || at.GrantID != w.agentBearer {
		t.Errorf("agent token: %v %v", at, err)
	}
	_, err = w.agent().Token(w.ctx, sdk.TokenRequest{GrantID: w.sysQuery})
	w.wantErr(t, err, 403, wire.CodeNoDelegatedGrant)

	// account narrows provider in retrieve mode as in the proxy: with a
	// grant_id it is refused as a field error, and nothing is handed out.
	body, _ = json.Marshal(wire.TokenRequest{GrantID: w.sysBearer, Account: "hubot"})
	raw = w.perm.Raw(t, w.appKey.Reveal(), http.MethodPost, wire.PathToken, body, "application/json", nil)
	if raw.Status != 400 || !bytes.Contains(raw.Body, []byte(`"field":"account"`)) || bytes.Contains(raw.Body, []byte(w.values["bearer-api"])) {
		t.Errorf("token with grant_id and account: %d %s, want 400 naming the account field", raw.Status, raw.Body)
	}
}

func (w *sdkapiWorld) testListAndGet(t *testing.T) {
	app := w.app()
	var all []string
	for g, err := range app.Grants(w.ctx, sdk.ListGrantsOptions{Limit: 3}) {
		if w.note(err) != nil {
			t.Fatal(err)
		}
		all = append(all, g.GrantID)
	}
	for _, id := range []string{w.sysBearer, w.sysQuery, w.aliceBearer, w.aliceHeader, w.engHd, w.agentBearer, w.carolQuery, w.opsBearer, w.oauthOcto, w.oauthHubot} {
		if !slices.Contains(all, id) {
			t.Errorf("the app's listing misses grant %s", id)
		}
	}
	if slices.Contains(all, w.otherSys) {
		t.Error("the app lists another app's grant")
	}
	if len(all) != len(slices.Compact(slices.Sorted(slices.Values(all)))) {
		t.Error("paging returned a grant twice")
	}

	page, err := w.user(w.jwt["alice"]).ListGrants(w.ctx, sdk.ListGrantsOptions{})
	if w.note(err) != nil {
		t.Fatal(err)
	}
	ids := grantIDs(page.Grants)
	slices.Sort(ids)
	want := []string{w.aliceBearer, w.aliceHeader, w.engHd, w.oauthOcto, w.oauthHubot}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("alice lists %v, want her own and her group's %v", ids, want)
	}
	gh, err := w.user(w.jwt["alice"]).ListGrants(w.ctx, sdk.ListGrantsOptions{Provider: "github", Status: wire.GrantActive})
	if w.note(err) != nil || len(gh.Grants) != 2 {
		t.Errorf("alice's github grants: %d (%v)", len(gh.Grants), err)
	}

	g, err := app.GetGrant(w.ctx, w.sysBearer)
	if w.note(err) != nil {
		t.Fatal(err)
	}
	if g.Principal.Kind != wire.PrincipalSystem || g.Provider != "secret:bearer-api" || g.ProviderName != "bearer-api" || g.Status != wire.GrantActive {
		t.Errorf("system grant %+v", g)
	}
	u, err := app.GetGrant(w.ctx, w.aliceBearer)
	if w.note(err) != nil || u.Principal != (wire.Principal{Kind: wire.PrincipalUser, ID: "alice"}) {
		t.Errorf("user grant principal %+v (%v)", u.Principal, err)
	}
	o, err := app.GetGrant(w.ctx, w.oauthOcto)
	if w.note(err) != nil || o.AccountIdentifier != "octocat" || o.Provider != "github" {
		t.Errorf("oauth grant %+v (%v)", o, err)
	}
	_, err = w.user(w.jwt["alice"]).GetGrant(w.ctx, w.sysBearer)
	w.wantErr(t, err, 404, wire.CodeGrantNotFound)
	_, err = app.GetGrant(w.ctx, w.otherSys)
	w.wantErr(t, err, 404, wire.CodeGrantNotFound)
	_, err = w.agent().GetGrant(w.ctx, w.sysBearer)
	w.wantErr(t, err, 403, wire.CodeNoDelegatedGrant)
	_, err = app.ListGrants(w.ctx, sdk.ListGrantsOptions{Status: "sideways"})
	w.wantErr(t, err, 400, wire.CodeInvalidRequest)
}

func (w *sdkapiWorld) testGrantManagedSecret(t *testing.T) {
	app := w.app()
	g, err := app.GrantManagedSecret(w.ctx, w.queryID, wire.Principal{Kind: wire.PrincipalUser, ID: "dave"})
	if w.note(err) != nil {
		t.Fatal(err)
	}
	if g.Principal != (wire.Principal{Kind: wire.PrincipalUser, ID: "dave"}) || g.Provider != "secret:query-api" || g.Status != wire.GrantActive {
		t.Errorf("granted %+v", g)
	}
	if ex := w.perm.Rec.Last(t); ex.Status != http.StatusCreated {
		t.Errorf("first grant answered %d, want 201", ex.Status)
	}
	again, err := app.GrantManagedSecret(w.ctx, w.queryID, wire.Principal{Kind: wire.PrincipalUser, ID: "dave"})
	if w.note(err) != nil || again.GrantID != g.GrantID {
		t.Errorf("granting again gave %v (%v), want the same grant %s", again, err, g.GrantID)
	}
	if ex := w.perm.Rec.Last(t); ex.Status != http.StatusOK {
		t.Errorf("repeated grant answered %d, want 200", ex.Status)
	}
	// Dave's first verified token finds the pre-provisioned user.
	w.proxyOK(t, w.user(w.jwt["dave"]), sdk.Request{URL: w.up.URL("/v1/dave"), Provider: "secret:query-api"}, 200, g.GrantID)
	w.checkUpstreamCredential(t, w.up.Last(t), "query-api")

	sys, err := app.GrantManagedSecret(w.ctx, w.headerID, wire.Principal{Kind: wire.PrincipalSystem})
	if w.note(err) != nil || sys.Principal.Kind != wire.PrincipalSystem {
		t.Fatalf("system grant: %v %v", sys, err)
	}
	grp, err := app.GrantManagedSecret(w.ctx, w.headerID, wire.Principal{Kind: wire.PrincipalGroup, ID: "qa"})
	if w.note(err) != nil || grp.Principal != (wire.Principal{Kind: wire.PrincipalGroup, ID: "qa"}) {
		t.Fatalf("group grant: %v %v", grp, err)
	}
	ag, err := app.GrantManagedSecret(w.ctx, w.headerID, wire.Principal{Kind: wire.PrincipalAgent, ID: w.agentID})
	if w.note(err) != nil {
		t.Fatal(err)
	}
	w.proxyOK(t, w.agent(), sdk.Request{URL: w.up.URL("/v1/bound-now"), Provider: "secret:header-api"}, 200, ag.GrantID)

	_, err = app.GrantManagedSecret(w.ctx, w.otherSec, wire.Principal{Kind: wire.PrincipalSystem})
	w.wantErr(t, err, 404, wire.CodeNotFound)
	_, err = app.GrantManagedSecret(w.ctx, w.headerID, wire.Principal{Kind: wire.PrincipalAgent, ID: w.otherAgentID})
	w.wantErr(t, err, 404, wire.CodeNotFound)
	_, err = app.GrantManagedSecret(w.ctx, w.headerID, wire.Principal{Kind: "robot", ID: "x"})
	w.wantErr(t, err, 400, wire.CodeInvalidRequest)
}

func (w *sdkapiWorld) testMe(t *testing.T) {
	me, err := w.app().Me(w.ctx)
	if w.note(err) != nil {
		t.Fatal(err)
	}
	if me.Kind != wire.KeyKindApp || me.AppID != w.appID || me.AppName != "sdkapi-app" || me.KeyID != w.appKey.KeyID() ||
		me.KeyStatus != wire.KeyStatusActive || me.AgentID != "" {
		t.Errorf("app Me %+v", me)
	}
	am, err := w.agent().Me(w.ctx)
	if w.note(err) != nil {
		t.Fatal(err)
	}
	if am.Kind != wire.KeyKindAgent || am.AgentID != w.agentID || am.AgentName != "research-bot" || am.KeyID != w.agentKey.KeyID() || am.AppID != w.appID {
		t.Errorf("agent Me %+v", am)
	}
	im, err := w.app().GetAgent(w.agentID).Me(w.ctx)
	if w.note(err) != nil {
		t.Fatal(err)
	}
	if im.Kind != wire.KeyKindAgent || im.AgentID != w.agentID || im.KeyID != w.appKey.KeyID() {
		t.Errorf("impersonation Me %+v", im)
	}
	if row := w.oneSDKRow(t, w.perm, w.perm.Rec.Last(t).RequestID); row.Action != "sdk.me" || row.AgentID != w.agentID || row.KeyID != w.appKey.KeyID() {
		t.Errorf("impersonated Me audit row %+v", row)
	}
}

func (w *sdkapiWorld) testAgentManagement(t *testing.T) {
	app := w.app()
	c, err := app.CreateAgent(w.ctx, wire.CreateAgentRequest{Name: "mgmt-bot", DisplayName: "Mgmt bot"})
	if w.note(err) != nil {
		t.Fatal(err)
	}
	w.sec.AddKey("mgmt key 1", c.Key.APIKey)
	w.agentOfKey[c.Key.APIKey.KeyID()] = c.Agent.AgentID
	if c.Agent.Name != "mgmt-bot" || c.Key.Key.APIKey != "" || c.Key.Key.Status != wire.KeyStatusActive {
		t.Errorf("created %+v", c.Agent)
	}
	_, err = app.CreateAgent(w.ctx, wire.CreateAgentRequest{Name: "mgmt-bot"})
	w.wantErr(t, err, 409, wire.CodeConflict)

	var names []string
	for a, err := range app.Agents(w.ctx, sdk.ListAgentsOptions{Limit: 1}) {
		if w.note(err) != nil {
			t.Fatal(err)
		}
		names = append(names, a.Name)
	}
	if !slices.Equal(names, []string{"disabled-bot", "mgmt-bot", "research-bot"}) {
		t.Errorf("agents %v, want [disabled-bot mgmt-bot research-bot] (ordered by name; not other apps')", names)
	}
	_, err = app.GetAgentInfo(w.ctx, w.otherAgentID)
	w.wantErr(t, err, 404, wire.CodeNotFound)

	k2, err := app.MintAgentKey(w.ctx, c.Agent.AgentID, wire.MintAgentKeyRequest{Label: "rotation"})
	if w.note(err) != nil {
		t.Fatal(err)
	}
	w.sec.AddKey("mgmt key 2", k2.APIKey)
	w.agentOfKey[k2.APIKey.KeyID()] = c.Agent.AgentID

	k1 := w.newAgent(c.Key.APIKey)
	if _, err := k1.Me(w.ctx); w.note(err) != nil {
		t.Fatal(err)
	}
	dep, err := app.DeprecateAgentKey(w.ctx, c.Agent.AgentID, c.Key.Key.KeyID)
	if w.note(err) != nil || dep.Status != wire.KeyStatusDeprecated {
		t.Fatalf("deprecate: %v %v", dep, err)
	}
	var notified []string
	k1 = w.newAgent(c.Key.APIKey, sdk.WithDeprecationNotice(func(id string) { notified = append(notified, id) }))
	me, err := k1.Me(w.ctx)
	if w.note(err) != nil {
		t.Fatal(err)
	}
	if me.KeyStatus != wire.KeyStatusDeprecated || !k1.KeyDeprecated() || !slices.Equal(notified, []string{c.Key.Key.KeyID}) ||
		!w.perm.Rec.Last(t).Deprecated {
		t.Errorf("deprecated key: status %q, flagged %v, notified %v", me.KeyStatus, k1.KeyDeprecated(), notified)
	}

	if _, err := app.RevokeAgentKey(w.ctx, c.Agent.AgentID, c.Key.Key.KeyID, false); w.note(err) != nil {
		t.Fatalf("revoke the deprecated key: %v", err)
	}
	_, err = k1.Me(w.ctx)
	w.wantErr(t, err, 401, wire.CodeKeyRevoked)
	_, err = app.RevokeAgentKey(w.ctx, c.Agent.AgentID, k2.Key.KeyID, false)
	w.wantErr(t, err, 409, wire.CodeConflict)
	if _, err := w.newAgent(k2.APIKey).Me(w.ctx); w.note(err) != nil {
		t.Errorf("the last key stopped working after a refused revocation: %v", err)
	}
	rk, err := app.RevokeAgentKey(w.ctx, c.Agent.AgentID, k2.Key.KeyID, true)
	if w.note(err) != nil || rk.Status != wire.KeyStatusRevoked {
		t.Fatalf("forced revoke: %v %v", rk, err)
	}
	info, err := app.GetAgentInfo(w.ctx, c.Agent.AgentID)
	if w.note(err) != nil {
		t.Fatal(err)
	}
	if len(info.Keys) != 2 || info.Keys[0].Status != wire.KeyStatusRevoked || info.Keys[1].Status != wire.KeyStatusRevoked || info.Keys[1].Label != "rotation" {
		t.Errorf("keys after revocation %+v", info.Keys)
	}
	for _, k := range info.Keys {
		if k.APIKey != "" {
			t.Error("GetAgentInfo shows an API key")
		}
	}
}

func (w *sdkapiWorld) testRevokeGrant(t *testing.T) {
	app := w.app()
	if err := w.note(app.RevokeGrant(w.ctx, w.opsBearer)); err != nil {
		t.Fatal(err)
	}
	row := w.oneSDKRow(t, w.perm, w.perm.Rec.Last(t).RequestID)
	if row.Action != "sdk.grants.revoke" || row.GrantID != w.opsBearer || row.Outcome != models.OutcomeSuccess {
		t.Errorf("revoke audit row %+v", row)
	}
	before := w.up.Count()
	_, err := app.Proxy(w.ctx, sdk.Request{URL: w.up.URL("/v1/ops"), GrantID: w.opsBearer})
	e := w.wantErr(t, err, 403, wire.CodeGrantRevoked)
	if e.Details["grant_id"] != w.opsBearer {
		t.Errorf("grant_revoked details %v", e.Details)
	}
	// Bob reached bearer-api through ops; now nothing matches.
	_, err = w.user(w.jwt["bob"]).Proxy(w.ctx, sdk.Request{URL: w.up.URL("/v1/ops"), Provider: "secret:bearer-api"})
	w.wantErr(t, err, 404, wire.CodeGrantNotFound)
	if w.up.Count() != before {
		t.Error("a revoked grant reached the upstream")
	}
	g, err := app.GetGrant(w.ctx, w.opsBearer)
	if w.note(err) != nil || g.Status != wire.GrantRevoked {
		t.Errorf("revoked grant shows %v (%v)", g, err)
	}
	page, err := app.ListGrants(w.ctx, sdk.ListGrantsOptions{Status: wire.GrantRevoked})
	if w.note(err) != nil || !slices.Contains(grantIDs(page.Grants), w.opsBearer) {
		t.Errorf("revoked listing %v (%v) misses %s", grantIDs(page.Grants), err, w.opsBearer)
	}
	for _, g := range page.Grants {
		if g.Status != wire.GrantRevoked {
			t.Errorf("the revoked filter listed %s grant %s", g.Status, g.GrantID)
		}
	}
	// Revoking again changes nothing and is not an error.
	if err := w.note(app.RevokeGrant(w.ctx, w.opsBearer)); err != nil {
		t.Errorf("revoking twice: %v", err)
	}
	err = app.RevokeGrant(w.ctx, w.otherSys)
	w.wantErr(t, err, 404, wire.CodeGrantNotFound)
}

// testCorruptConfig: a stored injection rule or allowed-hosts list that
// does not parse (here: the catalog's "{token}" spelling, and a bare "*") is
// Latchkey's own fault. The call must fail closed, as internal (500) with
// outcome error, not blame the caller with invalid_request.
func (w *sdkapiWorld) testCorruptConfig(t *testing.T) {
	db := w.perm.Core.DB.Gorm
	for _, tc := range []struct {
		name, column, value string
	}{
		{"injection rule in the catalog's {token} spelling", "injection", "header:Authorization:Bearer {token}"},
		{"allowed hosts holding a bare wildcard", "allowed_hosts", `["*"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m models.ManagedSecret
			if err := db.Where("id = ?", w.corruptID).Take(&m).Error; err != nil {
				t.Fatal(err)
			}
			if err := db.Model(&models.ManagedSecret{}).Where("id = ?", w.corruptID).Update(tc.column, tc.value).Error; err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = db.Model(&models.ManagedSecret{}).Where("id = ?", w.corruptID).
					Updates(map[string]any{"injection": m.Injection, "allowed_hosts": m.AllowedHosts}).Error
			})
			before := w.up.Count()
			_, err := w.app().Proxy(w.ctx, sdk.Request{URL: w.up.URL("/v1/corrupt"), GrantID: w.sysCorrupt})
			e := w.wantErr(t, err, 500, wire.CodeInternal)
			if row := w.oneSDKRow(t, w.perm, e.RequestID); row.Outcome != models.OutcomeError {
				t.Errorf("audit outcome %q, want error", row.Outcome)
			}
			if w.up.Count() != before {
				t.Error("a corrupt configuration reached the upstream")
			}
		})
	}
}

// sdkapiBad is one refused input.
type sdkapiBad struct {
	name   string
	srv    *sdkapiServer
	setup  func(t *testing.T)
	call   func(t *testing.T) error
	status int
	code   wire.ErrorCode
	// audit: "none" — no row at all (the request never authenticated a
	// known key); "auth" — one sdk.authenticate row, denied; "call" — one
	// row of the endpoint's action, denied.
	audit string
}

func (w *sdkapiWorld) testBadInputs(t *testing.T) {
	app := w.app()
	ctx := w.ctx
	hp, port := w.up.HostPort(), w.up.Port()
	// sig is the proxy request of the authentication rows: it would reach
	// the upstream (development mode) if authentication failed open.
	sig := sdk.Request{URL: w.up.URL("/v1/signed-path"), GrantID: w.sysBearer}
	proxyWith := func(c sdkapiProxier, r sdk.Request) func(*testing.T) error {
		return func(*testing.T) error { _, err := c.Proxy(ctx, r); return err }
	}
	tamper := func(mutate func(*http.Request)) *sdk.App {
		return w.newApp(w.perm, w.appKey, func(next http.RoundTripper) http.RoundTripper { return sdkapiTamper{next: next, mutate: mutate} })
	}
	raw := func(s *sdkapiServer, key wire.APIKey, method, path string, body []byte, ct string, hdr map[string]string) func(*testing.T) error {
		return func(t *testing.T) error {
			r := s.Raw(t, key.Reveal(), method, path, body, ct, hdr)
			if r.Err == nil {
				t.Fatalf("raw %s %s answered %d: %s", method, path, r.Status, r.Body)
			}
			return r.Err
		}
	}
	rawProxy := func(body string, hdr map[string]string) func(*testing.T) error {
		return raw(w.perm, w.appKey, http.MethodPost, wire.PathProxy, []byte(body), "application/json", hdr)
	}
	validBody := func(extra string) string {
		return `{"method":"GET","url":"` + w.up.URL("/v1/raw") + `","grant_id":"` + w.sysBearer + `"` + extra + `}`
	}
	jwtApp := func(tok string) *sdk.App {
		w.sec.AddJWT("bad jwt", tok)
		return w.user(tok)
	}
	userClaims := map[string]any{"sub": "alice", "groups": []string{"eng"}}
	strictApp := w.newApp(w.strict, w.strictKey, nil)
	strictProxy := func(u string, hdr map[string]string) func(*testing.T) error {
		return proxyWith(strictApp, sdk.Request{URL: u, GrantID: w.strictSys, Headers: hdr})
	}
	devProxy := func(u string, hdr map[string]string) func(*testing.T) error {
		return proxyWith(app, sdk.Request{URL: u, GrantID: w.sysBearer, Headers: hdr})
	}

	// Keys for the key rows.
	forged := forgeKey(t, w.appKey) // same key id, another secret
	w.sec.AddKey("forged key", forged)
	unknown, err := wire.GenerateKey(wire.KeyKindApp, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.sec.AddKey("unknown key", unknown)
	var revokedApp wire.APIKey
	var revokedAgent wire.APIKey
	replayer := &sdkapiReplayer{}
	replayApp := w.newApp(w.perm, w.appKey, func(next http.RoundTripper) http.RoundTripper { replayer.next = next; return replayer })
	crossReplayer := &sdkapiReplayer{replayTo: w.replica.URL}
	crossReplayApp := w.newApp(w.perm, w.appKey, func(next http.RoundTripper) http.RoundTripper { crossReplayer.next = next; return crossReplayer })
	big := make([]byte, 11<<20)

	rows := []sdkapiBad{
		// Authentication (DESIGN.md §4.4).
		{name: "missing signature header", call: proxyWith(tamper(func(r *http.Request) { r.Header.Del(wire.HeaderSignature) }), sig),
			status: 401, code: wire.CodeMalformedAuth, audit: "none"},
		{name: "missing every auth header", call: proxyWith(tamper(func(r *http.Request) {
			for _, h := range []string{wire.HeaderKeyID, wire.HeaderTimestamp, wire.HeaderNonce, wire.HeaderSignature} {
				r.Header.Del(h)
			}
		}), sig), status: 401, code: wire.CodeMalformedAuth, audit: "none"},
		{name: "nonce too short", call: proxyWith(tamper(func(r *http.Request) { r.Header.Set(wire.HeaderNonce, "short") }), sig),
			status: 401, code: wire.CodeMalformedAuth, audit: "none"},
		{name: "key id header repeated", call: proxyWith(tamper(func(r *http.Request) { r.Header.Add(wire.HeaderKeyID, r.Header.Get(wire.HeaderKeyID)) }), sig),
			status: 401, code: wire.CodeMalformedAuth, audit: "none"},
		{name: "timestamp not canonical", call: proxyWith(tamper(func(r *http.Request) { r.Header.Set(wire.HeaderTimestamp, "+"+r.Header.Get(wire.HeaderTimestamp)) }), sig),
			status: 401, code: wire.CodeMalformedAuth, audit: "none"},
		{name: "signature not v1 hex", call: proxyWith(tamper(func(r *http.Request) { r.Header.Set(wire.HeaderSignature, "v1=ABC") }), sig),
			status: 401, code: wire.CodeMalformedAuth, audit: "none"},
		{name: "caller longer than 200 characters", call: proxyWith(tamper(func(r *http.Request) { r.Header.Set(wire.HeaderCaller, strings.Repeat("c", 201)) }), sig),
			status: 401, code: wire.CodeMalformedAuth, audit: "none"},
		{name: "agent header not a plain UUID", call: proxyWith(tamper(func(r *http.Request) { r.Header.Set(wire.HeaderAgent, "{"+w.agentID+"}") }), sig),
			status: 401, code: wire.CodeMalformedAuth, audit: "none"},
		{name: "key id malformed", call: proxyWith(tamper(func(r *http.Request) { r.Header.Set(wire.HeaderKeyID, "lk_app_NOPE") }), sig),
			status: 401, code: wire.CodeMalformedAuth, audit: "none"},
		{name: "wrong signature", call: proxyWith(w.newApp(w.perm, forged, nil), sig),
			status: 401, code: wire.CodeInvalidSignature, audit: "auth"},
		{name: "body altered after signing", call: proxyWith(tamper(func(r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			b = bytes.Replace(b, []byte("signed-path"), []byte("evil-path"), 1)
			r.Body, r.ContentLength, r.GetBody = io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
		}), sig), status: 401, code: wire.CodeInvalidSignature, audit: "auth"},
		{name: "query altered after signing", call: func(*testing.T) error {
			_, err := tamper(func(r *http.Request) { r.URL.RawQuery = "provider=secret%3Aquery-api" }).ListGrants(ctx, sdk.ListGrantsOptions{Provider: "secret:bearer-api"})
			return err
		}, status: 401, code: wire.CodeInvalidSignature, audit: "auth"},
		{name: "user token swapped after signing", call: proxyWith(w.newApp(w.perm, w.appKey, func(next http.RoundTripper) http.RoundTripper {
			return sdkapiTamper{next: next, mutate: func(r *http.Request) { r.Header.Set(wire.HeaderUserToken, w.jwt["bob"]) }}
		}, sdk.WithUserToken(func(context.Context) (string, error) { return w.jwt["alice"], nil })),
			sdk.Request{URL: w.up.URL("/v1/signed-path"), Provider: "secret:bearer-api"}),
			status: 401, code: wire.CodeInvalidSignature, audit: "auth"},
		{name: "agent header added after signing", call: proxyWith(tamper(func(r *http.Request) { r.Header.Set(wire.HeaderAgent, w.agentID) }),
			sdk.Request{URL: w.up.URL("/v1/signed-path"), GrantID: w.agentBearer}),
			status: 401, code: wire.CodeInvalidSignature, audit: "auth"},
		{name: "replayed nonce",
			setup: func(t *testing.T) {
				if _, err := replayApp.Proxy(ctx, sig); w.note(err) != nil {
					t.Fatalf("the original request failed: %v", err)
				}
			},
			call: proxyWith(replayApp, sig), status: 401, code: wire.CodeReplayedRequest, audit: "auth"},
		{name: "replayed nonce on another replica",
			setup: func(t *testing.T) {
				if _, err := crossReplayApp.Proxy(ctx, sig); w.note(err) != nil {
					t.Fatalf("the original request failed: %v", err)
				}
			},
			call: proxyWith(crossReplayApp, sig), status: 401, code: wire.CodeReplayedRequest, audit: "auth"},
		{name: "timestamp ten minutes behind", call: proxyWith(w.newApp(w.perm, w.appKey, nil, sdk.WithClock(func() time.Time { return time.Now().Add(-10 * time.Minute) })), sig),
			status: 401, code: wire.CodeTimestampOutOfRange, audit: "auth"},
		{name: "timestamp ten minutes ahead", call: proxyWith(w.newApp(w.perm, w.appKey, nil, sdk.WithClock(func() time.Time { return time.Now().Add(10 * time.Minute) })), sig),
			status: 401, code: wire.CodeTimestampOutOfRange, audit: "auth"},
		{name: "revoked app key",
			setup: func(t *testing.T) {
				m := testserver.NewSeed(t, w.perm.Core).Key(w.appID, "")
				revokedApp = m.APIKey
				w.sec.AddKey("revoked app key", m.APIKey)
				if _, err := w.newApp(w.perm, m.APIKey, nil).Me(ctx); w.note(err) != nil {
					t.Fatalf("the new key does not work: %v", err)
				}
				if _, err := w.perm.Core.Keys.Revoke(ctx, apikeys.RevokeInput{Key: apikeys.KeyRef{AppID: w.appID, KeyID: m.KeyID}, Actor: sdkapiActor}); err != nil {
					t.Fatal(err)
				}
				w.perm.Core.SDKAuth.Forget(m.KeyID)
			},
			call:   func(*testing.T) error { _, err := w.newApp(w.perm, revokedApp, nil).Proxy(ctx, sig); return err },
			status: 401, code: wire.CodeKeyRevoked, audit: "auth"},
		{name: "revoked agent key",
			setup: func(t *testing.T) {
				m, err := app.MintAgentKey(ctx, w.agentID, wire.MintAgentKeyRequest{Label: "short-lived"})
				if w.note(err) != nil {
					t.Fatal(err)
				}
				revokedAgent = m.APIKey
				w.agentOfKey[m.APIKey.KeyID()] = w.agentID
				w.sec.AddKey("revoked agent key", m.APIKey)
				if _, err := app.RevokeAgentKey(ctx, w.agentID, m.Key.KeyID, false); w.note(err) != nil {
					t.Fatal(err)
				}
			},
			call: func(*testing.T) error {
				_, err := w.newAgent(revokedAgent).Proxy(ctx, sdk.Request{URL: w.up.URL("/v1/signed-path"), GrantID: w.agentBearer})
				return err
			},
			status: 401, code: wire.CodeKeyRevoked, audit: "auth"},
		{name: "unknown key", call: proxyWith(w.newApp(w.perm, unknown, nil), sig), status: 401, code: wire.CodeInvalidKey, audit: "none"},
		{name: "agent key with a user token", call: raw(w.perm, w.agentKey, http.MethodPost, wire.PathProxy,
			[]byte(`{"method":"GET","url":"`+w.up.URL("/v1/raw")+`","grant_id":"`+w.agentBearer+`"}`), "application/json",
			map[string]string{wire.HeaderUserToken: w.jwt["alice"]}),
			status: 400, code: wire.CodeAgentCannotUseUserToken, audit: "auth"},
		{name: "app key acting as another app's agent", call: proxyWith(app.GetAgent(w.otherAgentID), sdk.Request{URL: w.up.URL("/v1/x"), GrantID: w.agentBearer}),
			status: 400, code: wire.CodeInvalidRequest, audit: "auth"},

		{name: "key of a disabled agent", call: proxyWith(w.newAgent(w.disabledAgentKey), sdk.Request{URL: w.up.URL("/v1/x"), Provider: "secret:bearer-api"}),
			status: 403, code: wire.CodeForbidden, audit: "auth"},
		{name: "app key acting as a disabled agent", call: proxyWith(app.GetAgent(w.disabledAgentID), sdk.Request{URL: w.up.URL("/v1/x"), Provider: "secret:bearer-api"}),
			status: 400, code: wire.CodeInvalidRequest, audit: "auth"},
		{name: "app key acting as an agent that never existed", call: proxyWith(app.GetAgent(uuid.NewString()), sdk.Request{URL: w.up.URL("/v1/x"), Provider: "secret:bearer-api"}),
			status: 400, code: wire.CodeInvalidRequest, audit: "auth"},

		// End-user tokens (docs/identity.md).
		{name: "JWT expired", call: proxyWith(jwtApp(w.iss.MintExpired(t, userClaims)), sdk.Request{URL: w.up.URL("/v1/jwt"), Provider: "secret:bearer-api"}),
			status: 401, code: wire.CodeInvalidUserToken, audit: "call"},
		{name: "JWT for another audience", call: proxyWith(jwtApp(w.iss.MintWrongAudience(t, userClaims)), sdk.Request{URL: w.up.URL("/v1/jwt"), Provider: "secret:bearer-api"}),
			status: 401, code: wire.CodeInvalidUserToken, audit: "call"},
		{name: "JWT claiming another issuer", call: proxyWith(jwtApp(w.iss.MintWrongIssuer(t, userClaims)), sdk.Request{URL: w.up.URL("/v1/jwt"), Provider: "secret:bearer-api"}),
			status: 401, code: wire.CodeInvalidUserToken, audit: "call"},
		{name: "JWT from another real issuer", call: proxyWith(jwtApp(w.rogue.Mint(t, userClaims)), sdk.Request{URL: w.up.URL("/v1/jwt"), Provider: "secret:bearer-api"}),
			status: 401, code: wire.CodeInvalidUserToken, audit: "call"},
		{name: "JWT signed with alg none", call: proxyWith(jwtApp(w.iss.MintAlgNone(t, userClaims)), sdk.Request{URL: w.up.URL("/v1/jwt"), Provider: "secret:bearer-api"}),
			status: 401, code: wire.CodeInvalidUserToken, audit: "call"},
		{name: "JWT HS256 keyed with the public key PEM", call: proxyWith(jwtApp(w.iss.MintHS256WithPublicKey(t, userClaims)), sdk.Request{URL: w.up.URL("/v1/jwt"), Provider: "secret:bearer-api"}),
			status: 401, code: wire.CodeInvalidUserToken, audit: "call"},
		{name: "JWT HS256 keyed with the public key DER", call: proxyWith(jwtApp(w.iss.MintHS256WithPublicKeyDER(t, userClaims)), sdk.Request{URL: w.up.URL("/v1/jwt"), Provider: "secret:bearer-api"}),
			status: 401, code: wire.CodeInvalidUserToken, audit: "call"},
		{name: "JWT with a corrupted signature", call: proxyWith(jwtApp(w.iss.MintBadSignature(t, userClaims)), sdk.Request{URL: w.up.URL("/v1/jwt"), Provider: "secret:bearer-api"}),
			status: 401, code: wire.CodeInvalidUserToken, audit: "call"},
		{name: "JWT with a swapped payload", call: proxyWith(jwtApp(w.iss.MintTamperedPayload(t, map[string]any{"sub": "carol"}, map[string]any{"sub": "alice"})), sdk.Request{URL: w.up.URL("/v1/jwt"), Provider: "secret:bearer-api"}),
			status: 401, code: wire.CodeInvalidUserToken, audit: "call"},
		{name: "JWT signed by an unpublished key", call: proxyWith(jwtApp(w.iss.MintUnknownKey(t, userClaims)), sdk.Request{URL: w.up.URL("/v1/jwt"), Provider: "secret:bearer-api"}),
			status: 401, code: wire.CodeInvalidUserToken, audit: "call"},
		{name: "JWT not yet valid", call: proxyWith(jwtApp(w.iss.MintNotYetValid(t, userClaims)), sdk.Request{URL: w.up.URL("/v1/jwt"), Provider: "secret:bearer-api"}),
			status: 401, code: wire.CodeInvalidUserToken, audit: "call"},
		{name: "JWT without exp", call: proxyWith(jwtApp(w.iss.Mint(t, map[string]any{"sub": "alice", "exp": nil})), sdk.Request{URL: w.up.URL("/v1/jwt"), Provider: "secret:bearer-api"}),
			status: 401, code: wire.CodeInvalidUserToken, audit: "call"},
		{name: "JWT with a malformed groups claim", call: proxyWith(jwtApp(w.iss.Mint(t, map[string]any{"sub": "alice", "groups": 42})), sdk.Request{URL: w.up.URL("/v1/jwt"), Provider: "secret:bearer-api"}),
			status: 401, code: wire.CodeInvalidUserToken, audit: "call"},
		{name: "JWT over 16 KiB", call: proxyWith(jwtApp(w.iss.Mint(t, map[string]any{"sub": "alice", "pad": strings.Repeat("p", 17<<10)})), sdk.Request{URL: w.up.URL("/v1/jwt"), Provider: "secret:bearer-api"}),
			status: 401, code: wire.CodeInvalidUserToken, audit: "call"},
		{name: "JWT that is not a JWT", call: proxyWith(jwtApp("not-a-jwt-at-all-but-long-enough"), sdk.Request{URL: w.up.URL("/v1/jwt"), GrantID: w.aliceBearer}),
			status: 401, code: wire.CodeInvalidUserToken, audit: "call"},
		{name: "valid JWT of a disabled end user", call: proxyWith(w.user(w.jwt["erin"]), sdk.Request{URL: w.up.URL("/v1/jwt"), Provider: "secret:bearer-api"}),
			status: 403, code: wire.CodeForbidden, audit: "call"},
		{name: "JWT expired on grant listing", call: func(*testing.T) error {
			_, err := jwtApp(w.iss.MintExpired(t, userClaims)).ListGrants(ctx, sdk.ListGrantsOptions{})
			return err
		}, status: 401, code: wire.CodeInvalidUserToken, audit: "call"},

		// Grant selection (DESIGN.md §4.7).
		{name: "another app's grant id", call: proxyWith(app, sdk.Request{URL: w.up.URL("/v1/x"), GrantID: w.otherSys}),
			status: 404, code: wire.CodeGrantNotFound, audit: "call"},
		{name: "malformed grant id", call: proxyWith(app, sdk.Request{URL: w.up.URL("/v1/x"), GrantID: "not-a-uuid"}),
			status: 404, code: wire.CodeGrantNotFound, audit: "call"},
		{name: "agent reaching an unbound grant", call: proxyWith(w.agent(), sdk.Request{URL: w.up.URL("/v1/x"), GrantID: w.sysBearer}),
			status: 403, code: wire.CodeNoDelegatedGrant, audit: "call"},
		{name: "agent reaching another app's grant", call: proxyWith(w.agent(), sdk.Request{URL: w.up.URL("/v1/x"), GrantID: w.otherSys}),
			status: 404, code: wire.CodeGrantNotFound, audit: "call"},
		{name: "impersonated agent reaching an unbound grant", call: proxyWith(app.GetAgent(w.agentID), sdk.Request{URL: w.up.URL("/v1/x"), GrantID: w.aliceBearer}),
			status: 403, code: wire.CodeNoDelegatedGrant, audit: "call"},
		{name: "user reaching another user's grant", call: proxyWith(w.user(w.jwt["bob"]), sdk.Request{URL: w.up.URL("/v1/x"), GrantID: w.aliceBearer}),
			status: 404, code: wire.CodeGrantNotFound, audit: "call"},
		{name: "user reaching a system grant", call: proxyWith(w.user(w.jwt["bob"]), sdk.Request{URL: w.up.URL("/v1/x"), GrantID: w.sysBearer}),
			status: 404, code: wire.CodeGrantNotFound, audit: "call"},
		{name: "app key selecting by provider without a user", call: proxyWith(app, sdk.Request{URL: w.up.URL("/v1/x"), Provider: "secret:bearer-api"}),
			status: 404, code: wire.CodeGrantNotFound, audit: "call"},
		{name: "provider that is not configured", call: proxyWith(w.user(w.jwt["alice"]), sdk.Request{URL: w.up.URL("/v1/x"), Provider: "secret:nope"}),
			status: 404, code: wire.CodeProviderNotConfigured, audit: "call"},
		{name: "both grant_id and provider", call: rawProxy(validBody(`,"provider":"secret:bearer-api"`), nil),
			status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "account with grant_id", call: rawProxy(validBody(`,"account":"octocat"`), nil),
			status: 400, code: wire.CodeInvalidRequest, audit: "call"},

		// Upstream URLs in strict mode (docs/egress.md): nothing may connect.
		{name: "http scheme in strict mode", srv: w.strict, call: strictProxy("http://"+hp+"/v1/x", nil), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "ftp scheme in strict mode", srv: w.strict, call: strictProxy("ftp://"+hp+"/v1/x", nil), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "file scheme in strict mode", srv: w.strict, call: strictProxy("file:///etc/passwd", nil), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "gopher scheme in strict mode", srv: w.strict, call: strictProxy("gopher://"+hp+"/_x", nil), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "userinfo in strict mode", srv: w.strict, call: strictProxy("https://user:pw@api.example.com/v1/x", nil), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "IPv4 literal on the list in strict mode", srv: w.strict, call: strictProxy("https://"+hp+"/v1/x", nil), status: 403, code: wire.CodeHostNotAllowed, audit: "call"},
		{name: "IPv6 loopback literal on the list in strict mode", srv: w.strict, call: strictProxy("https://[::1]:"+port+"/v1/x", nil), status: 403, code: wire.CodeHostNotAllowed, audit: "call"},
		{name: "metadata address in strict mode", srv: w.strict, call: strictProxy("https://169.254.169.254/latest/meta-data/", nil), status: 403, code: wire.CodeHostNotAllowed, audit: "call"},
		{name: "decimal IP host in strict mode", srv: w.strict, call: strictProxy("https://2130706433:"+port+"/v1/x", nil), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "hex IP host in strict mode", srv: w.strict, call: strictProxy("https://0x7f.1:"+port+"/v1/x", nil), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "loopback name on the list in strict mode", srv: w.strict, call: strictProxy("https://localhost:"+port+"/v1/x", nil), status: 403, code: wire.CodeHostNotAllowed, audit: "call"},
		{name: "host not on the list in strict mode", srv: w.strict, call: strictProxy("https://evil.example.net/v1/x", nil), status: 403, code: wire.CodeHostNotAllowed, audit: "call"},
		{name: "listed host on another port in strict mode", srv: w.strict, call: strictProxy("https://api.example.com:8443/v1/x", nil), status: 403, code: wire.CodeHostNotAllowed, audit: "call"},
		{name: "fragment in strict mode", srv: w.strict, call: strictProxy("https://api.example.com/v1/x#frag", nil), status: 400, code: wire.CodeInvalidRequest, audit: "call"},

		// The same guards that hold in development mode too.
		{name: "ftp scheme in development mode", call: devProxy("ftp://"+hp+"/v1/x", nil), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "userinfo in development mode", call: devProxy("http://user:pw@"+hp+"/v1/x", nil), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "decimal IP host in development mode", call: devProxy("http://2130706433:"+port+"/v1/x", nil), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "host not on the list in development mode", call: devProxy("http://evil.example.net/v1/x", nil), status: 403, code: wire.CodeHostNotAllowed, audit: "call"},
		{name: "listed IP on another port in development mode", call: devProxy("http://127.0.0.1:1/v1/x", nil), status: 403, code: wire.CodeHostNotAllowed, audit: "call"},
		{name: "relative URL", call: devProxy("/v1/x", nil), status: 400, code: wire.CodeInvalidRequest, audit: "call"},

		// Caller headers (docs/egress.md): refused, never dropped.
		{name: "Authorization smuggled in headers", call: devProxy(w.up.URL("/v1/x"), map[string]string{"Authorization": "Bearer smuggled-credential"}), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "lower-case authorization smuggled in headers", call: devProxy(w.up.URL("/v1/x"), map[string]string{"authorization": "Basic c211Z2dsZWQ="}), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "Cookie in headers", call: devProxy(w.up.URL("/v1/x"), map[string]string{"Cookie": "session=1"}), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "Proxy-Authorization in headers", call: devProxy(w.up.URL("/v1/x"), map[string]string{"Proxy-Authorization": "Basic eA=="}), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "Latchkey header in headers", call: devProxy(w.up.URL("/v1/x"), map[string]string{"Latchkey-Grant-Id": w.otherSys}), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "Host in headers", call: devProxy(w.up.URL("/v1/x"), map[string]string{"Host": "evil.example.net"}), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "Transfer-Encoding in headers", call: devProxy(w.up.URL("/v1/x"), map[string]string{"Transfer-Encoding": "chunked"}), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "header with a line break", call: devProxy(w.up.URL("/v1/x"), map[string]string{"X-Note": "a\r\nInjected: yes"}), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "injected header name in headers", call: proxyWith(w.user(w.jwt["bob"]), sdk.Request{URL: w.up.URL("/v1/x"), Provider: "secret:header-api",
			Headers: map[string]string{"x-api-key": "mine"}}), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "injected query parameter in the URL", call: proxyWith(app, sdk.Request{URL: w.up.URL("/v1/x?API_KEY=mine"), GrantID: w.sysQuery}),
			status: 400, code: wire.CodeInvalidRequest, audit: "call"},

		// Bodies.
		{name: "oversized body", call: proxyWith(app, sdk.Request{Method: "POST", URL: w.up.URL("/v1/x"), GrantID: w.sysBearer, Body: big}),
			status: 413, code: wire.CodePayloadTooLarge, audit: "none"},
		{name: "invalid JSON", call: rawProxy(`{"method":"GET","url":`, nil), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "unknown field", call: rawProxy(validBody(`,"grant":"x"`), nil), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "data after the JSON value", call: rawProxy(validBody("")+`{}`, nil), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "wrong JSON type", call: rawProxy(`{"method":"GET","url":"`+w.up.URL("/v1/raw")+`","grant_id":["`+w.sysBearer+`"]}`, nil), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "empty body", call: rawProxy(``, nil), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "body not JSON", call: raw(w.perm, w.appKey, http.MethodPost, wire.PathProxy, []byte(validBody("")), "text/plain", nil), status: 415, code: wire.CodeUnsupportedMediaType, audit: "call"},
		{name: "json and body_base64 together", call: rawProxy(validBody(`,"json":{"a":1},"body_base64":"eA=="`), nil), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "body_base64 not base64", call: rawProxy(validBody(`,"body_base64":"***"`), nil), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "negative timeout", call: rawProxy(validBody(`,"timeout_ms":-1`), nil), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "method TRACE", call: proxyWith(app, sdk.Request{Method: "TRACE", URL: w.up.URL("/v1/x"), GrantID: w.sysBearer}), status: 400, code: wire.CodeInvalidRequest, audit: "call"},
		{name: "method CONNECT", call: proxyWith(app, sdk.Request{Method: "CONNECT", URL: w.up.URL("/v1/x"), GrantID: w.sysBearer}), status: 400, code: wire.CodeInvalidRequest, audit: "call"},

		// App-only endpoints and unknown paths.
		{name: "agent key managing agents", call: raw(w.perm, w.agentKey, http.MethodGet, wire.PathAgents, nil, "", nil), status: 403, code: wire.CodeForbidden, audit: "call"},
		{name: "agent key revoking a grant", call: raw(w.perm, w.agentKey, http.MethodDelete, wire.PathGrants+"/"+w.agentBearer, nil, "", nil), status: 403, code: wire.CodeForbidden, audit: "call"},
		{name: "agent key granting a managed secret", call: raw(w.perm, w.agentKey, http.MethodPost, wire.PathManagedSecrets+"/"+w.bearerID+"/grants",
			[]byte(`{"principal":{"kind":"agent","id":"`+w.agentID+`"}}`), "application/json", nil), status: 403, code: wire.CodeForbidden, audit: "call"},
		{name: "unknown SDK path", call: raw(w.perm, w.appKey, http.MethodGet, "/sdk/v1/secrets/dump", nil, "", nil), status: 404, code: wire.CodeNotFound, audit: "call"},
		{name: "unknown field in an agent request", call: raw(w.perm, w.appKey, http.MethodPost, wire.PathAgents, []byte(`{"name":"x-bot","admin":true}`), "application/json", nil),
			status: 400, code: wire.CodeInvalidRequest, audit: "call"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			srv := row.srv
			if srv == nil {
				srv = w.perm
			}
			if row.setup != nil {
				row.setup(t)
			}
			reqs, conns := w.up.Count(), w.up.Conns()
			err := row.call(t)
			w.note(err)
			var e *sdk.Error
			if !errors.As(err, &e) {
				t.Fatalf("want Latchkey error %d %s, got %v", row.status, row.code, err)
			}
			if e.Status != row.status || e.Code != row.code {
				t.Errorf("got %d %s (%s), want %d %s", e.Status, e.Code, e.Message, row.status, row.code)
			}
			if e.RequestID == "" {
				t.Fatal("error without a request id")
			}
			if n := w.up.Count() - reqs; n != 0 {
				t.Errorf("the upstream received %d requests", n)
			}
			if n := w.up.Conns() - conns; n != 0 {
				t.Errorf("the upstream received %d connections", n)
			}
			all := srv.AuditFor(t, e.RequestID)
			for _, r := range all {
				if r.Outcome == models.OutcomeSuccess {
					t.Errorf("audit row %s says success", r.Action)
				}
			}
			calls := sdkCallRows(all)
			switch row.audit {
			case "none":
				if len(all) != 0 {
					t.Errorf("%d audit rows for a request that never authenticated a known key", len(all))
				}
			case "auth", "call":
				if len(calls) != 1 {
					t.Fatalf("%d SDK audit rows, want 1: %+v", len(calls), calls)
				}
				r := calls[0]
				want := "sdk.authenticate"
				if row.audit == "call" {
					want = "" // the endpoint's own action, checked below
				} else {
					w.expectAction[e.RequestID] = want
				}
				if (want != "" && r.Action != want) || (want == "" && r.Action == "sdk.authenticate") ||
					r.Outcome != models.OutcomeDenied || r.ErrorCode != string(row.code) {
					t.Errorf("audit row %s %s %s, want %s denied %s", r.Action, r.Outcome, r.ErrorCode, want, row.code)
				}
			}
		})
	}
}

// forgeKey is an app key with the same key id as k and another secret: a
// signature made with it is well formed and wrong.
func forgeKey(t *testing.T, k wire.APIKey) wire.APIKey {
	t.Helper()
	fresh, err := wire.GenerateKey(wire.KeyKindApp, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := fresh.Reveal()
	forged, err := wire.ParseKey(k.KeyID() + s[strings.LastIndexByte(s, '_'):])
	if err != nil {
		t.Fatal(err)
	}
	return forged
}

// testUpstreamLedger: the upstream saw exactly the calls Latchkey relayed
// (no request without a proxied answer), and each carried exactly one
// credential and none of the caller's Latchkey secrets.
func (w *sdkapiWorld) testUpstreamLedger(t *testing.T) {
	proxied := 0
	for _, s := range []*sdkapiServer{w.perm, w.strict} {
		for _, ex := range s.Rec.Exchanges() {
			if ex.Proxied {
				proxied++
				if s == w.strict {
					t.Errorf("the strict server relayed an upstream answer (request %s)", ex.RequestID)
				}
			}
		}
	}
	var reqs []sdkapiUpstreamReq
	for _, r := range w.up.Requests() {
		if r.Path != "/slow" { // timed out on purpose: no answer was relayed
			reqs = append(reqs, r)
		}
	}
	if len(reqs) != proxied {
		t.Errorf("the upstream received %d requests, Latchkey relayed %d answers", len(reqs), proxied)
	}
	creds := make([]string, 0, len(w.values))
	for _, v := range w.values {
		creds = append(creds, v)
	}
	for i, r := range reqs {
		dump := r.Dump()
		n := 0
		for _, v := range creds {
			n += strings.Count(dump, v)
		}
		if n != 1 {
			t.Errorf("upstream request %d (%s %s) carried %d credentials, want 1", i, r.Method, r.Path, n)
		}
		for name := range r.Header {
			if strings.HasPrefix(strings.ToLower(name), "latchkey-") {
				t.Errorf("upstream request %d carried %s", i, name)
			}
		}
		// Only the injected credential may be there; every other secret
		// (API keys, signing keys, JWTs, refresh tokens) must not.
		for _, label := range w.sec.Find([]byte(dump)) {
			if !strings.HasPrefix(label, "managed secret") && !strings.HasPrefix(label, "oauth access") {
				t.Errorf("upstream request %d carried the %s", i, label)
			}
		}
	}
}

// testAuditMatchesExchanges cross-checks every recorded exchange against
// the audit trail: one sdk.* row per authenticated request, with the
// action, key, agent, grant, outcome and error code the wire showed; none
// for requests that never authenticated a known key; and no sdk.* row
// without an exchange.
func (w *sdkapiWorld) testAuditMatchesExchanges(t *testing.T) {
	preAuth := map[string]bool{string(wire.CodeMalformedAuth): true, string(wire.CodeInvalidKey): true, string(wire.CodePayloadTooLarge): true}
	authCodes := map[string]bool{string(wire.CodeKeyRevoked): true, string(wire.CodeTimestampOutOfRange): true,
		string(wire.CodeInvalidSignature): true, string(wire.CodeReplayedRequest): true, string(wire.CodeAgentCannotUseUserToken): true}
	unverified := map[string]bool{string(wire.CodeKeyRevoked): true, string(wire.CodeTimestampOutOfRange): true,
		string(wire.CodeInvalidSignature): true, string(wire.CodeReplayedRequest): true}
	checked := 0
	for _, s := range []*sdkapiServer{w.perm, w.strict} {
		byReq := map[string][]models.AuditEvent{}
		for _, r := range s.AuditRows(t) {
			if strings.HasPrefix(r.Action, "sdk.") {
				byReq[r.RequestID] = append(byReq[r.RequestID], r)
			}
		}
		seen := map[string]bool{}
		for _, ex := range s.Rec.Exchanges() {
			if ex.RequestID == "" {
				t.Errorf("%s %s %s: answer without Latchkey-Request-Id", s.Name, ex.Method, ex.Path)
				continue
			}
			seen[ex.RequestID] = true
			rows := byReq[ex.RequestID]
			what := s.Name + " " + ex.Method + " " + ex.Path + " → " + strconv.Itoa(ex.Status) + " " + ex.Code
			if preAuth[ex.Code] {
				if len(rows) != 0 {
					t.Errorf("%s: %d audit rows for a request refused before authentication", what, len(rows))
				}
				continue
			}
			if len(rows) != 1 {
				t.Errorf("%s: %d sdk.* audit rows, want 1", what, len(rows))
				continue
			}
			checked++
			r := rows[0]
			wantAction := sdkapiRouteAction(ex.Method, ex.Path)
			if a, ok := w.expectAction[ex.RequestID]; ok {
				wantAction = a
			} else if authCodes[ex.Code] {
				wantAction = "sdk.authenticate"
			}
			if r.Action != wantAction {
				t.Errorf("%s: action %s, want %s", what, r.Action, wantAction)
			}
			if r.KeyID != ex.KeyID || r.ActorID != ex.KeyID || r.ActorKind != "key" {
				t.Errorf("%s: key %q actor %s/%q, want %q", what, r.KeyID, r.ActorKind, r.ActorID, ex.KeyID)
			}
			wantAgent := w.agentOfKey[ex.KeyID]
			if wantAgent == "" && ex.Agent != "" && r.Action != "sdk.authenticate" {
				wantAgent = strings.ToLower(ex.Agent)
			}
			if r.AgentID != wantAgent {
				t.Errorf("%s: agent %q, want %q", what, r.AgentID, wantAgent)
			}
			if r.Method != ex.Method {
				t.Errorf("%s: method %q", what, r.Method)
			}
			wantOutcome := models.OutcomeSuccess
			switch {
			case ex.Proxied && ex.Status >= 500:
				wantOutcome = models.OutcomeUpstreamError
			case ex.Proxied:
			case ex.Code == string(wire.CodeUpstreamUnreachable) || ex.Code == string(wire.CodeUpstreamTimeout):
				wantOutcome = models.OutcomeUpstreamError
			case ex.Status >= 500:
				wantOutcome = models.OutcomeError
			case ex.Status >= 400:
				wantOutcome = models.OutcomeDenied
			}
			if r.Outcome != wantOutcome || r.ErrorCode != ex.Code {
				t.Errorf("%s: outcome %s code %q, want %s %q", what, r.Outcome, r.ErrorCode, wantOutcome, ex.Code)
			}
			if ex.Proxied && (r.GrantID != ex.GrantID || r.UpstreamStatus != ex.Status) {
				t.Errorf("%s: grant %q upstream %d, want %q %d", what, r.GrantID, r.UpstreamStatus, ex.GrantID, ex.Status)
			}
			if r.Action == "sdk.token" && ex.Status == 200 && r.GrantID == "" {
				t.Errorf("%s: token row names no grant", what)
			}
			wantCaller := ex.Caller
			if r.Action == "sdk.authenticate" && unverified[ex.Code] {
				wantCaller = "" // recorded only once the signature verified
			}
			if r.Caller != wantCaller {
				t.Errorf("%s: caller %q, want %q", what, r.Caller, wantCaller)
			}
			if r.AppID == "" || r.OrganizationID == "" {
				t.Errorf("%s: row without app or organization", what)
			}
		}
		for id, rows := range byReq {
			if !seen[id] {
				t.Errorf("%s: %d sdk.* audit rows (%s) for request %s that no client made", s.Name, len(rows), rows[0].Action, id)
			}
		}
	}
	if checked < 100 {
		t.Errorf("only %d exchanges cross-checked; the suite did not run", checked)
	}
}

// testNoSecretLeaks greps every cell of every table (and the SQLite files),
// the captured logs of both servers and the SDK, every SDK error and every
// Latchkey error body for every secret of the run.
func (w *sdkapiWorld) testNoSecretLeaks(t *testing.T) {
	if w.sec.Count() < 40 {
		t.Fatalf("only %d secrets tracked", w.sec.Count())
	}
	for _, s := range []*sdkapiServer{w.perm, w.strict} {
		cells := s.DumpDatabase(t)
		if len(cells["audit_events.request_id"]) == 0 || len(cells["credentials.access_token_ciphertext"]) == 0 && s == w.perm {
			t.Fatalf("%s: the dump is missing tables it must have", s.Name)
		}
		for col, vals := range cells {
			for _, v := range vals {
				if found := w.sec.Find([]byte(v)); len(found) > 0 {
					t.Errorf("%s: column %s holds %v in plaintext", s.Name, col, found)
				}
			}
		}
		for f, raw := range s.SQLiteFiles(t) {
			if found := w.sec.Find(raw); len(found) > 0 {
				t.Errorf("%s: %s holds %v", s.Name, f, found)
			}
		}
	}
	logs := w.logs.Bytes()
	if !bytes.Contains(logs, []byte(`"msg":"request"`)) {
		t.Fatal("no request log lines captured; the log hook does not work")
	}
	if found := w.sec.Find(logs); len(found) > 0 {
		t.Errorf("the logs hold %v", found)
	}
	for i, e := range w.errs {
		// The error itself is not printed: it would put the secret in the
		// test log.
		if found := w.sec.Find([]byte(e)); len(found) > 0 {
			t.Errorf("SDK error #%d holds %v", i, found)
		}
	}
	for _, s := range []*sdkapiServer{w.perm, w.strict} {
		for _, ex := range s.Rec.Exchanges() {
			if found := w.sec.Find(ex.ErrorBody); len(found) > 0 {
				t.Errorf("%s %s %s: the error body holds %v", s.Name, ex.Method, ex.Path, found)
			}
		}
	}
	if len(w.errs) < 80 {
		t.Errorf("only %d SDK errors collected", len(w.errs))
	}
}

// oneSDKRow returns the one sdk.* audit row of a request.
func (w *sdkapiWorld) oneSDKRow(t *testing.T, s *sdkapiServer, requestID string) models.AuditEvent {
	t.Helper()
	if requestID == "" {
		t.Fatal("no request id")
	}
	rows := sdkCallRows(s.AuditFor(t, requestID))
	if len(rows) != 1 {
		t.Fatalf("%d sdk.* audit rows for request %s, want 1", len(rows), requestID)
	}
	return rows[0]
}

func grantIDs(gs []wire.Grant) []string {
	out := make([]string, 0, len(gs))
	for _, g := range gs {
		out = append(out, g.GrantID)
	}
	return out
}
