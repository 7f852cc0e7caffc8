package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/config"
	"github.com/agentstore/agentstore/internal/demo"
	"github.com/agentstore/agentstore/internal/tenant"
)

// seedTokenTTL is the lifetime of the token in the printed sign-in link.
const seedTokenTTL = 24 * time.Hour

// seed is the `seed` command: `seed --demo` fills a tenant with demo data
// and prints its id and a /ui sign-in link.
func seed(ctx context.Context, cfg config.Config, args []string, log *slog.Logger, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("seed", flag.ContinueOnError)
	fset.SetOutput(stderr)
	demoFlag := fset.Bool("demo", false, "write the demo data set (required: the only data set there is)")
	tenantFlag := fset.String("tenant", "", "tenant UUID; default the development tenant in development, a new one in production")
	ifEmpty := fset.Bool("if-empty", false, "do nothing when the database already holds runs (of any tenant)")
	largeRun := fset.Int("large-run-steps", 0, "also write one run with this many steps (for trying the viewer on a large run)")
	if err := fset.Parse(args); err != nil {
		return err
	}
	if !*demoFlag {
		return errors.New("seed: say --demo (the demo data set is the only one)")
	}
	if *largeRun < 0 || *largeRun > 1_000_000 {
		return errors.New("seed: --large-run-steps must be between 0 and 1000000")
	}
	tenantID, err := seedTenant(cfg, *tenantFlag)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, cfg, log, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	defer st.Close()
	if *ifEmpty {
		n, err := st.Client().AgentRun.Query().Count(tenant.SystemContext(ctx))
		if err != nil {
			return err
		}
		if n > 0 {
			fmt.Fprintf(stdout, "the database already holds %d run(s): not seeded\n", n)
			return nil
		}
	}
	began := time.Now()
	res, err := demo.Seed(ctx, st, tenantID, demo.Options{LargeRunSteps: *largeRun})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seeded tenant %s: %d runs, %d steps, %d tool calls, %d usage rows, %d health checks in %s\n",
		res.Tenant, res.Runs, res.Steps, res.ToolCalls, res.Usage, res.Health, time.Since(began).Round(time.Millisecond))
	if res.LargeRun != uuid.Nil {
		fmt.Fprintf(stdout, "large run: %s\n", res.LargeRun)
	}
	return printSignInLink(cfg, stdout, tenantID)
}

// seedTenant is the tenant to seed: the flag's, else the development
// tenant (the one `serve` prints a token for) in development, else a new
// one.
func seedTenant(cfg config.Config, flagValue string) (uuid.UUID, error) {
	if flagValue != "" {
		id, err := uuid.Parse(flagValue)
		if err != nil || id == uuid.Nil {
			return uuid.Nil, errors.New("seed: --tenant must be a UUID")
		}
		return id, nil
	}
	if cfg.Env == "production" {
		return uuid.New(), nil
	}
	return devTenant(cfg.DataDir)
}

// printSignInLink prints the tenant and a /ui link that signs in with a
// token of it, when a secret to mint one is at hand (the configured HS256
// secret, or the development one).
func printSignInLink(cfg config.Config, stdout io.Writer, tenantID uuid.UUID) error {
	fmt.Fprintf(stdout, "tenant: %s\n", tenantID)
	secret := cfg.JWT.Secret
	if secret == "" {
		if cfg.JWT.Configured() || cfg.Env == "production" {
			fmt.Fprintln(stdout, "sign in at /ui/ with an access token of that tenant (no HS256 secret to mint one here)")
			return nil
		}
		var err error
		if secret, err = devSecret(cfg.DataDir); err != nil {
			return err
		}
	}
	tok, err := auth.Mint([]byte(secret), auth.MintOptions{
		Tenant: tenantID, Subject: uuid.NewString(), Role: "authenticated",
		Audience: cfg.JWT.Audience, Issuer: cfg.JWT.Issuer, TenantClaim: cfg.JWT.TenantClaim, TTL: seedTokenTTL,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "sign in (valid %s): %s\n", seedTokenTTL, uiLink(cfg.Addr, tok))
	return nil
}

// uiLink is the /ui address of a server listening on addr that signs in
// with token through the URL fragment, which browsers never send.
func uiLink(addr, token string) string {
	host, port, err := net.SplitHostPort(addr)
	if err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	return "http://" + addr + "/ui/#token=" + token
}
