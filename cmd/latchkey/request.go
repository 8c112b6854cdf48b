package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"net/http"
	"slices"
	"strings"

	"github.com/latchkey/latchkey/config"
	"github.com/latchkey/latchkey/sdk"
	"github.com/latchkey/latchkey/sdk/wire"
)

// envAPIKey holds the key for `latchkey request` when --key is not given;
// the environment keeps it out of shell history and `ps`.
const envAPIKey = "LATCHKEY_API_KEY"

const requestUsage = `usage: latchkey request [flags] URL          proxy one call to URL
       latchkey request me [flags] [--json]     who the key is
       latchkey request grants [flags] [--json] grants the key can reach

every form:
  --key K             API key (default $LATCHKEY_API_KEY)
  --base-url U        Latchkey (default $LATCHKEY_PUBLIC_URL or http://127.0.0.1:8080)
  --agent AGENT_ID    act as this agent (app keys)
  --user-token T      the end user's IdP token (app keys)
  --caller C          audit attribution

URL form:
  --grant ID | --provider P [--account A]
  -X METHOD           upstream method (default GET, POST with a body)
  --header 'K: V'     upstream header (repeatable)
  --data BODY | --json JSON
  --reason R  --context k=v (repeatable)  --timeout 30s
  -i, --include       print the status line and headers on stdout
  --fail              exit 1 when the upstream status is 400 or more

grants: --provider P --status S --limit N --cursor C --all
The upstream's status line goes to stderr (stdout with -i) and its body to
stdout. Latchkey's own errors exit 1, bad flags exit 2.
`

// sdkClient is what `latchkey request` needs from sdk.App and sdk.Agent.
type sdkClient interface {
	Proxy(ctx context.Context, r sdk.Request) (*http.Response, error)
	Me(ctx context.Context) (*wire.Me, error)
	ListGrants(ctx context.Context, opts sdk.ListGrantsOptions) (sdk.GrantPage, error)
	Grants(ctx context.Context, opts sdk.ListGrantsOptions) iter.Seq2[wire.Grant, error]
}

// identityFlags are shared by every form of the command.
type identityFlags struct {
	key, baseURL, agent, userToken, caller string
}

func (f *identityFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.key, "key", "", "API key (default $"+envAPIKey+")")
	fs.StringVar(&f.baseURL, "base-url", "", "Latchkey base URL")
	fs.StringVar(&f.agent, "agent", "", "agent id to act as (app keys)")
	fs.StringVar(&f.userToken, "user-token", "", "end user's IdP token (app keys)")
	fs.StringVar(&f.caller, "caller", "", "audit attribution")
}

func (e *environment) request(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "me":
			return requestError(e.requestMe(ctx, args[1:]))
		case "grants":
			return requestError(e.requestGrants(ctx, args[1:]))
		case "help", "-h", "--help":
			fmt.Fprint(e.stdout, requestUsage)
			return nil
		}
	}
	return requestError(e.requestProxy(ctx, args))
}

// client builds the SDK client the flags describe. Problems with the key
// are usage errors whose text never includes the key.
func (e *environment) client(f identityFlags) (sdkClient, error) {
	key := strings.TrimSpace(f.key)
	if key == "" {
		key = strings.TrimSpace(e.getenv(envAPIKey))
	}
	if key == "" {
		return nil, usagef("request: missing --key (or $%s)", envAPIKey)
	}
	parsed, err := wire.ParseKey(key)
	if err != nil {
		return nil, usagef("request: --key: %v", err)
	}
	base := f.baseURL
	if base == "" {
		base = e.getenv(config.EnvPublicURL)
	}
	if base == "" {
		base = sdk.DefaultBaseURL
	}
	opts := []sdk.Option{
		sdk.WithBaseURL(base),
		sdk.WithCaller(f.caller),
		sdk.WithDeprecationNotice(func(keyID string) {
			fmt.Fprintf(e.stderr, "latchkey: warning: key %s is deprecated; mint a new key and switch to it\n", keyID)
		}),
	}
	if parsed.Kind() == wire.KeyKindAgent {
		if f.agent != "" {
			return nil, usagef("request: --agent needs an app key; an agent key already acts as its agent")
		}
		if f.userToken != "" {
			return nil, usagef("request: --user-token needs an app key; Latchkey refuses user tokens from agents")
		}
		ag, err := sdk.NewAgent(key, opts...)
		if err != nil {
			return nil, usagef("request: %v", err)
		}
		return ag, nil
	}
	if f.userToken != "" {
		if f.agent != "" {
			return nil, usagef("request: --user-token and --agent do not combine: an agent reaches its own grants")
		}
		tok := f.userToken
		opts = append(opts, sdk.WithUserToken(func(context.Context) (string, error) { return tok, nil }))
	}
	app, err := sdk.NewApp(key, opts...)
	if err != nil {
		return nil, usagef("request: %v", err)
	}
	if f.agent != "" {
		return app.GetAgent(f.agent), nil
	}
	return app, nil
}

func (e *environment) requestProxy(ctx context.Context, args []string) error {
	fs := newFlags("request")
	var id identityFlags
	id.register(fs)
	grant := fs.String("grant", "", "grant id")
	provider := fs.String("provider", "", "provider slug")
	account := fs.String("account", "", "account identifier narrowing --provider")
	method := fs.String("X", "", "upstream method")
	var headers headerFlag
	fs.Var(&headers, "header", "upstream header 'Name: value' (repeatable)")
	data := fs.String("data", "", "raw request body")
	jsonBody := fs.String("json", "", "JSON request body")
	reason := fs.String("reason", "", "reason shown to approvers and audited")
	callCtx := contextFlag{}
	fs.Var(callCtx, "context", "audit metadata key=value (repeatable)")
	timeout := fs.Duration("timeout", 0, "upstream timeout")
	var include bool
	fs.BoolVar(&include, "i", false, "print the status line and headers on stdout")
	fs.BoolVar(&include, "include", false, "print the status line and headers on stdout")
	fail := fs.Bool("fail", false, "exit 1 when the upstream status is 400 or more")

	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fmt.Fprint(e.stderr, requestUsage)
		return usagef("request: want one URL, got %d arguments", len(pos))
	}
	switch {
	case (*grant == "") == (*provider == ""):
		return usagef("request: set exactly one of --grant and --provider")
	case *account != "" && *provider == "":
		return usagef("request: --account narrows --provider")
	case *data != "" && *jsonBody != "":
		return usagef("request: set at most one of --data and --json")
	case *jsonBody != "" && !json.Valid([]byte(*jsonBody)):
		return usagef("request: --json is not valid JSON")
	case *timeout < 0:
		return usagef("request: --timeout must not be negative")
	}
	req := sdk.Request{
		Method: *method, URL: pos[0], GrantID: *grant, Provider: *provider, Account: *account,
		Headers: headers.m, Reason: *reason, Timeout: *timeout,
	}
	if len(callCtx) > 0 {
		req.Context = callCtx
	}
	switch {
	case *jsonBody != "":
		req.JSON = json.RawMessage(*jsonBody)
	case *data != "":
		req.Body = []byte(*data)
	}
	if req.Method == "" {
		req.Method = http.MethodGet
		if req.JSON != nil || req.Body != nil {
			req.Method = http.MethodPost
		}
	}

	c, err := e.client(id)
	if err != nil {
		return err
	}
	resp, err := c.Proxy(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	statusLine := resp.Proto + " " + resp.Status
	if include {
		fmt.Fprintln(e.stdout, statusLine)
		names := slices.Sorted(func(yield func(string) bool) {
			for k := range resp.Header {
				if !yield(k) {
					return
				}
			}
		})
		for _, k := range names {
			for _, v := range resp.Header[k] {
				fmt.Fprintf(e.stdout, "%s: %s\n", k, v)
			}
		}
		fmt.Fprintln(e.stdout)
	} else {
		// stderr keeps stdout exactly the body, ready for a pipe.
		fmt.Fprintln(e.stderr, statusLine)
	}
	if _, err := io.Copy(e.stdout, resp.Body); err != nil {
		return fmt.Errorf("request: read upstream body: %w", err)
	}
	if *fail && resp.StatusCode >= 400 {
		return fmt.Errorf("request: upstream answered %s", resp.Status)
	}
	return nil
}

func (e *environment) requestMe(ctx context.Context, args []string) error {
	fs := newFlags("request me")
	var id identityFlags
	id.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c, err := e.client(id)
	if err != nil {
		return err
	}
	me, err := c.Me(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(me)
	}
	return printResult(e.stdout, false, map[string]any{
		"kind": string(me.Kind), "app_id": me.AppID, "app_name": me.AppName, "agent_id": me.AgentID,
		"agent_name": me.AgentName, "key_id": me.KeyID, "key_status": string(me.KeyStatus),
	}, "kind", "app_id", "app_name", "agent_id", "agent_name", "key_id", "key_status")
}

func (e *environment) requestGrants(ctx context.Context, args []string) error {
	fs := newFlags("request grants")
	var id identityFlags
	id.register(fs)
	provider := fs.String("provider", "", "only this provider")
	status := fs.String("status", "", "only this status (active, expired, revoked, needs_reauth)")
	limit := fs.Int("limit", 0, "page size")
	cursor := fs.String("cursor", "", "page cursor from next_cursor")
	all := fs.Bool("all", false, "follow next_cursor through every page")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *limit < 0 {
		return usagef("request grants: --limit must not be negative")
	}
	c, err := e.client(id)
	if err != nil {
		return err
	}
	opts := sdk.ListGrantsOptions{Provider: *provider, Status: wire.GrantStatus(*status), Limit: *limit, Cursor: *cursor}
	var page sdk.GrantPage
	if *all {
		for g, err := range c.Grants(ctx, opts) {
			if err != nil {
				return err
			}
			page.Grants = append(page.Grants, g)
		}
	} else if page, err = c.ListGrants(ctx, opts); err != nil {
		return err
	}
	if page.Grants == nil {
		page.Grants = []wire.Grant{}
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(wire.GrantList{Grants: page.Grants, NextCursor: page.NextCursor})
	}
	for _, g := range page.Grants {
		principal := string(g.Principal.Kind)
		if g.Principal.ID != "" {
			principal += ":" + g.Principal.ID
		}
		fmt.Fprintf(e.stdout, "%s  %-12s %-13s %-24s %s\n", g.GrantID, g.Provider, g.Status, g.AccountIdentifier, principal)
	}
	if page.NextCursor != "" {
		fmt.Fprintf(e.stdout, "next_cursor: %s\n", page.NextCursor)
	}
	return nil
}

// requestError turns the SDK's typed errors into the one line the command
// prints after "latchkey: ": "<code>: <message> (request id …)".
func requestError(err error) error {
	if err == nil {
		return nil
	}
	var ue *usageError
	var amb *sdk.AmbiguousGrantError
	var lk *sdk.Error
	var pending *sdk.ApprovalPendingError
	switch {
	case errors.As(err, &ue):
		return err
	case errors.As(err, &amb) && amb.Err != nil:
		msg := strings.TrimPrefix(amb.Err.Error(), "latchkey: ")
		if len(amb.Accounts) > 0 {
			msg += "; pass --account with one of: " + strings.Join(amb.Accounts, ", ")
		}
		return errors.New(msg)
	case errors.As(err, &lk):
		return errors.New(strings.TrimPrefix(lk.Error(), "latchkey: "))
	case errors.As(err, &pending):
		return errors.New(strings.TrimPrefix(pending.Error(), "latchkey: "))
	}
	return err
}

// parseInterspersed lets flags follow the URL, as with curl: it parses,
// takes one positional argument, and parses the rest again. "--" ends flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, usagef("%s: flags: %s", fs.Name(), flagNames(fs))
			}
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// flag.Parse consumed a "--" itself when it ended the flags, so
		// compare lengths to tell whether one was there.
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// headerFlag collects 'Name: value' headers. Unlike listFlag it does not
// split on commas, which are common inside header values.
type headerFlag struct{ m map[string]string }

func (h *headerFlag) String() string { return "" }

func (h *headerFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, ":")
	name = strings.TrimSpace(name)
	if !ok || name == "" || strings.ContainsAny(name, " \t") {
		return errors.New("want 'Name: value'")
	}
	if h.m == nil {
		h.m = map[string]string{}
	}
	h.m[http.CanonicalHeaderKey(name)] = strings.TrimSpace(value)
	return nil
}

// contextFlag collects per-call audit metadata as key=value pairs.
type contextFlag map[string]string

func (c contextFlag) String() string { return "" }

func (c contextFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return errors.New("want key=value")
	}
	c[k] = val
	return nil
}

// Ensure the SDK clients satisfy the interface the command relies on.
var (
	_ sdkClient = (*sdk.App)(nil)
	_ sdkClient = (*sdk.Agent)(nil)
)
