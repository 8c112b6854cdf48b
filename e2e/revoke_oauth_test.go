package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/latchkey/latchkey/config"
	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/catalog"
	"github.com/latchkey/latchkey/services/oauth"
	"github.com/latchkey/latchkey/testutil"
	"github.com/latchkey/latchkey/testutil/quirkyprovider"
	"github.com/latchkey/latchkey/testutil/testserver"
)

// Revoking the last grant on an OAuth credential through the SDK revokes the
// token at the provider (RFC 7009) and deletes the credential; the revoked
// grant stays readable as history, and using it answers grant_revoked.
func TestRevokingLastOAuthGrantRevokesAtProvider(t *testing.T) {
	for _, d := range testutil.Dialects(t) {
		t.Run(d, func(t *testing.T) {
			qp := quirkyprovider.New(t)
			key := make([]byte, 32)
			_, _ = rand.Read(key)
			core := testserver.NewCore(t, d, testserver.Options{Env: map[string]string{
				config.EnvAllowPrivateUpstreams: "true",
				config.EnvKeeperURL:             "base64key://" + base64.URLEncoding.EncodeToString(key),
			}})
			srv := testserver.Start(t, core)
			app, appKey := testserver.NewSeed(t, core).App("")
			ctx := context.Background()
			actor := apikeys.Actor{Kind: "system", ID: "test"}
			conf, err := core.OAuth.Configure(ctx, oauth.ConfigureInput{
				AppID: app.ID, Provider: "quirky", ClientID: qp.ClientID(), ClientSecret: qp.ClientSecret(), Actor: actor,
				Custom: &catalog.CustomDefinition{ID: "quirky", AuthorizeURL: qp.AuthorizeURL(), TokenURL: qp.TokenURL(),
					UserinfoURL: qp.UserinfoURL(), RevokeURL: qp.RevokeURL(),
					APIHosts: []string{strings.TrimPrefix(qp.URL(), "http://")}, AllowInsecure: true},
			})
			if err != nil {
				t.Fatal(err)
			}
			tok := qp.IssueInitial("u-1")
			exp := time.Now().Add(time.Hour)
			saved, err := core.OAuth.Save(ctx, oauth.SaveInput{PrincipalKind: models.PrincipalSystem, Actor: actor,
				Connected: oauth.Connected{AppID: app.ID, ProviderConfigID: conf.ProviderConfigID, Provider: "quirky",
					AccountIdentifier: "u-1", AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, ExpiresAt: &exp}})
			if err != nil {
				t.Fatal(err)
			}
			client, err := sdk.NewApp(appKey.APIKey.Reveal(), sdk.WithBaseURL(srv.URL))
			if err != nil {
				t.Fatal(err)
			}
			if err := client.RevokeGrant(ctx, saved.Grant.ID); err != nil {
				t.Fatalf("revoke: %v", err)
			}
			if qp.RevokeCalls() != 1 || !(qp.WasRevoked(tok.RefreshToken) || qp.WasRevoked(tok.AccessToken)) {
				t.Fatalf("provider saw %d revocation(s) of this token, want 1", qp.RevokeCalls())
			}
			var creds int64
			core.DB.Gorm.Model(&models.Credential{}).Where("id = ?", *saved.Grant.CredentialID).Count(&creds)
			if creds != 0 {
				t.Fatal("the credential was kept after its last grant was revoked")
			}
			g, err := client.GetGrant(ctx, saved.Grant.ID)
			if err != nil || g.Status != wire.GrantStatus(models.GrantRevoked) {
				t.Fatalf("revoked grant: %+v %v", g, err)
			}
			_, err = client.Proxy(ctx, sdk.Request{URL: qp.APIURL() + "/x", GrantID: saved.Grant.ID})
			if err == nil || !strings.Contains(err.Error(), "grant_revoked") {
				t.Fatalf("proxy with the revoked grant: %v, want grant_revoked", err)
			}
		})
	}
}

// An upstream 401 on an OAuth grant gets one forced refresh and one retry
// (DESIGN.md §6); a provider that keeps refusing gets no second retry.
func TestUpstream401RefreshesOnceAndRetriesOnce(t *testing.T) {
	qp := quirkyprovider.New(t)
	core := testserver.NewCore(t, "sqlite", testserver.Options{Env: map[string]string{config.EnvAllowPrivateUpstreams: "true"}})
	srv := testserver.Start(t, core)
	app, appKey := testserver.NewSeed(t, core).App("")
	ctx := context.Background()
	actor := apikeys.Actor{Kind: "system", ID: "test"}
	conf, err := core.OAuth.Configure(ctx, oauth.ConfigureInput{
		AppID: app.ID, Provider: "quirky", ClientID: qp.ClientID(), ClientSecret: qp.ClientSecret(), Actor: actor,
		Custom: &catalog.CustomDefinition{ID: "quirky", AuthorizeURL: qp.AuthorizeURL(), TokenURL: qp.TokenURL(),
			UserinfoURL: qp.UserinfoURL(), APIHosts: []string{strings.TrimPrefix(qp.URL(), "http://")}, AllowInsecure: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	tok := qp.IssueInitial("u-1")
	exp := time.Now().Add(time.Hour) // Latchkey believes the token is good
	saved, err := core.OAuth.Save(ctx, oauth.SaveInput{PrincipalKind: models.PrincipalSystem, Actor: actor,
		Connected: oauth.Connected{AppID: app.ID, ProviderConfigID: conf.ProviderConfigID, Provider: "quirky",
			AccountIdentifier: "u-1", AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, ExpiresAt: &exp}})
	if err != nil {
		t.Fatal(err)
	}
	client, _ := sdk.NewApp(appKey.APIKey.Reveal(), sdk.WithBaseURL(srv.URL))
	qp.ExpireAccessTokens() // the provider no longer accepts it

	resp, err := client.Proxy(ctx, sdk.Request{URL: qp.APIURL() + "/whoami", GrantID: saved.Grant.ID})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || qp.TokenCallsFor("refresh_token") != 1 {
		t.Fatalf("after a 401: status %d with %d refresh(es), want 200 after exactly 1", resp.StatusCode, qp.TokenCallsFor("refresh_token"))
	}
	apiBefore := qp.APICalls()

	// Now every token is refused: one refresh, one retry, then the 401 is
	// the caller's answer.
	qp.ExpireAccessTokens()
	qp.SetAccessTTL(-time.Minute) // new tokens are born expired at the provider
	resp, err = client.Proxy(ctx, sdk.Request{URL: qp.APIURL() + "/whoami", GrantID: saved.Grant.ID})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("status %d, want the upstream's 401", resp.StatusCode)
	}
	if calls := qp.APICalls() - apiBefore; calls != 2 {
		t.Fatalf("%d upstream calls, want 2 (the call and one retry)", calls)
	}
	if qp.TokenCallsFor("refresh_token") != 2 {
		t.Fatalf("%d refreshes in total, want 2", qp.TokenCallsFor("refresh_token"))
	}
}
