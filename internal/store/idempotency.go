package store

import (
	"context"
	"errors"
	"time"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/ent/idempotencykey"
	"github.com/agentstore/agentstore/internal/derrors"
)

// IdempotencyTTL is how long a stored response answers retries.
const IdempotencyTTL = 24 * time.Hour

// Response is a stored HTTP response.
type Response struct {
	Status int
	Body   []byte
}

// idempotent runs fn, a write, at most once per tenant, scope and key. fn
// runs in a transaction with the row that stores its response, so either
// both land or neither. A later call with the same key and the same
// request hash gets the stored response back (replayed is true) without
// running fn; one with another hash is a Conflict. Two concurrent calls
// with one key: one runs, the other waits for it and replays.
func (s *Store) idempotent(ctx context.Context, scope, key, requestHash string,
	fn func(ctx context.Context, tx *ent.Tx) (Response, error)) (resp Response, replayed bool, err error) {
	tenantID, err := viewerTenant(ctx)
	if err != nil {
		return Response{}, false, err
	}
	for attempt := 0; attempt < 2; attempt++ {
		stored, err := s.client.IdempotencyKey.Query().
			Where(idempotencykey.TenantID(tenantID), idempotencykey.Scope(scope), idempotencykey.Key(key),
				idempotencykey.CreatedAtGT(now().Add(-IdempotencyTTL))).
			Only(ctx)
		switch {
		case err == nil:
			if stored.RequestHash != requestHash {
				return Response{}, false, derrors.New(derrors.Conflict, "Idempotency-Key %q was used with a different request", key)
			}
			return Response{Status: stored.StatusCode, Body: stored.Response}, true, nil
		case !ent.IsNotFound(err):
			return Response{}, false, translate(err)
		}
		err = s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
			// An expired key of the same name makes way for the new one.
			if _, err := tx.IdempotencyKey.Delete().
				Where(idempotencykey.TenantID(tenantID), idempotencykey.Scope(scope), idempotencykey.Key(key),
					idempotencykey.CreatedAtLTE(now().Add(-IdempotencyTTL))).
				Exec(ctx); err != nil {
				return err
			}
			var err error
			if resp, err = fn(ctx, tx); err != nil {
				return err
			}
			return tx.IdempotencyKey.Create().
				SetScope(scope).SetKey(key).SetRequestHash(requestHash).
				SetStatusCode(resp.Status).SetResponse(resp.Body).
				Exec(ctx)
		})
		if err == nil {
			return resp, false, nil
		}
		// Lost a race with a concurrent call under the same key: replay its
		// response on the next pass. Any other error is final.
		if !errors.Is(err, derrors.Conflict) || attempt == 1 {
			return Response{}, false, err
		}
	}
	return Response{}, false, derrors.New(derrors.Unavailable, "idempotent request did not settle")
}

// PruneIdempotencyKeys deletes stored responses older than IdempotencyTTL.
// Only the system viewer may prune across tenants.
func (s *Store) PruneIdempotencyKeys(ctx context.Context) (_ int, err error) {
	defer derrors.Wrap(&err, "Store.PruneIdempotencyKeys")
	n, err := s.client.IdempotencyKey.Delete().
		Where(idempotencykey.CreatedAtLT(now().Add(-IdempotencyTTL))).
		Exec(ctx)
	return n, translate(err)
}

// OnceItem is one write of a batch for Once: Key identifies it for
// IdempotencyTTL (a client's event id), Hash is a digest of its content,
// and Run performs it.
type OnceItem struct {
	Key  string
	Hash string
	// Run performs the write. Every store write it makes with ctx joins
	// the transaction that also stores its response, so both land or
	// neither. It may run more than once when that transaction is retried;
	// the last run is the one that counts.
	Run func(ctx context.Context) (Response, error)
}

// OnceResult is the outcome of one OnceItem: the response of its write, or
// the one stored for its key (Replayed), or the error that rolled it back.
type OnceResult struct {
	Response Response
	Replayed bool
	Err      error
}

// Once runs the items of a batch in order, each in a transaction of its
// own, and each at most once per tenant, scope and key within
// IdempotencyTTL: an item whose key has a stored response gets it back
// without running (Replayed), or a Conflict when its hash differs. Only
// successful writes are stored, so an item that failed runs again when it
// is sent again. The stored responses of the whole batch are read in one
// query; an item that loses a race with a concurrent batch under the same
// key replays that batch's response.
func (s *Store) Once(ctx context.Context, scope string, items []OnceItem) (_ []OnceResult, err error) {
	defer derrors.Wrap(&err, "Store.Once")
	tenantID, err := viewerTenant(ctx)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(items))
	for _, it := range items {
		keys = append(keys, it.Key)
	}
	stored := map[string]*ent.IdempotencyKey{}
	expired := map[string]bool{}
	for _, part := range chunks(keys, 1000) {
		rows, err := s.client.IdempotencyKey.Query().
			Where(idempotencykey.TenantID(tenantID), idempotencykey.Scope(scope), idempotencykey.KeyIn(part...)).
			All(ctx)
		if err != nil {
			return nil, translate(err)
		}
		for _, r := range rows {
			if r.CreatedAt.After(now().Add(-IdempotencyTTL)) {
				stored[r.Key] = r
			} else {
				expired[r.Key] = true
			}
		}
	}
	replay := func(row *ent.IdempotencyKey, it OnceItem) OnceResult {
		if row.RequestHash != it.Hash {
			return OnceResult{Err: derrors.New(derrors.Conflict, "event id %q was used for a different item", it.Key)}
		}
		return OnceResult{Response: Response{Status: row.StatusCode, Body: row.Response}, Replayed: true}
	}
	out := make([]OnceResult, len(items))
	for i, it := range items {
		if row := stored[it.Key]; row != nil {
			out[i] = replay(row, it)
			continue
		}
		var resp Response
		err := s.WithTx(ctx, func(ctx context.Context, tx *ent.Tx) error {
			if expired[it.Key] {
				if _, err := tx.IdempotencyKey.Delete().
					Where(idempotencykey.TenantID(tenantID), idempotencykey.Scope(scope), idempotencykey.Key(it.Key),
						idempotencykey.CreatedAtLTE(now().Add(-IdempotencyTTL))).
					Exec(ctx); err != nil {
					return err
				}
			}
			var err error
			if resp, err = it.Run(ctx); err != nil {
				return err
			}
			row, err := tx.IdempotencyKey.Create().
				SetScope(scope).SetKey(it.Key).SetRequestHash(it.Hash).
				SetStatusCode(resp.Status).SetResponse(resp.Body).
				Save(ctx)
			stored[it.Key] = row
			return err
		})
		if err == nil {
			delete(expired, it.Key)
			out[i] = OnceResult{Response: resp}
			continue
		}
		delete(stored, it.Key)
		if errors.Is(err, derrors.Conflict) {
			// Perhaps a concurrent batch stored this key first.
			row, qerr := s.client.IdempotencyKey.Query().
				Where(idempotencykey.TenantID(tenantID), idempotencykey.Scope(scope), idempotencykey.Key(it.Key),
					idempotencykey.CreatedAtGT(now().Add(-IdempotencyTTL))).
				Only(ctx)
			if qerr == nil {
				stored[it.Key] = row
				out[i] = replay(row, it)
				continue
			}
		}
		out[i] = OnceResult{Err: err}
	}
	return out, nil
}

// chunks splits s into parts of at most n elements.
func chunks[T any](s []T, n int) [][]T {
	var out [][]T
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	if len(s) > 0 {
		out = append(out, s)
	}
	return out
}
