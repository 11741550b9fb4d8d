package topology_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/topology"
)

func TestDriverCounts(t *testing.T) {
	d, err := topology.NewDriver(counting("in", "out", 4), topology.DriverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	want := map[string]uint64{}
	t0 := d.Now()
	for i := 0; i < 1000; i++ {
		k := fmt.Sprintf("k%d", i%37)
		want[k]++
		if err := d.Pipe("in", []byte(k), nil, t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]uint64{}
	for _, r := range d.Output("out") {
		seen[string(r.Key)]++
		if got := fmt.Sprint(seen[string(r.Key)]); string(r.Value) != got {
			t.Fatalf("key %s: emitted %s, want %s", r.Key, r.Value, got)
		}
	}
	for k, n := range want {
		v, err := d.KeyValue(0, []byte(k), countStore).Get([]byte(k))
		if err != nil {
			t.Fatal(err)
		}
		if v == nil || decodeCount(v) != n {
			t.Errorf("store count of %s = %v, want %d", k, v, n)
		}
		if seen[k] != n {
			t.Errorf("emitted %d counts for %s, want %d", seen[k], k, n)
		}
	}
	if logs := d.Output(topology.ChangelogTopic("test", countStore)); len(logs) != 1000 {
		t.Errorf("changelog has %d records, want 1000", len(logs))
	}
}

// ticker emits a record each time one of its punctuations fires, naming
// the clock and the time it was given.
type ticker struct{}

func (ticker) Init(ctx *topology.Context) error {
	ctx.Schedule(time.Minute, topology.StreamTime, func(ctx *topology.Context, now time.Time) error {
		return ctx.Forward(topology.Record{Key: []byte("stream"), Value: []byte(now.Format(time.TimeOnly))})
	})
	ctx.Schedule(10*time.Second, topology.WallClock, func(ctx *topology.Context, now time.Time) error {
		return ctx.Forward(topology.Record{Key: []byte("wall"), Value: []byte(now.Format(time.TimeOnly))})
	})
	return nil
}

func (ticker) Process(*topology.Context, topology.Record) error { return nil }

func TestDriverPunctuatesOnBothClocks(t *testing.T) {
	topo, err := topology.NewBuilder().
		AddSource("in", "in", 1).
		AddProcessor("tick", func() topology.Processor { return ticker{} }, "in").
		AddSink("out", "out", "tick").
		Build()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	d, err := topology.NewDriver(topo, topology.DriverOptions{Start: start})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	steps := []struct {
		do   func() error
		want []string
	}{
		// Stream time starts at the first record; nothing is due yet.
		{func() error { return d.Pipe("in", []byte("a"), nil, start) }, nil},
		{func() error { return d.Pipe("in", []byte("a"), nil, start.Add(59*time.Second)) }, nil},
		{func() error { return d.Pipe("in", []byte("a"), nil, start.Add(60*time.Second)) }, []string{"stream 12:01:00"}},
		// A late record does not move stream time back.
		{func() error { return d.Pipe("in", []byte("a"), nil, start.Add(-time.Hour)) }, nil},
		// Several intervals at once fire once, rescheduled from now.
		{func() error { return d.Pipe("in", []byte("a"), nil, start.Add(5*time.Minute)) }, []string{"stream 12:05:00"}},
		{func() error { return d.Pipe("in", []byte("a"), nil, start.Add(5*time.Minute+59*time.Second)) }, nil},
		// Wall clock moves independently of records.
		{func() error { return d.AdvanceWallClock(9 * time.Second) }, nil},
		{func() error { return d.AdvanceWallClock(time.Second) }, []string{"wall 12:00:10"}},
		{func() error { return d.AdvanceWallClock(25 * time.Second) }, []string{"wall 12:00:35"}},
		{func() error { return d.AdvanceWallClock(5 * time.Second) }, nil},
		{func() error { return d.AdvanceWallClock(5 * time.Second) }, []string{"wall 12:00:45"}},
	}
	for i, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		var got []string
		for _, r := range d.Output("out") {
			got = append(got, string(r.Key)+" "+string(r.Value))
		}
		if fmt.Sprint(got) != fmt.Sprint(s.want) {
			t.Errorf("step %d: punctuations %v, want %v", i, got, s.want)
		}
	}
}
