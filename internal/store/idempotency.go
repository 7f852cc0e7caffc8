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
