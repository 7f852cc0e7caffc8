package config

import (
	"os"
	"regexp"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	_, err := Load(env(map[string]string{
		"ADDR": "nope", "APP_ENV": "staging", "DATABASE_URL": "mysql://x", "DB_SCHEMA": "Robert'); DROP", "LOG_LEVEL": "loud",
	}))
	require.Error(t, err)
	for _, name := range []string{"ADDR", "APP_ENV", "DATABASE_URL", "DB_SCHEMA", "LOG_LEVEL"} {
		assert.Regexp(t, "(?m)^"+name+": ", err.Error())
	}
}

func TestProductionNeedsJWT(t *testing.T) {
	_, err := Load(env(map[string]string{"APP_ENV": "production"}))
	require.ErrorContains(t, err, "production needs a JWT key source")
	_, err = Load(env(map[string]string{"APP_ENV": "production", "SUPABASE_JWKS_URL": "https://x.supabase.co/auth/v1/.well-known/jwks.json"}))
	require.NoError(t, err)
	_, err = Load(env(map[string]string{"SUPABASE_JWT_SECRET": "short"}))
	require.ErrorContains(t, err, "SUPABASE_JWT_SECRET: must be at least 32 bytes")
}

func TestRedactedHidesPassword(t *testing.T) {
	c, err := Load(env(map[string]string{"DATABASE_URL": "postgres://svc:s3cret@db:5432/app", "SUPABASE_JWT_SECRET": "s3cret-s3cret-s3cret-s3cret-s3cret"}))
	require.NoError(t, err)
	assert.NotContains(t, c.Redacted(), "postgres://svc:s3cret@db:5432/app")
	for _, v := range c.Redacted() {
		assert.NotContains(t, v, "s3cret")
	}
}

// TestReadmeListsEveryVariable keeps the README's configuration table and
// Load in step: every variable Load reads is documented with its default,
// and the table names nothing Load ignores.
func TestReadmeListsEveryVariable(t *testing.T) {
	read := map[string]bool{}
	_, _ = Load(func(k string) (string, bool) { read[k] = true; return "", false })
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	rows := regexp.MustCompile("(?m)^\\| `([A-Z_]+)` \\| ([^|]+) \\|").FindAllStringSubmatch(string(readme), -1)
	documented := map[string]string{}
	for _, r := range rows {
		documented[r[1]] = r[2]
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
	defaults := map[string]string{"JWT_AUDIENCE": DefaultAudience, "JWT_TENANT_CLAIM": DefaultTenant, "ADDR": DefaultAddr, "APP_ENV": DefaultEnv, "DATA_DIR": DefaultDataDir, "DB_SCHEMA": DefaultDBSchema, "LOG_LEVEL": DefaultLogLevel}
	for k, def := range defaults {
		assert.Contains(t, documented[k], "`"+def+"`", "README default of %s", k)
	}
}
