package ratelimit

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the limiters' Prometheus series. Labels are bounded: a scope
// ("http" or "ws"), the HTTP method and the route template; never a tenant,
// an address or an event name. A nil *Metrics records nothing.
type Metrics struct {
	rejectedTotal  *prometheus.CounterVec
	throttledTotal prometheus.Counter
	storeErrors    *prometheus.CounterVec
	fallbackActive *prometheus.GaugeVec
}

// NewMetrics registers the limiters' series on reg:
//
//	agentstore_ratelimit_rejected_total{scope="http",method,route}
//	agentstore_ws_throttled_total
//	agentstore_ratelimit_store_errors_total{scope}
//	agentstore_ratelimit_fallback_active{scope}
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		rejectedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentstore_ratelimit_rejected_total",
			Help: "Requests refused with 429, by method and route template.",
		}, []string{"scope", "method", "route"}),
		throttledTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agentstore_ws_throttled_total",
			Help: "WebSocket events refused by the publish limit and not delivered.",
		}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "agentstore_ratelimit_store_errors_total",
			Help: "Failed calls to the Redis rate-limit store.",
		}, []string{"scope"}),
		fallbackActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "agentstore_ratelimit_fallback_active",
			Help: "1 while Redis is down and this instance counts in memory (fail open).",
		}, []string{"scope"}),
	}
	for _, scope := range []string{"http", "ws"} {
		m.storeErrors.WithLabelValues(scope)
		m.fallbackActive.WithLabelValues(scope)
	}
	reg.MustRegister(m.rejectedTotal, m.throttledTotal, m.storeErrors, m.fallbackActive)
	return m
}

func (m *Metrics) rejected(method, route string) {
	if m != nil {
		m.rejectedTotal.WithLabelValues("http", method, route).Inc()
	}
}

func (m *Metrics) throttled() {
	if m != nil {
		m.throttledTotal.Inc()
	}
}

func (m *Metrics) storeError(scope string) {
	if m != nil {
		m.storeErrors.WithLabelValues(scope).Inc()
	}
}

func (m *Metrics) fallback(scope string, on bool) {
	if m == nil {
		return
	}
	v := 0.0
	if on {
		v = 1
	}
	m.fallbackActive.WithLabelValues(scope).Set(v)
}
