package main

import (
	"context"
	"strings"

	"github.com/latchkey/latchkey/services/catalog"
	"github.com/latchkey/latchkey/services/oauth"
)

// paramFlag collects repeatable --param name=value tenant parameters.
type paramFlag map[string]string

func (p paramFlag) String() string {
	parts := make([]string, 0, len(p))
	for k, v := range p {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (p paramFlag) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return usagef("--param must be name=value")
	}
	if _, dup := p[name]; dup {
		return usagef("--param %s is given twice", name)
	}
	p[name] = strings.TrimSpace(value)
	return nil
}

// adminProvidersConfigure enables a provider for an app with the app's own
// OAuth client, or replaces its configuration. The URL and host flags define
// a custom provider, or override a catalog entry's fields when --provider
// names one. The client secret comes from --client-secret or, to keep it out
// of shell history and process listings, from the environment variable named
// by --client-secret-env; it is never printed.
func (e *environment) adminProvidersConfigure(ctx context.Context, args []string) error {
	fs := newFlags("admin providers configure")
	app := fs.String("app", "", "app id")
	provider := fs.String("provider", "", "catalog slug, or the slug of a custom provider")
	clientID := fs.String("client-id", "", "the app's OAuth client id at the provider")
	secret := fs.String("client-secret", "", "the app's OAuth client secret (write-only)")
	secretEnv := fs.String("client-secret-env", "", "read the client secret from this environment variable instead of --client-secret")
	var scopes, hosts listFlag
	fs.Var(&scopes, "scopes", "scopes to request, comma separated (default: the provider's default scopes)")
	params := paramFlag{}
	fs.Var(params, "param", "tenant parameter name=value, e.g. shop=acme (repeatable)")
	authorizeURL := fs.String("authorize-url", "", "custom provider: authorization endpoint")
	tokenURL := fs.String("token-url", "", "custom provider: token endpoint")
	userinfoURL := fs.String("userinfo-url", "", "custom provider: endpoint identifying the account (default fields sub and email)")
	revokeURL := fs.String("revoke-url", "", "custom provider: RFC 7009 revocation endpoint")
	fs.Var(&hosts, "api-host", "custom provider: API host the proxy may call: host, *.domain or host:port (repeatable)")
	name := fs.String("name", "", "custom provider: display name")
	idField := fs.String("id-field", "", "custom provider: JSON path of the account id in the userinfo answer (default sub)")
	displayField := fs.String("display-field", "", "custom provider: JSON path of the account label (default email)")
	pkce := fs.String("pkce", "", "custom provider: required, supported (default) or none")
	authStyle := fs.String("token-auth-style", "", "custom provider: header, params or auto (default)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseSecretFlags(fs, args); err != nil {
		return err
	}
	if err := required(fs, "app", "provider", "client-id"); err != nil {
		return err
	}
	s := *secret
	switch {
	case s != "" && *secretEnv != "":
		return usagef("admin providers configure: give --client-secret or --client-secret-env, not both")
	case *secretEnv != "":
		if s = e.getenv(*secretEnv); s == "" {
			return usagef("admin providers configure: environment variable %s is empty or unset", *secretEnv)
		}
	case s == "":
		return usagef("admin providers configure: missing --client-secret (or --client-secret-env)")
	}

	in := oauth.ConfigureInput{
		AppID: *app, Provider: *provider, ClientID: *clientID, ClientSecret: s,
		Scopes: scopes, Actor: cliActor,
	}
	if len(params) > 0 {
		in.Params = params
	}
	custom := catalog.CustomDefinition{
		ID: *provider, Name: *name, AuthorizeURL: *authorizeURL, TokenURL: *tokenURL, UserinfoURL: *userinfoURL,
		IDField: *idField, DisplayField: *displayField, RevokeURL: *revokeURL,
		PKCE: catalog.PKCE(*pkce), TokenAuthStyle: catalog.AuthStyle(*authStyle),
	}
	if len(hosts) > 0 {
		custom.APIHosts = hosts
	}
	for _, f := range []string{*name, *authorizeURL, *tokenURL, *userinfoURL, *revokeURL, *idField, *displayField, *pkce, *authStyle} {
		if f != "" || len(hosts) > 0 {
			in.Custom = &custom
			break
		}
	}

	core, err := e.openCore(ctx)
	if err != nil {
		return err
	}
	defer core.Close()
	res, err := core.OAuth.Configure(ctx, in)
	if err != nil {
		return err
	}
	return printResult(e.stdout, *asJSON, map[string]any{
		"provider_config_id": res.ProviderConfigID, "redirect_uri": res.RedirectURI, "provider": *provider,
	}, "provider_config_id", "provider", "redirect_uri")
}
