package segment

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the handler's Prometheus metrics; their names and labels are
// part of the product's interface (dashboards read them).
type metrics struct {
	events   *prometheus.CounterVec   // endpoint, result: accepted | rejected
	requests *prometheus.CounterVec   // endpoint, code
	seconds  *prometheus.HistogramVec // endpoint
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_ingest_events_total",
			Help: "Events received on the Segment HTTP API, by endpoint and result (accepted: durable on the events topic; rejected: invalid or blocked, on the invalid-events topic).",
		}, []string{"endpoint", "result"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_ingest_requests_total",
			Help: "Requests to the Segment HTTP API, by endpoint and HTTP status code.",
		}, []string{"endpoint", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tessera_ingest_request_seconds",
			Help:    "Time to answer a Segment HTTP API request, including waiting for the events to be durable.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms … 16 s
		}, []string{"endpoint"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.events, err = register(reg, m.events); err != nil {
		return nil, err
	}
	if m.requests, err = register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.seconds, err = register(reg, m.seconds); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the equal collector already registered
// (another Handler on the same registry).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("segment: registering metrics: %w", err)
}
