package oauth_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/latchkey/latchkey/handlers/demo"
	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/catalog"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/oauth"
	"github.com/latchkey/latchkey/services/vault"
	"github.com/latchkey/latchkey/testutil"
	"github.com/latchkey/latchkey/testutil/demotest"
	"github.com/latchkey/latchkey/testutil/testclock"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// publicURL is Latchkey's public URL in these tests. Nothing listens there:
// the test browser stops at the provider's redirect and reads Location.
const publicURL = "http://latchkey.test"

const redirectURI = publicURL + oauth.CallbackPath

var (
	cliActor     = apikeys.Actor{Kind: audit.ActorCLI, ID: "test"}
	browserActor = apikeys.Actor{Kind: audit.ActorEndUser, ID: "browser"}
)

// world is one database with a real vault and catalog, the OAuth service
// under test (development mode: loopback providers allowed), and seed
// helpers that fill defaults.
type world struct {
	t     *testing.T
	db    *gorm.DB
	store *database.DB // db's database, for whole-database scans
	vault *vault.Vault
	cat   *catalog.Catalog
	audit *audit.Log
	clock *testclock.Clock
	svc   *oauth.Service
	org   string
	app   string
	other string // an app of another organization
}

func newWorld(t *testing.T, db *database.DB) *world {
	t.Helper()
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	clk := testclock.New(time.Now().UTC().Truncate(time.Second))
	w := &world{t: t, db: db.Gorm, store: db, vault: vault.New(db.Gorm, testutil.Keeper(t)), cat: cat, clock: clk,
		audit: audit.New(db.Gorm, clk.Now)}
	w.svc = w.service(nil)
	app := testutil.SeedApp(t, db.Gorm, clk.Now())
	w.org, w.app = app.OrganizationID, app.ID
	w.other = testutil.SeedApp(t, db.Gorm, clk.Now()).ID
	return w
}

// service builds another OAuth service over the world's database, with its
// own HTTP client (a TLS test server's) and options.
func (w *world) service(client *http.Client, opts ...oauth.Option) *oauth.Service {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	opts = append([]oauth.Option{oauth.WithAllowInsecure(true)}, opts...)
	return oauth.New(w.db, w.vault, w.audit, w.cat, client, publicURL, w.clock.Now, opts...)
}

func (w *world) endUser(app, subject string) string {
	w.t.Helper()
	now := w.clock.Now()
	u := models.EndUser{ID: uuid.NewString(), AppID: app, Subject: subject, Source: models.EndUserSourceAppAsserted,
		Status: models.EndUserActive, CreatedAt: now, UpdatedAt: now}
	testutil.Insert(w.t, w.db, &u)
	return u.ID
}

func (w *world) agent(app, name string) string {
	w.t.Helper()
	return testutil.SeedAgent(w.t, w.db, w.clock.Now(), app, name)
}

// browser is one browser's Connect binding: the hex SHA-256 of its cookie.
func newBinding() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// session seeds a pending Connect session of app bound to binding.
func (w *world) session(app, binding string) string {
	w.t.Helper()
	now := w.clock.Now()
	s := models.ConnectSession{ID: uuid.NewString(), AppID: app, TokenHash: uuid.NewString(),
		PrincipalKind: models.PrincipalUser, AllowedProviders: "[]", Metadata: "{}", Status: models.ConnectPending,
		BrowserBindingHash: binding, ResultGrants: "[]", ExpiresAt: now.Add(10 * time.Minute), CreatedAt: now, UpdatedAt: now}
	testutil.Insert(w.t, w.db, &s)
	return s.ID
}

func (w *world) configure(in oauth.ConfigureInput) oauth.ConfigureResult {
	w.t.Helper()
	if in.AppID == "" {
		in.AppID = w.app
	}
	if in.Actor == (apikeys.Actor{}) {
		in.Actor = cliActor
	}
	res, err := w.svc.Configure(context.Background(), in)
	if err != nil {
		w.t.Fatalf("configure %s: %v", in.Provider, err)
	}
	return res
}

// configureDemo configures the demo calendar as the custom provider
// "demo-calendar" of the world's app.
func (w *world) configureDemo(d *demoEnv, scopes ...string) oauth.ConfigureResult {
	w.t.Helper()
	return w.configure(oauth.ConfigureInput{Provider: "demo-calendar", ClientID: demoClientID,
		ClientSecret: demoClientSecret, Scopes: scopes, Custom: d.srv.CustomDefinition()})
}

func (w *world) count(table string, where ...any) int64 {
	w.t.Helper()
	q := w.db.Table(table)
	if len(where) > 0 {
		q = q.Where(where[0], where[1:]...)
	}
	var n int64
	if err := q.Count(&n).Error; err != nil {
		w.t.Fatal(err)
	}
	return n
}

func (w *world) auditActions(app string) []string {
	w.t.Helper()
	var evs []models.AuditEvent
	if err := w.db.Where("app_id = ?", app).Order("occurred_at, id").Find(&evs).Error; err != nil {
		w.t.Fatal(err)
	}
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Action
	}
	return out
}

// assertNotStored fails when any value appears in plaintext anywhere in
// the database.
func (w *world) assertNotStored(values ...string) {
	w.t.Helper()
	testutil.AssertNotStored(w.t, w.store, values...)
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s, got success", code)
	}
	if got := string(errs.CodeOf(err)); got != code {
		t.Fatalf("want %s, got %s (%v)", code, got, err)
	}
}

func wantFlowError(t *testing.T, err, kind error) *oauth.FlowError {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("want %v, got %v", kind, err)
	}
	var fe *oauth.FlowError
	if !errors.As(err, &fe) {
		t.Fatalf("want a *oauth.FlowError, got %T", err)
	}
	return fe
}

// ---- the demo OAuth provider ----

const (
	demoClientID     = "latchkey"
	demoClientSecret = "latchkey-demo-secret"
)

// demoEnv is handlers/demo served by httptest under /demo, with Latchkey's
// callback as the one registered redirect URI.
type demoEnv struct {
	t   *testing.T
	srv *demotest.Server
}

func newDemo(t *testing.T) *demoEnv {
	t.Helper()
	return &demoEnv{t: t, srv: demotest.Start(t, demo.Options{
		OAuthClients: []demo.Client{{ID: demoClientID, Secret: demoClientSecret, RedirectURIs: []string{redirectURI}}},
		IDPClients:   []demo.Client{{ID: demoClientID, Secret: demoClientSecret, RedirectURIs: []string{redirectURI}}},
	})}
}

// authorize plays the browser at the provider: the login page as user,
// then the consent decision ("approve" or "deny"; "" for a server without
// consent). It returns the callback the provider redirected to.
func (d *demoEnv) authorize(authURL, user, decision string) url.Values {
	d.t.Helper()
	loc := d.srv.Authorize(d.t, authURL, user, decision)
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != redirectURI {
		d.t.Fatalf("redirected to %s, want %s", got, redirectURI)
	}
	return loc.Query()
}

// stateOf returns the state parameter of an authorization URL.
func stateOf(t *testing.T, authURL string) string {
	t.Helper()
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	s := u.Query().Get("state")
	if s == "" {
		t.Fatalf("no state in %s", u.Redacted())
	}
	return s
}

// noRedirects is a client that stops at the first redirect.
func noRedirects(base *http.Client) *http.Client {
	c := *base
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

// getWithBearer calls a provider API with an access token.
func getWithBearer(t *testing.T, u, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
