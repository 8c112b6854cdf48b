package main

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/latchkey/latchkey/services/identity"
)

// discoveryProbeTimeout bounds the reachability check after "idp set"; the
// IdP is saved either way.
const discoveryProbeTimeout = 5 * time.Second

func (e *environment) adminIdPSet(ctx context.Context, args []string) error {
	fs := newFlags("admin idp set")
	app := fs.String("app", "", "app id")
	issuer := fs.String("issuer", "", "OIDC issuer URL, exactly as tokens carry it in iss")
	audience := fs.String("audience", "", "the aud end-user tokens are issued for")
	userClaim := fs.String("user-claim", "", "claim naming the end user (default: the preset's, sub)")
	groupsClaim := fs.String("groups-claim", "", "claim listing the user's groups (default: the preset's)")
	clientID := fs.String("client-id", "", "OIDC client id (optional)")
	clientSecret := fs.String("client-secret", "", "OIDC client secret (stored sealed)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := required(fs, "app", "issuer", "audience"); err != nil {
		return err
	}
	core, err := e.openCore(ctx)
	if err != nil {
		return err
	}
	defer core.Close()
	idp, err := core.Identity.SetIdP(ctx, identity.SetInput{
		AppID: *app, Issuer: *issuer, Audience: *audience, UserClaim: *userClaim, GroupsClaim: *groupsClaim,
		ClientID: *clientID, ClientSecret: *clientSecret, Actor: cliActor,
	})
	if err != nil {
		return err
	}
	// An issuer that is down now may come up later, so this only warns.
	pctx, cancel := context.WithTimeout(ctx, discoveryProbeTimeout)
	defer cancel()
	if err := core.Identity.CheckDiscovery(pctx, idp.Issuer); err != nil {
		fmt.Fprintf(e.stderr, "latchkey: warning: identity provider saved, but its discovery document could not be fetched (%s); "+
			"user tokens will verify once %s/.well-known/openid-configuration answers\n",
			oneLine(err.Error(), 200), strings.TrimSuffix(idp.Issuer, "/"))
	}
	return printResult(e.stdout, *asJSON, map[string]any{"idp_id": idp.ID, "preset": idp.Preset}, "idp_id", "preset")
}

// oneLine flattens and bounds an error from a remote server (go-oidc quotes
// the response body) so a warning stays one readable line.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		for max > 0 && !utf8.RuneStart(s[max]) {
			max--
		}
		s = s[:max] + "…"
	}
	return s
}
