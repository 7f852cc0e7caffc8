// Package config reads agentstore's configuration from the environment,
// in one place, and validates it with one clear message per bad value.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
)

// Config is the whole configuration of the service.
type Config struct {
	// Addr is the listen address of the HTTP server (ADDR).
	Addr string
	// Env is "development" or "production" (APP_ENV).
	Env string
	// DataDir holds the embedded SQLite database and the development JWT
	// secret (DATA_DIR).
	DataDir string
	// DatabaseURL selects PostgreSQL; empty selects embedded SQLite
	// (DATABASE_URL).
	DatabaseURL string
	// DBSchema is the PostgreSQL schema of the six tables (DB_SCHEMA).
	DBSchema string
	// LogLevel is debug, info, warn or error (LOG_LEVEL).
	LogLevel slog.Level
	// JWT is how bearer tokens are verified.
	JWT JWT
}

// JWT configures token verification.
type JWT struct {
	// Secret verifies HS256 tokens (SUPABASE_JWT_SECRET).
	Secret string
	// JWKSURL serves the ES256/RS256 keys (SUPABASE_JWKS_URL).
	JWKSURL string
	// Audience must be in every token's aud (JWT_AUDIENCE).
	Audience string
	// Issuer, when set, must be every token's iss (JWT_ISSUER).
	Issuer string
	// TenantClaim is the dot path of the tenant UUID (JWT_TENANT_CLAIM).
	TenantClaim string
}

// Configured reports whether any key source is set.
func (j JWT) Configured() bool { return j.Secret != "" || j.JWKSURL != "" }

// Defaults of the settings that have one.
const (
	DefaultAddr     = "127.0.0.1:8080"
	DefaultEnv      = "development"
	DefaultDataDir  = "data"
	DefaultDBSchema = "agentstore"
	DefaultLogLevel = "info"
	DefaultAudience = "authenticated"
	DefaultTenant   = "app_metadata.tenant_id"
	minSecretLen    = 32
)

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Load reads the configuration through lookup (os.LookupEnv in main) and
// validates it. The error lists every bad value, one per line.
func Load(lookup func(string) (string, bool)) (Config, error) {
	get := func(name, def string) string {
		if v, ok := lookup(name); ok && v != "" {
			return v
		}
		return def
	}
	var errs []error
	c := Config{
		Addr:        get("ADDR", DefaultAddr),
		Env:         get("APP_ENV", DefaultEnv),
		DataDir:     get("DATA_DIR", DefaultDataDir),
		DatabaseURL: get("DATABASE_URL", ""),
		DBSchema:    get("DB_SCHEMA", DefaultDBSchema),
		JWT: JWT{
			Secret:      get("SUPABASE_JWT_SECRET", ""),
			JWKSURL:     get("SUPABASE_JWKS_URL", ""),
			Audience:    get("JWT_AUDIENCE", DefaultAudience),
			Issuer:      get("JWT_ISSUER", ""),
			TenantClaim: get("JWT_TENANT_CLAIM", DefaultTenant),
		},
	}
	if err := c.LogLevel.UnmarshalText([]byte(get("LOG_LEVEL", DefaultLogLevel))); err != nil {
		errs = append(errs, fmt.Errorf("LOG_LEVEL: must be debug, info, warn or error"))
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("ADDR: %q is not host:port", c.Addr))
	}
	if c.Env != "development" && c.Env != "production" {
		errs = append(errs, fmt.Errorf("APP_ENV: %q must be development or production", c.Env))
	}
	if c.DatabaseURL != "" {
		u, err := url.Parse(c.DatabaseURL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
			errs = append(errs, errors.New("DATABASE_URL: must be a postgres://user:pass@host:port/db URL"))
		}
	}
	if !schemaName.MatchString(c.DBSchema) {
		errs = append(errs, fmt.Errorf("DB_SCHEMA: %q must be a lower-case SQL identifier", c.DBSchema))
	}
	if c.JWT.Secret != "" && len(c.JWT.Secret) < minSecretLen {
		errs = append(errs, fmt.Errorf("SUPABASE_JWT_SECRET: must be at least %d bytes", minSecretLen))
	}
	if c.JWT.JWKSURL != "" {
		u, err := url.Parse(c.JWT.JWKSURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, errors.New("SUPABASE_JWKS_URL: must be an http(s) URL"))
		}
	}
	if c.Env == "production" && !c.JWT.Configured() {
		errs = append(errs, errors.New("SUPABASE_JWT_SECRET or SUPABASE_JWKS_URL: production needs a JWT key source"))
	}
	if strings.Contains(c.JWT.TenantClaim, "..") || strings.HasPrefix(c.JWT.TenantClaim, ".") || strings.HasSuffix(c.JWT.TenantClaim, ".") {
		errs = append(errs, fmt.Errorf("JWT_TENANT_CLAIM: %q must be a dot path such as app_metadata.tenant_id", c.JWT.TenantClaim))
	}
	c.DataDir = filepath.Clean(c.DataDir)
	return c, errors.Join(errs...)
}

// SQLitePath is the embedded database file.
func (c Config) SQLitePath() string { return filepath.Join(c.DataDir, "agentstore.db") }

// Redacted returns the settings for the start-up log, secrets masked.
func (c Config) Redacted() []any {
	return []any{
		"addr", c.Addr, "env", c.Env, "data_dir", c.DataDir,
		"database_url", redactURL(c.DatabaseURL), "db_schema", c.DBSchema, "log_level", c.LogLevel.String(),
		"jwt_secret", mask(c.JWT.Secret), "jwks_url", c.JWT.JWKSURL, "jwt_audience", c.JWT.Audience,
		"jwt_issuer", c.JWT.Issuer, "jwt_tenant_claim", c.JWT.TenantClaim,
	}
}

func mask(secret string) string {
	if secret == "" {
		return ""
	}
	return "(set)"
}

func redactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return strings.Replace(u.String(), "xxxxx", "*****", 1)
}
