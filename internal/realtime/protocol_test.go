package realtime

import (
	"errors"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func itoa(i int) string { return strconv.Itoa(i) }

func errorsAs(err error, target any) bool { return errors.As(err, target) }

func TestRecovered(t *testing.T) {
	evs := func(offs ...uint64) []*event {
		out := make([]*event, len(offs))
		for i, o := range offs {
			out[i] = &event{offset: o}
		}
		return out
	}
	tests := []struct {
		name        string
		since, top  uint64
		events      []*event
		want        bool
		wantReplays int
	}{
		{"caught up", 10, 10, nil, true, 0},
		{"from the future", 11, 10, nil, false, 0},
		{"all there", 7, 10, evs(8, 9, 10), true, 3},
		{"front trimmed", 5, 10, evs(8, 9, 10), false, 0},
		{"hole", 7, 10, evs(8, 10), false, 0},
		{"expired", 7, 10, nil, false, 0},
		{"other life", 7, 1000, evs(8, 9, 999, 1000), false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := recovered(tt.since, tt.top, tt.events)
			assert.Equal(t, tt.want, ok)
			assert.Len(t, got, tt.wantReplays)
		})
	}
}

func TestParseChannel(t *testing.T) {
	name, id, perr := parseChannel("runs")
	require.Nil(t, perr)
	assert.Equal(t, "runs", name)
	assert.Zero(t, id)

	name, id, perr = parseChannel("run:6BA7B810-9DAD-11D1-80B4-00C04FD430C8")
	require.Nil(t, perr)
	assert.Equal(t, "run:6ba7b810-9dad-11d1-80b4-00c04fd430c8", name)
	assert.Equal(t, "6ba7b810-9dad-11d1-80b4-00c04fd430c8", id.String())

	for _, bad := range []string{"", "run", "run:", "runs:x", "run:00000000-0000-0000-0000-000000000000",
		"run:{6ba7b810-9dad-11d1-80b4-00c04fd430c8}", "run:urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8"} {
		_, _, perr := parseChannel(bad)
		assert.NotNil(t, perr, bad)
	}
}

func TestCheckEventName(t *testing.T) {
	for _, ok := range []string{"agent.thinking", "a", "x:y-z_1", "Run.Created"} {
		assert.Nil(t, checkEventName(ok), ok)
	}
	for _, bad := range []string{"", "run.created", "run.updated", "step.appended", "toolcall.recorded", "has space", "é", string(make([]byte, 65))} {
		assert.NotNil(t, checkEventName(bad), bad)
	}
}

func TestDecodeBody(t *testing.T) {
	e, err := decodeMessage("run:x\n42\n{\"t\":\"6ba7b810-9dad-11d1-80b4-00c04fd430c8\",\"e\":\"ev\",\"o\":\"c1\",\"d\":{\"a\":1}}")
	require.NoError(t, err)
	assert.Equal(t, "run:x", e.key.channel)
	assert.Equal(t, "6ba7b810-9dad-11d1-80b4-00c04fd430c8", e.key.tenant.String())
	assert.Equal(t, uint64(42), e.offset)
	assert.Equal(t, "c1", e.origin)
	assert.JSONEq(t, `{"type":"event","channel":"run:x","event":"ev","offset":42,"data":{"a":1}}`, string(e.frame()))

	for _, bad := range []string{"", "runs", "runs\nx\n{}", "runs\n1\nnot json"} {
		_, err := decodeMessage(bad)
		assert.Error(t, err, bad)
	}
}

// FuzzDecodeFrame checks that no client frame crashes the decoder and that
// every accepted frame has a known type and a bounded ref.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{"type":"subscribe","ref":"1","channel":"runs"}`,
		`{"type":"subscribe","ref":"1","channel":"run:6ba7b810-9dad-11d1-80b4-00c04fd430c8","since":12}`,
		`{"type":"publish","ref":"2","channel":"run:6ba7b810-9dad-11d1-80b4-00c04fd430c8","event":"agent.thinking","payload":{"a":[1,2]}}`,
		`{"type":"auth","ref":"3","token":"x.y.z"}`,
		`{"type":"ping","ref":"4"}`,
		`{"type":"ping","ref":4}`,
		`{"type":"subscribe","since":-1}`,
		`[]`, `null`, `{`, `{"type":"ping"}{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in, perr := decodeFrame(data)
		_ = refOf(data)
		if perr != nil {
			require.NotEmpty(t, encodeError(in.Ref, perr))
			return
		}
		require.Contains(t, []string{typeSubscribe, typeUnsubscribe, typePublish, typeAuth, typePing}, in.Type)
		require.LessOrEqual(t, len(in.Ref), maxRefLen)
		if in.Type == typePublish {
			if p, perr := checkPayload(in.Payload); perr == nil {
				require.Equal(t, byte('{'), p[0])
			}
		}
	})
}
