package dbmigrate_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ariga.io/atlas/sql/migrate"
	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/dbmigrate"
	"github.com/agentstore/agentstore/internal/dbtest"
	"github.com/agentstore/agentstore/migrations"
)

// Two ways to add the same index to agent_steps: a plain CREATE INDEX in a
// transactional file, and CREATE INDEX CONCURRENTLY in a file that runs
// without a transaction.
const (
	plainIndexFile = "20990101000000_agentstep_name_plain.sql"
	plainIndexSQL  = `SET LOCAL lock_timeout = '5s';
CREATE INDEX "agentstep_tenant_id_name_plain" ON "agent_steps" ("tenant_id", "name", "created_at");
`
	concurrentIndexFile = "20990101000001_agentstep_name.sql"
	concurrentIndexSQL  = `-- atlas:txmode none

SET lock_timeout = '5s';
CREATE INDEX CONCURRENTLY "agentstep_tenant_id_name_created_at" ON "agent_steps" ("tenant_id", "name", "created_at");
`
)

// stepRows is the size of agent_steps the indexes are built on: enough for
// a build of about a second here.
const stepRows = 200_000

// repoDir returns the repository's migrations plus extra files, with a
// matching atlas.sum.
func repoDir(t *testing.T, extra map[string]string) migrate.Dir {
	t.Helper()
	dir := &migrate.MemDir{}
	names, err := fs.Glob(migrations.FS, "*.sql")
	require.NoError(t, err)
	for _, n := range names {
		b, err := fs.ReadFile(migrations.FS, n)
		require.NoError(t, err)
		require.NoError(t, dir.WriteFile(n, b))
	}
	for n, src := range extra {
		require.NoError(t, dir.WriteFile(n, []byte(src)))
	}
	sum, err := dir.Checksum()
	require.NoError(t, err)
	require.NoError(t, migrate.WriteSumFile(dir, sum))
	return dir
}

// insert is one write of the load: when it started and how long it took.
type insert struct {
	start time.Time
	took  time.Duration
}

// window summarizes the inserts around [from, to]: how many finished
// inside it, and the longest one that overlapped it.
func window(ins []insert, from, to time.Time) (finished int, longest time.Duration) {
	for _, i := range ins {
		end := i.start.Add(i.took)
		if end.After(from) && i.start.Before(to) {
			longest = max(longest, i.took)
			if end.Before(to) {
				finished++
			}
		}
	}
	return finished, longest
}

// lockSample is one look at the server: how many writers waited on a lock.
type lockSample struct {
	at      time.Time
	waiting int
}

// lockWaits counts the samples taken inside [from, to] and those in which
// at least one writer waited on a lock.
func lockWaits(samples []lockSample, from, to time.Time) (taken, blocked int) {
	for _, s := range samples {
		if s.at.After(from) && s.at.Before(to) {
			taken++
			if s.waiting > 0 {
				blocked++
			}
		}
	}
	return taken, blocked
}

// TestConcurrentIndexDoesNotBlockWrites builds an index on an agent_steps
// of stepRows rows while writers insert steps, once with a plain CREATE
// INDEX in a transactional migration and once with CREATE INDEX
// CONCURRENTLY in a `-- atlas:txmode none` migration, both applied by
// dbmigrate.Apply. The plain build holds a SHARE lock: inserts wait for the
// whole build. The concurrent build lets them through, under the migration
// lock all the same.
func TestConcurrentIndexDoesNotBlockWrites(t *testing.T) {
	ctx := context.Background()
	url := dbtest.Postgres(t)
	{
		// One build process, so that the build's duration does not depend
		// on the free cores.
		db, err := sql.Open("pgx", url)
		require.NoError(t, err)
		_, err = db.Exec(`DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET max_parallel_maintenance_workers = 0', current_database()); END $$`)
		require.NoError(t, err)
		require.NoError(t, db.Close())
	}
	db, err := sql.Open("pgx", url)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })

	run, tenant := uuid.New(), uuid.New()
	_, err = db.Exec(`INSERT INTO agentstore.agent_runs (id, tenant_id, created_at, agent_name, updated_at) VALUES ($1, $2, now(), 'load', now())`, run, tenant)
	require.NoError(t, err)
	_, err = db.Exec(`INSERT INTO agentstore.agent_steps (id, tenant_id, created_at, seq, type, name, run_id)
		SELECT gen_random_uuid(), $2, now() - g * interval '1 second', g, 'llm', md5(g::text), $1
		FROM generate_series(1, $3::int) g`, run, tenant, stepRows)
	require.NoError(t, err)
	_, err = db.Exec(`ANALYZE agentstore.agent_steps`)
	require.NoError(t, err)

	// The writers: one step per transaction, as the API appends them.
	const writers = 4
	var (
		seq     atomic.Int64
		mu      sync.Mutex
		inserts []insert
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		werr    atomic.Value
	)
	seq.Store(stepRows)
	wdb, err := sql.Open("pgx", url)
	require.NoError(t, err)
	t.Cleanup(func() { wdb.Close() })
	wdb.SetMaxOpenConns(writers)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := seq.Add(1)
				start := time.Now()
				_, err := wdb.Exec(`INSERT INTO agentstore.agent_steps (id, tenant_id, created_at, seq, type, name, run_id)
					VALUES ($1, $2, now(), $3::bigint, 'tool', md5($3::bigint::text), $4)`, uuid.New(), tenant, s, run)
				if err != nil {
					werr.Store(err)
					return
				}
				mu.Lock()
				inserts = append(inserts, insert{start: start, took: time.Since(start)})
				mu.Unlock()
			}
		}()
	}
	stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopWriters)
	time.Sleep(300 * time.Millisecond) // the writers are connected
	loadStart := time.Now()

	// apply applies dir, one pending file, while the writers run and
	// returns when Apply ran and how long the file took (its log line).
	apply := func(dir migrate.Dir) (from, to time.Time, file time.Duration) {
		var logs bytes.Buffer
		from = time.Now()
		n, err := dbmigrate.Apply(ctx, db, dbtest.Schema, dir, slog.New(slog.NewJSONHandler(&logs, nil)))
		to = time.Now()
		require.NoError(t, err)
		require.Equal(t, 1, n)
		for _, line := range bytes.Split(logs.Bytes(), []byte("\n")) {
			var rec struct {
				Msg        string `json:"msg"`
				DurationMS int64  `json:"duration_ms"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "applied migration" {
				file = time.Duration(rec.DurationMS) * time.Millisecond
			}
		}
		require.NotZero(t, file, "Apply logs the file's duration: %s", logs.String())
		time.Sleep(200 * time.Millisecond) // inserts that waited finish
		return from, to, file
	}

	// A sampler watches the server, every 10 ms from before the first build
	// to after the second: how many writers wait on the table's lock (a
	// heavy-weight lock on the relation, not I/O, the CPU or the lock that
	// extends the table, which concurrent inserts take turns on), and whether the session building the index
	// concurrently holds the migration (advisory) lock.
	var (
		sampleMu      sync.Mutex
		samples       []lockSample
		sawBuild      atomic.Bool
		buildHeldLock atomic.Bool
	)
	pollDone := make(chan struct{})
	pollStop := make(chan struct{})
	go func() {
		defer close(pollDone)
		for {
			select {
			case <-pollStop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			at := time.Now()
			var waiting int
			if err := db.QueryRow(`SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'relation'
				AND query LIKE 'INSERT INTO agentstore.agent_steps%'`).Scan(&waiting); err == nil {
				sampleMu.Lock()
				samples = append(samples, lockSample{at: at, waiting: waiting})
				sampleMu.Unlock()
			}
			var held bool
			err := db.QueryRow(`SELECT EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted)
				FROM pg_stat_activity a WHERE a.datname = current_database() AND a.query LIKE 'CREATE INDEX CONCURRENTLY%'`).Scan(&held)
			if err == nil {
				sawBuild.Store(true)
				if held {
					buildHeldLock.Store(true)
				}
			}
		}
	}()
	plainFrom, plainTo, plainBuild := apply(repoDir(t, map[string]string{plainIndexFile: plainIndexSQL}))
	concFrom, concTo, concBuild := apply(repoDir(t, map[string]string{plainIndexFile: plainIndexSQL, concurrentIndexFile: concurrentIndexSQL}))
	close(pollStop)
	<-pollDone
	stopWriters()
	if err, ok := werr.Load().(error); ok {
		require.NoError(t, err, "a writer failed")
	}

	mu.Lock()
	ins := slices.Clone(inserts)
	mu.Unlock()
	plainDone, plainLongest := window(ins, plainFrom, plainTo)
	concDone, concLongest := window(ins, concFrom, concTo)
	_, idleLongest := window(ins, loadStart, plainFrom)
	sampleMu.Lock()
	plainSamples, plainBlocked := lockWaits(samples, plainFrom, plainTo)
	concSamples, concBlocked := lockWaits(samples, concFrom, concTo)
	sampleMu.Unlock()
	report := fmt.Sprintf("no build: longest insert %v; plain CREATE INDEX: build %v, %d inserts finished during it, longest insert %v, "+
		"writers waiting on a lock in %d of %d samples; CREATE INDEX CONCURRENTLY: build %v, %d inserts finished during it, longest insert %v, "+
		"writers waiting on a lock in %d of %d samples (%d rows, %d writers)",
		idleLongest.Round(time.Millisecond), plainBuild.Round(time.Millisecond), plainDone, plainLongest.Round(time.Millisecond),
		plainBlocked, plainSamples, concBuild.Round(time.Millisecond), concDone, concLongest.Round(time.Millisecond),
		concBlocked, concSamples, stepRows, writers)
	t.Log(report)

	// Latency alone says little on a loaded machine (an insert can stall on
	// I/O for a second during either build); the lock waits are the
	// difference between the two: the plain build's SHARE lock queues every
	// insert, the concurrent build's SHARE UPDATE EXCLUSIVE lock none.
	assert.GreaterOrEqual(t, plainLongest, plainBuild/2, "the plain build blocks inserts for most of its duration: %s", report)
	assert.Greater(t, plainBlocked, 0, "the sampler sees writers waiting on the plain build's lock: %s", report)
	assert.GreaterOrEqual(t, concSamples, 10, "the sampler watched the concurrent build: %s", report)
	assert.Zero(t, concBlocked, "no insert waits on a lock during the concurrent build: %s", report)
	assert.GreaterOrEqual(t, concDone, 20, "inserts keep finishing during the concurrent build: %s", report)
	assert.True(t, sawBuild.Load(), "the poller saw the concurrent build running")
	assert.True(t, buildHeldLock.Load(), "the session building the index concurrently holds the migration lock")

	var valid bool
	require.NoError(t, db.QueryRow(`SELECT indisvalid FROM pg_index WHERE indexrelid = 'agentstore.agentstep_tenant_id_name_created_at'::regclass`).Scan(&valid))
	assert.True(t, valid, "the concurrent build completed")
	var applied, total int
	require.NoError(t, db.QueryRow(`SELECT applied, total FROM agentstore.atlas_schema_revisions WHERE version = '20990101000001'`).Scan(&applied, &total))
	assert.Equal(t, []int{2, 2}, []int{applied, total})
}
