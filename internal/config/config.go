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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/agentstore/agentstore/internal/ratelimit"
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
	// DBTenantRLS makes every transaction set app.tenant_id for the row
	// level security policies of the migrations (DB_TENANT_RLS=on).
	DBTenantRLS bool
	// LogLevel is debug, info, warn or error (LOG_LEVEL).
	LogLevel slog.Level
	// JWT is how bearer tokens are verified.
	JWT JWT
	// RedisURL selects Redis for the shared limiter store and the
	// cross-instance event fan-out; empty keeps both in process (REDIS_URL).
	RedisURL string
	// RateLimit configures the HTTP limiter.
	RateLimit RateLimit
	// TrustedProxies are the peers whose X-Forwarded-For is believed
	// (TRUSTED_PROXIES, comma-separated CIDRs or addresses).
	TrustedProxies []*net.IPNet
	// WS configures the WebSocket hub.
	WS WS
	// CORSAllowedOrigins are the browser origins allowed to call the REST
	// API from another origin (CORS_ALLOWED_ORIGINS, comma-separated);
	// empty sends no CORS headers.
	CORSAllowedOrigins []string
}

// RateLimit configures the HTTP limiter.
type RateLimit struct {
	// Max requests per Window and key (RATE_LIMIT_MAX).
	Max int
	// Window is the fixed window (RATE_LIMIT_WINDOW_MS).
	Window time.Duration
	// TenantOverrides replace Max for some tenants (RATE_LIMIT_TENANT_OVERRIDES).
	TenantOverrides map[uuid.UUID]int
	// FailMode is "open" or "closed" when Redis is down (RATE_LIMIT_FAIL_MODE).
	FailMode string
	// Disabled turns HTTP limiting off, for benchmarks that measure the
	// limiter's cost (RATE_LIMIT_DISABLED).
	Disabled bool
}

// WS configures the WebSocket hub.
type WS struct {
	// BroadcastMax client publishes per BroadcastWindow and key (WS_BROADCAST_MAX).
	BroadcastMax int
	// BroadcastWindow is the publish window (WS_BROADCAST_WINDOW_MS).
	BroadcastWindow time.Duration
	// AllowedOrigins are the browser origins allowed to connect (WS_ALLOWED_ORIGINS).
	AllowedOrigins []string
	// MaxMessageBytes is the largest inbound frame (WS_MAX_MESSAGE_BYTES).
	MaxMessageBytes int64
	// HistorySize is how many events per channel are kept for recovery (WS_HISTORY_SIZE).
	HistorySize int
	// HistoryTTL is how long they are kept (WS_HISTORY_TTL).
	HistoryTTL time.Duration
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
	// Limits.
	DefaultRateLimitMax      = 120
	DefaultRateLimitWindowMs = 60000
	DefaultFailMode          = "open"
	DefaultWSBroadcastMax    = 200
	DefaultWSBroadcastWinMs  = 1000
	DefaultWSAllowedOrigins  = "*"
	DefaultWSMaxMessageBytes = 65536
	DefaultWSHistorySize     = 1000
	DefaultWSHistoryTTL      = "5m"
	DefaultTenant            = "app_metadata.tenant_id"
	minSecretLen             = 32
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
	c.RedisURL = get("REDIS_URL", "")
	if c.RedisURL != "" {
		u, err := url.Parse(c.RedisURL)
		if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			errs = append(errs, errors.New("REDIS_URL: must be a redis:// or rediss:// URL"))
		}
	}
	positive := func(name string, def int) int {
		v := get(name, strconv.Itoa(def))
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("%s: %q must be a positive integer", name, v))
			return def
		}
		return n
	}
	c.RateLimit.Max = positive("RATE_LIMIT_MAX", DefaultRateLimitMax)
	c.RateLimit.Window = time.Duration(positive("RATE_LIMIT_WINDOW_MS", DefaultRateLimitWindowMs)) * time.Millisecond
	c.RateLimit.FailMode = get("RATE_LIMIT_FAIL_MODE", DefaultFailMode)
	switch v := get("DB_TENANT_RLS", "off"); v {
	case "on", "off":
		c.DBTenantRLS = v == "on"
		if c.DBTenantRLS && c.DatabaseURL == "" {
			errs = append(errs, errors.New("DB_TENANT_RLS: on needs DATABASE_URL (PostgreSQL); SQLite has no row-level security"))
		}
	default:
		errs = append(errs, fmt.Errorf("DB_TENANT_RLS: %q must be on or off", v))
	}
	switch v := get("RATE_LIMIT_DISABLED", "false"); v {
	case "true", "false":
		c.RateLimit.Disabled = v == "true"
	default:
		errs = append(errs, fmt.Errorf("RATE_LIMIT_DISABLED: %q must be true or false", v))
	}
	if c.RateLimit.FailMode != "open" && c.RateLimit.FailMode != "closed" {
		errs = append(errs, fmt.Errorf("RATE_LIMIT_FAIL_MODE: %q must be open or closed", c.RateLimit.FailMode))
	}
	overrides, err := ratelimit.ParseOverrides(get("RATE_LIMIT_TENANT_OVERRIDES", ""))
	if err != nil {
		errs = append(errs, fmt.Errorf("RATE_LIMIT_TENANT_OVERRIDES: %v", err))
	}
	c.RateLimit.TenantOverrides = overrides
	for _, p := range splitList(get("TRUSTED_PROXIES", "")) {
		if !strings.Contains(p, "/") {
			if ip := net.ParseIP(p); ip != nil && ip.To4() != nil {
				p += "/32"
			} else {
				p += "/128"
			}
		}
		_, n, err := net.ParseCIDR(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("TRUSTED_PROXIES: %q is not an address or CIDR", p))
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, n)
	}
	c.WS.BroadcastMax = positive("WS_BROADCAST_MAX", DefaultWSBroadcastMax)
	c.WS.BroadcastWindow = time.Duration(positive("WS_BROADCAST_WINDOW_MS", DefaultWSBroadcastWinMs)) * time.Millisecond
	c.WS.AllowedOrigins = splitList(get("WS_ALLOWED_ORIGINS", DefaultWSAllowedOrigins))
	c.WS.MaxMessageBytes = int64(positive("WS_MAX_MESSAGE_BYTES", DefaultWSMaxMessageBytes))
	c.WS.HistorySize = positive("WS_HISTORY_SIZE", DefaultWSHistorySize)
	ttl := get("WS_HISTORY_TTL", DefaultWSHistoryTTL)
	if c.WS.HistoryTTL, err = time.ParseDuration(ttl); err != nil || c.WS.HistoryTTL <= 0 {
		errs = append(errs, fmt.Errorf("WS_HISTORY_TTL: %q must be a positive duration such as 5m", ttl))
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
	c.CORSAllowedOrigins = splitList(get("CORS_ALLOWED_ORIGINS", ""))
	for _, o := range c.CORSAllowedOrigins {
		if o != "*" && !isOrigin(o) {
			errs = append(errs, fmt.Errorf("CORS_ALLOWED_ORIGINS: %q is not an origin such as https://app.example.com (scheme, host and optional port; no path)", o))
		}
	}
	if c.Env == "production" && slices.Contains(c.CORSAllowedOrigins, "*") {
		errs = append(errs, errors.New("CORS_ALLOWED_ORIGINS: production refuses *; list the allowed origins"))
	}
	if c.Env == "production" && slices.Contains(c.WS.AllowedOrigins, "*") {
		errs = append(errs, errors.New("WS_ALLOWED_ORIGINS: production refuses *; list the allowed origins"))
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

// isOrigin reports whether s is a browser origin as the Origin header
// carries it: http or https, a host, an optional port, nothing else.
func isOrigin(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && s == u.Scheme+"://"+u.Host
}

// SQLitePath is the embedded database file.
func (c Config) SQLitePath() string { return filepath.Join(c.DataDir, "agentstore.db") }

// Redacted returns the settings for the start-up log, secrets masked.
func (c Config) Redacted() []any {
	return []any{
		"addr", c.Addr, "env", c.Env, "data_dir", c.DataDir,
		"database_url", redactURL(c.DatabaseURL), "db_schema", c.DBSchema, "db_tenant_rls", c.DBTenantRLS, "log_level", c.LogLevel.String(),
		"jwt_secret", mask(c.JWT.Secret), "jwks_url", c.JWT.JWKSURL, "jwt_audience", c.JWT.Audience,
		"jwt_issuer", c.JWT.Issuer, "jwt_tenant_claim", c.JWT.TenantClaim,
		"redis_url", redactURL(c.RedisURL), "rate_limit_max", c.RateLimit.Max, "rate_limit_window_ms", c.RateLimit.Window.Milliseconds(),
		"rate_limit_fail_mode", c.RateLimit.FailMode, "rate_limit_disabled", c.RateLimit.Disabled, "rate_limit_tenant_overrides", len(c.RateLimit.TenantOverrides),
		"trusted_proxies", len(c.TrustedProxies), "ws_allowed_origins", c.WS.AllowedOrigins,
		"cors_allowed_origins", c.CORSAllowedOrigins,
	}
}

func mask(secret string) string {
	if secret == "" {
		return ""
	}
	return "(set)"
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
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
