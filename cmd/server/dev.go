package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/config"
)

// Files of the development setup under DATA_DIR.
const (
	devSecretFile = "dev-jwt-secret"
	devTenantFile = "dev-tenant"
)

// devSecret returns the development JWT secret under dataDir, creating it
// (random, mode 0600) on first use. Only development uses it: production
// refuses to start without JWT configuration.
func devSecret(dataDir string) (string, error) {
	return readOrCreate(filepath.Join(dataDir, devSecretFile), func() string {
		b := make([]byte, 48)
		_, _ = rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b)
	})
}

// devTenant is the tenant of the printed development token, stable across
// restarts so the data made with it stays visible.
func devTenant(dataDir string) (uuid.UUID, error) {
	s, err := readOrCreate(filepath.Join(dataDir, devTenantFile), uuid.NewString)
	if err != nil {
		return uuid.Nil, err
	}
	return uuid.Parse(s)
}

func readOrCreate(path string, make func() string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	v := make()
	if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		return "", err
	}
	return v, nil
}

// printDevToken prints a ready-to-use token of the development tenant and
// a curl line. It goes to stdout for the developer, never to the log.
func printDevToken(cfg config.Config, stdout io.Writer, base string) error {
	tenantID, err := devTenant(cfg.DataDir)
	if err != nil {
		return err
	}
	tok, err := auth.Mint([]byte(cfg.JWT.Secret), auth.MintOptions{
		Tenant: tenantID, Subject: uuid.NewString(), Role: "authenticated",
		Audience: cfg.JWT.Audience, Issuer: cfg.JWT.Issuer, TenantClaim: cfg.JWT.TenantClaim, TTL: 24 * time.Hour,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "development token (tenant %s, valid 24h):\n  %s\ntry:\n  curl -H 'Authorization: Bearer %s' %s/v1/runs\nrun viewer:\n  %s/ui/#token=%s\n", tenantID, tok, tok, base, base, tok)
	return nil
}

// token is the `token` command: it mints an HS256 token with the
// configured secret, or the development one in development.
func token(cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("agentstore token", flag.ContinueOnError)
	fset.SetOutput(stderr)
	tenantFlag := fset.String("tenant", "", "tenant UUID (required)")
	sub := fset.String("sub", "", "subject (user id); default a new UUID")
	role := fset.String("role", "authenticated", "role claim, e.g. authenticated or service_role")
	ttl := fset.Duration("ttl", time.Hour, "lifetime")
	if err := fset.Parse(args); err != nil {
		return err
	}
	tenantID, err := uuid.Parse(*tenantFlag)
	if err != nil {
		return errors.New("token: --tenant must be a UUID")
	}
	secret := cfg.JWT.Secret
	if secret == "" {
		if cfg.Env == "production" {
			return errors.New("token: SUPABASE_JWT_SECRET is not set")
		}
		if secret, err = devSecret(cfg.DataDir); err != nil {
			return err
		}
	}
	if *sub == "" {
		*sub = uuid.NewString()
	}
	tok, err := auth.Mint([]byte(secret), auth.MintOptions{
		Tenant: tenantID, Subject: *sub, Role: *role, Audience: cfg.JWT.Audience,
		Issuer: cfg.JWT.Issuer, TenantClaim: cfg.JWT.TenantClaim, TTL: *ttl,
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
