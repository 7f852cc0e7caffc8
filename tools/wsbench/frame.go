package main

import (
	"bytes"
	"strconv"
)

// Keys of the run metadata (http source) or publish payload (ws source)
// that carries a benchmark event: the run id of the benchmark, the
// event's number and its send time in Unix nanoseconds (a string: a JSON
// number that large may not survive a round trip through float64). They
// appear nowhere else in a frame, which lets a subscriber find them
// without decoding the whole frame.
const (
	keyBench = "wsbench"
	keySeq   = "wsbenchSeq"
	keyT     = "wsbenchT"
)

// Events of each source: the run event (on channelRuns) and the event
// the ws source publishes (on "run:<id>").
const (
	eventRunCreated = "run.created"
	eventTick       = "wsbench.tick"
)

// Byte patterns a subscriber looks for in a frame; those of the expected
// channel and event name come from channelPattern and eventPattern.
var (
	patEvent    = []byte(`"type":"event"`)
	patError    = []byte(`"type":"error"`)
	patBenchKey = []byte(`"` + keyBench + `":`)
	patSeqKey   = []byte(`"` + keySeq + `":`)
	patTKey     = []byte(`"` + keyT + `":`)
)

// channelPattern and eventPattern are the bytes of an event frame's
// channel and event name (neither needs escaping in JSON).
func channelPattern(channel string) []byte { return []byte(`"channel":"` + channel + `"`) }
func eventPattern(name string) []byte      { return []byte(`"event":"` + name + `"`) }

// benchEvent finds a benchmark event in a frame of an event named by
// event (an eventPattern) on channel (a channelPattern): its benchmark
// id, number and send time. It is a byte scan rather than a JSON decode
// because a subscriber reads every event of the run, on the same machine
// as the server: the cheaper it reads, the less it takes from what it
// measures.
func benchEvent(frame, channel, event []byte) (bench []byte, seq, sent int64, ok bool) {
	if !bytes.Contains(frame, patEvent) || !bytes.Contains(frame, channel) || !bytes.Contains(frame, event) {
		return nil, 0, 0, false
	}
	// The three keys sit together in the run's metadata or the publish's
	// payload, "wsbench" first (insertion order on SQLite and in a
	// payload, jsonb's shortest-first on PostgreSQL): look for the others
	// after it, and in the whole frame only if needed.
	i := bytes.Index(frame, patBenchKey)
	if i < 0 {
		return nil, 0, 0, false
	}
	meta := frame[i:]
	bench, ok = stringAfter(meta, patBenchKey)
	if !ok {
		return nil, 0, 0, false
	}
	if seq, ok = intAfter(meta, patSeqKey); !ok {
		if seq, ok = intAfter(frame, patSeqKey); !ok {
			return nil, 0, 0, false
		}
	}
	t, ok := stringAfter(meta, patTKey)
	if !ok {
		if t, ok = stringAfter(frame, patTKey); !ok {
			return nil, 0, 0, false
		}
	}
	sent, err := strconv.ParseInt(string(t), 10, 64)
	return bench, seq, sent, err == nil
}

// stringAfter returns the JSON string (without escapes) that follows the
// key pat.
func stringAfter(b, pat []byte) ([]byte, bool) {
	i := bytes.Index(b, pat)
	if i < 0 {
		return nil, false
	}
	rest := bytes.TrimLeft(b[i+len(pat):], " ")
	if len(rest) == 0 || rest[0] != '"' {
		return nil, false
	}
	rest = rest[1:]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || bytes.IndexByte(rest[:j], '\\') >= 0 {
		return nil, false
	}
	return rest[:j], true
}

// intAfter returns the non-negative JSON integer that follows the key pat.
func intAfter(b, pat []byte) (int64, bool) {
	i := bytes.Index(b, pat)
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(b[i+len(pat):], " ")
	var n int64
	digits := 0
	for _, c := range rest {
		if c < '0' || c > '9' || digits > 15 {
			break
		}
		n = n*10 + int64(c-'0')
		digits++
	}
	return n, digits > 0
}
