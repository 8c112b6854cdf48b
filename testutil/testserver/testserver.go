// Package testserver builds a real Latchkey (server.Core and, when asked,
// the HTTP server on a free loopback port) over a fresh test database, and
// seeds it with defaults. It lives apart from testutil so that service
// packages can use testutil's databases without importing the server.
package testserver

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/latchkey/latchkey/config"
	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/server"
	"github.com/latchkey/latchkey/services/agents"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/password"
	"github.com/latchkey/latchkey/testutil"
)

// Options adjust the configuration of a test core.
type Options struct {
	// Env overrides configuration variables (LATCHKEY_*).
	Env map[string]string
	// Now is the server clock; nil uses time.Now.
	Now func() time.Time
}

// NewCore opens a Latchkey core on a fresh database of the dialect, with a
// fresh data dir (and so a fresh local key file). Closed after the test.
func NewCore(t testing.TB, dialect string, o Options) *server.Core {
	t.Helper()
	env := map[string]string{
		config.EnvDataDir:   t.TempDir(),
		config.EnvLogFormat: config.LogFormatJSON,
	}
	if dialect == database.Postgres {
		env[config.EnvDatabaseURL] = testutil.NewDatabaseURL(t, dialect)
	}
	for k, v := range o.Env {
		env[k] = v
	}
	cfg, err := config.Load(func(k string) string { return env[k] }, false)
	if err != nil {
		t.Fatal(err)
	}
	core, err := server.Open(context.Background(), cfg, testutil.DiscardLogger(), server.CoreOptions{
		Now: o.Now,
		// Cheap hashing: tests create many operators; the cost is not under test here.
		PasswordParams: password.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16},
	})
	if err != nil {
		t.Fatalf("open core: %v", err)
	}
	t.Cleanup(func() { _ = core.Close() })
	return core
}

// Server is a running Latchkey on a loopback port.
type Server struct {
	URL  string
	Core *server.Core
}

// Start runs the real HTTP server over core on 127.0.0.1:0 until the test ends.
func Start(t testing.TB, core *server.Core) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return Serve(t, core, ln)
}

// Serve runs the real HTTP server over core on ln until the test ends. Tests
// whose core must know its own address (its public URL) listen first, then
// build the core, then serve.
func Serve(t testing.TB, core *server.Core, ln net.Listener) *Server {
	t.Helper()
	srv, err := server.New(core)
	if err != nil {
		_ = ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server shutdown: %v", err)
		}
	})
	url := "http://" + ln.Addr().String()
	// Wait until it answers, so tests never race the listener goroutine.
	for i := 0; i < 100; i++ {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &Server{URL: url, Core: core}
}

// Seed creates rows with sensible defaults through the real services.
type Seed struct {
	t    testing.TB
	core *server.Core
}

// NewSeed returns a seeder over core.
func NewSeed(t testing.TB, core *server.Core) *Seed { return &Seed{t: t, core: core} }

var seedActor = apikeys.Actor{Kind: "system", ID: "test-seed"}

// App creates an organization, an operator and an app, and returns the app
// with a fresh app key.
func (s *Seed) App(name string) (models.App, apikeys.Minted) {
	s.t.Helper()
	if name == "" {
		name = "app-" + uuid.NewString()[:8]
	}
	res, err := s.core.Tenancy.Bootstrap(context.Background(), tenancyInput(name))
	if err != nil {
		s.t.Fatalf("seed app: %v", err)
	}
	app, err := s.core.Tenancy.App(context.Background(), res.AppID)
	if err != nil {
		s.t.Fatal(err)
	}
	return app, res.AppKey
}

// Key mints another key for the app (agentID empty) or one of its agents.
func (s *Seed) Key(appID, agentID string) apikeys.Minted {
	s.t.Helper()
	m, err := s.core.Keys.Mint(context.Background(), apikeys.MintInput{AppID: appID, AgentID: agentID, Actor: seedActor})
	if err != nil {
		s.t.Fatalf("seed key: %v", err)
	}
	return m
}

// Agent creates an agent with its first key.
func (s *Seed) Agent(appID, name string) agents.Created {
	s.t.Helper()
	if name == "" {
		name = "agent-" + uuid.NewString()[:8]
	}
	c, err := s.core.Agents.Create(context.Background(), agents.CreateInput{AppID: appID, Name: name, Actor: seedActor})
	if err != nil {
		s.t.Fatalf("seed agent: %v", err)
	}
	return c
}
