package features

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/state"
	"github.com/valyala/fastjson"
)

// ErrCorruptTile is returned, wrapped with the feature and what was wrong,
// when a stored tile or an Import record cannot be decoded.
var ErrCorruptTile = errors.New("features: corrupt tile")

// Options configures a Set. The zero value takes every default.
type Options struct {
	// AllowedLateness sets how far behind the stream time an event may be
	// and still count, overriding the default 7 days; later events are
	// ignored and counted (Stats.Late). Negative is an error; for no
	// lateness at all, use a millisecond.
	AllowedLateness time.Duration
	// DistinctExact sets how many distinct values a count_distinct tile
	// (or lifetime aggregate) keeps exactly before it becomes a
	// HyperLogLog sketch, overriding the default 1,000 (8 KB a tile).
	DistinctExact int
	// FrequentCap sets how many values a most_frequent tile counts,
	// overriding the default 64; see doc.go for what is exact.
	FrequentCap int
	// Properties lists known property names by track event name or call
	// type, as tracking plans name events. A feature of a listed event
	// whose filter or property names another property is refused by
	// Compile, with a suggestion; features of unlisted events accept any
	// name. nil lists none.
	Properties map[string][]string
	// Registerer, when set, registers the counters behind Stats. Sets
	// sharing one Registerer share the counters.
	Registerer prometheus.Registerer
}

const (
	defaultLateness      = 7 * day
	defaultDistinctExact = 1000
	defaultFrequentCap   = 64
)

func (o *Options) ensureDefaults() {
	if o.AllowedLateness == 0 {
		o.AllowedLateness = defaultLateness
	}
	if o.DistinctExact == 0 {
		o.DistinctExact = defaultDistinctExact
	}
	if o.FrequentCap == 0 {
		o.FrequentCap = defaultFrequentCap
	}
}

func (o *Options) validate() error {
	var errs []error
	if o.AllowedLateness < 0 {
		errs = append(errs, fmt.Errorf("allowed lateness must not be negative, got %s", o.AllowedLateness))
	}
	if o.DistinctExact < 0 {
		errs = append(errs, fmt.Errorf("distinct exact bound must be positive, got %d", o.DistinctExact))
	}
	if o.FrequentCap < 0 {
		errs = append(errs, fmt.Errorf("most_frequent cap must be positive, got %d", o.FrequentCap))
	}
	return errors.Join(errs...)
}

// callTypes are the Segment calls a feature can select by type.
var callTypes = []string{"track", "identify", "page", "screen", "group", "alias"}

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// feature is one compiled definition.
type feature struct {
	def    config.Feature
	name   string
	agg    aggKind
	path   []string // the property as a path into properties; nil for a plain count
	window int64    // ms; 0 for lifetime
	tile   int64    // ms; 0 for lifetime
	// suffix ends the feature's store keys: name 0x00 fingerprint.
	suffix []byte
	filter *filterProg // nil without a filter
	// event is def.Event boxed once, for filters: an event this feature
	// selects by name has that name.
	event any

	// Per Set, never shared by clones.
	run                    filterRun
	filterErrs, notNumeric prometheus.Counter // nil without a Registerer
}

// Info describes a compiled feature.
type Info struct {
	// Name is the feature's name, the key of its value in Values.
	Name string
	// Key identifies the definition's meaning (its name and a hash of
	// what its tiles hold): a redefinition has a new Key.
	Key string
	// Def is the definition.
	Def config.Feature
	// Window is the window's length; 0 for lifetime.
	Window time.Duration
	// Tile is the tile size, the step in which the value can fall as time
	// passes; 0 for lifetime.
	Tile time.Duration
}

// Set is a compiled set of feature definitions: it applies events to the
// tiles of a profile's features and reads their values. A Set belongs to
// one task goroutine (it reuses buffers); Clone makes another.
type Set struct {
	opts     Options
	lateness int64 // ms
	features []*feature
	byEvent  map[string][]*feature // track event name → the features selecting it
	byType   map[string][]*feature // call type → the features selecting it
	bySuffix map[string]*feature   // key suffix → feature, for Import
	// infos describes the features once: the profile stage asks for them
	// on every event.
	infos   []Info
	metrics *metrics

	// Scratch, reused across calls. INVARIANT: key[:keyLen] is the
	// prefix of the profile being worked on.
	key     []byte
	keyLen  int
	tile    []byte
	canon   []byte
	export  []byte
	changed []string
	sc      scratch
	stats   Stats
}

// Compile validates and compiles feature definitions. It reports every
// mistake it finds, each naming its feature, joined into one error.
func Compile(defs []config.Feature, opts Options) (*Set, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("feature options: %w", err)
	}
	opts.ensureDefaults()
	var errs []error
	seen := make(map[string]bool, len(defs))
	fs := make([]*feature, 0, len(defs))
	for i, d := range defs {
		f, ferrs := compileFeature(d, opts)
		label := fmt.Sprintf("feature %q", d.Name)
		if d.Name == "" {
			label = fmt.Sprintf("feature #%d", i+1)
		}
		if d.Name != "" && seen[d.Name] {
			ferrs = append(ferrs, errors.New("name: declared twice"))
		}
		seen[d.Name] = true
		for _, e := range ferrs {
			errs = append(errs, fmt.Errorf("%s: %w", label, e))
		}
		if len(ferrs) == 0 {
			fs = append(fs, f)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s := &Set{opts: opts, lateness: opts.AllowedLateness.Milliseconds(), features: fs, metrics: newMetrics(opts.Registerer)}
	s.index()
	return s, nil
}

// compileFeature compiles one definition, returning every mistake in it.
func compileFeature(d config.Feature, opts Options) (*feature, []error) {
	var errs []error
	f := &feature{def: d, name: d.Name, event: d.Event}
	if !namePattern.MatchString(d.Name) {
		errs = append(errs, fmt.Errorf("name: must match [a-z][a-z0-9_]*, got %q", d.Name))
	}
	selector := d.Event
	switch {
	case d.Event == "" && d.Type == "":
		errs = append(errs, errors.New("needs an event or a type"))
	case d.Event != "" && d.Type != "":
		errs = append(errs, fmt.Errorf("needs an event or a type, not both (event %q, type %q)", d.Event, d.Type))
	case d.Type != "":
		selector = d.Type
		if !slices.Contains(callTypes, d.Type) {
			errs = append(errs, fmt.Errorf("type: must be one of %s, got %q", strings.Join(callTypes, ", "), d.Type))
		}
	}
	known, isKnown := opts.Properties[selector]
	if isKnown && known == nil {
		known = []string{} // listed with no properties: every name is unknown
	}
	var ok bool
	if f.agg, ok = aggNames[d.Agg]; !ok {
		errs = append(errs, fmt.Errorf("agg: must be count, sum, min, max, avg, count_distinct, first, last or most_frequent, got %q", d.Agg))
	}
	switch {
	case d.Property == "" && ok && f.agg != aggCount:
		errs = append(errs, fmt.Errorf("property: is required for agg %s", d.Agg))
	case d.Property != "":
		f.path = strings.Split(d.Property, ".")
		if slices.Contains(f.path, "") {
			errs = append(errs, fmt.Errorf("property: %q has an empty path segment", d.Property))
		} else if isKnown && !slices.Contains(known, f.path[0]) {
			msg := fmt.Sprintf("property: unknown property %q of %q", f.path[0], selector)
			if s := config.Suggest(f.path[0], known); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			errs = append(errs, errors.New(msg))
		}
	}
	w, err := config.ParseWindow(d.Window)
	if err != nil {
		errs = append(errs, fmt.Errorf("window: %w", err))
	}
	f.window = w.Milliseconds()
	f.tile = TileSize(w).Milliseconds()
	if d.Filter != "" {
		var kn []string
		if isKnown {
			kn = known
		}
		if f.filter, err = compileFilter(d.Filter, kn); err != nil {
			errs = append(errs, fmt.Errorf("filter: %w", err))
		}
	}
	f.suffix = append(append([]byte(d.Name), 0), fingerprint(d, f.tile)...)
	return f, errs
}

// fingerprint hashes what a feature's tiles mean, so that a redefinition
// reads fresh tiles instead of misreading old ones (doc.go, Store layout).
func fingerprint(d config.Feature, tile int64) []byte {
	h := xxhash.New()
	for _, s := range []string{"v1", d.Event, d.Type, d.Filter, d.Agg, d.Property, d.Window, fmt.Sprint(tile)} {
		h.WriteString(s)
		h.Write([]byte{0})
	}
	return binary.BigEndian.AppendUint64(nil, h.Sum64())
}

// index builds the look-ups from events to features.
func (s *Set) index() {
	s.byEvent = make(map[string][]*feature)
	s.byType = make(map[string][]*feature)
	s.bySuffix = make(map[string]*feature, len(s.features))
	s.infos = make([]Info, len(s.features))
	for i, f := range s.features {
		s.infos[i] = Info{Name: f.name, Key: fmt.Sprintf("%x", f.suffix), Def: f.def,
			Window: time.Duration(f.window) * time.Millisecond, Tile: time.Duration(f.tile) * time.Millisecond}
		if f.def.Event != "" {
			s.byEvent[f.def.Event] = append(s.byEvent[f.def.Event], f)
		} else {
			s.byType[f.def.Type] = append(s.byType[f.def.Type], f)
		}
		s.bySuffix[string(f.suffix)] = f
		if s.metrics != nil {
			f.filterErrs = s.metrics.filterErrs.WithLabelValues(f.name)
			f.notNumeric = s.metrics.notNumeric.WithLabelValues(f.name)
		}
	}
}

// Clone returns a Set with the same definitions and options, its own
// buffers and zero Stats, for another goroutine.
func (s *Set) Clone() *Set {
	c := &Set{opts: s.opts, lateness: s.lateness, metrics: s.metrics}
	for _, f := range s.features {
		g := &feature{def: f.def, name: f.name, agg: f.agg, path: f.path, window: f.window,
			tile: f.tile, suffix: f.suffix, filter: f.filter, event: f.event}
		c.features = append(c.features, g)
	}
	c.index()
	return c
}

// Features describes the compiled features in definition order. The slice
// is the Set's own: callers must not modify it.
func (s *Set) Features() []Info { return s.infos }

// Stats returns what the Set has left out since it was compiled.
func (s *Set) Stats() Stats { return s.stats }

// beginKey starts the store keys of profile.
func (s *Set) beginKey(profile []byte) {
	s.key = append(binary.AppendUvarint(s.key[:0], uint64(len(profile))), profile...)
	s.keyLen = len(s.key)
}

// keyOf returns the store key of f for the profile of the last beginKey.
// INVARIANT: valid until the next keyOf or beginKey.
func (s *Set) keyOf(f *feature) []byte {
	s.key = append(s.key[:s.keyLen], f.suffix...)
	return s.key
}

// callTypeValues are the call types boxed once, so that filters see them
// without an allocation per event.
var callTypeValues = func() map[string]any {
	m := make(map[string]any, len(callTypes))
	for _, t := range callTypes {
		m[t] = t
	}
	return m
}()

// event is what Update reads once from an event for all its features.
type event struct {
	typ, name []byte
	props     *fastjson.Value
	ts, now   int64
	// typV and nameV are typ and name as filters see them, made on the
	// first filter that needs them.
	typV, nameV any
}

// Update applies one event (Segment JSON, as the profile stage parsed it)
// to the features of profile that it matches, each in the one tile its
// timestamp falls in. at is the task's stream time: an event older than at
// minus the allowed lateness is ignored and counted (Stats.Late), as is one
// without a usable timestamp (Stats.Untimed). It returns the names of the
// features whose value as of at may have changed; the slice is reused by
// the next Update. An error means a tile could not be read or written.
func (s *Set) Update(w *state.Window, profile []byte, ev *fastjson.Value, at time.Time) (changed []string, err error) {
	s.changed = s.changed[:0]
	e := event{typ: ev.GetStringBytes("type")}
	var byName []*feature
	if string(e.typ) == "track" {
		e.name = ev.GetStringBytes("event")
		byName = s.byEvent[string(e.name)]
	}
	byType := s.byType[string(e.typ)]
	if len(byName)+len(byType) == 0 {
		return nil, nil
	}
	ts, ok := eventTime(ev)
	if !ok {
		s.stats.Untimed++
		if s.metrics != nil {
			s.metrics.untimed.Inc()
		}
		return nil, nil
	}
	e.ts, e.now = ts, at.UnixMilli()
	if e.ts < e.now-s.lateness {
		s.stats.Late++
		if s.metrics != nil {
			s.metrics.late.Inc()
		}
		return nil, nil
	}
	if string(e.typ) == "identify" || string(e.typ) == "group" {
		e.props = ev.Get("traits")
	} else {
		e.props = ev.Get("properties")
	}
	s.beginKey(profile)
	for _, fs := range [2][]*feature{byName, byType} {
		for _, f := range fs {
			if err := s.updateOne(w, f, &e); err != nil {
				return nil, fmt.Errorf("updating feature %q: %w", f.name, err)
			}
		}
	}
	return s.changed, nil
}

// updateOne applies event e to feature f.
func (s *Set) updateOne(w *state.Window, f *feature, e *event) error {
	if f.filter != nil {
		if e.typV == nil {
			if e.typV = callTypeValues[string(e.typ)]; e.typV == nil {
				e.typV = string(e.typ)
			}
		}
		name := f.event
		if f.def.Event == "" {
			if e.nameV == nil {
				e.nameV = string(e.name)
			}
			name = e.nameV
		}
		ok, err := f.run.match(f.filter, e.typV, name, e.props)
		if err != nil {
			s.stats.FilterErrors++
			if f.filterErrs != nil {
				f.filterErrs.Inc()
			}
			return nil
		}
		if !ok {
			return nil
		}
	}
	in := input{ts: e.ts}
	if f.path != nil {
		v := e.props.Get(f.path...)
		if v == nil || v.Type() == fastjson.TypeNull {
			return nil
		}
		switch f.agg {
		case aggSum, aggMin, aggMax, aggAvg:
			x, ok := numberOf(v)
			if !ok {
				s.stats.NotNumeric++
				if f.notNumeric != nil {
					f.notNumeric.Inc()
				}
				return nil
			}
			in.x = x
		case aggFirst, aggLast, aggMostFrequent, aggCountDistinct:
			s.canon, _ = appendCanonical(s.canon[:0], v)
			in.canon = s.canon
			in.hash = xxhash.Sum64(s.canon)
		}
	}
	var start int64
	if f.tile > 0 {
		start = alignDown(e.ts, f.tile)
	}
	key := s.keyOf(f)
	old, err := w.Get(key, start)
	if err != nil {
		return err
	}
	tile, changed, err := f.apply(&s.sc, s.tile[:0], old, &in, s.opts.DistinctExact, s.opts.FrequentCap)
	if err != nil {
		return fmt.Errorf("tile at %d: %w", start, err)
	}
	if !changed {
		return nil
	}
	s.tile = tile[:0]
	if err := w.Put(key, start, tile); err != nil {
		return err
	}
	if f.tile == 0 || start >= alignUp(e.now-f.window, f.tile) {
		s.changed = append(s.changed, f.name)
	}
	return nil
}

// Values returns every feature's value for profile as of now, the stream
// time: windowed features combine their tiles wholly inside
// [now − window, now], lifetime ones their running aggregate. count and
// count_distinct are int64, sum float64, and all three are 0 for an empty
// window; min, max and avg are float64, first, last and most_frequent the
// property's value (string, float64, bool, map[string]any or []any), and
// all six are nil for an empty window.
//
// Unlike the other methods, Values uses none of the Set's buffers: it may
// run on any goroutine, concurrently with the task's calls, given a store
// view that allows that (state.DB.CommittedWindow).
func (s *Set) Values(w *state.Window, profile []byte, now time.Time) (map[string]any, error) {
	out := make(map[string]any, len(s.features))
	if err := s.ValuesInto(out, w, profile, now); err != nil {
		return nil, err
	}
	return out, nil
}

// ValuesInto is Values writing into out, for a caller that reads one
// profile after another into the same map (the profile stage, per event):
// it sets a key for every feature of the Set and touches no other, so a
// map cleared before the call ends up as Values would have returned it.
// On an error, out may hold some of the features.
func (s *Set) ValuesInto(out map[string]any, w *state.Window, profile []byte, now time.Time) error {
	a := accPool.Get().(*acc)
	defer accPool.Put(a)
	prefix := append(binary.AppendUvarint(a.key[:0], uint64(len(profile))), profile...)
	t := now.UnixMilli()
	for _, f := range s.features {
		a.reset()
		key := append(prefix, f.suffix...)
		a.key = key
		var err error
		if f.tile == 0 {
			var tile []byte
			if tile, err = w.Get(key, 0); err == nil && tile != nil {
				err = a.add(f, tile)
			}
		} else {
			from := max(alignUp(t-f.window, f.tile), 0)
			err = w.Fetch(key, from, t+1, func(_ int64, tile []byte) error {
				return a.add(f, tile)
			})
		}
		if err != nil {
			return fmt.Errorf("reading feature %q: %w", f.name, err)
		}
		v, err := a.value(f)
		if err != nil {
			return fmt.Errorf("reading feature %q: %w", f.name, err)
		}
		out[f.name] = v
	}
	return nil
}

// accPool holds Values' accumulators, which keep their buffers between
// reads.
var accPool = sync.Pool{New: func() any { return new(acc) }}

// Expire deletes the tiles of profile that no read as of now − lateness or
// later can reach (doc.go, Expiry). A stream-time punctuation calls it, so
// that stored state shrinks as values fall. Values are right without it:
// it reclaims space, it does not make values fall, so a sweep of the
// task's profiles every hour or so is plenty.
//
// from is the profile's tile floor (doc.go, Expiry): a time no windowed
// tile of the profile holds an event before. A feature whose cut-off is
// at or before it has nothing to delete and costs nothing; any other
// costs a range scan. Expire returns the floor to keep after it. Pass 0 when no floor is
// kept: every windowed feature is scanned.
func (s *Set) Expire(w *state.Window, profile []byte, now time.Time, from int64) (int64, error) {
	s.beginKey(profile)
	t := now.UnixMilli()
	lowest := int64(math.MaxInt64) // the lowest cut-off of a windowed feature
	for _, f := range s.features {
		if f.tile == 0 {
			continue
		}
		cut := alignUp(t-s.lateness-f.window, f.tile)
		lowest = min(lowest, cut)
		// A tile starting before cut holds an event before it (cut is a
		// multiple of the tile size), so none does when from ≥ cut.
		if cut <= 0 || from >= cut {
			continue
		}
		if _, err := w.DeleteBefore(s.keyOf(f), cut); err != nil {
			return from, fmt.Errorf("expiring feature %q: %w", f.name, err)
		}
	}
	if lowest == math.MaxInt64 {
		return from, nil // no windowed feature: nothing to bound
	}
	// Every windowed feature now holds only tiles from its cut-off on,
	// the skipped ones because from was at least theirs.
	return max(from, lowest), nil
}

// NoTiles is the tile floor (doc.go, Expiry) of a profile with no
// windowed tiles: Expire passes over every feature of such a profile.
const NoTiles int64 = math.MaxInt64

// UpdateFloor returns floor lowered to the time of event ev, which Update
// is about to apply (or has applied) to the profile. An event without a
// usable time leaves it as it is: Update ignores such events.
func UpdateFloor(floor int64, ev *fastjson.Value) int64 {
	if ts, ok := eventTime(ev); ok && ts < floor {
		return ts
	}
	return floor
}

// exportVersion starts every Export, so that a future format is told apart.
const exportVersion byte = 1

// Export appends to dst every tile of profile, in a form Import folds into
// another profile, possibly in another task's store: how the loser of an
// identity merge sends its features to the winner's partition.
func (s *Set) Export(dst []byte, w *state.Window, profile []byte) ([]byte, error) {
	dst = append(dst, exportVersion)
	s.beginKey(profile)
	for _, f := range s.features {
		err := w.Fetch(s.keyOf(f), 0, math.MaxInt64, func(start int64, tile []byte) error {
			dst = binary.AppendUvarint(dst, uint64(len(f.suffix)))
			dst = append(dst, f.suffix...)
			dst = binary.AppendUvarint(dst, uint64(start))
			dst = binary.AppendUvarint(dst, uint64(len(tile)))
			dst = append(dst, tile...)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("exporting feature %q: %w", f.name, err)
		}
	}
	return dst, nil
}

// Import folds tiles that Export wrote into profile's, tile by tile (tile
// boundaries are absolute, so they align). Tiles of features this Set does
// not define, or defines differently, are skipped: their meaning is gone.
//
// REQUIRES: the importing task's stream time is at least the exporting
// task's at the time of the export (send the export with that stream time
// as its record timestamp). Otherwise values as of the moments between the
// two may miss tiles that Expire had already deleted at the exporter.
//
// It returns the tile floor of what it imported: the earliest start of a
// windowed tile, or NoTiles; the profile's floor is the lower of its own
// and that.
func (s *Set) Import(w *state.Window, profile, exported []byte) (int64, error) {
	if len(exported) == 0 || exported[0] != exportVersion {
		return 0, fmt.Errorf("importing features: unknown export format: %w", ErrCorruptTile)
	}
	s.beginKey(profile)
	floor := NoTiles
	for p := exported[1:]; len(p) > 0; {
		suffix, p1, ok1 := readBytes(p)
		start, p2, ok2 := readUvarint(p1)
		tile, p3, ok3 := readBytes(p2)
		if !ok1 || !ok2 || !ok3 || start > math.MaxInt64 {
			return 0, fmt.Errorf("importing features: truncated record at byte %d: %w", len(exported)-len(p), ErrCorruptTile)
		}
		p = p3
		f := s.bySuffix[string(suffix)]
		if f == nil {
			continue
		}
		if err := s.fold(w, f, int64(start), tile); err != nil {
			return 0, fmt.Errorf("importing feature %q: %w", f.name, err)
		}
		if f.tile != 0 {
			floor = min(floor, int64(start))
		}
	}
	return floor, nil
}

// readUvarint reads a uvarint off the front of p.
func readUvarint(p []byte) (uint64, []byte, bool) {
	n, k := binary.Uvarint(p)
	if k <= 0 {
		return 0, p, false
	}
	return n, p[k:], true
}

// readBytes reads a uvarint length and that many bytes off the front of p.
func readBytes(p []byte) ([]byte, []byte, bool) {
	n, rest, ok := readUvarint(p)
	if !ok || n > uint64(len(rest)) {
		return nil, p, false
	}
	return rest[:n], rest[n:], true
}

// fold merges tile into f's tile at start of the current profile.
func (s *Set) fold(w *state.Window, f *feature, start int64, tile []byte) error {
	key := s.keyOf(f)
	old, err := w.Get(key, start)
	if err != nil {
		return err
	}
	if old != nil {
		if tile, err = f.merge(&s.sc, s.tile[:0], old, tile, s.opts.DistinctExact, s.opts.FrequentCap); err != nil {
			return fmt.Errorf("tile at %d: %w", start, err)
		}
		s.tile = tile[:0]
	}
	return w.Put(key, start, tile)
}

// Delete deletes every tile of profile.
func (s *Set) Delete(w *state.Window, profile []byte) error {
	s.beginKey(profile)
	for _, f := range s.features {
		if _, err := w.DeleteBefore(s.keyOf(f), math.MaxInt64); err != nil {
			return fmt.Errorf("deleting feature %q: %w", f.name, err)
		}
	}
	return nil
}

// Merge folds the tiles of profile from into those of profile to, in the
// same store, and deletes from's: what an identity merge does to features
// when both profiles live in one task. Afterwards to's values are those of
// the union of both profiles' events, and to's tile floor is the lower of
// the two profiles' floors.
func (s *Set) Merge(w *state.Window, from, to []byte) error {
	if bytes.Equal(from, to) {
		return nil
	}
	exported, err := s.Export(s.export[:0], w, from)
	if err != nil {
		return fmt.Errorf("merging profile %q into %q: %w", from, to, err)
	}
	s.export = exported[:0]
	if _, err := s.Import(w, to, exported); err != nil {
		return fmt.Errorf("merging profile %q into %q: %w", from, to, err)
	}
	if err := s.Delete(w, from); err != nil {
		return fmt.Errorf("merging profile %q into %q: %w", from, to, err)
	}
	return nil
}

// Only returns a Set of the one feature of s whose Info.Key is key, with
// s's options: it writes the same tiles as s does for that feature, which
// is how a new feature is computed from a profile's history without
// touching the others.
func (s *Set) Only(key string) (*Set, error) {
	for _, info := range s.Features() {
		if info.Key == key {
			return Compile([]config.Feature{info.Def}, s.opts)
		}
	}
	return nil, fmt.Errorf("features: no feature with key %s", key)
}

// Select returns a Set of the features of s called names (unknown names
// are ignored), with s's options: a rule that reads two features of
// eight reads only their tiles.
func (s *Set) Select(names []string) (*Set, error) {
	var defs []config.Feature
	for _, info := range s.Features() {
		if slices.Contains(names, info.Def.Name) {
			defs = append(defs, info.Def)
		}
	}
	return Compile(defs, s.opts)
}
