package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latchkey/latchkey/config"
	"github.com/latchkey/latchkey/models"
	"github.com/latchkey/latchkey/sdk/wire"
	"github.com/latchkey/latchkey/server"
	"github.com/latchkey/latchkey/services/apikeys"
	"github.com/latchkey/latchkey/services/database"
	"github.com/latchkey/latchkey/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// cli runs latchkey in-process against one data dir and database.
type cli struct {
	t   *testing.T
	env map[string]string
}

func newCLI(t *testing.T, dialect string) *cli {
	t.Helper()
	dir := t.TempDir()
	env := map[string]string{config.EnvDataDir: dir, config.EnvLogFormat: "json"}
	if dialect == database.Postgres {
		env[config.EnvDatabaseURL] = testutil.NewDatabaseURL(t, dialect)
	}
	return &cli{t: t, env: env}
}

func (c *cli) run(args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), append([]string{"latchkey"}, args...), func(k string) string { return c.env[k] }, &out, &errb)
	code = exitCode(err, &errb)
	return out.String(), errb.String(), code
}

func (c *cli) runJSON(args ...string) map[string]any {
	c.t.Helper()
	out, errOut, code := c.run(append(args, "--json")...)
	if code != 0 {
		c.t.Fatalf("latchkey %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		c.t.Fatalf("latchkey %s: not one JSON object: %q", strings.Join(args, " "), out)
	}
	return m
}

// core opens the same data dir the CLI uses, as a restarted server would.
func (c *cli) core() *server.Core {
	c.t.Helper()
	cfg, err := config.Load(func(k string) string { return c.env[k] }, false)
	if err != nil {
		c.t.Fatal(err)
	}
	core, err := server.Open(context.Background(), cfg, testutil.DiscardLogger(), server.CoreOptions{})
	if err != nil {
		c.t.Fatalf("reopen: %v", err)
	}
	c.t.Cleanup(func() { _ = core.Close() })
	return core
}

// signingKeyOpens checks that the stored, sealed signing key of apiKey opens
// and equals the one derived from the key the CLI printed.
func signingKeyOpens(t *testing.T, core *server.Core, apiKey string) {
	t.Helper()
	k, err := wire.ParseKey(apiKey)
	if err != nil {
		t.Fatalf("printed key does not parse: %v", err)
	}
	var row models.APIKey
	if err := core.DB.Gorm.Where("key_id = ?", k.KeyID()).Take(&row).Error; err != nil {
		t.Fatalf("key %s not stored: %v", k.KeyID(), err)
	}
	got, err := core.Vault.Open(context.Background(), apikeys.SigningKeyBinding(row.AppID, row.ID), row.SigningKeyCiphertext)
	if err != nil {
		t.Fatalf("open signing key: %v", err)
	}
	if !bytes.Equal(got, k.SigningKey()) {
		t.Fatal("stored signing key differs from the printed key's")
	}
	if bytes.Contains(row.SigningKeyCiphertext, k.SigningKey()) || bytes.Contains(row.SigningKeyCiphertext, []byte(apiKey)) {
		t.Fatal("signing key stored in plaintext")
	}
}

func count(t *testing.T, core *server.Core, model any) int64 {
	t.Helper()
	var n int64
	if err := core.DB.Gorm.Model(model).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// unknownID is a well-formed id that names nothing.
const unknownID = "3f1b2c4d-0000-4000-8000-000000000000"

// wantUsageError runs args (with --json) and fails t unless latchkey exits
// 2 with nothing on stdout and a last stderr line "latchkey: …" that says
// want. It returns stderr for further checks.
func (c *cli) wantUsageError(t *testing.T, args []string, want string) string {
	t.Helper()
	out, errOut, code := c.run(append(args, "--json")...)
	if code != 2 {
		t.Fatalf("exit %d, want 2 (stderr %q)", code, errOut)
	}
	if out != "" {
		t.Fatalf("printed output on failure: %q", out)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "latchkey: ") || !strings.Contains(last, want) {
		t.Fatalf("error line %q does not say %q", last, want)
	}
	return errOut
}

// rowCounts are the row counts of some tables, taken to show later that
// refused commands wrote nothing to them.
type rowCounts struct {
	tables []any // models
	before []int64
}

func countRows(t *testing.T, core *server.Core, tables ...any) rowCounts {
	t.Helper()
	r := rowCounts{tables: tables}
	for _, m := range tables {
		r.before = append(r.before, count(t, core, m))
	}
	return r
}

func (r rowCounts) assertUnchanged(t *testing.T, core *server.Core) {
	t.Helper()
	for i, m := range r.tables {
		if n := count(t, core, m); n != r.before[i] {
			t.Fatalf("bad input changed %T: %d → %d", m, r.before[i], n)
		}
	}
}

func TestBootstrapPrintsUsableKeyAndIsRepeatable(t *testing.T) {
	for _, d := range testutil.Dialects(t) {
		t.Run(d, func(t *testing.T) {
			c := newCLI(t, d)
			first := c.runJSON("admin", "bootstrap", "--org", "Acme", "--app", "web", "--operator-email", "Ops@Acme.test")
			for _, k := range []string{"org_id", "app_id", "app_key", "operator_email", "operator_password"} {
				if s, _ := first[k].(string); s == "" {
					t.Fatalf("bootstrap output lacks %s: %v", k, first)
				}
			}
			if first["operator_email"] != "ops@acme.test" {
				t.Fatalf("email not normalised: %v", first["operator_email"])
			}
			second := c.runJSON("admin", "bootstrap", "--org", "Acme", "--app", "web", "--operator-email", "ops@acme.test")
			if second["org_id"] != first["org_id"] || second["app_id"] != first["app_id"] {
				t.Fatal("second bootstrap did not reuse the organization and app")
			}
			if second["app_key"] == first["app_key"] {
				t.Fatal("second bootstrap did not mint a fresh key")
			}
			if pw, _ := second["operator_password"].(string); pw != "" {
				t.Fatal("a password was printed for an existing operator")
			}

			core := c.core()
			signingKeyOpens(t, core, first["app_key"].(string))
			signingKeyOpens(t, core, second["app_key"].(string))
			var op models.Operator
			if err := core.DB.Gorm.Take(&op).Error; err != nil {
				t.Fatal(err)
			}
			if strings.Contains(op.PasswordHash, first["operator_password"].(string)) || !strings.HasPrefix(op.PasswordHash, "$argon2id$") {
				t.Fatal("operator password not stored as an argon2id hash")
			}
		})
	}
}

func TestAdminBadInputExitsTwoAndWritesNothing(t *testing.T) {
	for _, d := range testutil.Dialects(t) {
		t.Run(d, func(t *testing.T) {
			c := newCLI(t, d)
			boot := c.runJSON("admin", "bootstrap", "--org", "Acme", "--app", "web", "--operator-email", "ops@acme.test")
			appID := boot["app_id"].(string)
			c.runJSON("admin", "agents", "create", "--app", appID, "--name", "research-bot")
			core := c.core()
			rows := countRows(t, core, &models.APIKey{}, &models.Agent{}, &models.AppURL{})

			tests := []struct {
				name string
				args []string
				want string // part of the one-line error
			}{
				{"unknown command", []string{"admin", "frobnicate", "now"}, "unknown command"},
				{"mint for unknown app", []string{"admin", "keys", "mint", "--app", unknownID}, "app not found"},
				{"mint with malformed app id", []string{"admin", "keys", "mint", "--app", "not-a-uuid"}, "app id"},
				{"mint for another app's agent", []string{"admin", "keys", "mint", "--app", appID, "--agent", unknownID}, "agent not found"},
				{"mint without app", []string{"admin", "keys", "mint"}, "missing --app"},
				{"unknown flag", []string{"admin", "keys", "mint", "--app", appID, "--colour", "red"}, "flag provided but not defined"},
				{"stray argument", []string{"admin", "keys", "mint", "--app", appID, "extra"}, "unexpected argument"},
				{"duplicate agent name", []string{"admin", "agents", "create", "--app", appID, "--name", "research-bot"}, "already exists"},
				{"agent name with spaces", []string{"admin", "agents", "create", "--app", appID, "--name", "Research Bot"}, "name"},
				{"agent for unknown app", []string{"admin", "agents", "create", "--app", unknownID, "--name", "x"}, "app not found"},
				{"origin with a path", []string{"admin", "apps", "origins", "--app", appID, "--allowed-origin", "https://app.acme.test/path"}, "must not have a path"},
				{"plain http origin", []string{"admin", "apps", "origins", "--app", appID, "--allowed-origin", "http://app.acme.test"}, "https"},
				{"return url not absolute", []string{"admin", "apps", "origins", "--app", appID, "--return-url", "/connected"}, "absolute"},
				{"bootstrap bad email", []string{"admin", "bootstrap", "--org", "Acme", "--app", "web", "--operator-email", "nobody"}, "email"},
				{"bootstrap short password", []string{"admin", "bootstrap", "--org", "Acme", "--app", "web", "--operator-email", "a@b.test", "--operator-password", "short"}, "12 characters"},
				{"audit limit out of range", []string{"admin", "audit", "list", "--app", appID, "--limit", "0"}, "--limit"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					c.wantUsageError(t, tt.args, tt.want)
				})
			}
			rows.assertUnchanged(t, core)
		})
	}
}

func TestAgentsAndOriginsAndAudit(t *testing.T) {
	c := newCLI(t, database.SQLite)
	boot := c.runJSON("admin", "bootstrap", "--org", "Acme", "--app", "web", "--operator-email", "ops@acme.test")
	appID := boot["app_id"].(string)
	ag := c.runJSON("admin", "agents", "create", "--app", appID, "--name", "research-bot", "--display-name", "Research Bot")
	if !strings.HasPrefix(ag["api_key"].(string), "lk_agent_") {
		t.Fatalf("agent key has wrong prefix: %v", ag["key_id"])
	}
	minted := c.runJSON("admin", "keys", "mint", "--app", appID, "--agent", ag["agent_id"].(string))
	if !strings.HasPrefix(minted["key_id"].(string), "lk_agent_") {
		t.Fatalf("minted agent key id %v", minted["key_id"])
	}
	c.runJSON("admin", "apps", "origins", "--app", appID,
		"--allowed-origin", "https://app.acme.test", "--allowed-origin", "http://localhost:3000",
		"--return-url", "https://app.acme.test/connected")
	core := c.core()
	urls, err := core.Tenancy.GetURLs(context.Background(), appID)
	if err != nil {
		t.Fatal(err)
	}
	if len(urls.Origins) != 2 || len(urls.ReturnURLs) != 1 {
		t.Fatalf("stored urls: %+v", urls)
	}
	core.Close()

	events := c.runJSON("admin", "audit", "list", "--app", appID)["events"].([]any)
	actions := map[string]int{}
	for _, e := range events {
		actions[e.(map[string]any)["action"].(string)]++
	}
	for _, want := range []string{"app.create", "key.mint", "agent.create", "app.urls"} {
		if actions[want] == 0 {
			t.Errorf("no %s audit row; have %v", want, actions)
		}
	}
	out, _, _ := c.run("admin", "audit", "list", "--app", appID, "--json")
	for _, secret := range []string{boot["app_key"].(string), ag["api_key"].(string), minted["api_key"].(string)} {
		if strings.Contains(out, secret) {
			t.Fatal("an API key appears in the audit listing")
		}
	}
}

func TestDataSurvivesRestartAndRotation(t *testing.T) {
	for _, d := range testutil.Dialects(t) {
		t.Run(d, func(t *testing.T) {
			c := newCLI(t, d)
			boot := c.runJSON("admin", "bootstrap", "--org", "Acme", "--app", "web", "--operator-email", "ops@acme.test")
			ag := c.runJSON("admin", "agents", "create", "--app", boot["app_id"].(string), "--name", "bot")
			if _, errOut, code := c.run("keys", "rotate", "--grace", "0s", "--json"); code != 0 {
				t.Fatalf("keys rotate: exit %d: %s", code, errOut)
			}
			core := c.core() // a fresh process would do exactly this
			signingKeyOpens(t, core, boot["app_key"].(string))
			signingKeyOpens(t, core, ag["api_key"].(string))
			var versions []int
			core.DB.Gorm.Model(&models.DataKey{}).Where("app_id = ? AND status = ?", boot["app_id"], models.DataKeyActive).Pluck("version", &versions)
			if len(versions) != 1 || versions[0] < 2 {
				t.Fatalf("after rotation the active data key versions are %v, want one version ≥ 2", versions)
			}
		})
	}
}

func TestRefusesToStartWithoutItsKey(t *testing.T) {
	c := newCLI(t, database.SQLite)
	c.runJSON("admin", "bootstrap", "--org", "Acme", "--app", "web", "--operator-email", "ops@acme.test")
	keyFile := filepath.Join(c.env[config.EnvDataDir], config.LocalKeyFileName)
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := c.run("admin", "keys", "mint", "--app", "3f1b2c4d-0000-4000-8000-000000000000")
	if code == 0 {
		t.Fatal("started without its key")
	}
	if _, err := os.Stat(keyFile); err == nil {
		t.Fatal("a new key file was created over existing sealed data")
	}
	if !strings.Contains(errOut, "key") {
		t.Fatalf("error does not explain the missing key: %q", errOut)
	}
}

func TestWrongKeeperKeyFailsClosed(t *testing.T) {
	c := newCLI(t, database.SQLite)
	c.runJSON("admin", "bootstrap", "--org", "Acme", "--app", "web", "--operator-email", "ops@acme.test")
	// A valid key, just not the one this database was sealed with.
	c.env[config.EnvKeeperURL] = "base64key://" + "smGbjm71Nxd1Ig5FS0wj9SlbzAIrnolCz9bQQ6uAhl4="
	_, errOut, code := c.run("admin", "bootstrap", "--org", "Acme", "--app", "web", "--operator-email", "ops@acme.test")
	if code == 0 {
		t.Fatal("opened sealed data with the wrong key")
	}
	if !strings.Contains(errOut, "cannot unwrap") {
		t.Fatalf("error does not say the key is wrong: %q", errOut)
	}
}

func TestConfigProblemsReportedTogether(t *testing.T) {
	var out, errb bytes.Buffer
	env := map[string]string{config.EnvAddr: "nonsense", config.EnvLogFormat: "xml", config.EnvAllowPrivateUpstreams: "maybe"}
	err := run(context.Background(), []string{"latchkey", "migrate", "status"}, func(k string) string { return env[k] }, &out, &errb)
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	for _, name := range []string{config.EnvAddr, config.EnvLogFormat, config.EnvAllowPrivateUpstreams} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not mention %s: %v", name, err)
		}
	}
}

func TestMigrateUpAndStatus(t *testing.T) {
	c := newCLI(t, database.SQLite)
	up := c.runJSON("migrate", "up")
	if up["version"].(float64) < 1 {
		t.Fatalf("migrate up: %v", up)
	}
	st := c.runJSON("migrate", "status")
	if st["version"] != st["latest"] {
		t.Fatalf("status after up: %v", st)
	}
	if _, _, code := c.run("migrate", "sideways"); code != 2 {
		t.Fatalf("unknown migrate subcommand: exit %d, want 2", code)
	}
}
