package topology

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tessera-cdp/tessera/state"
)

// metrics are the engine's Prometheus metrics. Names are part of the
// product's interface: the Grafana dashboard in deploy/ reads them.
type metrics struct {
	processed      *prometheus.CounterVec   // topic
	latency        prometheus.Histogram     // per record, source to done
	lag            *prometheus.GaugeVec     // topic, partition
	commitLatency  prometheus.Histogram     // one commit cycle
	commitPhase    *prometheus.HistogramVec // phase (commitPhases)
	transactions   *prometheus.CounterVec   // result
	txnChecks      *prometheus.CounterVec   // result
	restored       *prometheus.CounterVec   // store
	restoredBytes  *prometheus.CounterVec   // store
	restoreSeconds prometheus.Counter       //
	remaining      *prometheus.GaugeVec     // task, store
	storeSize      *prometheus.GaugeVec     // task
	rebalances     *prometheus.CounterVec   // kind
	tasks          *prometheus.GaugeVec     // state
	punctuations   *prometheus.CounterVec   // type
	produceErrors  prometheus.Counter       //
	standby        *prometheus.CounterVec   // store
	readCache      *prometheus.CounterVec   // event
	// busy is each processing thread's tessera_thread_busy_seconds_total,
	// by thread index.
	busy []prometheus.Counter
}

// standbyRecords counts n changelog records applied to a standby of store.
func (m *metrics) standbyRecords(store string, n int64) {
	if n > 0 {
		m.standby.WithLabelValues(store).Add(float64(n))
	}
}

// readCacheStats adds to tessera_read_cache_total what a task's read cache
// did since seen, the cache's counts when last read, and makes now seen.
func (m *metrics) readCacheStats(seen *state.CacheStats, now state.CacheStats) {
	for _, c := range [...]struct {
		event string
		n     int64
	}{
		{"hit", now.Hits - seen.Hits},
		{"miss", now.Misses - seen.Misses},
		{"filtered", now.Filtered - seen.Filtered},
		{"eviction", now.Evictions - seen.Evictions},
		{"absorbed", now.Absorbed - seen.Absorbed},
		{"written_back", now.WrittenBack - seen.WrittenBack},
	} {
		if c.n > 0 {
			m.readCache.WithLabelValues(c.event).Add(float64(c.n))
		}
	}
	*seen = now
}

func newMetrics(reg prometheus.Registerer, threads int) *metrics {
	busy := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tessera_thread_busy_seconds_total",
		Help: "Seconds each processing thread spent running records through tasks, by thread; its rate is the thread's utilisation, and threads far apart mean a busy task.",
	}, []string{"thread"})
	m := &metrics{
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_records_processed_total",
			Help: "Records read from source topics and processed, by topic.",
		}, []string{"topic"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tessera_process_latency_seconds",
			Help:    "Time to run one source record through its task's processors.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12),
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tessera_consumer_lag",
			Help: "Records between the last processed offset and the high watermark, by source partition.",
		}, []string{"topic", "partition"}),
		commitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tessera_commit_latency_seconds",
			Help:    "Time to commit one cycle: flush, offsets, transaction end and store apply.",
			Buckets: prometheus.ExponentialBuckets(1e-4, 2, 16),
		}),
		commitPhase: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tessera_commit_phase_seconds",
			Help:    "Time spent in each phase of a commit, by phase: store_flush (held-back store writes logged), produce_flush (at-least-once: waiting for the broker to acknowledge every record produced), transaction_end (exactly-once: the producer's flush and EndTransaction), apply (store writes and checkpoints into Pebble), offset_commit (at-least-once: the consumer group's offsets).",
			Buckets: prometheus.ExponentialBuckets(1e-4, 2, 16),
		}, []string{"phase"}),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_transactions_total",
			Help: "Commit cycles by result (committed or aborted); under at-least-once each offset commit counts as committed, and a cycle whose offset commit failed because the group session had ended as offsets_uncommitted (its records are processed again).",
		}, []string{"result"}),
		txnChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_transaction_checks_total",
			Help: "Transactions without input that held the producer's first write to a topic, whose end marker was read back because the Kafka client can report them committed after aborting them, by the marker found (committed or aborted).",
		}, []string{"result"}),
		restored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_restore_records_total",
			Help: "Changelog records applied to local stores by restore, by store.",
		}, []string{"store"}),
		restoredBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_restore_bytes_total",
			Help: "Bytes (keys and values) of the changelog records restore applied, by store.",
		}, []string{"store"}),
		restoreSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tessera_restore_active_seconds_total",
			Help: "Wall-clock seconds during which at least one task restored; restored records over it is the restore rate.",
		}),
		remaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tessera_restore_remaining_records",
			Help: "Changelog records still to restore, by task and store.",
		}, []string{"task", "store"}),
		storeSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tessera_store_size_bytes",
			Help: "Disk space used by a task's Pebble instance.",
		}, []string{"task"}),
		rebalances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_rebalances_total",
			Help: "Rebalance callbacks by kind (assigned, revoked, lost).",
		}, []string{"kind"}),
		tasks: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tessera_tasks",
			Help: "Tasks assigned to this instance by state (restoring, running, standby).",
		}, []string{"state"}),
		punctuations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_punctuations_total",
			Help: "Punctuation rounds run, by clock.",
		}, []string{"clock"}),
		produceErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tessera_produce_errors_total",
			Help: "Records the producer could not write; each aborts its commit cycle.",
		}),
		standby: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_standby_records_total",
			Help: "Changelog records applied to standby replicas, by store.",
		}, []string{"store"}),
		readCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_read_cache_total",
			Help: "What the tasks' read caches did, by event: hit, miss (filtered ones included), filtered (a miss the absent-key filter answered without reading Pebble), eviction, absorbed (a write replacing a held-back one, saving a changelog record) and written_back (a held-back write logged).",
		}, []string{"event"}),
	}
	if reg != nil {
		reg.MustRegister(m.processed, m.latency, m.lag, m.commitLatency, m.commitPhase, m.transactions, m.txnChecks,
			m.restored, m.restoredBytes, m.restoreSeconds, m.remaining, m.storeSize, m.rebalances, m.tasks, m.punctuations, m.produceErrors, m.standby, m.readCache, busy)
	}
	for i := range threads {
		m.busy = append(m.busy, busy.WithLabelValues(strconv.Itoa(i)))
	}
	return m
}
