package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/testutil"
)

// What `make run` does: serve --demo on a fresh data dir, then again on the
// same data dir after a restart.
func TestServeDemoStartsServesAndRestarts(t *testing.T) {
	for _, d := range testutil.Dialects(t) {
		t.Run(d, func(t *testing.T) {
			env := map[string]string{"LATCHKEY_DATA_DIR": t.TempDir(), "LATCHKEY_LOG_FORMAT": "json"}
			if d == database.Postgres {
				env["LATCHKEY_DATABASE_URL"] = testutil.NewDatabaseURL(t, d)
			}
			p := startLatchkey(t, env, "serve", "--demo")
			if code, body := get(t, p.URL+"/healthz"); code != 200 || !contains(body, `"ok"`) {
				t.Fatalf("/healthz: %d %s", code, body)
			}
			if code, body := get(t, p.URL+"/readyz"); code != 200 {
				t.Fatalf("/readyz: %d %s", code, body)
			}
			if code, body := get(t, p.URL+"/"); code != 200 || !contains(body, `data-testid="landing"`, "Latchkey") {
				t.Fatalf("landing: %d", code)
			}
			p.Stop()
			keyRE := regexp.MustCompile(`lk_app_[a-z0-9]{16}_[A-Za-z0-9]{43}`)
			first := keyRE.FindString(p.Stdout())
			if first == "" {
				t.Fatalf("demo did not print an app key:\n%s", p.Stdout())
			}
			if keyRE.MatchString(p.Stderr()) {
				t.Fatal("the app key appeared in the logs")
			}

			// Restart on the same data dir: same data, same demo key, no new seed.
			p2 := startLatchkey(t, env, "serve", "--demo")
			p2.Stop()
			if again := keyRE.FindString(p2.Stdout()); again != first {
				t.Fatal("restart minted a new demo key instead of reusing the seeded one")
			}
			if d == database.SQLite {
				st, err := os.Stat(filepath.Join(env["LATCHKEY_DATA_DIR"], "master.key"))
				if err != nil || st.Mode().Perm() != 0o600 {
					t.Fatalf("key file: %v %v", err, st)
				}
			}
		})
	}
}

// The admin surface through the real binary: bootstrap prints a usable key,
// bad input exits 2 with one line.
func TestAdminThroughBinary(t *testing.T) {
	env := map[string]string{"LATCHKEY_DATA_DIR": t.TempDir()}
	out, errOut, code := runLatchkey(t, env, "admin", "bootstrap", "--org", "Acme", "--app", "web", "--operator-email", "ops@acme.test", "--json")
	if code != 0 {
		t.Fatalf("bootstrap: %d %s", code, errOut)
	}
	var res map[string]string
	if err := json.Unmarshal([]byte(out), &res); err != nil || res["app_key"] == "" {
		t.Fatalf("bootstrap output: %q", out)
	}
	_, errOut, code = runLatchkey(t, env, "admin", "keys", "mint", "--app", "nope", "--json")
	if code != 2 || len(regexp.MustCompile("\n").FindAllString(errOut, -1)) != 1 {
		t.Fatalf("bad input: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = runLatchkey(t, env, "keys", "rotate", "--grace", "0s")
	if code != 0 {
		t.Fatalf("keys rotate: %d %s", code, errOut)
	}
	p := startLatchkey(t, env, "serve")
	p.Stop()
}
