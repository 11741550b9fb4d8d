package sink

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the runtime's collectors, each with a destination label;
// Runners registering with one registry share them.
//
//   - tessera_sink_sent_total: activations delivered;
//   - tessera_sink_failed_total: failed attempts (one per activation per
//     failed write; each is then retried or dead-lettered);
//   - tessera_sink_retried_total: attempts scheduled after a failure;
//   - tessera_sink_dead_lettered_total: activations written to the
//     dead-letter topic (including undecodable records);
//   - tessera_sink_filtered_total: activations the destination's filter
//     dropped;
//   - tessera_sink_connection_errors_total: failed Connect calls;
//   - tessera_sink_delivery_seconds: from an activation's record being
//     written to its delivery;
//   - tessera_sink_lag: activations on this member's partitions not yet
//     committed;
//   - tessera_sink_connected: 1 while the sink is connected.
type metrics struct {
	sent, failed, retried, deadLettered, filtered, connErrors *prometheus.CounterVec
	latency                                                   *prometheus.HistogramVec
	lag, connected                                            *prometheus.GaugeVec
}

// destMetrics are metrics with the destination label set.
type destMetrics struct {
	sent, failed, retried, deadLettered, filtered, connErrors prometheus.Counter
	latency                                                   prometheus.Observer
	lag, connected                                            prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	label := []string{"destination"}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, label)
	}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, label)
	}
	m := &metrics{
		sent:         counter("tessera_sink_sent_total", "Activations delivered, by destination."),
		failed:       counter("tessera_sink_failed_total", "Failed delivery attempts, one per activation per failed write, by destination."),
		retried:      counter("tessera_sink_retried_total", "Delivery attempts scheduled after a failure, by destination."),
		deadLettered: counter("tessera_sink_dead_lettered_total", "Activations written to the dead-letter topic, by destination."),
		filtered:     counter("tessera_sink_filtered_total", "Activations the destination's audience and type filter dropped, by destination."),
		connErrors:   counter("tessera_sink_connection_errors_total", "Failed attempts to connect a sink, by destination."),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tessera_sink_delivery_seconds",
			Help:    "Time from an activation being written to its topic to its delivery, by destination.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16),
		}, label),
		lag:       gauge("tessera_sink_lag", "Activations on this instance's partitions not yet delivered and committed, by destination."),
		connected: gauge("tessera_sink_connected", "1 while the destination's sink is connected, else 0."),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	reg1 := func(c *prometheus.CounterVec) *prometheus.CounterVec {
		c, err = register(reg, c, err)
		return c
	}
	m.sent, m.failed, m.retried = reg1(m.sent), reg1(m.failed), reg1(m.retried)
	m.deadLettered, m.filtered, m.connErrors = reg1(m.deadLettered), reg1(m.filtered), reg1(m.connErrors)
	m.latency, err = register(reg, m.latency, err)
	m.lag, err = register(reg, m.lag, err)
	m.connected, err = register(reg, m.connected, err)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c with reg, unless an earlier call failed (prev);
// when another Runner registered it first, it returns that one, to share.
func register[C prometheus.Collector](reg prometheus.Registerer, c C, prev error) (C, error) {
	if prev != nil {
		return c, prev
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

func (m *metrics) curry(dest string) destMetrics {
	return destMetrics{
		sent:         m.sent.WithLabelValues(dest),
		failed:       m.failed.WithLabelValues(dest),
		retried:      m.retried.WithLabelValues(dest),
		deadLettered: m.deadLettered.WithLabelValues(dest),
		filtered:     m.filtered.WithLabelValues(dest),
		connErrors:   m.connErrors.WithLabelValues(dest),
		latency:      m.latency.WithLabelValues(dest),
		lag:          m.lag.WithLabelValues(dest),
		connected:    m.connected.WithLabelValues(dest),
	}
}
