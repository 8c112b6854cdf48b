package connect_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/latchkey/latchkey/config"
	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/server"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/bearer"
	"github.com/latchkey/latchkey/services/connect"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/oauth"
	"github.com/latchkey/latchkey/services/sdkauth"
	"github.com/latchkey/latchkey/services/tenancy"
	"github.com/latchkey/latchkey/testutil"
	"github.com/latchkey/latchkey/testutil/testclock"
	"github.com/latchkey/latchkey/testutil/testserver"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// The registered URLs of the test apps.
const (
	appOrigin = "https://app.example.test"
	appReturn = "https://app.example.test/connected"
)

var testActor = apikeys.Actor{Kind: audit.ActorCLI, ID: "test"}

// env is a real Latchkey core (every service, real database) with one app
// that has registered URLs and provider configs.
type env struct {
	t     *testing.T
	ctx   context.Context
	core  *server.Core
	seed  *testserver.Seed
	clock *testclock.Clock // shared by every service of the core
	app   models.App
	key   apikeys.Minted
}

func newEnv(t *testing.T, dialect string) *env {
	t.Helper()
	clk := testclock.New(time.Now().UTC().Truncate(time.Second))
	core := testserver.NewCore(t, dialect, testserver.Options{Now: clk.Now, Env: map[string]string{
		config.EnvPublicURL: "https://latchkey.example.test",
	}})
	e := &env{t: t, ctx: context.Background(), core: core, seed: testserver.NewSeed(t, core), clock: clk}
	e.app, e.key = e.seed.App("")
	e.register(e.app.ID)
	e.configure(e.app.ID, "github")
	e.configure(e.app.ID, "slack")
	return e
}

func (e *env) register(appID string) {
	e.t.Helper()
	if err := e.core.Tenancy.SetURLs(e.ctx, appID, tenancy.URLs{Origins: []string{appOrigin}, ReturnURLs: []string{appReturn}}, testActor); err != nil {
		e.t.Fatalf("register urls: %v", err)
	}
}

// configure enables a catalog provider for the app (no network involved).
func (e *env) configure(appID, provider string) {
	e.t.Helper()
	_, err := e.core.OAuth.Configure(e.ctx, oauth.ConfigureInput{
		AppID: appID, Provider: provider, ClientID: "client-" + provider, ClientSecret: "secret-" + provider, Actor: testActor,
	})
	if err != nil {
		e.t.Fatalf("configure %s: %v", provider, err)
	}
}

// caller is the app key of app as the SDK middleware would present it.
func (e *env) caller(app models.App, key apikeys.Minted) sdkauth.Caller {
	return sdkauth.Caller{OrganizationID: app.OrganizationID, AppID: app.ID, AppName: app.Name,
		KeyRowID: key.ID, KeyID: key.KeyID, KeyKind: string(wire.KeyKindApp)}
}

func (e *env) mint(req wire.ConnectSessionRequest) wire.ConnectSessionResponse {
	e.t.Helper()
	res, err := e.core.Connect.Mint(e.ctx, e.caller(e.app, e.key), req)
	if err != nil {
		e.t.Fatalf("mint: %v", err)
	}
	return res
}

func (e *env) session(id string) models.ConnectSession {
	e.t.Helper()
	var row models.ConnectSession
	if err := e.core.DB.Gorm.Where("id = ?", id).Take(&row).Error; err != nil {
		e.t.Fatal(err)
	}
	return row
}

// binding is one browser: the hex SHA-256 of a fresh random cookie.
func binding() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return bearer.Hash(hex.EncodeToString(b))
}

// failureCode is the code of a *connect.Failure, or fails the test.
func failureCode(t *testing.T, err error) (string, connect.Delivery) {
	t.Helper()
	var f *connect.Failure
	if !errors.As(err, &f) {
		t.Fatalf("want a *connect.Failure, got %T: %v", err, err)
	}
	return f.Code, f.Delivery
}

// sdkCode is the SDK error code an error maps to.
func sdkCode(err error) wire.ErrorCode { return errs.CodeOf(err) }

func tenancyURLs(origin string) tenancy.URLs {
	return tenancy.URLs{Origins: []string{origin}, ReturnURLs: []string{origin + "/connected"}}
}
