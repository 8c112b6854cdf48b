package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/server"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/audit"
	"github.com/latchkey/latchkey/services/tenancy"
)

// Demo identities. The password is fixed and printed on purpose: the demo
// exists so a newcomer on one machine can sign in without reading logs.
const (
	demoOrg      = "Latchkey Demo"
	demoApp      = "demo"
	demoEmail    = "demo@latchkey.local"
	demoPassword = "latchkey-demo-password"
	demoKeyFile  = "demo-app-key.json"
)

// demoState is kept in the data dir (0600) so restarts reuse one app key
// instead of minting a new one each time. Demo only.
type demoState struct {
	AppID  string `json:"app_id"`
	KeyID  string `json:"key_id"`
	APIKey string `json:"api_key"`
}

// seedDemo seeds the demo organization, operator, app and app key once, and
// prints how to use them.
func seedDemo(ctx context.Context, core *server.Core, w io.Writer) error {
	path := filepath.Join(core.Config.DataDir, demoKeyFile)
	st, err := readDemoState(path)
	if err != nil {
		return err
	}
	if st == nil || !demoKeyActive(ctx, core, st) {
		res, err := core.Tenancy.Bootstrap(ctx, tenancy.BootstrapInput{
			Org: demoOrg, App: demoApp, OperatorEmail: demoEmail, OperatorPassword: demoPassword,
		})
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		st = &demoState{AppID: res.AppID, KeyID: res.AppKey.KeyID, APIKey: res.AppKey.APIKey.Reveal()}
		b, _ := json.MarshalIndent(st, "", "  ")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return fmt.Errorf("demo: save key: %w", err)
		}
		if err := core.Tenancy.SetURLs(ctx, res.AppID, tenancy.URLs{
			Origins:    []string{core.Config.PublicURL.Scheme + "://" + core.Config.PublicURL.Host},
			ReturnURLs: []string{core.Config.PublicURL.String() + "/demo/host/connected"},
		}, apikeys.Actor{Kind: audit.ActorSystem, ID: "demo"}); err != nil {
			return fmt.Errorf("demo: origins: %w", err)
		}
	}
	base := core.Config.PublicURL.String()
	fmt.Fprintf(w, `
Latchkey demo is ready.

  1. Open %s in a browser.
  2. Sign-in (portal):   %s / %s
  3. Demo app id:        %s
     Demo app key:       %s   (kept in %s)
  4. Make a signed call as the app:
       LATCHKEY_API_KEY=%s go run ./cmd/latchkey request me

`, base, demoEmail, demoPassword, st.AppID, st.APIKey, path, st.APIKey)
	return nil
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
	if err := json.Unmarshal(b, &st); err != nil || st.APIKey == "" {
		return nil, nil // unreadable demo state: start over
	}
	return &st, nil
}

func demoKeyActive(ctx context.Context, core *server.Core, st *demoState) bool {
	var n int64
	core.DB.Gorm.WithContext(ctx).Model(&models.APIKey{}).
		Where("key_id = ? AND app_id = ? AND status <> ?", st.KeyID, st.AppID, models.KeyRevoked).Count(&n)
	return n == 1
}
