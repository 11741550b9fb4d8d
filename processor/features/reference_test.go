package features_test

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/processor/features"
	"github.com/tessera-cdp/tessera/state"
	"github.com/tessera-cdp/tessera/topology"
	"github.com/valyala/fastjson"
)

// The pipeline under test: events, queries and merges keyed by profile id
// go through one processor that keeps features in a real windowed store
// (Pebble on the driver's in-memory file system), expires them from a
// stream-time punctuation, and moves a merged profile's tiles to another
// partition through a topic, as the identity protocol does.
const (
	topicEvents   = "profile-events"
	topicQueries  = "feature-queries"
	topicMerges   = "profile-merges"
	topicAbsorbs  = "profile-absorbs"
	topicAudits   = "feature-audits"
	storeTiles    = "feature-tiles"
	storeProfiles = "feature-profiles"
)

const day = 24 * time.Hour

// harness is what the test shares with the processors of every task. The
// driver is single-threaded, so no locking is needed.
type harness struct {
	base     *features.Set // cloned by each task
	windowed *features.Set // only the windowed features, for audits
	sets     []*features.Set
	results  []queryResult
	audits   []int // bytes of windowed tiles per audited profile
}

type queryResult struct {
	profile string
	at      time.Time
	values  map[string]any
}

type featureProc struct {
	h        *harness
	set      *features.Set
	w        *state.Window
	profiles *state.KeyValue
	parser   fastjson.Parser
}

func (p *featureProc) Init(ctx *topology.Context) error {
	p.set = p.h.base.Clone()
	p.h.sets = append(p.h.sets, p.set)
	p.w = ctx.Window(storeTiles)
	p.profiles = ctx.KeyValue(storeProfiles)
	// Expire is storage reclamation only (values are right without it), so
	// a sweep every ten minutes of stream time is plenty; it still runs
	// hundreds of times a run, between queries that would catch a tile it
	// should have kept.
	ctx.Schedule(10*time.Minute, topology.StreamTime, func(_ *topology.Context, now time.Time) error {
		var keys [][]byte
		var floors []int64
		if err := p.profiles.Prefix(nil, func(k, v []byte) error {
			keys = append(keys, bytes.Clone(k))
			floors = append(floors, decodeFloor(v))
			return nil
		}); err != nil {
			return err
		}
		for i, k := range keys {
			floor, err := p.set.Expire(p.w, k, now, floors[i])
			if err != nil {
				return err
			}
			if floor != floors[i] {
				if err := p.putFloor(k, floor); err != nil {
					return err
				}
			}
		}
		return nil
	})
	return nil
}

func (p *featureProc) Process(ctx *topology.Context, r topology.Record) error {
	switch r.Topic {
	case topicEvents:
		v, err := p.parser.ParseBytes(r.Value)
		if err != nil {
			return err
		}
		// The profile keeps its tile floor, as the profile stage does,
		// so that Expire passes over features it cannot cut; the
		// audits catch a floor that keeps a tile for good.
		floor, err := p.floor(r.Key)
		if err != nil {
			return err
		}
		if err := p.putFloor(r.Key, features.UpdateFloor(floor, v)); err != nil {
			return err
		}
		_, err = p.set.Update(p.w, r.Key, v, ctx.StreamTime())
		return err
	case topicQueries:
		vals, err := p.set.Values(p.w, r.Key, ctx.StreamTime())
		if err != nil {
			return err
		}
		p.h.results = append(p.h.results, queryResult{string(r.Key), ctx.StreamTime(), vals})
		return nil
	case topicMerges:
		// Value: 'L' (same task) or 'R' (another task), then the winner.
		to := r.Value[1:]
		loserFloor, err := p.floor(r.Key)
		if err != nil {
			return err
		}
		if err := p.profiles.Delete(r.Key); err != nil {
			return err
		}
		if r.Value[0] == 'L' {
			floor, err := p.floor(to)
			if err != nil {
				return err
			}
			if err := p.putFloor(to, min(floor, loserFloor)); err != nil {
				return err
			}
			return p.set.Merge(p.w, r.Key, to)
		}
		blob, err := p.set.Export(nil, p.w, r.Key)
		if err != nil {
			return err
		}
		if err := p.set.Delete(p.w, r.Key); err != nil {
			return err
		}
		// The absorb carries the loser's stream time, so the winner's task
		// never reads the tiles at a moment Expire had already passed.
		return ctx.Forward(topology.Record{Key: to, Value: blob, Timestamp: r.Timestamp})
	case topicAbsorbs:
		floor, err := p.floor(r.Key)
		if err != nil {
			return err
		}
		imported, err := p.set.Import(p.w, r.Key, r.Value)
		if err != nil {
			return err
		}
		return p.putFloor(r.Key, min(floor, imported))
	case topicAudits:
		blob, err := p.h.windowed.Export(nil, p.w, r.Key)
		if err != nil {
			return err
		}
		p.h.audits = append(p.h.audits, len(blob)-1) // less the version byte
		return nil
	}
	return fmt.Errorf("unexpected topic %q", r.Topic)
}

// floor returns profile's tile floor: NoTiles for a profile not seen.
func (p *featureProc) floor(profile []byte) (int64, error) {
	v, err := p.profiles.Get(profile)
	if err != nil || v == nil {
		return features.NoTiles, err
	}
	return decodeFloor(v), nil
}

func (p *featureProc) putFloor(profile []byte, floor int64) error {
	return p.profiles.Put(profile, binary.AppendVarint(nil, floor))
}

func decodeFloor(v []byte) int64 {
	f, _ := binary.Varint(v)
	return f
}

func newPipeline(t *testing.T, h *harness, partitions int32) *topology.Driver {
	t.Helper()
	topo, err := topology.NewBuilder().
		AddSource("events", topicEvents, 0).
		AddSource("queries", topicQueries, 0).
		AddSource("merges", topicMerges, 0).
		AddSource("absorbs", topicAbsorbs, 0).
		AddSource("audits", topicAudits, 0).
		AddProcessor("features", func() topology.Processor { return &featureProc{h: h} },
			"events", "queries", "merges", "absorbs", "audits").
		AddSink("absorb-out", topicAbsorbs, "features").
		AddStore(storeTiles, topology.WindowStore, "features").
		AddStore(storeProfiles, topology.KeyValueStore, "features").
		Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := topology.NewDriver(topo, topology.DriverOptions{Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// gkind is the JSON kind of a generated property value.
type gkind int

const (
	gNull gkind = iota
	gFalse
	gTrue
	gNum
	gStr
	gObj // {"x": n}
)

type gval struct {
	kind gkind
	num  float64
	str  string
}

func (v gval) json() string {
	switch v.kind {
	case gFalse:
		return "false"
	case gTrue:
		return "true"
	case gNum:
		return strconv.FormatFloat(v.num, 'f', -1, 64)
	case gStr:
		b, _ := json.Marshal(v.str)
		return string(b)
	case gObj:
		return v.str
	}
	return "null"
}

// goValue is what Values reports for the value.
func (v gval) goValue() any {
	switch v.kind {
	case gFalse:
		return false
	case gTrue:
		return true
	case gNum:
		return v.num
	case gStr:
		return v.str
	case gObj:
		var m map[string]any
		if err := json.Unmarshal([]byte(v.str), &m); err != nil {
			panic(err)
		}
		return m
	}
	return nil
}

// compareVals is the documented order of values: false < true < numbers
// < strings < objects (by their compact JSON).
func compareVals(a, b gval) int {
	if c := cmp.Compare(a.kind, b.kind); c != 0 {
		return c
	}
	if a.kind == gNum {
		return cmp.Compare(a.num, b.num)
	}
	return strings.Compare(a.str, b.str)
}

// identity is the value's identity for count_distinct and most_frequent.
func (v gval) identity() string {
	if v.kind == gNum {
		return fmt.Sprintf("%d:%v", v.kind, v.num)
	}
	return fmt.Sprintf("%d:%s", v.kind, v.str)
}

// number is how numeric aggregations read a value: numbers, and strings
// that parse as finite numbers.
func (v gval) number() (float64, bool) {
	switch v.kind {
	case gNum:
		return v.num, true
	case gStr:
		x, err := strconv.ParseFloat(v.str, 64)
		if err != nil || math.IsInf(x, 0) || math.IsNaN(x) {
			return 0, false
		}
		return x, true
	}
	return 0, false
}

type gevent struct {
	ts    int64 // Unix ms
	typ   string
	name  string
	props map[string]gval // "product.price" is nested under product
}

func (e *gevent) json() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"type":%q,`, e.typ)
	if e.name != "" {
		fmt.Fprintf(&b, `"event":%q,`, e.name)
	}
	fmt.Fprintf(&b, `"timestamp":%q,`, time.UnixMilli(e.ts).UTC().Format("2006-01-02T15:04:05.000Z"))
	field := "properties"
	if e.typ == "identify" {
		field = "traits"
	}
	fmt.Fprintf(&b, `%q:{`, field)
	keys := make([]string, 0, len(e.props))
	for k := range e.props {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	first := true
	for _, k := range keys {
		if !first {
			b.WriteByte(',')
		}
		first = false
		if top, sub, ok := strings.Cut(k, "."); ok {
			fmt.Fprintf(&b, `%q:{%q:%s}`, top, sub, e.props[k].json())
		} else {
			fmt.Fprintf(&b, `%q:%s`, k, e.props[k].json())
		}
	}
	b.WriteString("}}")
	return []byte(b.String())
}

// refFeature is a feature definition and the reference's own reading of
// it: which events it takes, written in Go rather than expr.
type refFeature struct {
	def    config.Feature
	window time.Duration // 0 for lifetime
	tile   time.Duration
	takes  func(e *gevent) bool // selector and filter
}

// refTiles is the reference's copy of the tile table for the windows the
// test uses; TestReferenceRandomStreams checks it against TileSize.
var refTiles = map[string]time.Duration{"1m": 10 * time.Second, "1h": 5 * time.Minute, "7d": 4 * time.Hour, "90d": 24 * time.Hour}

func referenceFeatures() []refFeature {
	isOrder := func(e *gevent) bool { return e.typ == "track" && e.name == "Order Completed" }
	isView := func(e *gevent) bool { return e.typ == "track" && e.name == "Product Viewed" }
	props := map[string]string{
		"count": "", "sum": "revenue", "min": "revenue", "max": "revenue", "avg": "revenue",
		"count_distinct": "sku", "first": "sku", "last": "sku", "most_frequent": "category",
	}
	var out []refFeature
	add := func(def config.Feature, takes func(*gevent) bool) {
		w, err := config.ParseWindow(def.Window)
		if err != nil {
			panic(err)
		}
		out = append(out, refFeature{def: def, window: w, tile: refTiles[def.Window], takes: takes})
	}
	for _, window := range []string{"1m", "1h", "7d", "90d", "lifetime"} {
		for _, agg := range []string{"count", "sum", "min", "max", "avg", "count_distinct", "first", "last", "most_frequent"} {
			add(config.Feature{Name: agg + "_" + window, Event: "Order Completed", Agg: agg, Property: props[agg], Window: window}, isOrder)
		}
	}
	bigOrder := func(e *gevent) bool {
		v, ok := e.props["revenue"]
		return isOrder(e) && ok && v.kind == gNum && v.num > 50 // a string, null or absence is an error: no match
	}
	add(config.Feature{Name: "big_orders_1h", Event: "Order Completed", Filter: "revenue > 50", Agg: "count", Window: "1h"}, bigOrder)
	add(config.Feature{Name: "big_orders_7d", Event: "Order Completed", Filter: "revenue > 50", Agg: "count", Window: "7d"}, bigOrder)
	isPage := func(e *gevent) bool { return e.typ == "page" }
	add(config.Feature{Name: "pages_1h", Type: "page", Agg: "count", Window: "1h"}, isPage)
	add(config.Feature{Name: "pages_lifetime", Type: "page", Agg: "count", Window: "lifetime"}, isPage)
	add(config.Feature{Name: "categorised_views_7d", Event: "Product Viewed", Agg: "count", Property: "category", Window: "7d"}, isView)
	add(config.Feature{Name: "price_max_90d", Event: "Product Viewed", Agg: "max", Property: "product.price", Window: "90d"}, isView)
	add(config.Feature{Name: "view_categories_1m", Event: "Product Viewed", Agg: "count_distinct", Property: "category", Window: "1m"}, isView)
	add(config.Feature{Name: "ab_revenue_lifetime", Event: "Order Completed", Filter: `category in ["a", "b"]`, Agg: "sum", Property: "revenue", Window: "lifetime"},
		func(e *gevent) bool {
			v := e.props["category"]
			return isOrder(e) && v.kind == gStr && (v.str == "a" || v.str == "b")
		})
	add(config.Feature{Name: "plan_last_lifetime", Type: "identify", Agg: "last", Property: "plan", Window: "lifetime"},
		func(e *gevent) bool { return e.typ == "identify" })
	return out
}

// reference is the brute force: every accepted event of every live
// profile, and the stream time of each partition.
type reference struct {
	feats      []refFeature
	partitions int
	lateness   int64
	stream     []int64
	events     map[string][]*gevent
	late       uint64
	notNumeric uint64
}

func (r *reference) partition(profile string) int {
	return int(topology.PartitionFor([]byte(profile), r.partitions))
}

func (r *reference) advance(p int, ts int64) { r.stream[p] = max(r.stream[p], ts) }

// arrive applies an event as the pipeline must: stream time first, then
// the lateness rule, which every feature obeys alike.
func (r *reference) arrive(profile string, e *gevent) {
	p := r.partition(profile)
	r.advance(p, e.ts)
	if e.ts < r.stream[p]-r.lateness {
		r.late++
		return
	}
	r.events[profile] = append(r.events[profile], e)
	for _, f := range r.feats {
		switch f.def.Agg {
		case "sum", "min", "max", "avg":
			if v, ok := e.props[f.def.Property]; ok && v.kind != gNull && f.takes(e) {
				if _, ok := v.number(); !ok {
					r.notNumeric++
				}
			}
		}
	}
}

// value computes f over the profile's events as of now, from the raw
// events. The second result is the true distinct count for
// count_distinct.
func (r *reference) value(f refFeature, profile string, now int64) (any, int64) {
	lo := int64(math.MinInt64)
	if f.window > 0 {
		t := f.tile.Milliseconds()
		lo = now - f.window.Milliseconds()
		lo = (lo + t - 1) / t * t // the first tile wholly inside the window (times are positive)
	}
	var vals []gval
	var times []int64
	n := int64(0)
	for _, e := range r.events[profile] {
		if e.ts > now {
			panic(fmt.Sprintf("event at %d after the query at %d: the harness broke its own rule", e.ts, now))
		}
		if e.ts < lo || !f.takes(e) {
			continue
		}
		if f.def.Property == "" {
			n++
			continue
		}
		v, ok := e.props[f.def.Property]
		if !ok || v.kind == gNull {
			continue
		}
		n++
		vals = append(vals, v)
		times = append(times, e.ts)
	}
	var nums []float64
	for _, v := range vals {
		if x, ok := v.number(); ok {
			nums = append(nums, x)
		}
	}
	switch f.def.Agg {
	case "count":
		return n, 0
	case "sum":
		s := 0.0
		for _, x := range nums {
			s += x
		}
		return s, 0
	case "min", "max", "avg":
		if len(nums) == 0 {
			return nil, 0
		}
		switch f.def.Agg {
		case "min":
			return slices.Min(nums), 0
		case "max":
			return slices.Max(nums), 0
		}
		s := 0.0
		for _, x := range nums {
			s += x
		}
		return s / float64(len(nums)), 0
	case "first", "last":
		if len(vals) == 0 {
			return nil, 0
		}
		best := 0
		for i := range vals {
			c := cmp.Compare(times[i], times[best])
			if c == 0 {
				c = compareVals(vals[i], vals[best])
			}
			if (f.def.Agg == "first" && c < 0) || (f.def.Agg == "last" && c > 0) {
				best = i
			}
		}
		return vals[best].goValue(), 0
	case "most_frequent":
		counts := map[string]int{}
		byID := map[string]gval{}
		for _, v := range vals {
			counts[v.identity()]++
			byID[v.identity()] = v
		}
		var best *gval
		bestN := 0
		for id, c := range counts {
			v := byID[id]
			if c > bestN || (c == bestN && compareVals(v, *best) < 0) {
				best, bestN = &v, c
			}
		}
		if best == nil {
			return nil, 0
		}
		return best.goValue(), 0
	case "count_distinct":
		ids := map[string]bool{}
		for _, v := range vals {
			ids[v.identity()] = true
		}
		return int64(len(ids)), int64(len(ids))
	}
	panic("unknown agg " + f.def.Agg)
}

// generator makes a random stream: bursts and quiet spells, events late
// and out of order, some beyond the allowed lateness.
type generator struct {
	rng      *rand.Rand
	lateness time.Duration
	wide     bool // a wide sku domain, to push count_distinct past its bound
}

func (g *generator) gap() time.Duration {
	r := g.rng.Float64()
	s := time.Second
	switch {
	case r < 0.55:
		return time.Duration(g.rng.IntN(20)) * s
	case r < 0.80:
		return time.Duration(20+g.rng.IntN(30*60)) * s
	case r < 0.92:
		return time.Duration(1800+g.rng.IntN(12*3600)) * s
	case r < 0.98:
		return time.Duration(12*3600+g.rng.IntN(5*86400)) * s
	}
	return time.Duration(5*86400+g.rng.IntN(35*86400)) * s
}

func (g *generator) jitter() time.Duration {
	r := g.rng.Float64()
	switch {
	case r < 0.65:
		return 0
	case r < 0.85:
		return time.Duration(g.rng.IntN(90)) * time.Second
	case r < 0.93:
		return time.Duration(g.rng.Int64N(int64(g.lateness) * 9 / 10))
	}
	return g.lateness + time.Duration(g.rng.Int64N(int64(g.lateness)*3/2))
}

func (g *generator) pick(vs ...gval) gval { return vs[g.rng.IntN(len(vs))] }

func num(x float64) gval                  { return gval{kind: gNum, num: x} }
func str(s string) gval                   { return gval{kind: gStr, str: s} }
func obj(n int) gval                      { return gval{kind: gObj, str: fmt.Sprintf(`{"x":%d}`, n)} }
func eighths(k int) gval                  { return num(float64(k) / 8) }
func (g *generator) maybe(p float64) bool { return g.rng.Float64() < p }

// revenue is mostly a number in eighths (so sums are exact in any order),
// sometimes a numeric string, junk, null or absent.
func (g *generator) revenue(props map[string]gval) {
	r := g.rng.Float64()
	k := g.rng.IntN(2100) - 100
	switch {
	case r < 0.80:
		props["revenue"] = eighths(k)
	case r < 0.88:
		props["revenue"] = str(strconv.FormatFloat(float64(k)/8, 'f', -1, 64))
	case r < 0.93:
		props["revenue"] = str("n/a")
	case r < 0.96:
		props["revenue"] = gval{kind: gNull}
	}
}

func (g *generator) sku(props map[string]gval) {
	n := 40
	if g.wide {
		n = 400
	}
	r := g.rng.Float64()
	switch {
	case r < 0.55:
		props["sku"] = str(fmt.Sprintf("sku-%d", g.rng.IntN(n)))
	case r < 0.75:
		props["sku"] = num(float64(g.rng.IntN(n * 3 / 4)))
	case r < 0.80:
		props["sku"] = g.pick(gval{kind: gTrue}, gval{kind: gFalse})
	case r < 0.85:
		props["sku"] = obj(g.rng.IntN(5))
	case r < 0.90:
		props["sku"] = gval{kind: gNull}
	}
}

func (g *generator) category(props map[string]gval) {
	if g.maybe(0.85) {
		props["category"] = g.pick(str("a"), str("b"), str("c"), str("d"), gval{kind: gTrue}, num(3), gval{kind: gNull})
	}
}

func (g *generator) event(ts int64) *gevent {
	e := &gevent{ts: ts, props: map[string]gval{}}
	r := g.rng.Float64()
	switch {
	case r < 0.5:
		e.typ, e.name = "track", "Order Completed"
		g.revenue(e.props)
		g.sku(e.props)
		g.category(e.props)
	case r < 0.8:
		e.typ, e.name = "track", "Product Viewed"
		g.category(e.props)
		switch r := g.rng.Float64(); {
		case r < 0.8:
			e.props["product.price"] = eighths(g.rng.IntN(800))
		case r < 0.9:
			e.props["product.price"] = str("cheap")
		}
	case r < 0.93:
		e.typ = "page"
		e.props["path"] = str("/p")
	default:
		e.typ = "identify"
		e.props["plan"] = g.pick(str("free"), str("pro"), str("team"), num(2), gval{kind: gNull})
	}
	return e
}

// envInt reads a positive integer from the environment, or def.
func envInt(t *testing.T, name string, def int64) int64 {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return n
}

// coverage counts what the comparisons exercised, so that a generator
// that drifted into trivia (every window empty) fails loudly.
type coverage struct {
	queries, nonEmpty map[string]int
	exactDistinct     int
	estimated         int
	late, merges      int
}

// TestReferenceRandomStreams runs random event streams with late and
// out-of-order events through the pipeline, queries features at random
// stream times and long after the last event, and holds every value to a
// brute-force computation over the raw events: exact aggregations exactly,
// count_distinct exactly up to its bound and within HLLErrorBound above.
// FEATURES_REFERENCE_SEED reproduces a run; FEATURES_REFERENCE_RUNS (and
// FEATURES_REFERENCE_EVENTS) make it longer.
func TestReferenceRandomStreams(t *testing.T) {
	for w, tile := range refTiles {
		d, _ := config.ParseWindow(w)
		if got := features.TileSize(d); got != tile {
			t.Fatalf("TileSize(%s) = %v, the reference says %v", w, got, tile)
		}
	}
	runs := envInt(t, "FEATURES_REFERENCE_RUNS", 5)
	events := envInt(t, "FEATURES_REFERENCE_EVENTS", 400)
	seed := envInt(t, "FEATURES_REFERENCE_SEED", time.Now().UnixNano())
	cov := coverage{queries: map[string]int{}, nonEmpty: map[string]int{}}
	for run := int64(0); run < runs; run++ {
		s := seed + run
		t.Logf("run %d: seed %d (FEATURES_REFERENCE_SEED=%d FEATURES_REFERENCE_RUNS=1 reproduces it)", run, s, s)
		if !runReference(t, s, int(events), &cov) {
			return
		}
	}
	t.Logf("compared %d queries; %d late events ignored; %d merges; count_distinct %d exact, %d estimated",
		cov.queries["count_1m"], cov.late, cov.merges, cov.exactDistinct, cov.estimated)
	for _, f := range referenceFeatures() {
		if cov.nonEmpty[f.def.Name] == 0 {
			t.Errorf("feature %s was never non-empty in %d queries: the generator does not exercise it", f.def.Name, cov.queries[f.def.Name])
		}
	}
	if cov.late == 0 || cov.merges == 0 {
		t.Errorf("no late events (%d) or no merges (%d): the generator does not exercise them", cov.late, cov.merges)
	}
}

func runReference(t *testing.T, seed int64, nEvents int, cov *coverage) bool {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x7e55e7a))
	lateness := []time.Duration{10 * time.Minute, 2 * time.Hour, 7 * day}[rng.IntN(3)]
	distinctExact := []int{0, 5, 12}[rng.IntN(3)]
	partitions := 1 + rng.IntN(3)
	g := &generator{rng: rng, lateness: lateness, wide: distinctExact != 0}
	feats := referenceFeatures()
	defs := make([]config.Feature, len(feats))
	var windowedDefs []config.Feature
	for i, f := range feats {
		defs[i] = f.def
		if f.window > 0 {
			windowedDefs = append(windowedDefs, f.def)
		}
	}
	opts := features.Options{AllowedLateness: lateness, DistinctExact: distinctExact}
	if lateness == 7*day && rng.IntN(2) == 0 {
		opts.AllowedLateness = 0 // the default
	}
	base, err := features.Compile(defs, opts)
	if err != nil {
		t.Fatal(err)
	}
	windowed, err := features.Compile(windowedDefs, opts)
	if err != nil {
		t.Fatal(err)
	}
	bound := distinctExact
	if bound == 0 {
		bound = 1000
	}
	h := &harness{base: base, windowed: windowed}
	d := newPipeline(t, h, int32(partitions))
	ref := &reference{feats: feats, partitions: partitions, lateness: lateness.Milliseconds(),
		stream: make([]int64, partitions), events: map[string][]*gevent{}}
	t.Logf("  lateness %v, count_distinct exact bound %d, %d partitions", lateness, bound, partitions)

	live := []string{"p0", "p1", "p2", "p3", "p4", "p5"}
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.IntN(86400)) * time.Second)
	failed := false

	// query asks for profile's features at ts, which is at or after its
	// partition's stream time, and compares them with the reference.
	query := func(profile string, ts int64) {
		p := ref.partition(profile)
		if err := d.Pipe(topicQueries, []byte(profile), nil, time.UnixMilli(ts)); err != nil {
			t.Fatal(err)
		}
		ref.advance(p, ts)
		res := h.results[len(h.results)-1]
		if res.profile != profile || res.at.UnixMilli() != ref.stream[p] {
			t.Fatalf("query result for %s at %v, want %s at %v", res.profile, res.at, profile, time.UnixMilli(ref.stream[p]))
		}
		for _, f := range feats {
			want, distinct := ref.value(f, profile, ref.stream[p])
			got, ok := res.values[f.def.Name]
			cov.queries[f.def.Name]++
			if !ok {
				t.Errorf("query %s at %v: feature %s missing", profile, res.at, f.def.Name)
				failed = true
				continue
			}
			if want != nil && want != any(int64(0)) && want != any(0.0) {
				cov.nonEmpty[f.def.Name]++
			}
			if f.def.Agg == "count_distinct" && distinct > int64(bound) {
				cov.estimated++
				est, _ := got.(int64)
				if math.Abs(float64(est-distinct)) > features.HLLErrorBound*float64(distinct)+1 {
					t.Errorf("seed %d: %s of %s at %v = %v, want %d within %.2f%%", seed, f.def.Name, profile, res.at, got, distinct, 100*features.HLLErrorBound)
					failed = true
				}
				continue
			}
			if f.def.Agg == "count_distinct" {
				cov.exactDistinct++
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("seed %d: %s of %s at %v = %#v, want %#v", seed, f.def.Name, profile, res.at, got, want)
				failed = true
			}
		}
		if failed {
			t.FailNow()
		}
	}

	merges := 0
	for i := 0; i < nEvents; i++ {
		clock = clock.Add(g.gap())
		if merges < 2 && len(live) > 2 && rng.IntN(nEvents/3) == 0 {
			// Fold a later profile into an earlier one, as identity does.
			a, b := rng.IntN(len(live)), rng.IntN(len(live))
			if a != b {
				to, from := live[min(a, b)], live[max(a, b)]
				pf, pt := ref.partition(from), ref.partition(to)
				kind := byte('R')
				if pf == pt {
					kind = 'L'
				}
				ts := ref.stream[pf]
				if err := d.Pipe(topicMerges, []byte(from), append([]byte{kind}, to...), time.UnixMilli(ts)); err != nil {
					t.Fatal(err)
				}
				if err := d.Drain(nil); err != nil {
					t.Fatal(err)
				}
				ref.advance(pt, ts)
				ref.events[to] = append(ref.events[to], ref.events[from]...)
				delete(ref.events, from)
				live = slices.DeleteFunc(live, func(p string) bool { return p == from })
				merges++
				cov.merges++
				query(to, ref.stream[pt])
			}
		}
		profile := live[rng.IntN(len(live))]
		ts := clock.Add(-g.jitter())
		if rng.IntN(3) > 0 {
			ts = ts.Truncate(time.Second) // same-second events: ties for first and last
		} else {
			ts = ts.Add(-time.Duration(rng.IntN(1000)) * time.Millisecond)
		}
		e := g.event(ts.UnixMilli())
		ref.arrive(profile, e)
		if err := d.Pipe(topicEvents, []byte(profile), e.json(), ts); err != nil {
			t.Fatal(err)
		}
		if evs := ref.events[profile]; len(evs) > 0 && rng.Float64() < 0.15 {
			// At the edge of a short window: the last moment a recent
			// event counts, or the first it does not. Random times
			// rarely land there.
			e := evs[len(evs)-1-rng.IntN(min(len(evs), 5))]
			w := []string{"1m", "1h"}[rng.IntN(2)]
			span, _ := config.ParseWindow(w)
			tile := refTiles[w].Milliseconds()
			at := e.ts - e.ts%tile + span.Milliseconds() + int64(rng.IntN(2))
			if at >= ref.stream[ref.partition(profile)] {
				query(profile, at)
			}
		}
		if rng.Float64() < 0.3 {
			var off time.Duration
			switch r := rng.Float64(); {
			case r < 0.3:
				off = time.Duration(rng.IntN(120)) * time.Second
			case r < 0.45:
				off = time.Duration(rng.IntN(7200)) * time.Second
			case r < 0.5:
				off = time.Duration(rng.IntN(3*86400)) * time.Second
			}
			q := live[rng.IntN(len(live))]
			query(q, ref.stream[ref.partition(q)]+off.Milliseconds())
		}
	}
	// Long after the last event: every windowed value falls to empty on
	// its own, lifetime ones stay, and Expire leaves no windowed tile.
	last := slices.Max(ref.stream)
	for _, off := range []time.Duration{time.Second, 30 * time.Second, time.Minute, 5 * time.Minute, time.Hour, 2 * time.Hour,
		day, 7 * day, 8 * day, 30 * day, 91 * day, 98 * day, 400 * day} {
		for _, p := range live {
			query(p, last+off.Milliseconds())
		}
	}
	for _, p := range live {
		if err := d.Pipe(topicAudits, []byte(p), nil, time.UnixMilli(ref.stream[ref.partition(p)])); err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range h.audits {
		if n != 0 {
			t.Errorf("seed %d: profile %s keeps %d bytes of windowed tiles 400 days after its last event", seed, live[i], n)
		}
	}
	var stats features.Stats
	for _, s := range h.sets {
		st := s.Stats()
		stats.Late += st.Late
		stats.NotNumeric += st.NotNumeric
	}
	if stats.Late != ref.late || stats.NotNumeric != ref.notNumeric {
		t.Errorf("seed %d: stats late %d, not numeric %d; the reference counted %d and %d", seed, stats.Late, stats.NotNumeric, ref.late, ref.notNumeric)
	}
	cov.late += int(ref.late)
	return !t.Failed()
}
