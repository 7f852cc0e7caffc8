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

func TestCreateIdempotent(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx, _ := asTenant(t)
		other, _ := asTenant(t)
		render := func(run *ent.AgentRun) (Response, error) {
			return Response{Status: 201, Body: []byte(`{"id":"` + run.ID.String() + `"}`)}, nil
		}
		create := func(ctx context.Context, in NewRun, key, hash string) (Response, bool, error) {
			resp, run, err := s.Runs.CreateIdempotent(ctx, in, key, hash, render)
			if err == nil && run != nil {
				assert.Equal(t, `{"id":"`+run.ID.String()+`"}`, string(resp.Body), "the response is the created run's")
			}
			return resp, err == nil && run == nil, err
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
				resp, replayed, err := create(ctx, newRun(2), "key-1", "hash-a")
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

		_, _, err = create(ctx, newRun(2), "key-1", "hash-b")
		require.ErrorIs(t, err, derrors.Conflict, "same key, other request")
		_, _, err = create(ctx, NewRun{}, "key-1", "hash-c")
		require.ErrorIs(t, err, derrors.Conflict, "a reused key is a Conflict before the request is checked")

		_, replayed, err := create(other, newRun(2), "key-1", "hash-b")
		require.NoError(t, err)
		assert.False(t, replayed, "keys are per tenant")

		_, _, err = create(ctx, NewRun{}, "key-2", "h")
		require.ErrorIs(t, err, derrors.InvalidArgument)
		_, replayed, err = create(ctx, newRun(2), "key-2", "h")
		require.NoError(t, err)
		assert.False(t, replayed, "a failed write stores no response")
	})
}
