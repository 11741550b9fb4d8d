package bench

import (
	"bufio"
	"os"
	"runtime"
	"strings"

	"github.com/tessera-cdp/tessera/internal/hugepages"
)

// Result is what a benchmark run measured; `tessera bench --json` prints
// it. Rates are per second of wall time; per-core rates divide by the CPU
// seconds (user plus system) of the process measured, so they do not
// depend on how many cores it had.
type Result struct {
	// Mode is throughput, latency or restore; Guarantee the processing
	// guarantee; Partitions the topics' partition count.
	Mode       string `json:"mode"`
	Guarantee  string `json:"guarantee"`
	Partitions int    `json:"partitions"`
	// Threads is the hub's processing.threads as the run set it; 0 is
	// the hub's default.
	Threads int `json:"threads"`
	// ReadCacheBytes and ProducerLinger are the hub's
	// processing.read_cache_bytes and producer_linger where the run set
	// them (Options), absent where it kept the hub's defaults.
	ReadCacheBytes int64  `json:"read_cache_bytes,omitempty"`
	ProducerLinger string `json:"producer_linger,omitempty"`
	// CommitInterval and MinCommitInterval are the hub's
	// processing.commit_interval and min_commit_interval where the run
	// set them.
	CommitInterval    string `json:"commit_interval,omitempty"`
	MinCommitInterval string `json:"min_commit_interval,omitempty"`
	// Customers is the workload's customer count; Profiles how many of
	// them sent events (the live profiles once merges are done).
	Customers int `json:"customers"`
	Profiles  int `json:"profiles"`
	// Events is how many events were generated and written;
	// EventsProcessed how many records of the events topic the processing
	// process counted (tessera_records_processed_total).
	Events          int64 `json:"events"`
	EventsProcessed int64 `json:"events_processed"`
	// EventBytes is the mean size of an event on the events topic
	// (throughput and restore modes, which write the topic themselves).
	EventBytes int `json:"event_bytes,omitempty"`
	// Seconds is the measured wall time: from the processing process
	// being ready to the last record of every sub-topology being
	// processed (throughput, restore), or from the first scheduled send
	// to the last activation (latency).
	Seconds      float64 `json:"seconds"`
	EventsPerSec float64 `json:"events_per_sec"`
	// CPUSeconds is the processing process's CPU time from its start to
	// the end of the measurement (so it includes its start-up).
	CPUSeconds       float64 `json:"cpu_seconds"`
	EventsPerCoreSec float64 `json:"events_per_core_sec"`
	// MinorFaults is the processing process's minor page faults over the
	// time CPUSeconds covers (restore: the restarted process's, from its
	// start to ready): the memory it touched for the first time.
	MinorFaults int64 `json:"minor_faults"`
	// AllocBytesPerEvent is what the processing process's Go heap
	// allocated per event over the same time, and GCCycles how many
	// collections it ran meanwhile (throughput and latency modes): the
	// collector's load. Both move less from run to run than CPU time does.
	AllocBytesPerEvent float64 `json:"alloc_bytes_per_event,omitempty"`
	GCCycles           int64   `json:"gc_cycles,omitempty"`
	// GCCPUSeconds is the CPU time the Go runtime estimates its collector
	// took over the same time (marking, assists included, and the
	// pauses; go_cpu_classes_gc_total_cpu_seconds_total): how much of
	// CPUSeconds the collector accounts for.
	GCCPUSeconds float64 `json:"gc_cpu_seconds,omitempty"`
	// HugePages says whether the hub ran with glibc's allocator asked to
	// back its C memory with transparent huge pages (Options.HugePages).
	HugePages bool `json:"huge_pages"`
	// HubEnv is what the run added to the hub's environment
	// (Options.HubEnv).
	HubEnv []string `json:"hub_env,omitempty"`
	// Activations is how many activations the run produced on
	// <app>.activations (latency: how many of the trigger's arrived).
	Activations int64 `json:"activations,omitempty"`
	// Commits is how many commit cycles the hub committed from its start
	// to the end of the measurement, and CommitMSMean their mean
	// duration, from the end of processing to the offsets committed
	// (tessera_commit_latency_seconds): records that arrive meanwhile
	// wait for it.
	Commits      int64   `json:"commits,omitempty"`
	CommitMSMean float64 `json:"commit_ms_mean,omitempty"`
	// CommitMSP99 is their 99th percentile, estimated from the
	// histogram's buckets (powers of two from 0.1 ms) as Prometheus's
	// histogram_quantile does: a commit that stalls processing shows
	// here before it shows in the mean.
	CommitMSP99 float64 `json:"commit_ms_p99,omitempty"`
	// CommitPhasesMS splits the commits' time by phase
	// (tessera_commit_phase_seconds): store_flush, then produce_flush,
	// apply and offset_commit under at-least-once, or transaction_end and
	// apply under exactly-once.
	CommitPhasesMS map[string]Timing `json:"commit_phases_ms,omitempty"`
	// ChangelogOffsetsPerEvent is how far the hub's changelog topics
	// advanced, over all of them, per event processed (throughput mode):
	// the store writes it logged, plus under exactly-once a transaction
	// marker per changelog partition and commit cycle.
	ChangelogOffsetsPerEvent float64 `json:"changelog_offsets_per_event,omitempty"`
	// LatencyMS are the percentiles of the time from an event's
	// scheduled send to its activation being readable (latency mode).
	LatencyMS *Percentiles `json:"latency_ms,omitempty"`
	// IngestLatencyMS and HubLatencyMS split each of those times at the
	// event's receivedAt, which the HTTP API stamps (millisecond
	// resolution) as it takes the batch: the part before is the
	// generator's queue and the HTTP server's; the part after is the
	// hub's (writing the event, both stages, the activation) and the
	// broker's, up to the harness reading the activation. Each has its own
	// percentiles, so the two do not add up to LatencyMS's.
	IngestLatencyMS *Percentiles `json:"latency_ingest_ms,omitempty"`
	HubLatencyMS    *Percentiles `json:"latency_hub_ms,omitempty"`
	// LatencyWindows are LatencyMS's percentiles per LatencyWindowSeconds
	// of the schedule, in order, by each event's scheduled send: a rate
	// the hub sustains keeps them level, one it does not makes them climb
	// however the whole run's percentiles look.
	LatencyWindows       []LatencyWindow `json:"latency_windows,omitempty"`
	LatencyWindowSeconds float64         `json:"latency_window_seconds,omitempty"`
	// Rate is the latency mode's target arrival rate (events/s) and
	// HTTPErrors the ingest requests that failed.
	Rate       int   `json:"rate,omitempty"`
	HTTPErrors int64 `json:"http_errors,omitempty"`
	// Restore mode: the changelog records restored into an empty state
	// directory and their bytes (keys and values); the seconds of the
	// restore phase proper as the engine times it (the wall time during
	// which at least one task restored), and the records and bytes per
	// second over it. Restored records vary in size by store (whole
	// profiles of up to ~110 KB next to 50-byte identifiers), so bytes
	// per second compares runs of different workloads better.
	RestoreRecords       int64   `json:"restore_records,omitempty"`
	RestoreBytes         int64   `json:"restore_bytes,omitempty"`
	RestoreSeconds       float64 `json:"restore_seconds,omitempty"`
	RestoreRecordsPerSec float64 `json:"restore_records_per_sec,omitempty"`
	RestoreBytesPerSec   float64 `json:"restore_bytes_per_sec,omitempty"`
	// RestoreReadySeconds is the end-to-end time of the restart: from
	// starting the process to /readyz answering 200, so it adds the
	// process start, the topic checks, the definitions and the group
	// join to the restore; RestoreReadyRecordsPerSec is the records over
	// it.
	RestoreReadySeconds       float64 `json:"restore_ready_seconds,omitempty"`
	RestoreReadyRecordsPerSec float64 `json:"restore_ready_records_per_sec,omitempty"`
	// RestoreCPUSeconds is the restarted process's CPU time (user plus
	// system, all threads) from its start to ready: less sensitive than
	// the wall times to other processes sharing the cores.
	RestoreCPUSeconds float64 `json:"restore_cpu_seconds,omitempty"`
	// RSSPeakBytes is the processing process's peak resident set (VmHWM).
	RSSPeakBytes int64 `json:"rss_peak_bytes"`
	// DiskBytesPerProfile is the state directory's size after a clean
	// stop divided by Profiles (throughput and restore modes).
	DiskBytesPerProfile float64 `json:"disk_bytes_per_profile,omitempty"`
	// Baseline: a bare franz-go consume→produce loop over the same events
	// on the same broker, in its own process, under the same guarantee;
	// OverheadRatio is its per-core rate over the hub's.
	BaselineEventsPerCoreSec float64 `json:"baseline_events_per_core_sec,omitempty"`
	BaselineSeconds          float64 `json:"baseline_seconds,omitempty"`
	OverheadRatio            float64 `json:"overhead_ratio,omitempty"`
	// Machine describes where it ran.
	Machine Machine `json:"machine"`
}

// Percentiles are latency percentiles in milliseconds.
type Percentiles struct {
	P50  float64 `json:"p50"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	// Samples is how many latencies they are computed from.
	Samples int `json:"samples"`
}

// LatencyWindow is one window of a latency run's schedule.
type LatencyWindow struct {
	// Start is the window's start in seconds from the schedule's.
	Start float64 `json:"start_s"`
	Percentiles
}

// Machine describes the machine: its cores, CPU model, and the load
// average (1 minute) before and after the run, which shows whether other
// work shared the cores.
type Machine struct {
	Cores      int    `json:"cores"`
	CPU        string `json:"cpu"`
	LoadBefore string `json:"load_before"`
	LoadAfter  string `json:"load_after"`
	// THP is the kernel's transparent huge page mode (hugepages.Mode):
	// always, madvise (what Options.HugePages needs) or never.
	THP string `json:"thp"`
}

func describeMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), LoadBefore: loadAverage(), THP: hugepages.Mode()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// loadAverage returns /proc/loadavg's first three fields.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// percentiles computes p of sorted latencies (nearest rank).
func percentiles(sorted []float64) *Percentiles {
	if len(sorted) == 0 {
		return nil
	}
	at := func(q float64) float64 {
		i := int(q*float64(len(sorted)) + 0.999999)
		return sorted[min(max(i-1, 0), len(sorted)-1)]
	}
	return &Percentiles{P50: at(0.5), P95: at(0.95), P99: at(0.99), P999: at(0.999), Max: sorted[len(sorted)-1], Samples: len(sorted)}
}

// Timing is the mean and 99th percentile of a duration the hub measures
// in a histogram, in milliseconds; the percentile is estimated from the
// histogram's buckets as Prometheus's histogram_quantile does.
type Timing struct {
	MeanMS float64 `json:"mean"`
	P99MS  float64 `json:"p99"`
}
