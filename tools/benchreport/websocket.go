package main

import (
	"errors"
	"io/fs"
	"path/filepath"

	"github.com/agentstore/agentstore/tools/benchresult"
)

// WSScenario is one wsbench fan-out latency result and its comparison
// with its target.
type WSScenario struct {
	benchresult.WSLatency
	// TargetP99Ms is the bound on the p99 publish-to-receive latency (set
	// by collect: targetWSSingleP99Ms or targetWSCrossP99Ms); MeetsTarget
	// says the p99 is within it and every subscriber got every event.
	TargetP99Ms float64 `json:"target_p99_ms"`
	MeetsTarget bool    `json:"meets_target"`
}

// IdleScenario is one wsbench -idle result and its comparison with its
// target.
type IdleScenario struct {
	benchresult.WSIdle
	// TargetKiBPerConn is the bound on the server's memory per idle
	// connection (set by collect: targetWSIdleKiBPerCn); MeetsTarget says
	// KiBPerConn is within it and no connection dropped.
	TargetKiBPerConn float64 `json:"target_kib_per_conn"`
	MeetsTarget      bool    `json:"meets_target"`
}

// WSResults are the WebSocket scenarios: fan-out latency on one instance
// and across two instances through Redis, each with events from runs
// created (Single, Cross) and from a client's publish frames
// (SinglePublish, CrossPublish), and idle-connection memory.
type WSResults struct {
	Single        *WSScenario   `json:"single,omitempty"`
	SinglePublish *WSScenario   `json:"single_publish,omitempty"`
	Cross         *WSScenario   `json:"cross,omitempty"`
	CrossPublish  *WSScenario   `json:"cross_publish,omitempty"`
	Idle          *IdleScenario `json:"idle,omitempty"`
}

// latencies are the fan-out latency results in the report's order, with
// their names; nil results are left out.
func (ws *WSResults) latencies() []namedLatency {
	var out []namedLatency
	for _, c := range []namedLatency{
		{"one instance", "one instance", ws.Single}, {"one instance", "one instance", ws.SinglePublish},
		{"two instances, Redis", "two instances", ws.Cross}, {"two instances, Redis", "two instances", ws.CrossPublish},
	} {
		if c.l != nil {
			out = append(out, c)
		}
	}
	return out
}

// namedLatency is a fan-out latency result and its scenario's name, in
// the report's table and, short, in the chart.
type namedLatency struct {
	name, short string
	l           *WSScenario
}

// The WebSocket targets the benchmark holds the service to, with 1,000
// subscribers of one channel at 100 events/s: the p99 publish-to-receive
// latency on one instance and across two instances through Redis; and
// the server's memory (RSS) per idle connection.
const (
	targetWSSingleP99Ms  = 50
	targetWSCrossP99Ms   = 60
	targetWSIdleKiBPerCn = 30
)

// collectWS reads ws/single.json, ws/single-publish.json, ws/cross.json,
// ws/cross-publish.json and ws/idle.json (wsbench -json results); nil when
// there is none. The target of a latency result is that of its instances,
// whatever the source of its events.
func collectWS(dir string) (*WSResults, error) {
	ws := &WSResults{}
	for _, s := range []struct {
		file   string
		dst    **WSScenario
		target float64
	}{
		{"single.json", &ws.Single, targetWSSingleP99Ms}, {"single-publish.json", &ws.SinglePublish, targetWSSingleP99Ms},
		{"cross.json", &ws.Cross, targetWSCrossP99Ms}, {"cross-publish.json", &ws.CrossPublish, targetWSCrossP99Ms},
	} {
		var l WSScenario
		switch err := readJSONFile(filepath.Join(dir, s.file), &l); {
		case err == nil:
			if l.Source == "" {
				l.Source = benchresult.SourceHTTP
			}
			l.TargetP99Ms = s.target
			l.MeetsTarget = l.Latency.Count > 0 && l.Latency.P99 <= s.target && l.Missing == 0 && l.Delivered == l.Expected
			*s.dst = &l
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		}
	}
	var idle IdleScenario
	switch err := readJSONFile(filepath.Join(dir, "idle.json"), &idle); {
	case err == nil:
		idle.TargetKiBPerConn = targetWSIdleKiBPerCn
		idle.MeetsTarget = idle.Connections > 0 && idle.KiBPerConn <= targetWSIdleKiBPerCn && idle.Disconnected == 0
		ws.Idle = &idle
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	if len(ws.latencies()) == 0 && ws.Idle == nil {
		return nil, nil
	}
	return ws, nil
}
