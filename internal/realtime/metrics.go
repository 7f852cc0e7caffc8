package realtime

import "github.com/prometheus/client_golang/prometheus"

// Reasons a connection is dropped, the values of the "reason" label.
const (
	dropSlowConsumer = "slow_consumer"
	dropResync       = "resync"
)

// Metrics are the WebSocket hub's Prometheus series. Labels are bounded:
// never a tenant, a channel or an event name. A nil *Metrics records
// nothing.
//
// agentstore_ws_throttled_total is not here: the event limiter
// (ratelimit.NewMetrics) registers and counts it.
type Metrics struct {
	connections   prometheus.Gauge
	subscriptions prometheus.Gauge
	deliveries    prometheus.Counter
	dropped       *prometheus.CounterVec
	localOnly     prometheus.Gauge
}

// NewMetrics registers the hub's series on reg:
//
//	agentstore_ws_connections
//	agentstore_ws_subscriptions
//	agentstore_ws_deliveries_total
//	agentstore_ws_dropped_connections_total{reason="slow_consumer"|"resync"}
//	agentstore_ws_local_only
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "agentstore_ws_connections",
			Help: "Open WebSocket connections on this instance.",
		}),
		subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "agentstore_ws_subscriptions",
			Help: "Channel subscriptions of the open WebSocket connections on this instance.",
		}),
		deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentstore_ws_deliveries_total",
			Help: "Event frames queued to WebSocket subscribers, live and replayed.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentstore_ws_dropped_connections_total",
			Help: "WebSocket connections the server closed: slow_consumer (send queue full) or resync (Redis was unreachable, or the pub/sub link broke).",
		}, []string{"reason"}),
		localOnly: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "agentstore_ws_local_only",
			Help: "1 while Redis is unreachable and this instance delivers only the events written through it.",
		}),
	}
	m.dropped.WithLabelValues(dropSlowConsumer)
	m.dropped.WithLabelValues(dropResync)
	reg.MustRegister(m.connections, m.subscriptions, m.deliveries, m.dropped, m.localOnly)
	return m
}

func (m *Metrics) addConnections(n int) {
	if m != nil {
		m.connections.Add(float64(n))
	}
}

func (m *Metrics) addSubscriptions(n int) {
	if m != nil {
		m.subscriptions.Add(float64(n))
	}
}

func (m *Metrics) delivered(n int) {
	if m != nil && n > 0 {
		m.deliveries.Add(float64(n))
	}
}

func (m *Metrics) drop(reason string) {
	if m != nil {
		m.dropped.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) setLocalOnly(on bool) {
	if m != nil {
		v := 0.0
		if on {
			v = 1
		}
		m.localOnly.Set(v)
	}
}
