package store

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/ent"
	"github.com/agentstore/agentstore/internal/derrors"
)

func TestIdempotent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, _ := asTenant(t)
		other, _ := asTenant(t)
		create := func(ctx context.Context, tx *ent.Tx) (Response, error) {
			run, err := s.Runs.CreateTx(ctx, tx, newRun(2))
			if err != nil {
				return Response{}, err
			}
			return Response{Status: 201, Body: []byte(`{"id":"` + run.ID.String() + `"}`)}, nil
		}
		const workers = 8
		var (
			wg        sync.WaitGroup
			mu        sync.Mutex
			bodies    = map[string]int{}
			replays   int
			firstErrs []error
		)
		for i := 0; i < workers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, replayed, err := s.Idempotent(ctx, "POST /v1/runs", "key-1", "hash-a", create)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					firstErrs = append(firstErrs, err)
					return
				}
				assert.Equal(t, 201, resp.Status)
				bodies[string(resp.Body)]++
				if replayed {
					replays++
				}
			}()
		}
		wg.Wait()
		require.Empty(t, firstErrs)
		assert.Len(t, bodies, 1, "every caller got the first response")
		assert.Equal(t, workers-1, replays)
		n, err := s.Client().AgentRun.Query().Count(ctx)
		require.NoError(t, err)
		assert.Equal(t, 1, n, "the write ran once")

		_, _, err = s.Idempotent(ctx, "POST /v1/runs", "key-1", "hash-b", create)
		require.ErrorIs(t, err, derrors.Conflict, "same key, other request")

		_, replayed, err := s.Idempotent(other, "POST /v1/runs", "key-1", "hash-b", create)
		require.NoError(t, err)
		assert.False(t, replayed, "keys are per tenant")

		failing := func(ctx context.Context, tx *ent.Tx) (Response, error) {
			_, err := s.Runs.CreateTx(ctx, tx, NewRun{})
			return Response{}, err
		}
		_, _, err = s.Idempotent(ctx, "POST /v1/runs", "key-2", "h", failing)
		require.ErrorIs(t, err, derrors.InvalidArgument)
		_, replayed, err = s.Idempotent(ctx, "POST /v1/runs", "key-2", "h", create)
		require.NoError(t, err)
		assert.False(t, replayed, "a failed write stores no response")
	})
}
