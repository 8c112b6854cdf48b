package config

import (
	"strings"
	"testing"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	cfg, err := Load(envOf(nil), false)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:8080" || cfg.PublicURL.String() != "http://127.0.0.1:8080" || cfg.DataDir != "./data" {
		t.Fatalf("defaults: %+v", cfg)
	}
	if cfg.Dialect() != "sqlite" || cfg.SQLitePath() != "data/latchkey.db" || cfg.LocalKeyFile() != "data/master.key" {
		t.Fatalf("embedded defaults: %s %s %s", cfg.Dialect(), cfg.SQLitePath(), cfg.LocalKeyFile())
	}
	if cfg.AllowPrivateUpstreams || cfg.LogFormat != LogFormatJSON || cfg.SecureCookies() {
		t.Fatalf("unsafe defaults: %+v", cfg)
	}
	if cfg, _ := Load(envOf(nil), true); cfg.LogFormat != LogFormatText {
		t.Fatal("a terminal should default to text logs")
	}
}

func TestOverrides(t *testing.T) {
	cfg, err := Load(envOf(map[string]string{
		EnvAddr: "0.0.0.0:9000", EnvPublicURL: "https://vault.acme.test/", EnvDataDir: "/var/lib/latchkey",
		EnvDatabaseURL: "postgres://lk@db/lk", EnvKeeperURL: "awskms://alias/latchkey?region=eu-west-1",
		EnvAllowPrivateUpstreams: "true", EnvLogFormat: "TEXT",
	}), false)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Dialect() != "postgres" || !cfg.SecureCookies() || cfg.PublicURL.String() != "https://vault.acme.test" || !cfg.AllowPrivateUpstreams || cfg.LogFormat != "text" {
		t.Fatalf("overrides not applied: %+v", cfg)
	}
}

func TestEveryProblemReportedAtOnce(t *testing.T) {
	_, err := Load(envOf(map[string]string{
		EnvAddr:                  "8080",
		EnvPublicURL:             "ftp://x",
		EnvDatabaseURL:           "mysql://root:hunter2@db/x",
		EnvKeeperURL:             "vault-please://x",
		EnvAllowPrivateUpstreams: "sometimes",
		EnvLogFormat:             "xml",
	}), false)
	if err == nil || !IsConfigError(err) {
		t.Fatalf("want a config error, got %v", err)
	}
	msg := err.Error()
	for _, name := range []string{EnvAddr, EnvPublicURL, EnvDatabaseURL, EnvKeeperURL, EnvAllowPrivateUpstreams, EnvLogFormat} {
		if !strings.Contains(msg, name) {
			t.Errorf("problem with %s not reported:\n%s", name, msg)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Fatal("the database password leaked into the error")
	}
}

func TestPublicURLRejectsUserInfoAndQuery(t *testing.T) {
	for _, u := range []string{"https://user:pw@vault.test", "https://vault.test/?x=1", "https://vault.test/#f", "vault.test"} {
		if _, err := Load(envOf(map[string]string{EnvPublicURL: u}), false); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}
