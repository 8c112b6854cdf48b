package sdkauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"gocloud.dev/secrets"
	"gocloud.dev/secrets/localsecrets"
	"gorm.io/gorm"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/agents"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/vault"
	"github.com/latchkey/latchkey/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.DropTemplate()
	os.Exit(code)
}

// testClock is the one clock of a test: the authenticator, the services and
// the signer all read it, so a test can stand at a vector's timestamp or
// step past the cache TTL.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock { return &testClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var seedActor = apikeys.Actor{Kind: audit.ActorSystem, ID: "sdkauth-test"}

// env is one database with the real services over it.
type env struct {
	t      testing.TB
	db     *database.DB
	keeper *secrets.Keeper
	vault  *vault.Vault
	clock  *testClock
	audit  *audit.Log
	keys   *apikeys.Service
	agents *agents.Service
	auth   *Authenticator
}

func newEnv(t testing.TB, db *database.DB) *env {
	t.Helper()
	key, err := localsecrets.NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	keeper := localsecrets.NewKeeper(key)
	t.Cleanup(func() { _ = keeper.Close() })
	e := &env{t: t, db: db, keeper: keeper, clock: newClock()}
	e.vault = vault.New(db.Gorm, keeper)
	e.audit = audit.New(db.Gorm, e.clock.Now)
	e.keys = apikeys.New(db.Gorm, e.vault, e.audit, e.clock.Now)
	e.agents = agents.New(db.Gorm, e.keys, e.audit, e.clock.Now)
	e.auth = e.replica(db)
	return e
}

// replica is another Authenticator, as another process would have, over
// its own handle on the same database and the same key-encryption key.
func (e *env) replica(db *database.DB) *Authenticator {
	v := vault.New(db.Gorm, e.keeper)
	return New(db.Gorm, v, audit.New(db.Gorm, e.clock.Now), e.clock.Now)
}

func (e *env) app(name string) models.App {
	e.t.Helper()
	now := time.Now().UTC()
	org := models.Organization{ID: uuid.NewString(), Name: "org-" + uuid.NewString(), CreatedAt: now, UpdatedAt: now}
	app := models.App{ID: uuid.NewString(), OrganizationID: org.ID, Name: name, CreatedAt: now, UpdatedAt: now}
	if err := e.db.Gorm.Create(&org).Error; err != nil {
		e.t.Fatal(err)
	}
	if err := e.db.Gorm.Create(&app).Error; err != nil {
		e.t.Fatal(err)
	}
	// As tenancy does at app creation: minting seals inside a transaction
	// and relies on the keyring already existing.
	if err := e.vault.CreateKeyring(context.Background(), nil, app.ID); err != nil {
		e.t.Fatal(err)
	}
	return app
}

func (e *env) mint(appID, agentID string) apikeys.Minted {
	e.t.Helper()
	m, err := e.keys.Mint(context.Background(), apikeys.MintInput{AppID: appID, AgentID: agentID, Actor: seedActor})
	if err != nil {
		e.t.Fatalf("mint: %v", err)
	}
	return m
}

func (e *env) agent(appID, name string) agents.Created {
	e.t.Helper()
	c, err := e.agents.Create(context.Background(), agents.CreateInput{AppID: appID, Name: name, Actor: seedActor})
	if err != nil {
		e.t.Fatalf("create agent: %v", err)
	}
	return c
}

// agentWithID inserts an agent with a fixed id (the vectors name one).
func (e *env) agentWithID(appID, id, name string) {
	e.t.Helper()
	now := time.Now().UTC()
	ag := models.Agent{ID: id, AppID: appID, Name: name, DisplayName: name, Status: models.AgentActive, CreatedAt: now, UpdatedAt: now}
	if err := e.db.Gorm.Create(&ag).Error; err != nil {
		e.t.Fatal(err)
	}
}

// vectorKey stores the key row a test vector signs with: its fixed key id
// and signing key, sealed like any minted key.
func (e *env) vectorKey(appID, agentID string, v wire.Vector) {
	e.t.Helper()
	sk, err := hex.DecodeString(v.SigningKeyHex)
	if err != nil {
		e.t.Fatal(err)
	}
	kind, err := wire.ParseKeyID(v.KeyID)
	if err != nil {
		e.t.Fatal(err)
	}
	row := models.APIKey{ID: uuid.NewString(), KeyID: v.KeyID, AppID: appID, Kind: string(kind), Status: models.KeyActive}
	if kind == wire.KeyKindAgent {
		row.AgentID = &agentID
	}
	row.SigningKeyCiphertext, err = e.vault.Seal(context.Background(), apikeys.SigningKeyBinding(appID, row.ID), sk)
	if err != nil {
		e.t.Fatal(err)
	}
	row.CreatedAt, row.UpdatedAt = time.Now().UTC(), time.Now().UTC()
	if err := e.db.Gorm.Create(&row).Error; err != nil {
		e.t.Fatal(err)
	}
}

func loadVectors(t testing.TB) []wire.Vector {
	t.Helper()
	f, err := os.Open("../../sdk/wire/testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vs, err := wire.LoadVectors(f)
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// signedRequest is a request as the server receives it, signed by key at
// the clock's time.
type signedRequest struct {
	method, target string
	header         http.Header
	body           []byte
}

func (e *env) sign(key wire.APIKey, method, target string, body []byte, extra http.Header) signedRequest {
	e.t.Helper()
	req, err := http.NewRequest(method, "http://latchkey.test"+target, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, vs := range extra {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	s, err := wire.NewSigner(key, e.clock.Now, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := s.Sign(req); err != nil {
		e.t.Fatal(err)
	}
	return signedRequest{method: method, target: wire.RequestTarget(req), header: req.Header, body: body}
}

func (r signedRequest) clone() signedRequest {
	r.header = r.header.Clone()
	r.body = bytes.Clone(r.body)
	return r
}

func (e *env) authenticate(a *Authenticator, r signedRequest) (Caller, error) {
	sum := sha256.Sum256(r.body)
	return a.Authenticate(context.Background(), r.method, r.target, r.header, sum[:])
}

func (e *env) auditRows(where string, args ...any) []models.AuditEvent {
	e.t.Helper()
	var rows []models.AuditEvent
	if err := e.db.Gorm.Where(where, args...).Order("id").Find(&rows).Error; err != nil {
		e.t.Fatal(err)
	}
	return rows
}

func setKeyStatus(t testing.TB, db *gorm.DB, keyID, status string) {
	t.Helper()
	if err := db.Model(&models.APIKey{}).Where("key_id = ?", keyID).Update("status", status).Error; err != nil {
		t.Fatal(err)
	}
}
