package identity_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/processor/audience"
	"github.com/tessera-cdp/tessera/processor/features"
	"github.com/tessera-cdp/tessera/processor/identity"
	"github.com/tessera-cdp/tessera/topology"
)

// sweepCounts reads tessera_profile_sweep_total: the profiles the sweep
// visited and those it passed by.
func sweepCounts(t *testing.T, reg *prometheus.Registry) (visited, passed int) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "tessera_profile_sweep_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch m.GetLabel()[0].GetValue() {
			case "visited":
				visited = int(m.GetCounter().GetValue())
			case "passed":
				passed = int(m.GetCounter().GetValue())
			}
		}
	}
	return visited, passed
}

// ordersLastHour compiles the sweep tests' one feature: orders in the
// last hour.
func ordersLastHour(t *testing.T) *features.Set {
	t.Helper()
	fs, err := features.Compile([]config.Feature{
		{Name: "orders_1h", Event: "Order Completed", Agg: "count", Window: "1h"},
	}, features.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// A round of the maintenance sweep passes by the profiles that their own
// events evaluated since it began, and visits every other profile once.
func TestSweepPassesByFreshProfiles(t *testing.T) {
	defer identity.SetSweepBudget(0)() // one slice of profiles a sweep
	fs := ordersLastHour(t)
	as, err := audience.Compile([]audience.Definition{{Name: "buyers", Rule: `features.orders_1h >= 2`}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	h := newHubOpts(t, 3, config.DefaultIdentity(), &fs, &as, func(o *identity.Options) { o.Registerer = reg })
	counts := func() (visited, passed int) { t.Helper(); return sweepCounts(t, reg) }
	// Stream time stays within roundEvery (a minute) of the round's
	// start, so that one round is all the sweeps make.
	const n = 150
	orders := func(second int) {
		for i := range n {
			h.send(fmt.Sprintf(`{"type":"track","userId":"u%d","event":"Order Completed","messageId":"m%d-%d","timestamp":"2026-03-01T10:00:%02d.%03dZ"}`,
				i, second, i, second+i/10, i%10*100))
		}
		if err := h.d.Drain(nil); err != nil {
			t.Fatal(err)
		}
	}
	advance := func() {
		t.Helper()
		if err := h.d.AdvanceWallClock(250 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	orders(0)
	// The first sweep begins a round: one slice of each task's
	// profiles.
	for i := 0; ; i++ {
		if v, _ := counts(); v > 0 {
			break
		}
		if i == 10 {
			t.Fatal("no round began")
		}
		advance()
	}
	first, _ := counts()
	orders(20) // every profile is evaluated by an event
	for i := 0; ; i++ {
		if v, p := counts(); v+p >= n {
			break
		}
		if i == 100 {
			v, p := counts()
			t.Fatalf("the round has not ended: %d visited, %d passed by", v, p)
		}
		advance()
	}
	if v, p := counts(); v != first || p != n-first {
		t.Errorf("the round visited %d profiles and passed by %d, want %d visited before the events and the other %d passed by", v, p, first, n-first)
	}
	t.Logf("%d profiles visited before the events, %d after", first, n-first)
	if first >= n {
		t.Fatalf("the first sweep visited all %d profiles: a round must take several", first)
	}
}

// An expiring sweep round deletes the tiles that fell out of every window,
// the ones a merge brought included: the winner's tile floor takes the
// loser's, whose late event is older than anything of the winner's own.
func TestExpiringSweepReachesMergedTiles(t *testing.T) {
	fs, err := features.Compile([]config.Feature{
		{Name: "pages_1h", Type: "page", Agg: "count", Window: "1h"},
	}, features.Options{AllowedLateness: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var as *audience.Set
	h := newHubOpts(t, 1, config.DefaultIdentity(), &fs, &as, nil)
	for _, e := range []string{
		// a1's profile is created first (10:00), so it wins the merge.
		`{"type":"page","anonymousId":"a1","messageId":"1","timestamp":"2026-03-01T10:00:00Z"}`,
		`{"type":"page","userId":"u1","messageId":"2","timestamp":"2026-03-01T11:00:00Z"}`,
		`{"type":"page","userId":"u1","messageId":"3","timestamp":"2026-03-01T09:00:00Z"}`, // late
		`{"type":"alias","userId":"u1","previousId":"a1","messageId":"4","timestamp":"2026-03-01T11:10:00Z"}`,
		// c1's own event, no merge: its floor comes from the event.
		`{"type":"page","userId":"c1","messageId":"6","timestamp":"2026-03-01T09:05:00Z"}`,
	} {
		h.send(e)
		if err := h.d.Drain(nil); err != nil {
			t.Fatal(err)
		}
	}
	p := h.state().profileOf("user_id:u1")
	if p == nil || p.Created != time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC).UnixMilli() {
		t.Fatalf("want u1 in a1's profile, created at 10:00: %+v", p)
	}
	c := h.state().profileOf("user_id:c1")
	if c == nil {
		t.Fatal("no profile for c1")
	}
	w := h.d.TaskWindow(topology.TaskID{Group: 1}, identity.FeaturesStore)
	pagesOf := func(id, at string) any {
		t.Helper()
		now, err := time.Parse(time.RFC3339, at)
		if err != nil {
			t.Fatal(err)
		}
		vals, err := fs.Values(w, []byte(id), now)
		if err != nil {
			t.Fatal(err)
		}
		return vals["pages_1h"]
	}
	pages := func(at string) any { return pagesOf(p.ID, at) }
	// Tiles are read as of a moment: 09:20 reads the 09:00 tile alone.
	const late, own = "2026-03-01T09:20:00Z", "2026-03-01T10:20:00Z"
	if pages(late) != int64(1) || pages(own) != int64(1) || pagesOf(c.ID, late) != int64(1) {
		t.Fatalf("before the sweep: %v pages as of 09:20 and %v as of 10:20 (c1: %v as of 09:20); want 1 each", pages(late), pages(own), pagesOf(c.ID, late))
	}
	// The next day at 10:30, the cut-off is 09:30 the day before
	// (10:30 − 24h lateness − 1h window): the 09:00 tile goes, the
	// 10:00 one stays.
	h.send(`{"type":"page","userId":"u9","messageId":"5","timestamp":"2026-03-02T10:30:00Z"}`)
	if err := h.d.Drain(nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; pages(late) != int64(0) || pagesOf(c.ID, late) != int64(0); i++ {
		if i == 20 {
			t.Fatalf("20 sweeps kept a 09:00 tile past its cut-off: %v in the merged profile, %v in c1's", pages(late), pagesOf(c.ID, late))
		}
		if err := h.d.AdvanceWallClock(250 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	if pages(own) != int64(1) {
		t.Errorf("the sweep deleted the 10:00 tile, after the cut-off: %v pages as of 10:20", pages(own))
	}
}

// A task behind its input visits profiles on one sweep in four; caught up,
// on every sweep.
func TestSweepYieldsToABacklog(t *testing.T) {
	defer identity.SetSweepBudget(0)() // one slice of profiles a sweep
	fs := ordersLastHour(t)
	reg := prometheus.NewRegistry()
	var as *audience.Set
	h := newHubOpts(t, 1, config.DefaultIdentity(), &fs, &as, func(o *identity.Options) { o.Registerer = reg })
	for i := range 400 { // 13 slices of 32
		h.send(fmt.Sprintf(`{"type":"track","userId":"u%d","event":"Order Completed","messageId":"m%d","timestamp":"2026-03-01T10:00:00.%03dZ"}`, i, i, i))
	}
	if err := h.d.Drain(nil); err != nil {
		t.Fatal(err)
	}
	swept := func() int {
		t.Helper()
		visited, passed := sweepCounts(t, reg)
		return visited + passed
	}
	// ticks advances the wall clock by n sweep intervals and returns how
	// many of them visited profiles.
	ticks := func(n int) int {
		t.Helper()
		visits := 0
		for range n {
			before := swept()
			if err := h.d.AdvanceWallClock(250 * time.Millisecond); err != nil {
				t.Fatal(err)
			}
			if swept() > before {
				visits++
			}
		}
		return visits
	}
	for i := 0; swept() == 0; i++ { // the round begins
		if i == 10 {
			t.Fatal("no round began")
		}
		ticks(1)
	}
	restore := identity.SetBacklog(5000)
	behind := ticks(12)
	restore()
	caughtUp := ticks(3)
	if behind != 3 || caughtUp != 3 {
		t.Errorf("behind, %d of 12 sweeps visited profiles, want 3; caught up, %d of 3, want 3", behind, caughtUp)
	}
}
