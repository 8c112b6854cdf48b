// Package config reads Latchkey's configuration from the environment
// (DESIGN.md §7) and validates it, reporting every problem at once so an
// operator fixes a bad deployment in one round trip.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
)

// Environment variable names. They are part of the operator contract.
const (
	EnvAddr                   = "LATCHKEY_ADDR"
	EnvPublicURL              = "LATCHKEY_PUBLIC_URL"
	EnvDataDir                = "LATCHKEY_DATA_DIR"
	EnvDatabaseURL            = "LATCHKEY_DATABASE_URL"
	EnvKeeperURL              = "LATCHKEY_KEEPER_URL"
	EnvAllowPrivateUpstreams  = "LATCHKEY_ALLOW_PRIVATE_UPSTREAMS"
	EnvLogFormat              = "LATCHKEY_LOG_FORMAT"
	DefaultAddr               = "127.0.0.1:8080"
	DefaultPublicURL          = "http://127.0.0.1:8080"
	DefaultDataDir            = "./data"
	LocalKeyFileName          = "master.key"
	SQLiteFileName            = "latchkey.db"
	LogFormatText             = "text"
	LogFormatJSON             = "json"
	supportedKeeperSchemeList = "base64key, awskms, gcpkms, azurekeyvault, hashivault"
)

// Config is the validated configuration of one Latchkey process.
type Config struct {
	Addr                  string
	PublicURL             *url.URL
	DataDir               string
	DatabaseURL           string // empty means the embedded SQLite file in DataDir
	KeeperURL             string // empty means the local key file in DataDir
	AllowPrivateUpstreams bool
	LogFormat             string
}

// Dialect names the SQL dialect the configuration selects.
func (c Config) Dialect() string {
	if strings.HasPrefix(c.DatabaseURL, "postgres://") || strings.HasPrefix(c.DatabaseURL, "postgresql://") {
		return "postgres"
	}
	return "sqlite"
}

// SQLitePath is the database file used when no database URL is configured.
func (c Config) SQLitePath() string {
	return filepath.Join(c.DataDir, SQLiteFileName)
}

// LocalKeyFile is the key file used when no keeper URL is configured.
func (c Config) LocalKeyFile() string {
	return filepath.Join(c.DataDir, LocalKeyFileName)
}

// SecureCookies reports whether cookies must carry the Secure attribute.
func (c Config) SecureCookies() bool { return c.PublicURL.Scheme == "https" }

// Error lists every configuration problem found.
type Error struct{ Problems []string }

func (e *Error) Error() string {
	return "invalid configuration:\n  - " + strings.Join(e.Problems, "\n  - ")
}

// Load reads the configuration through getenv. isTerminal decides the
// default log format. It never reads the process environment directly so
// tests and embedders control it completely.
func Load(getenv func(string) string, isTerminal bool) (Config, error) {
	var problems []string
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}

	cfg := Config{
		Addr:        get(EnvAddr, DefaultAddr),
		DataDir:     get(EnvDataDir, DefaultDataDir),
		DatabaseURL: get(EnvDatabaseURL, ""),
		KeeperURL:   get(EnvKeeperURL, ""),
	}

	if _, port, err := net.SplitHostPort(cfg.Addr); err != nil {
		problems = append(problems, fmt.Sprintf("%s %q is not host:port", EnvAddr, cfg.Addr))
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		problems = append(problems, fmt.Sprintf("%s %q has an invalid port", EnvAddr, cfg.Addr))
	}

	rawPublic := strings.TrimRight(get(EnvPublicURL, DefaultPublicURL), "/")
	if u, err := url.Parse(rawPublic); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		problems = append(problems, fmt.Sprintf("%s %q must be an absolute http or https URL", EnvPublicURL, rawPublic))
	} else if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		problems = append(problems, fmt.Sprintf("%s must not carry user info, a query or a fragment", EnvPublicURL))
	} else {
		cfg.PublicURL = u
	}

	if cfg.DatabaseURL != "" {
		u, err := url.Parse(cfg.DatabaseURL)
		switch {
		case err != nil:
			// The URL may hold a password: never echo it back.
			problems = append(problems, fmt.Sprintf("%s is not a valid URL", EnvDatabaseURL))
		case u.Scheme != "postgres" && u.Scheme != "postgresql" && u.Scheme != "sqlite" && u.Scheme != "file":
			problems = append(problems, fmt.Sprintf("%s scheme %q is not supported (postgres://, postgresql://, sqlite:// or file:)", EnvDatabaseURL, u.Scheme))
		}
	}

	if cfg.KeeperURL != "" {
		u, err := url.Parse(cfg.KeeperURL)
		if err != nil || u.Scheme == "" {
			problems = append(problems, fmt.Sprintf("%s is not a valid gocloud.dev/secrets URL", EnvKeeperURL))
		} else if !knownKeeperScheme(u.Scheme) {
			problems = append(problems, fmt.Sprintf("%s scheme %q is not supported (%s)", EnvKeeperURL, u.Scheme, supportedKeeperSchemeList))
		}
	}

	switch v := strings.ToLower(get(EnvAllowPrivateUpstreams, "false")); v {
	case "true", "1", "yes":
		cfg.AllowPrivateUpstreams = true
	case "false", "0", "no":
	default:
		problems = append(problems, fmt.Sprintf("%s %q must be true or false", EnvAllowPrivateUpstreams, v))
	}

	defFormat := LogFormatJSON
	if isTerminal {
		defFormat = LogFormatText
	}
	cfg.LogFormat = strings.ToLower(get(EnvLogFormat, defFormat))
	if cfg.LogFormat != LogFormatText && cfg.LogFormat != LogFormatJSON {
		problems = append(problems, fmt.Sprintf("%s %q must be text or json", EnvLogFormat, cfg.LogFormat))
	}

	if len(problems) > 0 {
		return Config{}, &Error{Problems: problems}
	}
	return cfg, nil
}

func knownKeeperScheme(s string) bool {
	switch s {
	case "base64key", "awskms", "gcpkms", "azurekeyvault", "hashivault":
		return true
	}
	return false
}

// IsConfigError reports whether err is a configuration error.
func IsConfigError(err error) bool {
	var ce *Error
	return errors.As(err, &ce)
}
