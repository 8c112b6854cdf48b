package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/latchkey/latchkey/handlers/demo"
	"github.com/latchkey/latchkey/handlers/demohost"
	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk"
	"github.com/latchkey/latchkey/server"
	"github.com/latchkey/latchkey/services/agents"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/catalog"
	"github.com/latchkey/latchkey/services/errs"
	"github.com/latchkey/latchkey/services/identity"
	"github.com/latchkey/latchkey/services/oauth"
	"github.com/latchkey/latchkey/services/tenancy"
)

// Demo identities. The password is fixed and printed on purpose: the demo
// exists so a newcomer on one machine can sign in without reading logs.
const (
	demoOrg         = "Latchkey Demo"
	demoApp         = "demo"
	demoEmail       = "demo@latchkey.local"
	demoPassword    = "latchkey-demo-password"
	demoStateFile   = "demo-state.json"
	demoKeyFile     = "demo-idp-key.pem"
	demoProvider    = "demo-calendar"
	demoClientID    = "latchkey-demo"
	demoAudience    = "latchkey-demo"
	demoAgentName   = "calendar-assistant"
	demoAgentTitle  = "Calendar Assistant"
	demoUser        = "ada"
	demoTokenTTL    = 10 * time.Minute
	demoStatePerm   = 0o600
	demoStateFormat = 1
)

// demoState is kept in the data dir (0600) so restarts reuse one app key,
// one agent key and one OAuth client secret instead of minting new ones
// each time. Demo only: a real deployment never writes keys to disk.
type demoState struct {
	Format       int    `json:"format"`
	AppID        string `json:"app_id"`
	KeyID        string `json:"key_id"`
	APIKey       string `json:"api_key"`
	AgentID      string `json:"agent_id"`
	AgentKey     string `json:"agent_key"`
	ClientSecret string `json:"client_secret"`
}

var demoActor = apikeys.Actor{Kind: audit.ActorSystem, ID: "demo"}

// setupDemo seeds, once and idempotently, the demo organization, operator,
// app, app key and agent; builds the demo identity provider, OAuth provider,
// calendar API and host app; configures them for the app; prints the
// walkthrough; and returns the handler to serve under /demo/.
func setupDemo(ctx context.Context, core *server.Core, w io.Writer) (http.Handler, error) {
	dir := core.Config.DataDir
	public := core.Config.PublicURL.String()
	st, err := readDemoState(filepath.Join(dir, demoStateFile))
	if err != nil {
		return nil, err
	}
	if st == nil || !demoKeyActive(ctx, core, st) {
		res, err := core.Tenancy.Bootstrap(ctx, tenancy.BootstrapInput{
			Org: demoOrg, App: demoApp, OperatorEmail: demoEmail, OperatorPassword: demoPassword,
		})
		if err != nil {
			return nil, fmt.Errorf("demo: %w", err)
		}
		prev := st
		st = &demoState{Format: demoStateFormat, AppID: res.AppID, KeyID: res.AppKey.KeyID, APIKey: res.AppKey.APIKey.Reveal()}
		if prev != nil && prev.AppID == res.AppID {
			st.AgentID, st.AgentKey, st.ClientSecret = prev.AgentID, prev.AgentKey, prev.ClientSecret
		}
	}
	if st.ClientSecret == "" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		st.ClientSecret = base64.RawURLEncoding.EncodeToString(b)
	}
	if st.AgentID == "" || !demoAgentActive(ctx, core, st) {
		c, err := core.Agents.Create(ctx, agents.CreateInput{AppID: st.AppID, Name: demoAgentName, DisplayName: demoAgentTitle,
			Description: "reads your calendar to plan your week", Actor: demoActor})
		switch {
		case errors.Is(err, errs.ErrConflict):
			// The agent survived a lost state file: give it a fresh key.
			var ag models.Agent
			if err := core.DB.Gorm.WithContext(ctx).Where("app_id = ? AND name = ?", st.AppID, demoAgentName).Take(&ag).Error; err != nil {
				return nil, fmt.Errorf("demo: agent: %w", err)
			}
			m, err := core.Keys.Mint(ctx, apikeys.MintInput{AppID: st.AppID, AgentID: ag.ID, Label: "demo", Actor: demoActor})
			if err != nil {
				return nil, fmt.Errorf("demo: agent key: %w", err)
			}
			st.AgentID, st.AgentKey = ag.ID, m.APIKey.Reveal()
		case err != nil:
			return nil, fmt.Errorf("demo: agent: %w", err)
		default:
			st.AgentID, st.AgentKey = c.Agent.ID, c.Key.APIKey.Reveal()
		}
	}
	if err := writeDemoState(filepath.Join(dir, demoStateFile), st); err != nil {
		return nil, err
	}

	key, err := readDemoSigningKey(filepath.Join(dir, demoKeyFile))
	if err != nil {
		return nil, err
	}
	d, err := demo.New(demo.Options{
		BaseURL:    public + "/demo",
		Logger:     core.Logger,
		SigningKey: key,
		OAuthClients: []demo.Client{{ID: demoClientID, Secret: st.ClientSecret,
			RedirectURIs: []string{public + oauth.CallbackPath}}},
	})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if key == nil {
		pem, err := demo.EncodeSigningKeyPEM(d.SigningKey())
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, demoKeyFile), pem, demoStatePerm); err != nil {
			return nil, fmt.Errorf("demo: save signing key: %w", err)
		}
	}

	// Configuration is upserted every start: the demo's URLs follow
	// LATCHKEY_PUBLIC_URL.
	if _, err := core.Identity.SetIdP(ctx, identity.SetInput{AppID: st.AppID, Issuer: d.Issuer(), Audience: demoAudience,
		GroupsClaim: "groups", Actor: demoActor}); err != nil {
		return nil, fmt.Errorf("demo: identity provider: %w", err)
	}
	ep := d.OAuthEndpoints()
	if _, err := core.OAuth.Configure(ctx, oauth.ConfigureInput{
		AppID: st.AppID, Provider: demoProvider, ClientID: demoClientID, ClientSecret: st.ClientSecret,
		Scopes: ep.Scopes, Actor: demoActor,
		Custom: &catalog.CustomDefinition{Name: "Demo Calendar", AuthorizeURL: ep.AuthorizeURL, TokenURL: ep.TokenURL,
			UserinfoURL: ep.UserinfoURL, IDField: "id", DisplayField: "email", RevokeURL: ep.RevokeURL,
			APIHosts: []string{ep.APIHost}, AllowInsecure: true},
	}); err != nil {
		return nil, fmt.Errorf("demo: provider: %w", err)
	}
	if err := core.Tenancy.SetURLs(ctx, st.AppID, tenancy.URLs{
		Origins:    []string{public},
		ReturnURLs: []string{public + "/demo/host/connected"},
	}, demoActor); err != nil {
		return nil, fmt.Errorf("demo: origins: %w", err)
	}

	// The host app's backend signs as the demo app, for demo user Ada.
	app, err := sdk.NewApp(st.APIKey, sdk.WithBaseURL(public), sdk.WithCaller("demo-host"),
		sdk.WithUserToken(func(context.Context) (string, error) { return d.MintToken(demoUser, demoAudience, demoTokenTTL) }))
	if err != nil {
		return nil, err
	}
	host, err := demohost.New(demohost.Options{LatchkeyURL: public, App: app, Provider: demoProvider,
		AgentID: st.AgentID, AgentName: demoAgentTitle, ReturnURL: public + "/demo/host/connected"})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/host/", http.StripPrefix("/host", host.Handler()))
	mux.Handle("/", d.Handler())

	fmt.Fprintf(w, `
Latchkey demo is ready (demo only: keys are kept in %s).

  1. Open the demo host app and connect a calendar through the Connect popup:
       %s/demo/host
     Click "Connect calendar", sign in at the demo provider as a demo user, approve.
     Consent names the agent %q: approving delegates the grant to it.
  2. The page shows the grant id. Call the demo calendar API through Latchkey as the app:
       LATCHKEY_API_KEY=%s go run ./cmd/latchkey request --grant GRANT_ID %s/events
     or as the agent the grant was delegated to:
       LATCHKEY_API_KEY=%s go run ./cmd/latchkey request --grant GRANT_ID %s/events
  3. See who you are and the grants:
       LATCHKEY_API_KEY=%s go run ./cmd/latchkey request me
       go run ./cmd/latchkey admin audit list --app %s

  Operator account: %s / %s
  Demo app id: %s   agent id: %s

`, filepath.Join(dir, demoStateFile), public, demoAgentTitle,
		st.APIKey, ep.APIBaseURL+"/calendar", st.AgentKey, ep.APIBaseURL+"/calendar",
		st.APIKey, st.AppID, demoEmail, demoPassword, st.AppID, st.AgentID)
	return mux, nil
}

func readDemoState(path string) (*demoState, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("demo: read %s: %w", path, err)
	}
	var st demoState
	if err := json.Unmarshal(b, &st); err != nil || st.APIKey == "" || st.Format != demoStateFormat {
		return nil, nil // unreadable or older demo state: start over
	}
	return &st, nil
}

func writeDemoState(path string, st *demoState) error {
	b, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(path, b, demoStatePerm); err != nil {
		return fmt.Errorf("demo: save state: %w", err)
	}
	return nil
}

func readDemoSigningKey(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("demo: read %s: %w", path, err)
	}
	k, err := demo.ParseSigningKeyPEM(b)
	if err != nil {
		return nil, nil // a broken demo key: make a new one (old demo JWTs just stop verifying)
	}
	return k, nil
}

func demoKeyActive(ctx context.Context, core *server.Core, st *demoState) bool {
	var n int64
	core.DB.Gorm.WithContext(ctx).Model(&models.APIKey{}).
		Where("key_id = ? AND app_id = ? AND status <> ?", st.KeyID, st.AppID, models.KeyRevoked).Count(&n)
	return n == 1
}

func demoAgentActive(ctx context.Context, core *server.Core, st *demoState) bool {
	var n int64
	core.DB.Gorm.WithContext(ctx).Model(&models.Agent{}).
		Where("id = ? AND app_id = ? AND status = ?", st.AgentID, st.AppID, models.AgentActive).Count(&n)
	return n == 1
}
