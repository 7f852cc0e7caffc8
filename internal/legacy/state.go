package legacy

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"
)

// state is one row of the state table: the checkpoint of one part of one
// table in one pass.
type state struct {
	table                                                        string
	part, parts, pass                                            int
	lastID                                                       uuid.NullUUID
	done                                                         bool
	scanned, inserted, updated, unchanged, quarantined, released int64
	notes                                                        map[string]int64
}

// stateCols are the state table's columns in the order scanState reads.
const stateCols = "source_table, part, parts, pass, last_id, done, scanned, inserted, updated, unchanged, quarantined, released, notes"

// scanState reads one state row selected with stateCols.
func scanState(sc interface{ Scan(...any) error }) (state, error) {
	var s state
	var notes []byte
	err := sc.Scan(&s.table, &s.part, &s.parts, &s.pass, &s.lastID, &s.done, &s.scanned, &s.inserted, &s.updated, &s.unchanged, &s.quarantined, &s.released, &notes)
	if err == nil {
		err = json.Unmarshal(notes, &s.notes)
	}
	if s.notes == nil {
		s.notes = map[string]int64{}
	}
	return s, err
}

// bounds returns the key range of part k of n: [lo, hi), hi invalid for
// the last part. Parts split the UUID space evenly by its first 32 bits.
func bounds(k, n int) (lo, hi uuid.NullUUID) {
	at := func(i int) uuid.UUID {
		var u uuid.UUID
		v := uint32((uint64(i) << 32) / uint64(n))
		u[0], u[1], u[2], u[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
		return u
	}
	lo = uuid.NullUUID{UUID: at(k), Valid: true}
	if k+1 < n {
		hi = uuid.NullUUID{UUID: at(k + 1), Valid: true}
	}
	return lo, hi
}

// loadStates returns the state rows by table, ordered by part.
func (im *importer) loadStates(ctx context.Context, q querier) (map[string][]state, error) {
	rows, err := q.QueryContext(ctx, "SELECT "+stateCols+" FROM "+im.dst+"."+StateTable+" ORDER BY source_table, part")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]state{}
	for rows.Next() {
		s, err := scanState(rows)
		if err != nil {
			return nil, err
		}
		out[s.table] = append(out[s.table], s)
	}
	return out, rows.Err()
}

// complete reports whether the parts of a table form a finished pass.
func complete(parts []state, pass int) bool {
	if len(parts) == 0 || len(parts) != parts[0].parts {
		return false
	}
	for _, s := range parts {
		if s.pass != pass || !s.done {
			return false
		}
	}
	return true
}

// choosePass picks the pass to run: the unfinished one, else a new one when
// there was none or Incremental is set; work is false when everything is
// done.
func (im *importer) choosePass(ctx context.Context, q querier, rep *Report) (states map[string][]state, work bool, err error) {
	if _, err := q.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", advisoryKey); err != nil {
		return nil, false, err
	}
	if states, err = im.loadStates(ctx, q); err != nil {
		return nil, false, err
	}
	last := 0
	for _, parts := range states {
		for _, s := range parts {
			last = max(last, s.pass)
		}
	}
	unfinished := false
	for _, t := range Tables {
		if last > 0 && !complete(states[t], last) {
			unfinished = true
		}
	}
	rep.Pass = last
	reset := func(t string, pass int) error {
		if _, err := q.ExecContext(ctx, "DELETE FROM "+im.dst+"."+StateTable+" WHERE source_table = $1", t); err != nil {
			return err
		}
		for k := 0; k < im.opts.Workers; k++ {
			if _, err := q.ExecContext(ctx, "INSERT INTO "+im.dst+"."+StateTable+" (source_table, part, parts, pass) VALUES ($1, $2, $3, $4)",
				t, k, im.opts.Workers, pass); err != nil {
				return err
			}
		}
		return nil
	}
	switch {
	case unfinished:
		rep.Resumed = true
		for _, t := range Tables {
			parts := states[t]
			if len(parts) > 0 && parts[0].pass == last && len(parts) == parts[0].parts {
				continue // this table's parts of the pass are all there
			}
			if err := reset(t, last); err != nil {
				return nil, false, err
			}
		}
	case last == 0 || im.opts.Incremental:
		rep.Pass = last + 1
		for _, t := range Tables {
			if err := reset(t, rep.Pass); err != nil {
				return nil, false, err
			}
		}
	default:
		rep.UpToDate = true
		return states, false, nil
	}
	states, err = im.loadStates(ctx, q)
	return states, true, err
}
