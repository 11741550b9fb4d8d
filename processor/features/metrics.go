package features

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats counts what a Set left out, since it was compiled. Nothing is left
// out silently: each count is also a Prometheus counter when
// Options.Registerer is set.
type Stats struct {
	// Late counts events that some feature selects but that are older than
	// the stream time minus the allowed lateness; no feature counts them
	// (tessera_feature_late_events_total).
	Late uint64
	// Untimed counts events that some feature selects but whose timestamp
	// is missing, unparsable or before 1970; no feature counts them
	// (tessera_feature_untimed_events_total).
	Untimed uint64
	// FilterErrors counts filter runs that failed, usually on a missing
	// property; each counts as no match
	// (tessera_feature_filter_errors_total, by feature).
	FilterErrors uint64
	// NotNumeric counts values that sum, min, max or avg could not read as
	// a finite number; each is skipped
	// (tessera_feature_non_numeric_values_total, by feature).
	NotNumeric uint64
}

// metrics are the package's Prometheus counters, shared by every Set
// registered with the same Registerer. Names are part of the product's
// interface, like the engine's.
type metrics struct {
	late, untimed          prometheus.Counter
	filterErrs, notNumeric *prometheus.CounterVec // feature
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		late: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tessera_feature_late_events_total",
			Help: "Events older than the stream time minus the allowed lateness, ignored by every feature.",
		})),
		untimed: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tessera_feature_untimed_events_total",
			Help: "Events a feature selects without a usable timestamp, ignored by every feature.",
		})),
		filterErrs: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_feature_filter_errors_total",
			Help: "Feature filter runs that failed (counted as no match), by feature.",
		}, []string{"feature"})),
		notNumeric: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_feature_non_numeric_values_total",
			Help: "Property values a numeric aggregation skipped as not a finite number, by feature.",
		}, []string{"feature"})),
	}
	return m
}

// register registers c, or returns the collector already registered under
// its name: every task compiles its own Set, and a definition change
// compiles a new one, all counting into the same series.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		// A different collector under one of our names is a programming
		// error in the binary, as with MustRegister.
		panic(err)
	}
	return c
}
