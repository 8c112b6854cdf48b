// Package server is Latchkey's composition root: it turns a validated
// configuration into an open database, a vault, the services and the HTTP
// server. The command line and the tests build Latchkey through it, so both
// run exactly the same wiring.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"gocloud.dev/secrets"

	"github.com/latchkey/latchkey/config"
	"github.com/latchkey/latchkey/handlers"
	"github.com/latchkey/latchkey/services/agents"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/catalog"
	"github.com/latchkey/latchkey/services/connect"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/services/egress"
	"github.com/latchkey/latchkey/services/grants"
	"github.com/latchkey/latchkey/services/identity"
	"github.com/latchkey/latchkey/services/oauth"
	"github.com/latchkey/latchkey/services/password"
	"github.com/latchkey/latchkey/services/proxy"
	"github.com/latchkey/latchkey/services/sdkauth"
	managed "github.com/latchkey/latchkey/services/secrets"
	"github.com/latchkey/latchkey/services/tenancy"
	"github.com/latchkey/latchkey/services/tokens"
	"github.com/latchkey/latchkey/services/vault"
)

// Core is everything a command needs: the database, the vault and the
// services. It holds no HTTP server.
type Core struct {
	Config  config.Config
	Logger  *slog.Logger
	DB      *database.DB
	Keeper  *secrets.Keeper
	Vault   *vault.Vault
	Audit   *audit.Log
	Keys    *apikeys.Service
	Tenancy *tenancy.Service
	Agents  *agents.Service
	// Grants resolves, lists and revokes grants; Secrets manages
	// managed secrets (gocloud's "secrets" package holds the keeper).
	Grants   *grants.Service
	Secrets  *managed.Service
	Identity *identity.Service
	// SDKAuth verifies signed SDK requests; its Run loop (started by
	// Server.Serve) sweeps expired nonces and records key usage.
	SDKAuth *sdkauth.Authenticator
	// AuditCalls writes the one audit row of every SDK call with group
	// commit; changes of access keep writing theirs inside their own
	// transactions through Audit.
	AuditCalls *audit.Batcher
	// Catalog is the embedded provider catalog.
	Catalog *catalog.Catalog
	// Egress makes the proxy's outbound calls over one shared transport.
	Egress *egress.Egress
	// Proxy runs proxied calls and retrieve mode.
	Proxy *proxy.Service
	// OAuth holds provider configs and runs authorization-code flows; its
	// token and identity calls go through Egress's address checks.
	OAuth *oauth.Service
	// Connect mints Connect sessions and runs the popup's steps.
	Connect *connect.Service
	// Tokens refreshes OAuth access tokens (one refresh per credential
	// across replicas) and revokes them at the provider; its Run loop
	// (started by Server.Serve) refreshes idle grants before they expire.
	Tokens *tokens.Service
}

// CoreOptions tune Open.
type CoreOptions struct {
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
	// PasswordParams sets the argon2id cost; zero uses password.Default().
	PasswordParams password.Params
	// GrantCacheTTL bounds how long resolved grants are reused (and so how
	// long a revocation made elsewhere takes to reach this process); zero
	// uses proxy.DefaultCacheTTL, negative disables the cache.
	GrantCacheTTL time.Duration
	// Vault options, e.g. vault.WithRotationGrace for `keys rotate --grace`.
	Vault []vault.Option
}

// Open connects to the database, migrates it when needed (refusing a schema
// newer than this binary), opens the keeper and proves it can unwrap the
// stored data keys. It fails closed: no key, no start.
func Open(ctx context.Context, cfg config.Config, logger *slog.Logger, opts CoreOptions) (_ *Core, err error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	db, err := database.Open(ctx, database.Options{URL: cfg.DatabaseURL, SQLitePath: cfg.SQLitePath(), Logger: logger})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = db.Close()
		}
	}()
	m, err := database.NewMigrator(db)
	if err != nil {
		return nil, err
	}
	applied, err := m.Up(ctx)
	if err != nil {
		return nil, err
	}
	if len(applied) > 0 {
		logger.Info("database migrated", "dialect", db.Dialect, "applied", applied)
	}

	keeper, err := vault.OpenKeeper(ctx, db.Gorm, cfg.KeeperURL, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = keeper.Close()
		}
	}()
	v := vault.New(db.Gorm, keeper, opts.Vault...)
	if err := v.Check(ctx); err != nil {
		return nil, err
	}

	pw := opts.PasswordParams
	if pw == (password.Params{}) {
		pw = password.Default()
	}
	al := audit.New(db.Gorm, now)
	keys := apikeys.New(db.Gorm, v, al, now)
	cat, err := catalog.Load()
	if err != nil {
		return nil, fmt.Errorf("server: provider catalog: %w", err)
	}
	eg := egress.New(egress.Options{AllowPrivate: cfg.AllowPrivateUpstreams, Logger: logger})
	proxyCache := proxy.NewCache(opts.GrantCacheTTL, now)
	if opts.GrantCacheTTL == 0 {
		proxyCache = proxy.NewCache(proxy.DefaultCacheTTL, now)
	}
	oauthSvc := oauth.New(db.Gorm, v, al, cat, eg.HTTPClient(oauth.DefaultHTTPTimeout), cfg.PublicURL.String(), now,
		oauth.WithAllowInsecure(cfg.AllowPrivateUpstreams), oauth.WithLogger(logger),
		oauth.WithOnChange(proxyCache.Invalidate))
	tokenSvc := tokens.New(db.Gorm, v, oauthSvc, eg.HTTPClient(tokens.DefaultRequestTimeout), al, now,
		tokens.WithLogger(logger), tokens.WithOnChange(proxyCache.Invalidate))
	grantSvc := grants.New(db.Gorm, v, al, now, grants.WithOnChange(proxyCache.Invalidate),
		grants.WithTokens(grantTokens{tokenSvc}), grants.WithLogger(logger))
	identitySvc := identity.New(db.Gorm, v, al, &http.Client{Timeout: identity.DefaultDiscoveryTimeout}, now)
	// On SQLite the hot-path writers (nonces, call audit rows) take turns
	// in process rather than in SQLite's sleeping busy handler, and an audit
	// INSERT carries at most 32 rows: the pure-Go driver binds parameters in
	// time quadratic in their number, so a batch of 256 rows (6 144
	// parameters) costs more per row than eight batches of 32
	// (BenchmarkBatcherManyCallers). PostgreSQL takes the default, larger
	// batches.
	var hotWrites sync.Locker = &sync.Mutex{}
	auditBatch := 32
	if db.Dialect == database.Postgres {
		hotWrites, auditBatch = nil, 0
	}
	core := &Core{
		Config:  cfg,
		Logger:  logger,
		DB:      db,
		Keeper:  keeper,
		Vault:   v,
		Audit:   al,
		Keys:    keys,
		Tenancy: tenancy.New(db.Gorm, v, keys, al, pw, now),
		Agents:  agents.New(db.Gorm, keys, al, now),
		Grants:  grantSvc,
		Secrets: managed.New(db.Gorm, v, al, now, managed.WithOnChange(proxyCache.Invalidate)),
		// One client for discovery and JWKS, built once: go-oidc keeps the
		// key sets it fetches for the life of the process.
		Identity:   identitySvc,
		SDKAuth:    sdkauth.New(db.Gorm, v, al, now, sdkauth.WithLogger(logger), sdkauth.WithWriteLock(hotWrites)),
		AuditCalls: audit.NewBatcher(al, audit.BatchOptions{MaxBatch: auditBatch, WriteLock: hotWrites}),
		Catalog:    cat,
		Egress:     eg,
		Proxy:      proxy.New(db.Gorm, identitySvc, grantSvc, eg, oauthSvc, proxyCache),
		OAuth:      oauthSvc,
		Tokens:     tokenSvc,
	}
	// Connect drives the popup over the OAuth flows; it is built last
	// because it uses most of the services above.
	if core.Connect, err = connect.New(db.Gorm, oauthSvc, identitySvc, core.Tenancy, core.Agents, al,
		connect.Options{PublicURL: cfg.PublicURL.String(), Now: now}); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	return core, nil
}

// Close releases the keeper and the database.
func (c *Core) Close() error {
	// Queued audit rows are written before the database goes away.
	c.AuditCalls.Close()
	c.Egress.Close()
	return errors.Join(c.Keeper.Close(), c.DB.Close())
}

// Ready reports whether the database answers and its schema is current.
func (c *Core) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.DB.SQL.PingContext(ctx); err != nil {
		return handlers.NotReady("database unreachable", err)
	}
	m, err := database.NewMigrator(c.DB)
	if err != nil {
		return err
	}
	if err := m.CheckCurrent(ctx); err != nil {
		return handlers.NotReady("schema not current", err)
	}
	return nil
}

// Retention of finished Connect state. Sessions are kept a day past their
// expiry so an app polling late reads "expired", not "not found"; OAuth
// flows are useless once expired.
const (
	connectSessionRetention = 24 * time.Hour
	oauthFlowRetention      = time.Hour
	housekeepingInterval    = 10 * time.Minute
)

// Housekeep deletes expired Connect sessions and OAuth flows, which would
// otherwise grow without bound.
func (c *Core) Housekeep(ctx context.Context) error {
	_, err1 := c.Connect.DeleteExpired(ctx, connectSessionRetention)
	_, err2 := c.OAuth.DeleteExpiredFlows(ctx, oauthFlowRetention)
	return errors.Join(err1, err2)
}

// runHousekeeping calls Housekeep now and every housekeepingInterval until
// ctx ends. Failures are logged; the next round tries again.
func (c *Core) runHousekeeping(ctx context.Context) {
	t := time.NewTicker(housekeepingInterval)
	defer t.Stop()
	for {
		if err := c.Housekeep(ctx); err != nil && ctx.Err() == nil {
			c.Logger.Warn("housekeeping failed", "error", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
