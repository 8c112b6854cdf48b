package main

import (
	"context"
	"errors"
	"flag"

	"github.com/latchkey/latchkey/services/grants"
	managed "github.com/latchkey/latchkey/services/secrets"
)

// adminSecretsCreate stores a managed secret. The value comes from --value
// or, to keep it out of shell history and process listings, from the
// environment variable named by --value-env. It is never printed: not in the
// result, not in an error.
func (e *environment) adminSecretsCreate(ctx context.Context, args []string) error {
	fs := newFlags("admin secrets create")
	app := fs.String("app", "", "app id")
	name := fs.String("name", "", "secret name (lower case, unique in the app); grants select it as provider secret:NAME")
	desc := fs.String("description", "", "what the secret is for")
	value := fs.String("value", "", "the secret value (write-only)")
	valueEnv := fs.String("value-env", "", "read the secret value from this environment variable instead of --value")
	inject := fs.String("inject", "", "injection template, e.g. 'header:Authorization:Bearer {secret}' or 'query:api_key:{secret}'")
	var hosts listFlag
	fs.Var(&hosts, "allowed-host", "host the secret may be sent to: host, *.domain or host:port (repeatable)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseSecretFlags(fs, args); err != nil {
		return err
	}
	if err := required(fs, "app", "name", "inject"); err != nil {
		return err
	}
	v := *value
	switch {
	case v != "" && *valueEnv != "":
		return usagef("admin secrets create: give --value or --value-env, not both")
	case *valueEnv != "":
		if v = e.getenv(*valueEnv); v == "" {
			return usagef("admin secrets create: environment variable %s is empty or unset", *valueEnv)
		}
	case v == "":
		return usagef("admin secrets create: missing --value (or --value-env)")
	}
	if len(hosts) == 0 {
		return usagef("admin secrets create: missing --allowed-host (at least one; egress is closed by default)")
	}
	core, err := e.openCore(ctx)
	if err != nil {
		return err
	}
	defer core.Close()
	id, err := core.Secrets.Create(ctx, managed.CreateInput{AppID: *app, Name: *name, Description: *desc,
		Value: v, Injection: *inject, AllowedHosts: hosts, Actor: cliActor})
	if err != nil {
		return err
	}
	return printResult(e.stdout, *asJSON, map[string]any{
		"managed_secret_id": id, "name": *name, "provider": grants.SecretProvider(*name),
	}, "managed_secret_id", "name", "provider")
}

// adminSecretsGrant binds a managed secret to a principal. The secret id
// alone names the app: operators run this with the whole database's
// authority.
func (e *environment) adminSecretsGrant(ctx context.Context, args []string) error {
	fs := newFlags("admin secrets grant")
	secret := fs.String("secret", "", "managed secret id")
	principal := fs.String("principal", "", "system, user:<subject>, group:<name> or agent:<agent_id>")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required(fs, "secret", "principal"); err != nil {
		return err
	}
	// Checked before opening the database so a typo costs nothing.
	if _, err := managed.ParsePrincipal(*principal); err != nil {
		return err
	}
	core, err := e.openCore(ctx)
	if err != nil {
		return err
	}
	defer core.Close()
	appID, err := core.Secrets.AppOf(ctx, *secret)
	if err != nil {
		return err
	}
	g, err := core.Secrets.Grant(ctx, managed.GrantInput{AppID: appID, SecretID: *secret, Principal: *principal, Actor: cliActor})
	if err != nil {
		return err
	}
	return printResult(e.stdout, *asJSON, map[string]any{
		"grant_id": g.GrantID, "created": g.Created, "principal": *principal,
	}, "grant_id", "created", "principal")
}

// parseSecretFlags is parseFlags without echoing stray arguments: an
// unquoted secret value split by the shell would otherwise land in the error
// line.
func parseSecretFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return usagef("%s: flags: %s", fs.Name(), flagNames(fs))
		}
		return usagef("%s: %v", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument (not shown; quote values that contain spaces)", fs.Name())
	}
	return nil
}
