package features

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/processor/profile"
	"github.com/tessera-cdp/tessera/state"
	"github.com/valyala/fastjson"
)

// newWindow returns a windowed store in a Pebble instance on an in-memory
// file system, and its DB for commits.
func newWindow(t testing.TB) (*state.DB, *state.Window) {
	t.Helper()
	db, err := state.Open("/db", state.Options{FS: vfs.NewMem(), CacheSize: 64 << 20, MemTableSize: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, db.Window("features")
}

func mustCompile(t testing.TB, defs []config.Feature, opts Options) *Set {
	t.Helper()
	s, err := Compile(defs, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// track returns a track event at ts with the given properties (JSON).
func track(name string, ts time.Time, props string) *fastjson.Value {
	return fastjson.MustParse(fmt.Sprintf(`{"type":"track","event":%q,"timestamp":%q,"properties":%s}`,
		name, ts.UTC().Format("2006-01-02T15:04:05.000Z"), props))
}

func mustValues(t *testing.T, s *Set, w *state.Window, profile string, now time.Time) map[string]any {
	t.Helper()
	v, err := s.Values(w, []byte(profile), now)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func mustUpdate(t *testing.T, s *Set, w *state.Window, profile string, ev *fastjson.Value, at time.Time) []string {
	t.Helper()
	ch, err := s.Update(w, []byte(profile), ev, at)
	if err != nil {
		t.Fatal(err)
	}
	return append([]string(nil), ch...)
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// TestTileTable holds TileSize to its promises (a read combines at most 96
// tiles; a tile is at most a sixth of its window, a tenth from 10m on) for
// every window config.ParseWindow accepts, and doc.go's table to TileSize.
func TestTileTable(t *testing.T) {
	for m := 1; m <= 365*24*60; m++ {
		w := time.Duration(m) * time.Minute
		tile := TileSize(w)
		if n := int(w/tile) + 1; n > 96 {
			t.Fatalf("window %v: tile %v, a read combines up to %d tiles", w, tile, n)
		}
		if tile > w/6 || (w >= 10*time.Minute && tile > w/10) {
			t.Fatalf("window %v: tile %v is too coarse", w, tile)
		}
		if day%tile != 0 && tile%day != 0 {
			t.Fatalf("window %v: tile %v does not align with days", w, tile)
		}
	}
	if TileSize(0) != 0 {
		t.Errorf("TileSize(lifetime) = %v, want 0", TileSize(0))
	}
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?m)^//\t(\d+[mhd])\s+(≤|<)\s+w\s+(<|≤)\s+(\d+[mhd])\s+(\d+[smhd])\s`)
	rows := row.FindAllStringSubmatch(string(doc), -1)
	if len(rows) != len(tileTable) {
		t.Fatalf("doc.go's tile table has %d rows, tileTable %d", len(rows), len(tileTable))
	}
	for _, r := range rows {
		lo, hi, tile := parseSpan(t, r[1]), parseSpan(t, r[4]), parseSpan(t, r[5])
		if r[2] == "<" {
			lo += time.Minute
		}
		if r[3] == "<" {
			hi -= time.Minute
		}
		if TileSize(lo) != tile || TileSize(hi) != tile {
			t.Errorf("doc.go row %q: TileSize(%v) = %v, TileSize(%v) = %v", r[0], lo, TileSize(lo), hi, TileSize(hi))
		}
	}
}

func parseSpan(t *testing.T, s string) time.Duration {
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil {
		t.Fatal(err)
	}
	unit := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': day}[s[len(s)-1]]
	return time.Duration(n) * unit
}

// TestWindowEdges pins, with times worked out by hand, the moment an event
// stops counting: once the tile it fell in is no longer wholly inside
// [now − window, now].
func TestWindowEdges(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		window string
		event  string
		now    string
		want   int64
	}{
		// 1m: 10s tiles. An event at :09.999 is in the :00 tile.
		{"1m", "2026-03-01T12:00:09.999Z", "2026-03-01T12:00:09.999Z", 1},
		{"1m", "2026-03-01T12:00:09.999Z", "2026-03-01T12:01:00Z", 1},
		{"1m", "2026-03-01T12:00:09.999Z", "2026-03-01T12:01:00.001Z", 0},
		{"1m", "2026-03-01T12:00:10Z", "2026-03-01T12:01:00.001Z", 1},
		{"1m", "2026-03-01T12:00:10Z", "2026-03-01T12:01:10Z", 1},
		{"1m", "2026-03-01T12:00:10Z", "2026-03-01T12:01:10.001Z", 0},
		// 1h: 5m tiles.
		{"1h", "2026-03-01T12:04:59.999Z", "2026-03-01T13:00:00Z", 1},
		{"1h", "2026-03-01T12:04:59.999Z", "2026-03-01T13:00:00.001Z", 0},
		// 7d: 4h tiles, aligned to UTC midnight.
		{"7d", "2026-03-01T03:59:59.999Z", "2026-03-08T00:00:00Z", 1},
		{"7d", "2026-03-01T03:59:59.999Z", "2026-03-08T00:00:00.001Z", 0},
		{"7d", "2026-03-01T04:00:00Z", "2026-03-08T03:59:59.999Z", 1},
		// 90d: 1d tiles.
		{"90d", "2026-03-01T23:59:59.999Z", "2026-05-30T00:00:00Z", 1},
		{"90d", "2026-03-01T23:59:59.999Z", "2026-05-30T00:00:00.001Z", 0},
		// 365d: 4d tiles, from the epoch: 2026-02-28 starts one.
		{"365d", "2026-03-03T23:59:59.999Z", "2027-02-28T00:00:00Z", 1},
		{"365d", "2026-03-03T23:59:59.999Z", "2027-02-28T00:00:00.001Z", 0},
		{"lifetime", "2026-03-01T00:00:00Z", "2036-03-01T00:00:00Z", 1},
	}
	for _, tt := range tests {
		t.Run(tt.window+"/"+tt.event+"@"+tt.now, func(t *testing.T) {
			_, w := newWindow(t)
			s := mustCompile(t, []config.Feature{{Name: "n", Event: "E", Agg: "count", Window: tt.window}}, Options{})
			mustUpdate(t, s, w, "p", track("E", at(tt.event), "{}"), at(tt.event))
			if got := mustValues(t, s, w, "p", at(tt.now))["n"]; got != tt.want {
				t.Errorf("count = %v, want %d", got, tt.want)
			}
		})
	}
}

// TestUpdateReportsChangesAndLateness walks one profile through in-time,
// late, too-late, untimed and unrelated events.
func TestUpdateReportsChangesAndLateness(t *testing.T) {
	_, w := newWindow(t)
	s := mustCompile(t, []config.Feature{
		{Name: "orders_1m", Event: "Order Completed", Agg: "count", Window: "1m"},
		{Name: "orders_7d", Event: "Order Completed", Agg: "count", Window: "7d"},
		{Name: "top_order", Event: "Order Completed", Agg: "max", Property: "revenue", Window: "lifetime"},
		{Name: "pages", Type: "page", Agg: "count", Window: "lifetime"},
	}, Options{AllowedLateness: time.Hour})
	steps := []struct {
		name    string
		ev      *fastjson.Value
		at      time.Time
		changed []string
		stats   Stats
	}{
		{"in time", track("Order Completed", t0, `{"revenue":10}`), t0,
			[]string{"orders_1m", "orders_7d", "top_order"}, Stats{}},
		{"a smaller max changes nothing", track("Order Completed", t0, `{"revenue":5}`), t0,
			[]string{"orders_1m", "orders_7d"}, Stats{}},
		{"late, but outside the 1m window as of now", track("Order Completed", t0.Add(-30*time.Minute), `{"revenue":1}`), t0,
			[]string{"orders_7d"}, Stats{}},
		{"beyond the allowed lateness", track("Order Completed", t0.Add(-61*time.Minute), `{"revenue":99}`), t0,
			nil, Stats{Late: 1}},
		{"no timestamp", fastjson.MustParse(`{"type":"track","event":"Order Completed"}`), t0,
			nil, Stats{Late: 1, Untimed: 1}},
		{"an event no feature takes", track("Signed Up", t0, `{}`), t0,
			nil, Stats{Late: 1, Untimed: 1}},
		{"revenue that is no number", track("Order Completed", t0, `{"revenue":"lots"}`), t0,
			[]string{"orders_1m", "orders_7d"}, Stats{Late: 1, Untimed: 1, NotNumeric: 1}},
		{"by call type", fastjson.MustParse(`{"type":"page","timestamp":"2026-03-01T12:00:00.000Z"}`), t0,
			[]string{"pages"}, Stats{Late: 1, Untimed: 1, NotNumeric: 1}},
	}
	for _, st := range steps {
		got := mustUpdate(t, s, w, "p", st.ev, st.at)
		if !reflect.DeepEqual(got, st.changed) && !(len(got) == 0 && len(st.changed) == 0) {
			t.Errorf("%s: changed %v, want %v", st.name, got, st.changed)
		}
		if s.Stats() != st.stats {
			t.Errorf("%s: stats %+v, want %+v", st.name, s.Stats(), st.stats)
		}
	}
	want := map[string]any{"orders_1m": int64(3), "orders_7d": int64(4), "top_order": 10.0, "pages": int64(1)}
	if got := mustValues(t, s, w, "p", t0); !reflect.DeepEqual(got, want) {
		t.Errorf("values %v, want %v", got, want)
	}
}

// TestValuesFallWithoutEvents checks that values decay with time alone and
// that lifetime ones do not.
func TestValuesFallWithoutEvents(t *testing.T) {
	_, w := newWindow(t)
	s := mustCompile(t, []config.Feature{
		{Name: "spend_7d", Event: "Order Completed", Agg: "sum", Property: "revenue", Window: "7d"},
		{Name: "avg_7d", Event: "Order Completed", Agg: "avg", Property: "revenue", Window: "7d"},
		{Name: "spend", Event: "Order Completed", Agg: "sum", Property: "revenue", Window: "lifetime"},
	}, Options{})
	mustUpdate(t, s, w, "p", track("Order Completed", t0, `{"revenue":10}`), t0)
	mustUpdate(t, s, w, "p", track("Order Completed", t0.Add(3*day), `{"revenue":"20.5"}`), t0.Add(3*day))
	for _, tt := range []struct {
		at   time.Time
		want map[string]any
	}{
		{t0.Add(3 * day), map[string]any{"spend_7d": 30.5, "avg_7d": 15.25, "spend": 30.5}},
		{t0.Add(7*day + 4*time.Hour), map[string]any{"spend_7d": 20.5, "avg_7d": 20.5, "spend": 30.5}},
		{t0.Add(30 * day), map[string]any{"spend_7d": 0.0, "avg_7d": nil, "spend": 30.5}},
	} {
		if got := mustValues(t, s, w, "p", tt.at); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("at %v: %v, want %v", tt.at, got, tt.want)
		}
	}
}

// TestExpireKeepsEveryReadWithinLateness checks Expire's invariant: values
// as of any time from now − lateness on are the same after it, and it
// deletes what lies before.
func TestExpireKeepsEveryReadWithinLateness(t *testing.T) {
	_, w := newWindow(t)
	lateness := 2 * time.Hour
	s := mustCompile(t, []config.Feature{
		{Name: "a", Event: "E", Agg: "count", Window: "1m"},
		{Name: "b", Event: "E", Agg: "count_distinct", Property: "v", Window: "1h"},
		{Name: "c", Event: "E", Agg: "last", Property: "v", Window: "1d"},
		{Name: "d", Event: "E", Agg: "count", Window: "lifetime"},
	}, Options{AllowedLateness: lateness})
	rng := rand.New(rand.NewPCG(1, 2))
	at := t0
	for i := 0; i < 500; i++ {
		at = at.Add(time.Duration(rng.IntN(120)) * time.Second)
		mustUpdate(t, s, w, "p", track("E", at, fmt.Sprintf(`{"v":%d}`, rng.IntN(50))), at)
	}
	before, err := s.Export(nil, w, []byte("p"))
	if err != nil {
		t.Fatal(err)
	}
	var reads []map[string]any
	for d := time.Duration(0); d <= lateness; d += 7 * time.Minute {
		reads = append(reads, mustValues(t, s, w, "p", at.Add(-lateness+d)))
	}
	if _, err := s.Expire(w, []byte("p"), at, 0); err != nil {
		t.Fatal(err)
	}
	for i, d := 0, time.Duration(0); d <= lateness; i, d = i+1, d+7*time.Minute {
		if got := mustValues(t, s, w, "p", at.Add(-lateness+d)); !reflect.DeepEqual(got, reads[i]) {
			t.Errorf("values as of now − %v changed by Expire: %v, were %v", lateness-d, got, reads[i])
		}
	}
	after, err := s.Export(nil, w, []byte("p"))
	if err != nil {
		t.Fatal(err)
	}
	if len(after) >= len(before)/2 {
		t.Errorf("Expire kept %d of %d bytes of tiles over 17 hours of events with windows up to a day", len(after), len(before))
	}
}

// TestCountDistinctSpillsAtTheBound checks that a tile stays an exact set up
// to DistinctExact values and becomes a sketch past it, and that windows
// over exact tiles stay exact beyond the bound.
// TestExpirePassesOverFeaturesAboveTheFloor: Expire scans a feature only
// when the floor is before its cut-off. The floors here break the
// invariant on purpose (the profile has a tile before both cut-offs), so
// a tile that survives shows the feature was passed over.
func TestExpirePassesOverFeaturesAboveTheFloor(t *testing.T) {
	lateness := time.Hour
	defs := []config.Feature{
		{Name: "short", Event: "E", Agg: "count", Window: "1d"},
		{Name: "long", Event: "E", Agg: "count", Window: "30d"},
		{Name: "life", Event: "E", Agg: "count", Window: "lifetime"},
	}
	now := t0.Add(40 * day)
	cutShort := alignUp(now.UnixMilli()-lateness.Milliseconds()-day.Milliseconds(), time.Hour.Milliseconds())
	cutLong := alignUp(now.UnixMilli()-lateness.Milliseconds()-30*day.Milliseconds(), day.Milliseconds())
	for _, tt := range []struct {
		name       string
		from       int64
		short, lng int // tiles left, as the counts as of t0 show them
		want       int64
	}{
		{"no floor", 0, 0, 0, cutLong},
		{"floor at the long cut-off", cutLong, 0, 1, cutLong},
		{"floor between the cut-offs", cutLong + 1, 0, 1, cutLong + 1},
		{"floor at the short cut-off", cutShort, 1, 1, cutShort},
		{"no tiles", NoTiles, 1, 1, NoTiles},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, w := newWindow(t)
			s := mustCompile(t, defs, Options{AllowedLateness: lateness})
			mustUpdate(t, s, w, "p", track("E", t0, `{}`), t0)
			got, err := s.Expire(w, []byte("p"), now, tt.from)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("floor after Expire = %d, want %d", got, tt.want)
			}
			want := map[string]any{"short": int64(tt.short), "long": int64(tt.lng), "life": int64(1)}
			if vals := mustValues(t, s, w, "p", t0); !reflect.DeepEqual(vals, want) {
				t.Errorf("values as of the event after Expire: %v, want %v", vals, want)
			}
		})
	}
}

// TestUpdateFloor: the floor falls to an event's time and never rises.
func TestUpdateFloor(t *testing.T) {
	at := t0.UnixMilli()
	for _, tt := range []struct {
		name  string
		floor int64
		ev    *fastjson.Value
		want  int64
	}{
		{"first event", NoTiles, track("E", t0, `{}`), at},
		{"earlier event", at, track("E", t0.Add(-time.Hour), `{}`), at - time.Hour.Milliseconds()},
		{"later event", at, track("E", t0.Add(time.Hour), `{}`), at},
		{"no timestamp", at + 1, fastjson.MustParse(`{"type":"track","event":"E"}`), at + 1},
	} {
		if got := UpdateFloor(tt.floor, tt.ev); got != tt.want {
			t.Errorf("%s: UpdateFloor = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestCountDistinctSpillsAtTheBound(t *testing.T) {
	_, w := newWindow(t)
	s := mustCompile(t, []config.Feature{{Name: "skus", Event: "E", Agg: "count_distinct", Property: "sku", Window: "1h"}},
		Options{DistinctExact: 3})
	tag := func(at time.Time) byte {
		s.beginKey([]byte("p"))
		tile, err := w.Get(s.keyOf(s.features[0]), alignDown(at.UnixMilli(), s.features[0].tile))
		if err != nil || tile == nil {
			t.Fatalf("tile: %v, %v", tile, err)
		}
		return tile[0]
	}
	for i, sku := range []string{"a", "b", "c", "a", "c"} {
		mustUpdate(t, s, w, "p", track("E", t0, fmt.Sprintf(`{"sku":%q}`, sku)), t0)
		if tag(t0) != tagDistinctExact {
			t.Fatalf("after %d values (3 distinct): tile tag %#x, want the exact set", i+1, tag(t0))
		}
	}
	// Three more in the next tile: six distinct, exact, in a window.
	next := t0.Add(5 * time.Minute)
	for _, sku := range []string{"d", "e", "f"} {
		mustUpdate(t, s, w, "p", track("E", next, fmt.Sprintf(`{"sku":%q}`, sku)), next)
	}
	if got := mustValues(t, s, w, "p", next)["skus"]; got != int64(6) {
		t.Errorf("6 distinct over two exact tiles: %v", got)
	}
	mustUpdate(t, s, w, "p", track("E", t0, `{"sku":"z"}`), next)
	if tag(t0) != tagDistinctHLL {
		t.Fatalf("a fourth distinct value: tile tag %#x, want a sketch", tag(t0))
	}
	if got := mustValues(t, s, w, "p", next)["skus"]; got != int64(7) {
		t.Errorf("7 distinct, one tile a sketch: %v (the sparse sketch is exact this small)", got)
	}
}

// TestCountDistinctEstimateError measures the estimate over windows whose
// tiles are dense sketches: every estimate within HLLErrorBound, and the
// root-mean-square error near HLLStandardError.
func TestCountDistinctEstimateError(t *testing.T) {
	_, w := newWindow(t)
	s := mustCompile(t, []config.Feature{{Name: "visitors", Event: "E", Agg: "count_distinct", Property: "id", Window: "90d"}}, Options{})
	f := s.features[0]
	tileMs := f.tile
	var sumSq float64
	trials := 0
	for _, perTile := range []int{300, 3000} {
		for trial := 0; trial < 4; trial++ {
			profile := fmt.Sprintf("p%d-%d", perTile, trial)
			s.beginKey([]byte(profile))
			key := append([]byte(nil), s.keyOf(f)...)
			// 60 daily tiles, each overlapping the next by half: the union
			// has 60.5 × perTile distinct values.
			start := alignDown(t0.UnixMilli(), tileMs)
			for i := 0; i < 60; i++ {
				sk := newSketch()
				for v := i * perTile; v < i*perTile+perTile*3/2; v++ {
					sk.InsertHash(xxhash.Sum64(appendNumber(nil, float64(v+trial*10_000_000))))
				}
				tile, _, err := appendSketch(nil, sk)
				if err != nil {
					t.Fatal(err)
				}
				if err := w.Put(key, start+int64(i)*tileMs, tile); err != nil {
					t.Fatal(err)
				}
			}
			n := 60*perTile + perTile/2
			got := mustValues(t, s, w, profile, time.UnixMilli(start+59*tileMs))["visitors"].(int64)
			rel := float64(got-int64(n)) / float64(n)
			if math.Abs(rel) > HLLErrorBound {
				t.Errorf("%d distinct: estimate %d, off by %.2f%%, beyond %.2f%%", n, got, 100*rel, 100*HLLErrorBound)
			}
			sumSq += rel * rel
			trials++
		}
	}
	if rms := math.Sqrt(sumSq / float64(trials)); rms > 2*HLLStandardError {
		t.Errorf("root-mean-square error %.3f%% over %d windows, documented %.3f%%", 100*rms, trials, 100*HLLStandardError)
	} else {
		t.Logf("root-mean-square error %.3f%% over %d windows (documented standard error %.3f%%)", 100*rms, trials, 100*HLLStandardError)
	}
}

// TestMostFrequentBeyondTheCap checks the Misra–Gries guarantee: a value
// more frequent than n/(cap+1) wins even among more distinct values than
// the cap, within a tile and across tiles merged from two profiles.
func TestMostFrequentBeyondTheCap(t *testing.T) {
	_, w := newWindow(t)
	s := mustCompile(t, []config.Feature{{Name: "fav", Event: "E", Agg: "most_frequent", Property: "c", Window: "lifetime"}},
		Options{FrequentCap: 4})
	rng := rand.New(rand.NewPCG(3, 4))
	for _, p := range []string{"a", "b"} {
		for i := 0; i < 100; i++ {
			c := fmt.Sprintf(`"cold-%s-%d"`, p, i) // 70 distinct cold values
			if i%10 < 3 {
				c = `"hot"` // 30 of 100 > 100/5
			}
			if i%10 == 9 {
				c = `"warm"`
			}
			mustUpdate(t, s, w, p, track("E", t0.Add(time.Duration(rng.IntN(1000))*time.Second), fmt.Sprintf(`{"c":%s}`, c)), t0)
		}
		if got := mustValues(t, s, w, p, t0)["fav"]; got != "hot" {
			t.Errorf("profile %s: most_frequent %v, want hot", p, got)
		}
	}
	if err := s.Merge(w, []byte("b"), []byte("a")); err != nil {
		t.Fatal(err)
	}
	if got := mustValues(t, s, w, "a", t0)["fav"]; got != "hot" {
		t.Errorf("merged: most_frequent %v, want hot", got)
	}
	if got := mustValues(t, s, w, "b", t0)["fav"]; got != nil {
		t.Errorf("merged-away profile still has most_frequent %v", got)
	}
}

func TestCompileErrors(t *testing.T) {
	order := func(f config.Feature) config.Feature {
		if f.Event == "" && f.Type == "" {
			f.Event = "Order Completed"
		}
		if f.Window == "" {
			f.Window = "7d"
		}
		if f.Agg == "" {
			f.Agg = "count"
		}
		return f
	}
	plan := map[string][]string{"Order Completed": {"revenue", "currency", "products"}}
	tests := []struct {
		name string
		defs []config.Feature
		opts Options
		want string
	}{
		{"misspelt property in a filter, with a tracking plan",
			[]config.Feature{order(config.Feature{Name: "big_orders", Filter: "reveneu > 100"})}, Options{Properties: plan},
			`feature "big_orders": filter: unknown name "reveneu" (line 1, column 1); did you mean "revenue"?`},
		{"unknown name far from any property",
			[]config.Feature{order(config.Feature{Name: "x", Filter: "revenue > 1 &&\n  coupon != nil"})}, Options{Properties: plan},
			`feature "x": filter: unknown name "coupon" (line 2, column 3)`},
		{"syntax error",
			[]config.Feature{order(config.Feature{Name: "x", Filter: "revenue >"})}, Options{},
			`feature "x": filter: unexpected token EOF (line 1, column 9)`},
		{"not a bool",
			[]config.Feature{order(config.Feature{Name: "x", Filter: `"yes"`})}, Options{},
			`feature "x": filter: expected bool, but got string`},
		{"type error",
			[]config.Feature{order(config.Feature{Name: "x", Filter: `event + 1 > 2`})}, Options{},
			`feature "x": filter: invalid operation: + (mismatched types string and int) (line 1, column 7)`},
		{"misspelt aggregated property, with a tracking plan",
			[]config.Feature{order(config.Feature{Name: "spend", Agg: "sum", Property: "revenu"})}, Options{Properties: plan},
			`feature "spend": property: unknown property "revenu" of "Order Completed"; did you mean "revenue"?`},
		{"unknown agg",
			[]config.Feature{order(config.Feature{Name: "x", Agg: "median", Property: "revenue"})}, Options{},
			`feature "x": agg: must be count, sum, min, max, avg, count_distinct, first, last or most_frequent, got "median"`},
		{"agg without its property",
			[]config.Feature{order(config.Feature{Name: "x", Agg: "sum"})}, Options{},
			`feature "x": property: is required for agg sum`},
		{"empty path segment",
			[]config.Feature{order(config.Feature{Name: "x", Agg: "max", Property: "product..price"})}, Options{},
			`feature "x": property: "product..price" has an empty path segment`},
		{"event and type",
			[]config.Feature{order(config.Feature{Name: "x", Event: "Order Completed", Type: "page"})}, Options{},
			`feature "x": needs an event or a type, not both (event "Order Completed", type "page")`},
		{"unknown call type",
			[]config.Feature{{Name: "x", Type: "pageview", Agg: "count", Window: "1h"}}, Options{},
			`feature "x": type: must be one of track, identify, page, screen, group, alias, got "pageview"`},
		{"bad window",
			[]config.Feature{order(config.Feature{Name: "x", Window: "2y"})}, Options{},
			`feature "x": window: unit must be m, h, d or w, got "2y"`},
		{"window too long",
			[]config.Feature{order(config.Feature{Name: "x", Window: "400d"})}, Options{},
			`feature "x": window: must be at most 365d, got "400d"`},
		{"bad name",
			[]config.Feature{order(config.Feature{Name: "Big Orders"})}, Options{},
			`feature "Big Orders": name: must match [a-z][a-z0-9_]*, got "Big Orders"`},
		{"no name",
			[]config.Feature{order(config.Feature{Name: "a"}), order(config.Feature{})}, Options{},
			`feature #2: name: must match [a-z][a-z0-9_]*, got ""`},
		{"duplicate",
			[]config.Feature{order(config.Feature{Name: "a"}), order(config.Feature{Name: "a", Window: "1h"})}, Options{},
			`feature "a": name: declared twice`},
		{"every mistake, each naming its feature",
			[]config.Feature{{Name: "a", Agg: "sum", Window: "1h"}, order(config.Feature{Name: "b", Filter: "("})}, Options{},
			"feature \"a\": needs an event or a type\nfeature \"a\": property: is required for agg sum\nfeature \"b\": filter: unexpected token EOF (line 1, column 1)"},
		{"negative lateness",
			nil, Options{AllowedLateness: -time.Second},
			`feature options: allowed lateness must not be negative, got -1s`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.defs, tt.opts)
			if err == nil {
				t.Fatalf("Compile succeeded, want %s", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tt.want)
			}
		})
	}
}

// TestFilters runs filters on single events: what matches, and what a
// missing property does.
func TestFilters(t *testing.T) {
	tests := []struct {
		name, filter, typ, props string
		match                    bool
		errs                     uint64
	}{
		{"compare", "revenue > 100", "track", `{"revenue":150}`, true, 0},
		{"compare false", "revenue > 100", "track", `{"revenue":50}`, false, 0},
		{"missing property is an error, no match", "revenue > 100", "track", `{}`, false, 1},
		{"string against number is an error", "revenue > 100", "track", `{"revenue":"150"}`, false, 1},
		{"absence given a meaning", "(revenue ?? 0) > 100", "track", `{}`, false, 0},
		{"in a list", `category in ["shoes", "bags"]`, "track", `{"category":"bags"}`, true, 0},
		{"in a list, absent", `category in ["shoes", "bags"]`, "track", `{}`, false, 0},
		{"nested, optional chaining", `product?.price > 3`, "track", `{"product":{"price":4}}`, true, 0},
		{"nested, absent", `(product?.price ?? 0) > 3`, "track", `{}`, false, 0},
		{"arrays", `len(items) >= 2 && items[0].sku == "a"`, "track", `{"items":[{"sku":"a"},{"sku":"b"}]}`, true, 0},
		{"event and type", `event == "Order Completed" && type == "track"`, "track", `{}`, true, 0},
		{"properties shadowed by event and type", `type == "track" && properties.type == "gift"`, "track", `{"type":"gift"}`, true, 0},
		{"strings", `currency == "EUR" && revenue >= 10`, "track", `{"currency":"EUR","revenue":10}`, true, 0},
		{"booleans", `coupon`, "track", `{"coupon":true}`, true, 0},
		{"traits of identify", `plan == "pro"`, "identify", `{"plan":"pro"}`, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, w := newWindow(t)
			def := config.Feature{Name: "n", Event: "Order Completed", Filter: tt.filter, Agg: "count", Window: "lifetime"}
			field := "properties"
			if tt.typ != "track" {
				def.Event, def.Type, field = "", tt.typ, "traits"
			}
			s := mustCompile(t, []config.Feature{def}, Options{})
			ev := fastjson.MustParse(fmt.Sprintf(`{"type":%q,"event":"Order Completed","timestamp":"2026-03-01T12:00:00.000Z",%q:%s}`, tt.typ, field, tt.props))
			mustUpdate(t, s, w, "p", ev, t0)
			want := int64(0)
			if tt.match {
				want = 1
			}
			if got := mustValues(t, s, w, "p", t0)["n"]; got != want {
				t.Errorf("count %v, want %d", got, want)
			}
			if s.Stats().FilterErrors != tt.errs {
				t.Errorf("filter errors %d, want %d", s.Stats().FilterErrors, tt.errs)
			}
		})
	}
}

// TestEventTime holds the allocation-free timestamp parser to time.Parse.
func TestEventTime(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 10000; i++ {
		tm := time.UnixMilli(rng.Int64N(5_000_000_000_000)).UTC()
		s := tm.Format("2006-01-02T15:04:05.000Z")
		got, ok := parseNormalized([]byte(s))
		if !ok || got != tm.UnixMilli() {
			t.Fatalf("%s: %d, %v; want %d", s, got, ok, tm.UnixMilli())
		}
	}
	for _, tt := range []struct {
		ts   string
		want int64 // -1: unusable
	}{
		{"2026-03-01T12:00:00+02:00", time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC).UnixMilli()},
		{"2026-03-01T12:00:00.123456Z", time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC).UnixMilli()},
		{"2028-02-29T00:00:00.000Z", time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC).UnixMilli()},
		{"2026-02-29T00:00:00.000Z", -1},
		{"2026-13-01T00:00:00.000Z", -1},
		{"1969-12-31T23:59:59.999Z", -1},
		{"yesterday", -1},
		{"", -1},
	} {
		got, ok := eventTime(fastjson.MustParse(fmt.Sprintf(`{"timestamp":%q}`, tt.ts)))
		if (tt.want < 0 && ok) || (tt.want >= 0 && (!ok || got != tt.want)) {
			t.Errorf("%q: %d, %v; want %d", tt.ts, got, ok, tt.want)
		}
	}
}

// TestCanonicalOrder checks that canonical bytes order as the values do.
func TestCanonicalOrder(t *testing.T) {
	vals := []string{`false`, `true`, `-1e300`, `-2.5`, `-0`, `0`, `1`, `1.5`, `1e300`, `""`, `"A"`, `"a"`, `"ab"`, `[1]`, `{"x":1}`}
	var prev []byte
	for i, v := range vals {
		c, ok := appendCanonical(nil, fastjson.MustParse(v))
		if !ok {
			t.Fatalf("%s: no canonical form", v)
		}
		cmp := strings.Compare(string(prev), string(c))
		if i > 0 && cmp > 0 || (cmp == 0 && v != "0") {
			t.Errorf("%s orders before %s", v, vals[i-1])
		}
		prev = c
		back, err := decodeCanonical(c)
		if err != nil {
			t.Fatal(err)
		}
		if want := profile.ValueOf(fastjson.MustParse(v)); !reflect.DeepEqual(back, want) && v != "-0" {
			t.Errorf("%s decodes to %#v, want %#v", v, back, want)
		}
	}
	if _, ok := appendCanonical(nil, fastjson.MustParse(`null`)); ok {
		t.Error("null has a canonical form; it must count as absent")
	}
}

// TestCorruptTiles checks that a tile of the wrong kind is an error naming
// the feature, never a misread.
func TestCorruptTiles(t *testing.T) {
	_, w := newWindow(t)
	s := mustCompile(t, []config.Feature{{Name: "spend", Event: "E", Agg: "sum", Property: "v", Window: "lifetime"}}, Options{})
	s.beginKey([]byte("p"))
	if err := w.Put(s.keyOf(s.features[0]), 0, []byte{tagCount, 1}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Values(w, []byte("p"), t0)
	if !errors.Is(err, ErrCorruptTile) || !strings.Contains(err.Error(), `reading feature "spend"`) {
		t.Errorf("Values: %v", err)
	}
	_, err = s.Update(w, []byte("p"), track("E", t0, `{"v":1}`), t0)
	if !errors.Is(err, ErrCorruptTile) || !strings.Contains(err.Error(), `updating feature "spend"`) {
		t.Errorf("Update: %v", err)
	}
	if _, err := s.Import(w, []byte("p"), []byte{9, 9}); !errors.Is(err, ErrCorruptTile) {
		t.Errorf("Import of garbage: %v", err)
	}
}

// TestRedefinitionStartsAfresh checks that a feature whose definition
// changes reads new tiles, not the old definition's.
func TestRedefinitionStartsAfresh(t *testing.T) {
	_, w := newWindow(t)
	old := mustCompile(t, []config.Feature{{Name: "n", Event: "E", Agg: "count", Window: "7d"}}, Options{})
	mustUpdate(t, old, w, "p", track("E", t0, `{}`), t0)
	changed := mustCompile(t, []config.Feature{{Name: "n", Event: "E", Agg: "count", Window: "30d"}}, Options{})
	if got := mustValues(t, changed, w, "p", t0)["n"]; got != int64(0) {
		t.Errorf("redefined feature reads %v from the old tiles", got)
	}
	if got := mustValues(t, old, w, "p", t0)["n"]; got != int64(1) {
		t.Errorf("old definition reads %v", got)
	}
}

// TestMetricsAreShared checks that Sets registered with one Registerer
// share counters instead of failing to register.
func TestMetricsAreShared(t *testing.T) {
	reg := prometheus.NewRegistry()
	defs := []config.Feature{{Name: "n", Event: "E", Agg: "count", Window: "1h"}}
	for i := 0; i < 2; i++ {
		_, w := newWindow(t)
		s := mustCompile(t, defs, Options{Registerer: reg, AllowedLateness: time.Minute})
		mustUpdate(t, s, w, "p", track("E", t0.Add(-time.Hour), `{}`), t0)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "tessera_feature_late_events_total" {
			if got := mf.GetMetric()[0].GetCounter().GetValue(); got != 2 {
				t.Errorf("late events %v, want 2", got)
			}
			return
		}
	}
	t.Error("tessera_feature_late_events_total not registered")
}

// TestValuesIsSafeConcurrently runs Values on several goroutines with one
// Set, each on its own store, under the race detector: Values must not
// touch the Set's buffers, so that the API can read features while the
// task updates them.
func TestValuesIsSafeConcurrently(t *testing.T) {
	s := mustCompile(t, []config.Feature{
		{Name: "n", Event: "E", Agg: "count", Window: "1h"},
		{Name: "fav", Event: "E", Agg: "most_frequent", Property: "c", Window: "7d"},
		{Name: "ids", Event: "E", Agg: "count_distinct", Property: "c", Window: "lifetime"},
	}, Options{})
	const n = 4
	stores := make([]*state.Window, n)
	for i := range stores {
		_, stores[i] = newWindow(t)
		for j := 0; j <= i; j++ {
			mustUpdate(t, s, stores[i], "p", track("E", t0, fmt.Sprintf(`{"c":"v%d"}`, j)), t0)
		}
	}
	errs := make(chan error, n)
	for i, w := range stores {
		go func() {
			for k := 0; k < 50; k++ {
				v, err := s.Values(w, []byte("p"), t0)
				if err != nil {
					errs <- err
					return
				}
				if v["n"] != int64(i+1) || v["ids"] != int64(i+1) || v["fav"] != "v0" {
					errs <- fmt.Errorf("store %d: %v", i, v)
					return
				}
			}
			errs <- nil
		}()
	}
	for range stores {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestOnlyWritesTheSameTiles(t *testing.T) {
	defs := []config.Feature{
		{Name: "orders", Event: "Order Completed", Agg: "count", Window: "7d"},
		{Name: "spend", Event: "Order Completed", Agg: "sum", Property: "revenue", Window: "30d"},
	}
	all, err := Compile(defs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	infos := all.Features()
	if infos[0].Key == infos[1].Key || infos[1].Def != defs[1] {
		t.Fatalf("infos: %+v", infos)
	}
	one, err := all.Only(infos[1].Key)
	if err != nil {
		t.Fatal(err)
	}
	if got := one.Features(); len(got) != 1 || got[0].Key != infos[1].Key {
		t.Fatalf("Only: %+v", got)
	}
	if _, err := all.Only("nope"); err == nil {
		t.Error("Only of an unknown key")
	}
}
