package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/tessera-cdp/tessera/bench"
)

// TestBenchModes runs `tessera bench` end to end in each mode on a small
// workload (the broker and the hub as child processes, as in a real run)
// and checks that the JSON result is complete and consistent. It asserts
// no speed: the figures are whatever this machine gives.
func TestBenchModes(t *testing.T) {
	bin := buildTessera(t)
	tests := []struct {
		mode, guarantee string
		extra           []string
	}{
		{mode: "throughput", guarantee: "at_least_once"},
		{mode: "restore", guarantee: "exactly_once"},
		{mode: "latency", guarantee: "exactly_once", extra: []string{"--rate", "2000"}},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			// Every mode can profile the hub's measured phase.
			profile := filepath.Join(t.TempDir(), "cpu.pprof")
			args := append([]string{"bench", "--mode", tt.mode, "--guarantee", tt.guarantee,
				"--events", "2000", "--customers", "300", "--partitions", "4", "--timeout", "60s",
				"--pprof", freeAddr(t), "--cpuprofile", profile, "--profile-seconds", "1",
				"--json", "--quiet"}, tt.extra...)
			out := runBenchJSON(t, bin, args)
			var r bench.Result
			if err := json.Unmarshal(out, &r); err != nil {
				t.Fatalf("result is not JSON: %v\n%s", err, out)
			}
			// Also as a map: the field names must be there.
			var fields map[string]any
			_ = json.Unmarshal(out, &fields)
			want := []string{"events", "seconds", "events_per_sec", "cpu_seconds", "events_per_core_sec", "rss_peak_bytes", "minor_faults", "huge_pages"}
			// An event of about 1 KB is fetched and decompressed
			// twice (events, then profile-ops) at least; throughput
			// mode counts the hub's start-up too.
			if r.AllocBytesPerEvent < 2000 || r.AllocBytesPerEvent > 10e6 {
				t.Errorf("alloc_bytes_per_event = %g, want 2 KB..10 MB", r.AllocBytesPerEvent)
			}
			if tt.mode != "latency" && r.GCCycles < 1 {
				t.Errorf("gc_cycles = %d: a hub that started and processed %d events collected", r.GCCycles, r.Events)
			}
			if tt.mode != "latency" && (r.GCCPUSeconds <= 0 || r.GCCPUSeconds > r.CPUSeconds) {
				t.Errorf("gc_cpu_seconds = %g of %g CPU s, want a part of them: the hub collected", r.GCCPUSeconds, r.CPUSeconds)
			}
			switch tt.mode {
			case "throughput", "restore":
				want = append(want, "disk_bytes_per_profile", "baseline_events_per_core_sec", "overhead_ratio")
			case "latency":
				want = append(want, "latency_ms", "latency_ingest_ms", "latency_hub_ms")
			}
			if tt.mode == "restore" {
				want = append(want, "restore_records_per_sec")
			}
			for _, f := range want {
				if _, ok := fields[f]; !ok {
					t.Errorf("result has no %q:\n%s", f, out)
				}
			}

			if r.Mode != tt.mode || r.Guarantee != tt.guarantee || r.Partitions != 4 {
				t.Errorf("mode, guarantee, partitions = %s, %s, %d", r.Mode, r.Guarantee, r.Partitions)
			}
			if r.Events != 2000 || r.EventsProcessed != r.Events {
				t.Errorf("events %d, processed %d: want 2000 generated and all processed", r.Events, r.EventsProcessed)
			}
			if r.Profiles < 1 || r.Profiles > 300 {
				t.Errorf("profiles = %d, want 1..300", r.Profiles)
			}
			if r.Seconds <= 0 || r.EventsPerSec <= 0 || r.CPUSeconds <= 0 || r.EventsPerCoreSec <= 0 {
				t.Errorf("seconds %g, events/s %g, CPU s %g, events/core-s %g: all must be positive",
					r.Seconds, r.EventsPerSec, r.CPUSeconds, r.EventsPerCoreSec)
			}
			if r.Commits < 1 || r.CommitMSMean <= 0 || r.CommitMSP99 <= 0 {
				t.Errorf("commits %d, commit_ms_mean %g, commit_ms_p99 %g: the hub committed, so all must be positive", r.Commits, r.CommitMSMean, r.CommitMSP99)
			}
			// The phases the guarantee's commits go through.
			phases := []string{"store_flush", "transaction_end", "apply"}
			if tt.guarantee == "at_least_once" {
				phases = []string{"store_flush", "produce_flush", "apply", "offset_commit"}
			}
			if len(r.CommitPhasesMS) != len(phases) {
				t.Errorf("commit_phases_ms %v, want the phases %v", r.CommitPhasesMS, phases)
			}
			for _, p := range phases {
				if ph, ok := r.CommitPhasesMS[p]; !ok || ph.P99MS <= 0 {
					t.Errorf("commit phase %s: %+v (present %v)", p, ph, ok)
				}
			}
			if r.MinorFaults <= 0 || !r.HugePages {
				t.Errorf("minor_faults %d, huge_pages %v: a process that ran faults pages in, and huge pages are the default", r.MinorFaults, r.HugePages)
			}
			if r.RSSPeakBytes < 1<<20 {
				t.Errorf("rss_peak_bytes = %d, want a process's worth", r.RSSPeakBytes)
			}
			if r.Machine.Cores < 1 {
				t.Errorf("machine.cores = %d", r.Machine.Cores)
			}
			switch tt.mode {
			case "throughput", "restore":
				if r.EventBytes < 900 || r.EventBytes > 1300 {
					t.Errorf("event_bytes = %d, want about 1 KB", r.EventBytes)
				}
				if r.BaselineEventsPerCoreSec <= 0 || r.OverheadRatio <= 0 || r.DiskBytesPerProfile <= 0 {
					t.Errorf("baseline %g, overhead %g, disk/profile %g: all must be positive",
						r.BaselineEventsPerCoreSec, r.OverheadRatio, r.DiskBytesPerProfile)
				}
				if r.Activations < 1 {
					t.Errorf("activations = %d: the trigger and the audiences produced none", r.Activations)
				}
				// Every event logs its message id (dedupe) and its
				// timeline entry at least; the stores are five.
				if r.ChangelogOffsetsPerEvent < 2 || r.ChangelogOffsetsPerEvent > 20 {
					t.Errorf("changelog_offsets_per_event = %g, want 2..20", r.ChangelogOffsetsPerEvent)
				}
				if r.LatencyMS != nil {
					t.Errorf("latency_ms = %+v in %s mode", r.LatencyMS, tt.mode)
				}
			case "latency":
				l := r.LatencyMS
				if l == nil || l.Samples < 1 {
					t.Fatalf("latency_ms = %+v, want samples", l)
				}
				if !(0 < l.P50 && l.P50 <= l.P95 && l.P95 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
					t.Errorf("latency percentiles out of order: %+v", l)
				}
				if r.Activations < int64(l.Samples) || r.HTTPErrors != 0 {
					t.Errorf("activations %d, samples %d, HTTP errors %d", r.Activations, l.Samples, r.HTTPErrors)
				}
				// Each sample splits at its receivedAt, whose
				// millisecond truncation moves up to 1 ms from the
				// part before to the part after.
				in, hub := r.IngestLatencyMS, r.HubLatencyMS
				if in == nil || hub == nil || in.Samples != l.Samples || hub.Samples != l.Samples {
					t.Fatalf("latency_ingest_ms %+v, latency_hub_ms %+v: want %d samples each", in, hub, l.Samples)
				}
				if in.Max > l.Max || hub.Max > l.Max+1 || hub.P50 <= 0 || in.P50 < -1 {
					t.Errorf("parts out of range of the whole (%+v): ingest %+v, hub %+v", l, in, hub)
				}
				n, maxMax := 0, 0.0
				for i, w := range r.LatencyWindows {
					if i > 0 && w.Start <= r.LatencyWindows[i-1].Start {
						t.Errorf("latency_windows out of order: %+v", r.LatencyWindows)
					}
					n += w.Samples
					maxMax = max(maxMax, w.Max)
				}
				if n != l.Samples || maxMax != l.Max || r.LatencyWindowSeconds <= 0 {
					t.Errorf("latency_windows %+v (every %gs) hold %d samples and a maximum of %g, want %d and %g", r.LatencyWindows, r.LatencyWindowSeconds, n, maxMax, l.Samples, l.Max)
				}
			}
			if tt.mode == "restore" && (r.RestoreRecords < 1 || r.RestoreRecordsPerSec <= 0) {
				t.Errorf("restore_records %d, restore_records_per_sec %g: want records restored", r.RestoreRecords, r.RestoreRecordsPerSec)
			}
			// A CPU profile is gzip-compressed protocol buffers.
			if b, err := os.ReadFile(profile); err != nil || len(b) < 100 || b[0] != 0x1f || b[1] != 0x8b {
				t.Errorf("--cpuprofile in %s mode wrote %d bytes (%v), want a gzip-compressed profile", tt.mode, len(b), err)
			}
		})
	}
}

// freeAddr returns a loopback address with a port nobody listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestBenchAgainst compares the binary with itself over one round: two
// runs, baseline first, whose figures the summary adds up and divides
// as it says; and flags that every run would share are refused.
func TestBenchAgainst(t *testing.T) {
	bin := buildTessera(t)
	args := []string{"bench", "--mode", "throughput", "--guarantee", "at_least_once",
		"--events", "1000", "--customers", "200", "--partitions", "2", "--timeout", "60s",
		"--against", bin, "--rounds", "1", "--json", "--quiet"}
	out := runBenchJSON(t, bin, args)
	var c bench.Comparison
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatalf("result is not JSON: %v\n%s", err, out)
	}
	if len(c.Runs) != 2 || c.Runs[0].Build != bench.BuildBaseline || c.Runs[1].Build != bench.BuildCandidate {
		t.Fatalf("runs %+v: want baseline then candidate", c.Runs)
	}
	for i, r := range c.Runs {
		if r.Result == nil || r.Result.Mode != "throughput" || r.Result.Events != 1000 || r.Result.Partitions != 2 {
			t.Fatalf("run %d did not get the flags: %+v", i+1, r.Result)
		}
	}
	a, b := c.Runs[0].Result, c.Runs[1].Result
	rows := map[string]bench.CompareRow{}
	for _, row := range c.Summary {
		rows[row.Metric] = row
	}
	near := func(x, y float64) bool { return x-y < 1e-9*max(1, y) && y-x < 1e-9*max(1, y) }
	cpu, ok := rows["cpu_seconds"]
	if !ok || !near(cpu.Baseline, a.CPUSeconds) || !near(cpu.Candidate, b.CPUSeconds) || !near(cpu.Ratio, b.CPUSeconds/a.CPUSeconds) {
		t.Errorf("cpu_seconds row %+v, runs %g and %g", cpu, a.CPUSeconds, b.CPUSeconds)
	}
	rate, ok := rows["events_per_core_sec"]
	if !ok || !near(rate.Candidate, float64(b.EventsProcessed)/b.CPUSeconds) {
		t.Errorf("events_per_core_sec row %+v, candidate run %d events in %g CPU s", rate, b.EventsProcessed, b.CPUSeconds)
	}
	if _, ok := rows["latency_p99_ms"]; ok {
		t.Errorf("a throughput comparison has a latency row: %+v", c.Summary)
	}

	refused := exec.Command(bin, "bench", "--events", "10", "--against", bin, "--dir", t.TempDir())
	msg, err := refused.CombinedOutput()
	if err == nil || !bytes.Contains(msg, []byte("--dir: not allowed with --against")) {
		t.Errorf("--against with --dir: err %v, output %s", err, msg)
	}
}

// runBenchJSON runs bin with args and returns its stdout, failing the
// test with its stderr if it fails.
func runBenchJSON(t *testing.T, bin string, args []string) []byte {
	t.Helper()
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("tessera %v: %v\n%s%s", args, err, out, stderr)
	}
	return out
}
