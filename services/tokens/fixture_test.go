package tokens_test

import (
	"context"
	"encoding/base64"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"gocloud.dev/secrets"
	"gocloud.dev/secrets/localsecrets"
	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/catalog"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/oauth"
	"github.com/latchkey/latchkey/services/tokens"
	"github.com/latchkey/latchkey/services/vault"
	"github.com/latchkey/latchkey/testutil"
	"github.com/latchkey/latchkey/testutil/quirkyprovider"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// clock is real time plus an offset the test moves: the quirky provider
// runs on real time, expiry decisions on this clock.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// fakeClients stands in for *oauth.Service: it serves ClientConfigs from
// memory and marks configs broken in memory and in the database, the way
// the real service does (broken configs answer provider_not_configured).
type fakeClients struct {
	db *gorm.DB

	mu      sync.Mutex
	configs map[string]oauth.ClientConfig
	broken  []string
}

func (f *fakeClients) ClientByID(_ context.Context, appID, id string) (oauth.ClientConfig, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.configs[id]
	if !ok || c.AppID != appID {
		return oauth.ClientConfig{}, errs.Coded(wire.CodeProviderNotConfigured, "not configured")
	}
	if c.Status != models.ProviderConfigActive {
		return oauth.ClientConfig{}, &errs.CodedError{Code: wire.CodeProviderNotConfigured, Message: "broken",
			Details: map[string]any{"status": c.Status}}
	}
	return c, nil
}

func (f *fakeClients) MarkBroken(ctx context.Context, id, reason string) error {
	f.mu.Lock()
	c := f.configs[id]
	c.Status = models.ProviderConfigBroken
	f.configs[id] = c
	f.broken = append(f.broken, id)
	f.mu.Unlock()
	return f.db.WithContext(ctx).Model(&models.ProviderConfig{}).Where("id = ?", id).
		Updates(map[string]any{"status": models.ProviderConfigBroken, "broken_reason": reason}).Error
}

func (f *fakeClients) Broken() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.broken...)
}

func (f *fakeClients) update(id string, fn func(*oauth.ClientConfig)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.configs[id]
	fn(&c)
	f.configs[id] = c
}

// world is one database, one quirky provider, one app with a provider
// config, and seed helpers.
type world struct {
	t        *testing.T
	db       *database.DB
	key      [32]byte
	clock    *clock
	provider *quirkyprovider.Provider
	clients  *fakeClients
	vault    *vault.Vault
	org, app string
	pc       string // provider config id
}

func newWorld(t *testing.T, db *database.DB, opts ...quirkyprovider.Option) *world {
	t.Helper()
	key, err := localsecrets.NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, db: db, key: key, clock: &clock{},
		provider: quirkyprovider.New(t, opts...)}
	w.vault = vault.New(db.Gorm, w.keeper())
	w.clients = &fakeClients{db: db.Gorm, configs: map[string]oauth.ClientConfig{}}
	now := time.Now().UTC()
	w.org = w.id()
	w.create(&models.Organization{ID: w.org, Name: "org-" + w.org, CreatedAt: now, UpdatedAt: now})
	w.app = w.id()
	w.create(&models.App{ID: w.app, OrganizationID: w.org, Name: "app", CreatedAt: now, UpdatedAt: now})
	w.pc = w.providerConfig(quirkyDefinition(w.provider))
	return w
}

// quirkyDefinition is the quirky provider as a catalog entry: expiring,
// rotating tokens, HTTP Basic client authentication, RFC 7009 revocation.
func quirkyDefinition(p *quirkyprovider.Provider) catalog.Provider {
	return catalog.Provider{ID: "quirky", Name: "Quirky", TokenURL: p.TokenURL(), AuthorizeURL: p.AuthorizeURL(),
		RevokeURL: p.RevokeURL(), RevokeStyle: catalog.RevokeRFC7009, TokenAuthStyle: catalog.AuthStyleHeader,
		TokensExpire: true, RefreshTokenRotates: true, APIHosts: []string{"127.0.0.1"}}
}

func (w *world) keeper() *secrets.Keeper {
	k := localsecrets.NewKeeper(w.key)
	w.t.Cleanup(func() { _ = k.Close() })
	return k
}

// keeperURL is the keeper as a base64key:// URL, for a helper process.
func (w *world) keeperURL() string {
	return "base64key://" + base64.URLEncoding.EncodeToString(w.key[:])
}

func (w *world) id() string {
	w.t.Helper()
	return uuid.Must(uuid.NewV7()).String()
}

func (w *world) create(v any) {
	w.t.Helper()
	if err := w.db.Gorm.Create(v).Error; err != nil {
		w.t.Fatalf("seed %T: %v", v, err)
	}
}

func (w *world) providerConfig(p catalog.Provider) string {
	w.t.Helper()
	now := time.Now().UTC()
	id := w.id()
	w.create(&models.ProviderConfig{ID: id, AppID: w.app, Provider: p.ID, ClientID: w.provider.ClientID(),
		Status: models.ProviderConfigActive, CreatedAt: now, UpdatedAt: now})
	w.clients.mu.Lock()
	w.clients.configs[id] = oauth.ClientConfig{ProviderConfigID: id, AppID: w.app, Provider: p,
		ClientID: w.provider.ClientID(), ClientSecret: w.provider.ClientSecret(), Status: models.ProviderConfigActive}
	w.clients.mu.Unlock()
	return id
}

// service builds a tokens.Service on db (the world's pool when nil) with
// its own vault, as a replica would have.
func (w *world) service(db *database.DB, opts ...tokens.Option) *tokens.Service {
	w.t.Helper()
	if db == nil {
		db = w.db
	}
	v := w.vault
	if db != w.db {
		v = vault.New(db.Gorm, w.keeper())
	}
	return tokens.New(db.Gorm, v, w.clients, w.provider.Client(), audit.New(db.Gorm, w.clock.Now), w.clock.Now, opts...)
}

// cred describes a credential to seed.
type cred struct {
	pc        string // provider config; the world's when empty
	access    string
	refresh   string // none when empty
	expiresIn time.Duration
	noExpiry  bool
	grants    int // active grants to create: 1 when zero, none when negative
}

// credential seals and stores a credential and its grants; it returns the
// credential id and the grant ids.
func (w *world) credential(c cred) (string, []string) {
	w.t.Helper()
	ctx := context.Background()
	if c.pc == "" {
		c.pc = w.pc
	}
	id := w.id()
	at, err := w.vault.Seal(ctx, oauth.AccessTokenBinding(w.app, id), []byte(c.access))
	if err != nil {
		w.t.Fatal(err)
	}
	var rt []byte
	if c.refresh != "" {
		if rt, err = w.vault.Seal(ctx, oauth.RefreshTokenBinding(w.app, id), []byte(c.refresh)); err != nil {
			w.t.Fatal(err)
		}
	}
	now := w.clock.Now().UTC()
	var exp *time.Time
	if !c.noExpiry {
		e := now.Add(c.expiresIn).Truncate(time.Second)
		exp = &e
	}
	w.create(&models.Credential{ID: id, AppID: w.app, Kind: models.CredentialOAuth, ProviderConfigID: &c.pc,
		AccountIdentifier: "octocat", AccessTokenCiphertext: at, RefreshTokenCiphertext: rt, TokenType: "bearer",
		Scopes: quirkyprovider.DefaultScope, ExpiresAt: exp, Version: 1, RefreshState: models.RefreshIdle,
		CreatedAt: now, UpdatedAt: now})
	n := c.grants
	if n == 0 {
		n = 1
	}
	var gids []string
	for range n {
		gids = append(gids, w.grant(id, models.GrantActive))
	}
	return id, gids
}

func (w *world) grant(credID, status string) string {
	w.t.Helper()
	now := time.Now().UTC()
	g := models.Grant{ID: w.id(), AppID: w.app, CredentialID: &credID, PrincipalKind: models.PrincipalSystem,
		Provider: "quirky", AccountIdentifier: "octocat", Status: status, Metadata: "{}", CreatedAt: now, UpdatedAt: now}
	if status == models.GrantRevoked {
		g.RevokedAt = &now
	}
	w.create(&g)
	return g.ID
}

// issued is a token pair from the quirky provider, stored as a credential
// expiring after expiresIn (by our clock; the provider's own expiry is an
// hour unless changed).
func (w *world) issued(expiresIn time.Duration) (quirkyprovider.Tokens, string, []string) {
	w.t.Helper()
	tok := w.provider.IssueInitial("")
	id, gids := w.credential(cred{access: tok.AccessToken, refresh: tok.RefreshToken, expiresIn: expiresIn})
	return tok, id, gids
}

func (w *world) row(id string) models.Credential {
	w.t.Helper()
	var c models.Credential
	if err := w.db.Gorm.Where("id = ?", id).Take(&c).Error; err != nil {
		w.t.Fatalf("load credential: %v", err)
	}
	return c
}

func (w *world) grantRow(id string) models.Grant {
	w.t.Helper()
	var g models.Grant
	if err := w.db.Gorm.Where("id = ?", id).Take(&g).Error; err != nil {
		w.t.Fatalf("load grant: %v", err)
	}
	return g
}

// storedRefresh opens the credential's refresh token.
func (w *world) storedRefresh(id string) string {
	w.t.Helper()
	c := w.row(id)
	pt, err := w.vault.Open(context.Background(), oauth.RefreshTokenBinding(w.app, id), c.RefreshTokenCiphertext)
	if err != nil {
		w.t.Fatal(err)
	}
	return string(pt)
}

func (w *world) storedAccess(id string) string {
	w.t.Helper()
	c := w.row(id)
	pt, err := w.vault.Open(context.Background(), oauth.AccessTokenBinding(w.app, id), c.AccessTokenCiphertext)
	if err != nil {
		w.t.Fatal(err)
	}
	return string(pt)
}

func (w *world) auditActions(action string) []models.AuditEvent {
	w.t.Helper()
	var evs []models.AuditEvent
	if err := w.db.Gorm.Where("app_id = ? AND action = ?", w.app, action).Order("id").Find(&evs).Error; err != nil {
		w.t.Fatal(err)
	}
	return evs
}

func (w *world) refreshCalls() int64 { return w.provider.TokenCallsFor("refresh_token") }

func wantCode(t *testing.T, err error, code wire.ErrorCode) *errs.CodedError {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s, got no error", code)
	}
	var ce *errs.CodedError
	if !errors.As(err, &ce) || ce.Code != code {
		t.Fatalf("want %s, got %v", code, err)
	}
	return ce
}
