package main

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentstore/agentstore/internal/httpapi"
)

// pingFunc is a readiness check made of a function.
type pingFunc func(context.Context) error

func (f pingFunc) Ping(ctx context.Context) error { return f(ctx) }

func TestCountReadiness(t *testing.T) {
	reg := prometheus.NewRegistry()
	down := errors.New("connection refused")
	var redisErr error
	checks := countReadiness(reg, map[string]httpapi.Pinger{
		"db":    pingFunc(func(context.Context) error { return nil }),
		"redis": pingFunc(func(context.Context) error { return redisErr }),
	})
	n, err := testutil.GatherAndCount(reg, "agentstore_ready")
	require.NoError(t, err)
	assert.Zero(t, n, "no readiness gauge before the first check")
	assert.Equal(t, 2, testutil.CollectAndCount(reg, "agentstore_readiness_failures_total"), "the failure counters start at 0")

	ctx := context.Background()
	require.NoError(t, checks["db"].Ping(ctx))
	require.NoError(t, checks["redis"].Ping(ctx))
	redisErr = down
	assert.ErrorIs(t, checks["redis"].Ping(ctx), down, "the check's error is passed on")
	assert.ErrorIs(t, checks["redis"].Ping(ctx), down)

	got, err := reg.Gather()
	require.NoError(t, err)
	values := map[string]float64{}
	for _, f := range got {
		for _, m := range f.GetMetric() {
			key := f.GetName() + "/" + m.GetLabel()[0].GetValue()
			if m.GetGauge() != nil {
				values[key] = m.GetGauge().GetValue()
			} else {
				values[key] = m.GetCounter().GetValue()
			}
		}
	}
	assert.Equal(t, map[string]float64{
		"agentstore_ready/db": 1, "agentstore_ready/redis": 0,
		"agentstore_readiness_failures_total/db": 0, "agentstore_readiness_failures_total/redis": 2,
	}, values)
}
