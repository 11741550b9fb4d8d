package bench

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/schemas"
)

// TestGeneratorEvents checks that every generated event passes the
// Segment validation the ingest applies, has the configured size, and
// that the workload's shares come out as configured.
func TestGeneratorEvents(t *testing.T) {
	w := DefaultWorkload()
	w.Customers = 1000
	w.MarkShare = 0.1
	g, err := NewGenerator(w, "run1")
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	var norm schemas.Normalizer
	types := map[string]int{}
	var marked, late, anonymousOnly, sizeOff int
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for i := range n {
		ev := g.Next(now)
		if ev.Seq != int64(i) {
			t.Fatalf("event %d has seq %d", i, ev.Seq)
		}
		v, err := norm.Parse(ev.JSON)
		if err != nil {
			t.Fatalf("event %d does not parse: %v\n%s", i, err, ev.JSON)
		}
		if _, err := norm.Normalize(v, schemas.Input{ReceivedAt: now}); err != nil {
			t.Fatalf("event %d is invalid: %v\n%s", i, err, ev.JSON)
		}
		if d := len(ev.JSON) - w.EventBytes; d < -2 || d > 2 {
			sizeOff++
		}
		types[string(v.GetStringBytes("type"))]++
		if ev.Marked {
			marked++
			if !v.GetBool("properties", "bench_mark") {
				t.Fatalf("event %d is marked but has no properties.bench_mark: %s", i, ev.JSON)
			}
		}
		if ts, _ := time.Parse(time.RFC3339Nano, string(v.GetStringBytes("timestamp"))); ts.Before(now) {
			late++
		}
		if v.Get("userId") == nil {
			anonymousOnly++
		}
		seq, ok := SeqOf("run1", string(v.GetStringBytes("messageId")))
		if !ok || seq != ev.Seq {
			t.Fatalf("event %d: SeqOf(%q) = %d, %v", i, v.GetStringBytes("messageId"), seq, ok)
		}
	}
	if sizeOff > 0 {
		t.Errorf("%d events are not %d±2 bytes", sizeOff, w.EventBytes)
	}
	near := func(name string, got int, share float64) {
		t.Helper()
		if want := share * n; math.Abs(float64(got)-want) > 0.1*want+50 {
			t.Errorf("%s: %d of %d events, want about %.0f", name, got, n, want)
		}
	}
	near("track", types["track"], w.Track)
	near("identify", types["identify"], w.Identify)
	near("page", types["page"], w.Page)
	near("late", late, w.LateShare)
	near("marked", marked, w.MarkShare*(1-w.Identify)) // identify calls are never marked
	if anonymousOnly == 0 {
		t.Error("no anonymous-only events: the merge rate makes none")
	}
	if c := g.Customers(); c < 500 || c > w.Customers {
		t.Errorf("Customers() = %d, want most of %d", c, w.Customers)
	}
}

func TestGeneratorDeterministic(t *testing.T) {
	w := DefaultWorkload()
	w.Customers = 50
	a, _ := NewGenerator(w, "r")
	b, _ := NewGenerator(w, "r")
	now := time.Unix(1e9, 0)
	for i := range 100 {
		x, y := string(a.Next(now).JSON), string(b.Next(now).JSON)
		if x != y {
			t.Fatalf("event %d differs:\n%s\n%s", i, x, y)
		}
	}
}

func TestWorkloadValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Workload)
		want   string
	}{
		{"no customers", func(w *Workload) { w.Customers = 0 }, "customers must be at least 1"},
		{"flat zipf", func(w *Workload) { w.ZipfS = 1 }, "zipf exponent must be above 1"},
		{"empty mix", func(w *Workload) { w.Track, w.Identify, w.Page = 0, 0, 0 }, "event mix"},
		{"share above 1", func(w *Workload) { w.LateShare = 1.5 }, "late share must be between 0 and 1"},
		{"huge events", func(w *Workload) { w.EventBytes = 1 << 20 }, "event size must be between"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := DefaultWorkload()
			tt.change(&w)
			err := w.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestPercentiles(t *testing.T) {
	var xs []float64
	for i := 1; i <= 1000; i++ {
		xs = append(xs, float64(i))
	}
	p := percentiles(xs)
	if p.P50 != 500 || p.P95 != 950 || p.P99 != 990 || p.P999 != 999 || p.Max != 1000 || p.Samples != 1000 {
		t.Fatalf("percentiles = %+v", p)
	}
	if percentiles(nil) != nil {
		t.Fatal("percentiles of nothing should be nil")
	}
}
