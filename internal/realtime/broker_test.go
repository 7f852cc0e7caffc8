package realtime

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// TestMemBrokerStartsAboveFloor: a new channel starts above its floor
// (what this instance already sent, numbered by a clock ahead of ours),
// and at the clock in microseconds otherwise.
func TestMemBrokerStartsAboveFloor(t *testing.T) {
	var got []*event
	b := newMemBroker(10, time.Minute, func(e *event) { got = append(got, e) })
	defer b.stop()
	ctx := context.Background()
	tenantID := uuid.New()
	ahead := chanKey{tenant: tenantID, channel: "runs"}
	other := chanKey{tenant: tenantID, channel: "run:" + uuid.NewString()}
	far := uint64(time.Now().Add(time.Hour).UnixMicro())
	b.floor = func(k chanKey) uint64 {
		if k == ahead {
			return far
		}
		return 0
	}

	before := uint64(time.Now().UnixMicro())
	require.NoError(t, b.publish(ctx, []chanKey{ahead, other}, "e", json.RawMessage(`{}`), ""))
	require.Len(t, got, 2)
	require.Equal(t, far+1, got[0].offset, "above the floor")
	require.Greater(t, got[1].offset, before, "from the clock")
	require.Less(t, got[1].offset, far)

	top, _, err := b.snapshot(ctx, ahead, nil)
	require.NoError(t, err)
	require.Equal(t, far+1, top)
}
