package handlers

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"gocloud.dev/secrets"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/agents"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/password"
	"github.com/latchkey/latchkey/services/sdkauth"
	"github.com/latchkey/latchkey/services/tenancy"
	"github.com/latchkey/latchkey/services/vault"
	"github.com/latchkey/latchkey/testutil"
	"github.com/latchkey/latchkey/testutil/testclock"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// sdkEnv is a database with the real services, and the real handler stack
// over them behind httptest.
type sdkEnv struct {
	t       *testing.T
	db      *database.DB
	keeper  *secrets.Keeper
	clock   *testclock.Clock // the services' and the signer's, so a test can stand at a vector's timestamp or skew the client
	vault   *vault.Vault
	audit   *audit.Log
	keys    *apikeys.Service
	agents  *agents.Service
	tenancy *tenancy.Service
	ts      *testServer
}

func newSDKEnv(t *testing.T, db *database.DB) *sdkEnv {
	t.Helper()
	e := &sdkEnv{t: t, db: db, keeper: testutil.Keeper(t), clock: testclock.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))}
	e.vault = vault.New(db.Gorm, e.keeper)
	e.audit = audit.New(db.Gorm, e.clock.Now)
	e.keys = apikeys.New(db.Gorm, e.vault, e.audit, e.clock.Now)
	e.agents = agents.New(db.Gorm, e.keys, e.audit, e.clock.Now)
	e.tenancy = tenancy.New(db.Gorm, e.vault, e.keys, e.audit,
		password.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}, e.clock.Now)
	e.ts = e.server(db)
	return e
}

// server starts another instance of the handler stack over db, with its
// own authenticator (and so its own key cache): a replica.
func (e *sdkEnv) server(db *database.DB) *testServer {
	e.t.Helper()
	v := vault.New(db.Gorm, e.keeper)
	al := audit.New(db.Gorm, e.clock.Now)
	keys := apikeys.New(db.Gorm, v, al, e.clock.Now)
	calls := audit.NewBatcher(al, audit.BatchOptions{})
	e.t.Cleanup(calls.Close)
	return newTestServer(e.t, Deps{
		SDKAuth: sdkauth.New(db.Gorm, v, al, e.clock.Now),
		Audit:   calls,
		Agents:  agents.New(db.Gorm, keys, al, e.clock.Now),
		APIKeys: keys,
	}, nil)
}

// app bootstraps an app through the real tenancy service and returns it
// with its first app key.
func (e *sdkEnv) app(name string) (models.App, apikeys.Minted) {
	e.t.Helper()
	ctx := context.Background()
	res, err := e.tenancy.Bootstrap(ctx, tenancy.BootstrapInput{
		Org: "org " + name, App: name, OperatorEmail: name + "@example.com", OperatorPassword: "correct horse battery",
	})
	if err != nil {
		e.t.Fatalf("bootstrap: %v", err)
	}
	app, err := e.tenancy.App(ctx, res.AppID)
	if err != nil {
		e.t.Fatal(err)
	}
	return app, res.AppKey
}

func (e *sdkEnv) agent(appID, name string) agents.Created {
	e.t.Helper()
	c, err := e.agents.Create(context.Background(), agents.CreateInput{
		AppID: appID, Name: name, Actor: apikeys.Actor{Kind: audit.ActorSystem, ID: "test"},
	})
	if err != nil {
		e.t.Fatalf("create agent: %v", err)
	}
	return c
}

func (e *sdkEnv) mint(appID, agentID string) apikeys.Minted {
	e.t.Helper()
	m, err := e.keys.Mint(context.Background(), apikeys.MintInput{
		AppID: appID, AgentID: agentID, Actor: apikeys.Actor{Kind: audit.ActorSystem, ID: "test"},
	})
	if err != nil {
		e.t.Fatalf("mint: %v", err)
	}
	return m
}

// sdkReq describes one signed call. mutate runs after signing, to tamper.
type sdkReq struct {
	key    wire.APIKey
	method string
	target string
	body   []byte
	header http.Header
	mutate func(r *http.Request)
}

// sdkResp is a response with the parsed error (when there is one).
type sdkResp struct {
	status    int
	header    http.Header
	body      string
	requestID string
	code      wire.ErrorCode
}

func (e *sdkEnv) call(ts *testServer, r sdkReq) sdkResp {
	e.t.Helper()
	return e.send(ts, e.signed(ts, r))
}

// signed builds and signs the request r describes, without sending it.
func (e *sdkEnv) signed(ts *testServer, r sdkReq) *http.Request {
	e.t.Helper()
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequest(r.method, ts.URL+r.target, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range r.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if !r.key.IsZero() {
		s, err := wire.NewSigner(r.key, e.clock.Now, nil)
		if err != nil {
			e.t.Fatal(err)
		}
		if err := s.Sign(req); err != nil {
			e.t.Fatal(err)
		}
	}
	if r.mutate != nil {
		r.mutate(req)
	}
	return req
}

// resend is an exact copy of a signed request: a replay.
func resend(req *http.Request, body []byte) *http.Request {
	c := req.Clone(req.Context())
	if body != nil {
		c.Body, c.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	}
	return c
}

var testActor = apikeys.Actor{Kind: audit.ActorSystem, ID: "test"}

func keyRef(appID, agentID, keyID string) apikeys.KeyRef {
	return apikeys.KeyRef{AppID: appID, AgentID: agentID, KeyID: keyID}
}

func revokeInput(appID, agentID, keyID string, force bool) apikeys.RevokeInput {
	return apikeys.RevokeInput{Key: keyRef(appID, agentID, keyID), Force: force, Actor: testActor}
}

func (e *sdkEnv) send(ts *testServer, req *http.Request) sdkResp {
	e.t.Helper()
	res, err := ts.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	out := sdkResp{status: res.StatusCode, header: res.Header, body: string(b), requestID: res.Header.Get(wire.HeaderRequestID)}
	if res.StatusCode >= 400 && strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		out.code = decodeJSON[wire.ErrorBody](e.t, out.body).Error.Code
	}
	return out
}

func (e *sdkEnv) auditRows(where string, args ...any) []models.AuditEvent {
	e.t.Helper()
	var rows []models.AuditEvent
	if err := e.db.Gorm.Where(where, args...).Order("id").Find(&rows).Error; err != nil {
		e.t.Fatal(err)
	}
	return rows
}

// vectorKey stores the key row a test vector signs with.
func (e *sdkEnv) vectorKey(appID, agentID string, v wire.Vector) {
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
	if row.SigningKeyCiphertext, err = e.vault.Seal(context.Background(), apikeys.SigningKeyBinding(appID, row.ID), sk); err != nil {
		e.t.Fatal(err)
	}
	row.CreatedAt, row.UpdatedAt = time.Now().UTC(), time.Now().UTC()
	if err := e.db.Gorm.Create(&row).Error; err != nil {
		e.t.Fatal(err)
	}
}

// authCodes are the codes of DESIGN.md §4.4: a request that earns none of
// them got past authentication.
var authCodes = map[wire.ErrorCode]bool{
	wire.CodeMalformedAuth: true, wire.CodeInvalidKey: true, wire.CodeKeyRevoked: true,
	wire.CodeTimestampOutOfRange: true, wire.CodeInvalidSignature: true, wire.CodeReplayedRequest: true,
	wire.CodeAgentCannotUseUserToken: true,
}
