package testserver

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// The real server answers its probes and pages on both dialects.
func TestServerServesProbesAndLanding(t *testing.T) {
	for _, d := range testutil.Dialects(t) {
		t.Run(d, func(t *testing.T) {
			srv := Start(t, NewCore(t, d, Options{}))
			for _, tc := range []struct {
				path, want string
			}{
				{"/healthz", `"ok"`},
				{"/readyz", `"ready"`},
				{"/", `data-testid="landing"`},
			} {
				resp, err := http.Get(srv.URL + tc.path)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.Contains(string(body), tc.want) {
					t.Fatalf("%s: %d %s", tc.path, resp.StatusCode, body)
				}
				if resp.Header.Get("Latchkey-Request-Id") == "" {
					t.Fatalf("%s: no request id", tc.path)
				}
			}
		})
	}
}

func TestReadyzFailsWhenDatabaseGoes(t *testing.T) {
	core := NewCore(t, "sqlite", Options{})
	srv := Start(t, core)
	_ = core.DB.SQL.Close()
	resp, err := http.Get(srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusServiceUnavailable || body["status"] != "not_ready" {
		t.Fatalf("readyz with a closed database: %d %v", resp.StatusCode, body)
	}
}

func TestSeedCreatesAppAgentAndKeys(t *testing.T) {
	core := NewCore(t, "sqlite", Options{})
	s := NewSeed(t, core)
	app, key := s.App("")
	ag := s.Agent(app.ID, "")
	k2 := s.Key(app.ID, ag.Agent.ID)
	if key.AppID != app.ID || !strings.HasPrefix(k2.KeyID, "lk_agent_") || ag.Agent.AppID != app.ID {
		t.Fatalf("seeded %+v %+v %+v", app, ag, k2)
	}
}
