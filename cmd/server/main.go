// Command server is agentstore's one binary: the API server (`serve`, the
// default, with the run viewer under /ui), the migration tool (`migrate
// apply|status`), the legacy import, token minting, the demo seed, one
// retention pass (`retention run`) and the export.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"entgo.io/ent/dialect"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/agentstore/agentstore/internal/auth"
	"github.com/agentstore/agentstore/internal/config"
	"github.com/agentstore/agentstore/internal/dbmigrate"
	"github.com/agentstore/agentstore/internal/derrors"
	"github.com/agentstore/agentstore/internal/health"
	"github.com/agentstore/agentstore/internal/httpapi"
	"github.com/agentstore/agentstore/internal/lifecycle"
	"github.com/agentstore/agentstore/internal/ratelimit"
	"github.com/agentstore/agentstore/internal/realtime"
	"github.com/agentstore/agentstore/internal/store"
	"github.com/agentstore/agentstore/internal/webui"
	"github.com/agentstore/agentstore/migrations"
)

const usage = `usage: agentstore [command]

commands:
  serve            run the API server (default)
  migrate apply    apply the embedded migrations to DATABASE_URL's DB_SCHEMA
  migrate status   show applied and pending migrations
  legacy import [--dry-run] [--batch N] [--workers N] [--incremental] [--skip-fk-triggers]
                   copy the legacy public tables into DB_SCHEMA (resumable, idempotent)
  legacy verify    check source = imported + quarantined, FKs and tenants
  rollups rebuild [--tenant UUID] [--from TIME] [--to TIME]
                   recompute the stats and usage rollups from the raw rows
  rollups verify [--tenant UUID] [--from TIME] [--to TIME]
                   compare the rollups with a raw scan; non-zero exit on a difference
  token --tenant UUID [--sub S] [--role R] [--ttl D]
                   mint an HS256 token with the configured (or development) secret
  retention run [--dry-run]
                   one retention pass (RETENTION_DAYS): delete expired runs, print what went
  export --tenant UUID [--from T] [--to T] --out FILE
                   write a tenant's runs as NDJSON (.gz: gzip); resumes after a crash
  seed --demo [--tenant UUID] [--if-empty] [--large-run-steps N]
                   fill a tenant with demo runs, usage and health; print a /ui sign-in link

Configuration comes from the environment; see README.md.
`

// The health prober records the database's health every healthInterval and
// keeps healthRetention of history.
const (
	healthInterval  = 30 * time.Second
	healthRetention = 7 * 24 * time.Hour
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// run is main, testable: it parses args, loads the configuration and runs
// the command until ctx is cancelled.
func run(ctx context.Context, args []string, lookup func(string) (string, bool), stdout, stderr io.Writer) error {
	cfg, err := config.Load(lookup)
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch {
	case cmd == "serve":
		return serve(ctx, cfg, log, stdout)
	case cmd == "migrate" && len(args) == 2 && (args[1] == "apply" || args[1] == "status"):
		return migrate(ctx, cfg, args[1], log, stdout)
	case cmd == "legacy":
		return legacyCommand(ctx, cfg, args[1:], log, stdout, stderr)
	case cmd == "rollups":
		return rollupsCommand(ctx, cfg, args[1:], log, stdout, stderr)
	case cmd == "token":
		return token(cfg, args[1:], stdout, stderr)
	case cmd == "retention":
		return retentionCommand(ctx, cfg, args[1:], log, stdout, stderr)
	case cmd == "export":
		return exportCommand(ctx, cfg, args[1:], log, stdout, stderr)
	case cmd == "seed":
		return seed(ctx, cfg, args[1:], log, stdout, stderr)
	case cmd == "help" || cmd == "-h" || cmd == "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args)
}

func migrate(ctx context.Context, cfg config.Config, action string, log *slog.Logger, stdout io.Writer) error {
	if cfg.DatabaseURL == "" {
		return errors.New("migrate needs DATABASE_URL (a direct or session-mode PostgreSQL connection); the embedded SQLite database migrates itself at start")
	}
	db, err := sql.Open("pgx", cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	dir, err := dbmigrate.Dir(migrations.FS)
	if err != nil {
		return err
	}
	if action == "apply" {
		n, err := dbmigrate.Apply(ctx, db, cfg.DBSchema, dir, log)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "applied %d migration(s) to schema %s\n", n, cfg.DBSchema)
	}
	rep, err := dbmigrate.Status(ctx, db, cfg.DBSchema, dir)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, rep.String())
	return nil
}

// openStore opens the configured database: PostgreSQL, which must already
// be migrated, or the embedded SQLite file, which migrates itself. The
// connection pool's statistics go to reg as go_sql_*{db_name="agentstore"}.
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger, reg prometheus.Registerer) (*store.Store, error) {
	if cfg.DatabaseURL == "" {
		db, err := store.OpenSQLite(ctx, cfg.SQLitePath())
		if err != nil {
			return nil, err
		}
		reg.MustRegister(collectors.NewDBStatsCollector(db, dbStatsName))
		return store.New(db, dialect.SQLite, "", log), nil
	}
	db, err := store.OpenPostgres(ctx, cfg.DatabaseURL, 20)
	if err != nil {
		return nil, err
	}
	dir, err := dbmigrate.Dir(migrations.FS)
	if err != nil {
		db.Close()
		return nil, err
	}
	rep, err := dbmigrate.Status(ctx, db, cfg.DBSchema, dir)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("read migration status: %w", err)
	}
	if len(rep.Pending) > 0 {
		db.Close()
		return nil, fmt.Errorf("schema %s has %d pending migration(s): run `server migrate apply` first", cfg.DBSchema, len(rep.Pending))
	}
	if cfg.DBTenantRLS {
		var bypass bool
		err := db.QueryRowContext(ctx, `SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user`).Scan(&bypass)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("check the database role: %w", err)
		}
		if bypass {
			db.Close()
			return nil, errors.New("DB_TENANT_RLS=on, but the database role bypasses row-level security: connect as a NOBYPASSRLS role such as agentstore_app (see README)")
		}
	}
	reg.MustRegister(collectors.NewDBStatsCollector(db, dbStatsName))
	return store.New(db, dialect.Postgres, cfg.DBSchema, log, store.WithTenantRLS(cfg.DBTenantRLS)), nil
}

// dbStatsName is the db_name label of the connection pool's go_sql_* series.
const dbStatsName = "agentstore"

func serve(ctx context.Context, cfg config.Config, log *slog.Logger, stdout io.Writer) error {
	log.Info("starting", cfg.Redacted()...)
	devMode := !cfg.JWT.Configured()
	if devMode {
		secret, err := devSecret(cfg.DataDir)
		if err != nil {
			return err
		}
		cfg.JWT.Secret = secret
		log.Warn("no JWT configuration: using a development secret", "file", filepath.Join(cfg.DataDir, devSecretFile))
	}
	verifier, err := auth.New(ctx, auth.Config{
		HS256Secret: []byte(cfg.JWT.Secret), JWKSURL: cfg.JWT.JWKSURL, Audience: cfg.JWT.Audience,
		Issuer: cfg.JWT.Issuer, TenantClaim: cfg.JWT.TenantClaim, Leeway: 30 * time.Second,
	}, log)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	st, err := openStore(ctx, cfg, log, reg)
	if err != nil {
		return err
	}
	defer st.Close()

	ready := map[string]httpapi.Pinger{"db": st}
	checks := []health.Check{{Component: "db", Ping: st.Ping}}

	// The limiter's Redis client fails fast, so that a dead Redis costs a
	// request at most a few hundred milliseconds before the fail mode applies.
	var limiterRedis *redis.Client
	if cfg.RedisURL != "" {
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return fmt.Errorf("REDIS_URL: %w", err)
		}
		opts.ContextTimeoutEnabled = true
		opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
		opts.MaxRetries = 1
		limiterRedis = redis.NewClient(opts)
		defer limiterRedis.Close()
		ping := redisPinger{limiterRedis}
		ready["redis"] = ping
		checks = append(checks, health.Check{Component: "redis", Ping: ping.Ping})
	}
	rlMetrics := ratelimit.NewMetrics(reg)
	limiter, err := ratelimit.New(ratelimit.Config{
		Max: cfg.RateLimit.Max, Window: cfg.RateLimit.Window, TenantOverrides: cfg.RateLimit.TenantOverrides,
		FailMode: cfg.RateLimit.FailMode, Prefix: ratelimit.DefaultPrefix,
	}, limiterRedis, log, rlMetrics)
	if err != nil {
		return err
	}
	hub, eventLimiter, closeHub, err := newHub(ctx, cfg, log, reg, rlMetrics)
	if err != nil {
		return err
	}
	defer closeHub()
	if cfg.RateLimit.Disabled {
		log.Warn("HTTP rate limiting is disabled (RATE_LIMIT_DISABLED=true)")
		limiter = nil
	}
	ui, err := webui.New()
	if err != nil {
		return fmt.Errorf("run viewer assets: %w", err)
	}
	lcMetrics := lifecycle.NewMetrics(reg)
	eraser := lifecycle.NewEraser(st, lifecycle.Pace{}, 0, log, lcMetrics)
	api := httpapi.New(httpapi.Deps{
		Log: log, Store: st, Auth: verifier, Registry: reg, Ready: countReadiness(reg, ready),
		Limiter: limiter, TrustedProxies: cfg.TrustedProxies, Events: hub, CORSAllowedOrigins: cfg.CORSAllowedOrigins,
		WebSocket: hub.Endpoint(verifier, runChecker{st}, eventLimiter), Erasures: eraser, UI: ui,
	})
	prober := &health.Prober{
		Store: st, Interval: healthInterval, Retention: healthRetention, Log: log, Checks: checks,
	}
	probeCtx, stopProbe := context.WithCancel(ctx)
	probeDone := make(chan struct{})
	go func() { defer close(probeDone); prober.Run(probeCtx) }()
	defer func() { stopProbe(); <-probeDone }()
	// The rollup folder: every instance runs one, the fold lock lets one
	// at a time write rollup rows.
	foldCtx, stopFold := context.WithCancel(ctx)
	foldDone := make(chan struct{})
	go func() { defer close(foldDone); st.Rollups.RunFolder(foldCtx, rollupsFoldInterval, log) }()
	defer func() { stopFold(); <-foldDone }()

	// The lifecycle jobs: retention (one instance at a time) and the
	// erasure worker, stopped before the stores close.
	jobsCtx, stopJobs := context.WithCancel(ctx)
	jobsDone := make(chan struct{}, 2)
	go func() {
		defer func() { jobsDone <- struct{}{} }()
		lifecycle.NewRetention(st, retentionConfig(cfg), log, lcMetrics).Run(jobsCtx)
	}()
	go func() { defer func() { jobsDone <- struct{}{} }(); eraser.Run(jobsCtx) }()
	defer func() { stopJobs(); <-jobsDone; <-jobsDone }()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	base := "http://" + ln.Addr().String()
	log.Info("listening", "addr", ln.Addr().String(), "backend", st.Dialect())
	fmt.Fprintf(stdout, "agentstore listening on %s (%s)\n", base, st.Dialect())
	if devMode {
		if err := printDevToken(cfg, stdout, base); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "try: curl %s/healthz\n", base)
	}

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Stop accepting and drain requests, then close WebSockets with 1001;
	// the stores close last, in the defers.
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if herr := hub.Shutdown(shutdownCtx); herr != nil {
		log.Warn("closing websockets", "err", herr)
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// newHub builds the realtime hub and its publish limiter: over Redis when
// REDIS_URL is set, in process otherwise. close releases its Redis client.
func newHub(ctx context.Context, cfg config.Config, log *slog.Logger, reg prometheus.Registerer, rl *ratelimit.Metrics) (*realtime.Hub, *ratelimit.EventLimiter, func(), error) {
	var rdb *redis.Client
	closeFn := func() {}
	if cfg.RedisURL != "" {
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		rdb = redis.NewClient(opts)
		closeFn = func() { rdb.Close() }
	}
	limiter, err := ratelimit.NewEventLimiter(ratelimit.EventConfig{
		Max: cfg.WS.BroadcastMax, Window: cfg.WS.BroadcastWindow, FailMode: cfg.RateLimit.FailMode, Prefix: ratelimit.DefaultPrefix,
	}, rdb, log, rl)
	if err != nil {
		closeFn()
		return nil, nil, nil, err
	}
	hub, err := realtime.New(ctx, realtime.Config{
		AllowedOrigins: cfg.WS.AllowedOrigins, Production: cfg.Env == "production",
		MaxMessageBytes: cfg.WS.MaxMessageBytes, HistorySize: cfg.WS.HistorySize, HistoryTTL: cfg.WS.HistoryTTL,
		ClientIP: func(r *http.Request) string { return httpapi.ClientIP(cfg.TrustedProxies)(r) },
	}, rdb, log, realtime.NewMetrics(reg))
	if err != nil {
		closeFn()
		return nil, nil, nil, err
	}
	return hub, limiter, closeFn, nil
}

// runChecker tells the hub whether a run exists for the viewer in ctx.
type runChecker struct{ st *store.Store }

// RunExists reports whether the viewer's tenant has the run.
func (c runChecker) RunExists(ctx context.Context, runID uuid.UUID) (bool, error) {
	_, err := c.st.Runs.Get(ctx, runID, store.Include{})
	if errors.Is(err, derrors.NotFound) {
		return false, nil
	}
	return err == nil, err
}

// redisPinger adapts a Redis client to the readiness and health checks.
type redisPinger struct{ c *redis.Client }

// Ping checks that Redis answers.
func (p redisPinger) Ping(ctx context.Context) error { return p.c.Ping(ctx).Err() }

// countReadiness wraps the /readyz checks so that their outcome is counted:
//
//	agentstore_ready{dependency}                  1 if the dependency answered the last check, else 0
//	agentstore_readiness_failures_total{dependency}
//
// The gauge appears with the first check: an instance nobody probes does
// not look unready.
func countReadiness(reg prometheus.Registerer, checks map[string]httpapi.Pinger) map[string]httpapi.Pinger {
	up := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "agentstore_ready",
		Help: "1 if the dependency answered the last readiness check (/readyz), 0 if it failed it.",
	}, []string{"dependency"})
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agentstore_readiness_failures_total",
		Help: "Readiness checks (/readyz) a dependency failed.",
	}, []string{"dependency"})
	reg.MustRegister(up, failures)
	out := make(map[string]httpapi.Pinger, len(checks))
	for name, p := range checks {
		failures.WithLabelValues(name)
		out[name] = countedPinger{p: p, name: name, up: up, failures: failures.WithLabelValues(name)}
	}
	return out
}

// countedPinger is a readiness check whose outcome is counted.
type countedPinger struct {
	p        httpapi.Pinger
	name     string
	up       *prometheus.GaugeVec // its child appears with the first check
	failures prometheus.Counter
}

// Ping checks the dependency and records the outcome.
func (c countedPinger) Ping(ctx context.Context) error {
	if err := c.p.Ping(ctx); err != nil {
		c.up.WithLabelValues(c.name).Set(0)
		c.failures.Inc()
		return err
	}
	c.up.WithLabelValues(c.name).Set(1)
	return nil
}

// parseFlags parses args into fs, the flags of the command name. help is
// true when the caller asked for the usage (-h), which fs has printed;
// positional arguments are an error, after the usage.
func parseFlags(fs *flag.FlagSet, name string, args []string) (help bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return false, fmt.Errorf("%s: unexpected arguments %q", name, fs.Args())
	}
	return false, nil
}
