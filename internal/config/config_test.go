package config

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/markdown"
)

func env(kv map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(env(nil))
	require.NoError(t, err)
	assert.Equal(t, DefaultAddr, c.Addr)
	assert.Equal(t, "development", c.Env)
	assert.Equal(t, "agentstore", c.DBSchema)
	assert.Empty(t, c.DatabaseURL)
	assert.Equal(t, "data/agentstore.db", c.SQLitePath())
}

func TestLoadRejectsEachBadValue(t *testing.T) {
	bad := map[string]string{
		"ADDR": "nope", "APP_ENV": "staging", "DATABASE_URL": "mysql://x", "DB_SCHEMA": "Robert'); DROP", "LOG_LEVEL": "loud",
		"REDIS_URL": "http://x", "RATE_LIMIT_MAX": "0", "RATE_LIMIT_WINDOW_MS": "soon", "RATE_LIMIT_FAIL_MODE": "maybe",
		"RATE_LIMIT_TENANT_OVERRIDES": "x=1", "TRUSTED_PROXIES": "10.0.0.0/99", "WS_BROADCAST_MAX": "-1",
		"WS_BROADCAST_WINDOW_MS": "1.5", "WS_MAX_MESSAGE_BYTES": "big", "WS_HISTORY_SIZE": "none", "WS_HISTORY_TTL": "forever",
	}
	_, err := Load(env(bad))
	require.Error(t, err)
	for name := range bad {
		assert.Regexp(t, "(?m)^"+name+": ", err.Error())
	}
}

func TestLimitsAndProxies(t *testing.T) {
	tenant := "2f1c3a52-9a3e-4a55-8b7e-3f4f3f0e6a11"
	c, err := Load(env(map[string]string{
		"RATE_LIMIT_MAX": "5", "RATE_LIMIT_WINDOW_MS": "1000", "RATE_LIMIT_TENANT_OVERRIDES": tenant + "=50",
		"TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7", "WS_ALLOWED_ORIGINS": "https://a.example, https://b.example",
	}))
	require.NoError(t, err)
	assert.Equal(t, 5, c.RateLimit.Max)
	assert.Equal(t, time.Second, c.RateLimit.Window)
	assert.Len(t, c.RateLimit.TenantOverrides, 1)
	require.Len(t, c.TrustedProxies, 2)
	assert.Equal(t, "192.168.1.7/32", c.TrustedProxies[1].String())
	assert.Equal(t, []string{"https://a.example", "https://b.example"}, c.WS.AllowedOrigins)
	_, err = Load(env(map[string]string{"APP_ENV": "production", "SUPABASE_JWT_SECRET": strings.Repeat("s", 32)}))
	require.ErrorContains(t, err, "WS_ALLOWED_ORIGINS")
}

func TestProductionNeedsJWT(t *testing.T) {
	_, err := Load(env(map[string]string{"APP_ENV": "production"}))
	require.ErrorContains(t, err, "production needs a JWT key source")
	_, err = Load(env(map[string]string{"APP_ENV": "production", "WS_ALLOWED_ORIGINS": "https://app.example", "SUPABASE_JWKS_URL": "https://x.supabase.co/auth/v1/.well-known/jwks.json"}))
	require.NoError(t, err)
	_, err = Load(env(map[string]string{"SUPABASE_JWT_SECRET": "short"}))
	require.ErrorContains(t, err, "SUPABASE_JWT_SECRET: must be at least 32 bytes")
}

func TestRedactedHidesPassword(t *testing.T) {
	c, err := Load(env(map[string]string{
		"DATABASE_URL": "postgres://svc:s3cret@db:5432/app", "SUPABASE_JWT_SECRET": "s3cret-s3cret-s3cret-s3cret-s3cret",
		"REDIS_URL": "redis://:s3cret@cache:6379/0",
	}))
	require.NoError(t, err)
	printed := fmt.Sprint(c.Redacted()...)
	assert.NotContains(t, printed, "s3cret")
	assert.Contains(t, printed, "db:5432")
}

// TestReadmeListsEveryVariable keeps the README's configuration table and
// Load in step: every variable Load reads is documented with its default,
// and the table names nothing Load ignores.
func TestCORSOrigins(t *testing.T) {
	c, err := Load(env(nil))
	require.NoError(t, err)
	assert.Empty(t, c.CORSAllowedOrigins, "no CORS unless asked for")
	c, err = Load(env(map[string]string{"CORS_ALLOWED_ORIGINS": "https://app.example.com, http://localhost:5173"}))
	require.NoError(t, err)
	assert.Equal(t, []string{"https://app.example.com", "http://localhost:5173"}, c.CORSAllowedOrigins)
	c, err = Load(env(map[string]string{"CORS_ALLOWED_ORIGINS": "*"}))
	require.NoError(t, err, "development may allow every origin")
	assert.Equal(t, []string{"*"}, c.CORSAllowedOrigins)
	for _, bad := range []string{"app.example.com", "https://app.example.com/", "https://app.example.com/ui", "ftp://x.example", "https://", "https://u:p@x.example"} {
		_, err := Load(env(map[string]string{"CORS_ALLOWED_ORIGINS": bad}))
		assert.ErrorContains(t, err, "CORS_ALLOWED_ORIGINS: ", "%q", bad)
	}
	prod := map[string]string{"APP_ENV": "production", "SUPABASE_JWT_SECRET": strings.Repeat("s", 32), "WS_ALLOWED_ORIGINS": "https://app.example.com"}
	_, err = Load(env(prod))
	require.NoError(t, err)
	prod["CORS_ALLOWED_ORIGINS"] = "https://app.example.com,*"
	_, err = Load(env(prod))
	require.ErrorContains(t, err, "CORS_ALLOWED_ORIGINS: production refuses *")
}

// TestReadmeListsEveryVariable holds the README's configuration table to
// the variables Load reads, which are all the environment the service
// reads: no other code of this package touches the environment.
func TestReadmeListsEveryVariable(t *testing.T) {
	read := map[string]bool{}
	_, _ = Load(func(k string) (string, bool) { read[k] = true; return "", false })
	src, err := os.ReadFile("config.go")
	require.NoError(t, err)
	for _, line := range strings.Split(string(src), "\n") {
		if code, _, _ := strings.Cut(line, "//"); strings.Contains(code, "os.") {
			assert.NotRegexp(t, `os\.(Getenv|LookupEnv|Environ)`, code, "the environment is read through Load's lookup only")
		}
	}
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	section, ok := markdown.Section(string(readme), "Configuration")
	require.True(t, ok, "README has a Configuration section")
	documented := map[string]string{}
	for _, row := range markdown.TableRows(section) {
		require.GreaterOrEqual(t, len(row), 3, "%v", row)
		name, isCode := strings.CutPrefix(row[0], "`")
		require.True(t, isCode, "a variable is a code span: %v", row)
		documented[strings.TrimSuffix(name, "`")] = row[1]
	}
	var names []string
	for k := range read {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		assert.Contains(t, documented, k, "README lacks %s", k)
	}
	for k := range documented {
		assert.True(t, read[k], "README documents %s, which Load does not read", k)
	}
	defaults := map[string]string{
		"RATE_LIMIT_MAX": strconv.Itoa(DefaultRateLimitMax), "RATE_LIMIT_WINDOW_MS": strconv.Itoa(DefaultRateLimitWindowMs),
		"RATE_LIMIT_FAIL_MODE": DefaultFailMode, "WS_BROADCAST_MAX": strconv.Itoa(DefaultWSBroadcastMax),
		"WS_BROADCAST_WINDOW_MS": strconv.Itoa(DefaultWSBroadcastWinMs), "WS_ALLOWED_ORIGINS": DefaultWSAllowedOrigins,
		"WS_MAX_MESSAGE_BYTES": strconv.Itoa(DefaultWSMaxMessageBytes), "WS_HISTORY_SIZE": strconv.Itoa(DefaultWSHistorySize),
		"WS_HISTORY_TTL": DefaultWSHistoryTTL,
		"JWT_AUDIENCE":   DefaultAudience, "JWT_TENANT_CLAIM": DefaultTenant, "ADDR": DefaultAddr, "APP_ENV": DefaultEnv, "DATA_DIR": DefaultDataDir, "DB_SCHEMA": DefaultDBSchema, "LOG_LEVEL": DefaultLogLevel}
	for k, def := range defaults {
		assert.Contains(t, documented[k], "`"+def+"`", "README default of %s", k)
	}
}
