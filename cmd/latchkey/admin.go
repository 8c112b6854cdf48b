package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/latchkey/latchkey/config"
	"github.com/latchkey/latchkey/server"
	"github.com/latchkey/latchkey/services/agents"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/tenancy"
)

const adminUsage = `usage: latchkey admin <command> [flags] [--json]

  bootstrap     --org NAME --app NAME --operator-email EMAIL [--operator-password P]
  keys mint     --app APP_ID [--agent AGENT_ID]
  agents create --app APP_ID --name NAME [--display-name D]
  apps origins  --app APP_ID --allowed-origin ORIGIN… --return-url URL…
  idp set       --app APP_ID --issuer URL --audience AUD [--groups-claim C] [--user-claim C] [--client-id ID --client-secret S]
  secrets create --app APP_ID --name NAME (--value V | --value-env VAR) --inject TEMPLATE --allowed-host H… [--description D]
  secrets grant  --secret ID --principal system|user:<subject>|group:<name>|agent:<agent_id>
  providers configure --app APP_ID --provider SLUG --client-id ID (--client-secret S | --client-secret-env VAR) [--scopes a,b] [--param k=v…] [--authorize-url U --token-url U --userinfo-url U --revoke-url U --api-host H…]
  audit list    --app APP_ID [--limit N]
`

var cliActor = apikeys.Actor{Kind: audit.ActorCLI, ID: "latchkey-admin"}

func (e *environment) admin(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, adminUsage)
		return usagef("admin: missing command")
	}
	sub := args[0]
	rest := args[1:]
	switch sub {
	case "help", "-h", "--help":
		fmt.Fprint(e.stdout, adminUsage)
		return nil
	}
	if sub != "bootstrap" {
		if len(args) < 2 {
			return usagef("admin %s: missing command", sub)
		}
		sub, rest = sub+" "+args[1], args[2:]
	}
	var run func(context.Context, []string) error
	switch sub {
	case "bootstrap":
		run = e.adminBootstrap
	case "keys mint":
		run = e.adminKeysMint
	case "agents create":
		run = e.adminAgentsCreate
	case "apps origins":
		run = e.adminAppsOrigins
	case "audit list":
		run = e.adminAuditList
	case "secrets create":
		run = e.adminSecretsCreate
	case "secrets grant":
		run = e.adminSecretsGrant
	case "idp set":
		run = e.adminIdPSet
	case "providers configure":
		run = e.adminProvidersConfigure
	default:
		fmt.Fprint(e.stderr, adminUsage)
		return usagef("admin: unknown command %q", sub)
	}
	return adminError(run(ctx, rest))
}

// adminError turns service errors into one-line, exit-code-2 errors where
// the operator's input was at fault.
func adminError(err error) error {
	if err == nil {
		return nil
	}
	var ue *usageError
	var ve *errs.ValidationError
	switch {
	case errors.As(err, &ue):
		return err
	case errors.As(err, &ve):
		return usagef("%s", ve.Error())
	case errors.Is(err, errs.ErrNotFound):
		return usagef("%s", strings.TrimSuffix(err.Error(), ": "+errs.ErrNotFound.Error())+" not found")
	case errors.Is(err, errs.ErrConflict):
		return usagef("%s", strings.TrimSuffix(err.Error(), ": "+errs.ErrConflict.Error()))
	}
	return err
}

// openCore loads the configuration and opens the database and vault.
func (e *environment) openCore(ctx context.Context) (*server.Core, error) {
	return e.openCoreWith(ctx, server.CoreOptions{})
}

func (e *environment) openCoreWith(ctx context.Context, opts server.CoreOptions) (*server.Core, error) {
	cfg, err := config.Load(e.getenv, false)
	if err != nil {
		return nil, err
	}
	return server.Open(ctx, cfg, newLogger(cfg, e.stderr), opts)
}

func (e *environment) adminBootstrap(ctx context.Context, args []string) error {
	fs := newFlags("admin bootstrap")
	org := fs.String("org", "", "organization name")
	app := fs.String("app", "", "app name")
	email := fs.String("operator-email", "", "operator email")
	pw := fs.String("operator-password", "", "operator password (generated when omitted)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required(fs, "org", "app", "operator-email"); err != nil {
		return err
	}
	core, err := e.openCore(ctx)
	if err != nil {
		return err
	}
	defer core.Close()
	res, err := core.Tenancy.Bootstrap(ctx, tenancy.BootstrapInput{Org: *org, App: *app, OperatorEmail: *email, OperatorPassword: *pw})
	if err != nil {
		return err
	}
	return printResult(e.stdout, *asJSON, map[string]any{
		"org_id":            res.OrgID,
		"app_id":            res.AppID,
		"key_id":            res.AppKey.KeyID,
		"app_key":           res.AppKey.APIKey.Reveal(),
		"operator_email":    res.OperatorEmail,
		"operator_password": res.OperatorPassword,
	}, "org_id", "app_id", "key_id", "app_key", "operator_email", "operator_password")
}

func (e *environment) adminKeysMint(ctx context.Context, args []string) error {
	fs := newFlags("admin keys mint")
	app := fs.String("app", "", "app id")
	agent := fs.String("agent", "", "agent id (mints an agent key)")
	label := fs.String("label", "", "label shown in listings")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required(fs, "app"); err != nil {
		return err
	}
	core, err := e.openCore(ctx)
	if err != nil {
		return err
	}
	defer core.Close()
	m, err := core.Keys.Mint(ctx, apikeys.MintInput{AppID: *app, AgentID: *agent, Label: *label, Actor: cliActor})
	if err != nil {
		return err
	}
	return printResult(e.stdout, *asJSON, map[string]any{"key_id": m.KeyID, "api_key": m.APIKey.Reveal()}, "key_id", "api_key")
}

func (e *environment) adminAgentsCreate(ctx context.Context, args []string) error {
	fs := newFlags("admin agents create")
	app := fs.String("app", "", "app id")
	name := fs.String("name", "", "agent name (lower case, unique in the app)")
	display := fs.String("display-name", "", "name shown to end users on consent screens")
	desc := fs.String("description", "", "what the agent does")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required(fs, "app", "name"); err != nil {
		return err
	}
	core, err := e.openCore(ctx)
	if err != nil {
		return err
	}
	defer core.Close()
	c, err := core.Agents.Create(ctx, agents.CreateInput{AppID: *app, Name: *name, DisplayName: *display, Description: *desc, Actor: cliActor})
	if err != nil {
		return err
	}
	return printResult(e.stdout, *asJSON, map[string]any{
		"agent_id": c.Agent.ID, "key_id": c.Key.KeyID, "api_key": c.Key.APIKey.Reveal(),
	}, "agent_id", "key_id", "api_key")
}

func (e *environment) adminAppsOrigins(ctx context.Context, args []string) error {
	fs := newFlags("admin apps origins")
	app := fs.String("app", "", "app id")
	var origins, returns listFlag
	fs.Var(&origins, "allowed-origin", "origin allowed to receive Connect results (repeatable)")
	fs.Var(&returns, "return-url", "return URL allowed for the redirect flow (repeatable)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required(fs, "app"); err != nil {
		return err
	}
	core, err := e.openCore(ctx)
	if err != nil {
		return err
	}
	defer core.Close()
	if err := core.Tenancy.SetURLs(ctx, *app, tenancy.URLs{Origins: origins, ReturnURLs: returns}, cliActor); err != nil {
		return err
	}
	return printResult(e.stdout, *asJSON, map[string]any{
		"app_id": *app, "allowed_origins": nonNil(origins), "return_urls": nonNil(returns),
	}, "app_id", "allowed_origins", "return_urls")
}

func (e *environment) adminAuditList(ctx context.Context, args []string) error {
	fs := newFlags("admin audit list")
	app := fs.String("app", "", "app id")
	limit := fs.Int("limit", 50, "rows to show (1-1000)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required(fs, "app"); err != nil {
		return err
	}
	if *limit < 1 || *limit > 1000 {
		return usagef("admin audit list: --limit must be between 1 and 1000")
	}
	core, err := e.openCore(ctx)
	if err != nil {
		return err
	}
	defer core.Close()
	if _, err := core.Tenancy.App(ctx, *app); err != nil {
		return err
	}
	evs, err := core.Audit.List(ctx, audit.Query{AppID: *app, Limit: *limit})
	if err != nil {
		return err
	}
	out := make([]map[string]any, 0, len(evs))
	for _, ev := range evs {
		out = append(out, audit.EventJSON(ev))
	}
	if *asJSON {
		return printResult(e.stdout, true, map[string]any{"events": out})
	}
	for _, ev := range evs {
		fmt.Fprintf(e.stdout, "%s  %-16s %-8s %s %s %s\n", ev.OccurredAt.Format("2006-01-02T15:04:05Z"), ev.Action, ev.Outcome, ev.KeyID, ev.Method, ev.Path)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
