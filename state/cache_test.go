package state_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tessera-cdp/tessera/state"
)

// model is the reference the read cache is checked against: a map of what
// the task sees (work) and of what was committed. Window tiles are keys
// "key@start" with start zero-padded, so that the keys of one window key
// sort by start.
type model struct {
	work, committed map[string]string
}

func tileName(key string, start int64) string { return fmt.Sprintf("%s@%06d", key, start) }

func (m *model) fetch(key string, from, to int64) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m.work)) {
		name, ok := strings.CutPrefix(k, "win/"+key+"@")
		if !ok {
			continue
		}
		start, _ := strconv.ParseInt(name, 10, 64)
		if start >= from && start < to {
			out = append(out, fmt.Sprintf("%d=%s", start, m.work[k]))
		}
	}
	return out
}

// cacheOps are the property test's operations over a small key space:
// window keys of which one is a prefix of another, tile starts at 1000 ms
// steps, and values of a few sizes, the empty one included.
var (
	cacheKeys   = []string{"a", "ab", "b", "", "c", "d", "e", "f"}
	cacheStarts = []int64{0, 1000, 2000, 3000, 4000, 5000}
)

func randValue(rng *rand.Rand) []byte {
	switch rng.IntN(5) {
	case 0:
		return []byte{}
	case 1:
		return bytes.Repeat([]byte{'x'}, 100+rng.IntN(200)) // outgrows small bounds
	}
	return []byte(fmt.Sprintf("v%d", rng.IntN(1000)))
}

// TestReadCacheMatchesPebble runs random sequences of writes, reads,
// commits and aborts against three stores that must agree after every
// step: a DB with a small read cache (so that eviction and entries too
// large to keep happen), a DB without one, and a map model that drops
// uncommitted writes on Discard. Both DBs are on disk. A failure names its
// seed: go test ./state -run 'TestReadCacheMatchesPebble/seed=N'.
func TestReadCacheMatchesPebble(t *testing.T) {
	seeds, steps := 24, 1500
	if testing.Short() {
		seeds, steps = 6, 500
	}
	for seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			runCacheProperty(t, uint64(seed), steps)
		})
	}
}

func runCacheProperty(t *testing.T, seed uint64, steps int) {
	rng := rand.New(rand.NewPCG(seed, 99))
	// Bounds from one where most entries are evicted at once to one where
	// all fit; an entry above an eighth of the bound is not kept.
	limit := []int64{1536, 4 << 10, 64 << 10}[seed%3]
	dirA, dirB := t.TempDir(), t.TempDir()
	cached, err := state.Open(dirA, state.Options{CacheSize: 1 << 20, MemTableSize: 1 << 20, ReadCacheSize: limit})
	must(t, err)
	defer cached.Close()
	plain, err := state.Open(dirB, state.Options{CacheSize: 1 << 20, MemTableSize: 1 << 20, ReadCacheSize: -1})
	must(t, err)
	defer plain.Close()
	recA, recB := newCycleRecorder(), newCycleRecorder()
	cached.SetChangeLogger(recA)
	plain.SetChangeLogger(recB)
	m := &model{work: map[string]string{}, committed: map[string]string{}}

	// Half the seeds repack the cache's arenas at nearly every insertion
	// and resize, moving every entry's chunks between the steps.
	repacking := seed%4 >= 2
	if repacking {
		state.SetRepackSlack(cached, 0)
		defer func() {
			if !t.Failed() && cached.CacheStats().Repacks == 0 {
				t.Errorf("seed %d: no repack", seed)
			}
		}()
	}
	// Odd seeds build the absent-key filters small, so that they chain
	// and are rebuilt after a few writes.
	if seed%2 == 1 {
		defer state.SetFilterMinCapacity(4)()
	}
	// Store "nc" takes the same writes as "kv" but is not cached, as the
	// dedupe store: its reads go through its filter straight to Pebble.
	nc := cached.KeyValue("nc")
	nc.NoCache()
	type pair struct {
		kv  [4]*state.KeyValue
		win [2]*state.Window
	}
	st := pair{
		kv:  [4]*state.KeyValue{cached.KeyValue("kv"), plain.KeyValue("kv"), nc, plain.KeyValue("nc")},
		win: [2]*state.Window{cached.Window("win"), plain.Window("win")},
	}
	var trace []string
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d, step %d (%s): %s\nlast steps:\n  %s", seed, len(trace)-1, trace[len(trace)-1],
			fmt.Sprintf(format, args...), strings.Join(trace[max(0, len(trace)-15):], "\n  "))
	}
	getKV := func(key string) {
		t.Helper()
		want, ok := m.work["kv/"+key]
		for i, kv := range st.kv {
			v, err := kv.Get([]byte(key))
			must(t, err)
			if (v != nil) != ok || string(v) != want {
				fail("db %d: Get(%q) = %q (nil %v), model %q (present %v)", i, key, v, v == nil, want, ok)
			}
		}
	}
	getTile := func(key string, start int64) {
		t.Helper()
		want, ok := m.work["win/"+tileName(key, start)]
		for i, w := range st.win {
			v, err := w.Get([]byte(key), start)
			must(t, err)
			if (v != nil) != ok || string(v) != want {
				fail("db %d: Window.Get(%q, %d) = %q, model %q (present %v)", i, key, start, v, want, ok)
			}
		}
	}
	fetch := func(key string, from, to int64) {
		t.Helper()
		want := fmt.Sprint(m.fetch(key, from, to))
		for i, w := range st.win {
			var got []string
			must(t, w.Fetch([]byte(key), from, to, func(start int64, v []byte) error {
				got = append(got, fmt.Sprintf("%d=%s", start, v))
				return nil
			}))
			if fmt.Sprint(got) != want {
				fail("db %d: Fetch(%q, %d, %d) = %v, model %v", i, key, from, to, got, want)
			}
		}
	}
	checkAll := func() {
		t.Helper()
		for _, k := range cacheKeys {
			getKV(k)
			fetch(k, 0, math.MaxInt64)
		}
		for i, db := range []*state.DB{cached, plain} {
			var got []string
			must(t, db.CommittedWindow("win").Fetch([]byte("a"), 0, math.MaxInt64, func(start int64, v []byte) error {
				got = append(got, fmt.Sprintf("%d=%s", start, v))
				return nil
			}))
			committed := &model{work: m.committed}
			if want := fmt.Sprint(committed.fetch("a", 0, math.MaxInt64)); fmt.Sprint(got) != want {
				fail("db %d: the committed view sees %v, want %v", i, got, want)
			}
		}
	}

	for range steps {
		key := cacheKeys[rng.IntN(len(cacheKeys))]
		start := cacheStarts[rng.IntN(len(cacheStarts))]
		switch op := rng.IntN(100); {
		case op < 15:
			v := randValue(rng)
			trace = append(trace, fmt.Sprintf("kv.Put(%q, %d bytes)", key, len(v)))
			for _, kv := range st.kv {
				must(t, kv.Put([]byte(key), v))
			}
			m.work["kv/"+key] = string(v)
		case op < 20:
			trace = append(trace, fmt.Sprintf("kv.Delete(%q)", key))
			for _, kv := range st.kv {
				must(t, kv.Delete([]byte(key)))
			}
			delete(m.work, "kv/"+key)
		case op < 31:
			trace = append(trace, fmt.Sprintf("kv.Get(%q)", key))
			getKV(key)
		case op < 35:
			// A scan reads the batch, which lacks the writes the
			// cache holds back.
			trace = append(trace, fmt.Sprintf("kv.Range(%q, nil)", key))
			var want []string
			for _, k := range slices.Sorted(maps.Keys(m.work)) {
				if name, ok := strings.CutPrefix(k, "kv/"); ok && name >= key {
					want = append(want, name+"="+m.work[k])
				}
			}
			for i, kv := range st.kv {
				var got []string
				must(t, kv.Range([]byte(key), nil, func(k, v []byte) error {
					got = append(got, string(k)+"="+string(v))
					return nil
				}))
				if fmt.Sprint(got) != fmt.Sprint(want) {
					fail("db %d: Range(%q, nil) = %v, model %v", i, key, got, want)
				}
			}
		case op < 50:
			v := randValue(rng)
			if rng.IntN(8) == 0 {
				v = nil
			}
			trace = append(trace, fmt.Sprintf("win.Put(%q, %d, %d bytes, nil %v)", key, start, len(v), v == nil))
			for _, w := range st.win {
				must(t, w.Put([]byte(key), start, v))
			}
			if v == nil {
				delete(m.work, "win/"+tileName(key, start))
			} else {
				m.work["win/"+tileName(key, start)] = string(v)
			}
		case op < 58:
			trace = append(trace, fmt.Sprintf("win.Get(%q, %d)", key, start))
			getTile(key, start)
		case op < 72:
			from := cacheStarts[rng.IntN(len(cacheStarts))] - int64(rng.IntN(2))
			to := from + int64(rng.IntN(7000))
			trace = append(trace, fmt.Sprintf("win.Fetch(%q, %d, %d)", key, from, to))
			fetch(key, max(from, 0), to)
		case op < 78:
			cut := start + int64(rng.IntN(2))
			trace = append(trace, fmt.Sprintf("win.DeleteBefore(%q, %d)", key, cut))
			var ns [2]int
			for i, w := range st.win {
				n, err := w.DeleteBefore([]byte(key), cut)
				must(t, err)
				ns[i] = n
			}
			n := 0
			for k := range m.work {
				if name, ok := strings.CutPrefix(k, "win/"+key+"@"); ok {
					if s, _ := strconv.ParseInt(name, 10, 64); s < cut {
						delete(m.work, k)
						n++
					}
				}
			}
			if ns[0] != n || ns[1] != n {
				fail("DeleteBefore deleted %v, model %d", ns, n)
			}
		case op < 82:
			// A Fetch whose fn writes the key it iterates: the running
			// Fetch goes on over what it started with.
			v := randValue(rng)
			trace = append(trace, fmt.Sprintf("win.Fetch(%q) putting %d and deleting the first tile inside", key, start))
			want := fmt.Sprint(m.fetch(key, 0, math.MaxInt64))
			for i, w := range st.win {
				var got []string
				first := true
				must(t, w.Fetch([]byte(key), 0, math.MaxInt64, func(s int64, tile []byte) error {
					got = append(got, fmt.Sprintf("%d=%s", s, tile))
					if first {
						first = false
						must(t, w.Put([]byte(key), start, v))
						must(t, w.Put([]byte(key), s, nil))
					}
					return nil
				}))
				if fmt.Sprint(got) != want {
					fail("db %d: Fetch writing inside = %v, model %v", i, got, want)
				}
			}
			if first := m.fetch(key, 0, math.MaxInt64); len(first) > 0 {
				m.work["win/"+tileName(key, start)] = string(v)
				s, _ := strconv.ParseInt(strings.SplitN(first[0], "=", 2)[0], 10, 64)
				delete(m.work, "win/"+tileName(key, s))
			}
		case op < 95:
			// Builds of the filters start at a commit; half the
			// time the test waits for them, the other half the
			// next steps write while they run.
			await := rng.IntN(2) == 0
			trace = append(trace, fmt.Sprintf("Commit (awaiting the filters %v)", await))
			must(t, cached.Commit(map[string]int64{"kv": int64(len(trace))}))
			must(t, plain.Commit(map[string]int64{"kv": int64(len(trace))}))
			recA.commit()
			recB.commit()
			// What a restore would rebuild from each changelog is
			// the same, though the cached DB held writes back.
			if a, b := recA.restored(), recB.restored(); a != b {
				fail("the changelogs restore different data:\ncached %s\nplain  %s", a, b)
			}
			if await {
				state.AwaitFilters(cached)
			}
			m.committed = maps.Clone(m.work)
			checkAll()
		default:
			trace = append(trace, "Discard")
			cached.Discard()
			plain.Discard()
			recA.discard()
			recB.discard()
			m.work = maps.Clone(m.committed)
			checkAll()
		}
		if st := cached.CacheStats(); st.Bytes > limit {
			fail("the cache holds %d bytes, over its bound of %d", st.Bytes, limit)
		}
	}
	checkAll()
	if recA.logged+int(cached.CacheStats().Absorbed) > recB.logged {
		t.Errorf("seed %d: the cached DB logged %d changes and absorbed %d, the plain one logged %d", seed, recA.logged, cached.CacheStats().Absorbed, recB.logged)
	}
	st2 := cached.CacheStats()
	t.Logf("seed %d, bound %d: %+v; logged %d changes, without the cache %d", seed, limit, st2, recA.logged, recB.logged)
	if st2.Hits == 0 || st2.Misses == 0 || st2.Clears == 0 || st2.Filtered == 0 || st2.Absorbed == 0 || st2.WrittenBack == 0 ||
		(limit < 64<<10 && st2.Evictions == 0) {
		t.Errorf("seed %d: the run missed a path of the cache: %+v", seed, st2)
	}

	// What was committed survives a reopen, identical in both.
	must(t, cached.Close())
	must(t, plain.Close())
	var dumps [2]string
	for i, dir := range []string{dirA, dirB} {
		db, err := state.Open(dir, state.Options{CacheSize: 1 << 20, MemTableSize: 1 << 20})
		must(t, err)
		var b strings.Builder
		for _, store := range []string{"kv", "nc", "win"} {
			must(t, db.RangeCommitted(store, func(k, v []byte) error {
				fmt.Fprintf(&b, "%s:%q=%q ", store, k, v)
				return nil
			}))
		}
		must(t, db.Close())
		dumps[i] = b.String()
	}
	if dumps[0] != dumps[1] {
		t.Errorf("seed %d: committed data differs after a reopen:\ncached %s\nplain  %s", seed, dumps[0], dumps[1])
	}
}

// cycleRecorder is a changelog as a restore reads it: the changes of a
// committed cycle are applied, those of a discarded one (an aborted
// transaction) are not.
type cycleRecorder struct {
	pending [][3]string // store, key, value ("\x00nil" for a tombstone)
	data    map[string]string
	logged  int
}

func newCycleRecorder() *cycleRecorder { return &cycleRecorder{data: map[string]string{}} }

func (r *cycleRecorder) LogChange(store string, key, value []byte) {
	v := string(value)
	if value == nil {
		v = "\x00nil"
	}
	r.pending = append(r.pending, [3]string{store, string(key), v})
	r.logged++
}

func (r *cycleRecorder) commit() {
	for _, c := range r.pending {
		if c[2] == "\x00nil" {
			delete(r.data, c[0]+"/"+c[1])
		} else {
			r.data[c[0]+"/"+c[1]] = c[2]
		}
	}
	r.pending = r.pending[:0]
}

func (r *cycleRecorder) discard() { r.pending = r.pending[:0] }

func (r *cycleRecorder) restored() string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(r.data)) {
		fmt.Fprintf(&b, "%q=%q ", k, r.data[k])
	}
	return b.String()
}

// TestReadCacheEdges pins the cases the property test reaches only by
// chance.
func TestReadCacheEdges(t *testing.T) {
	tests := []struct {
		name  string
		limit int64
		run   func(t *testing.T, db *state.DB) string
		want  string
	}{
		{
			name: "a negative entry turns positive on a write",
			run: func(t *testing.T, db *state.DB) string {
				kv, w := db.KeyValue("kv"), db.Window("w")
				before := fmt.Sprintf("%q %q", get(t, kv, "new"), fetchAll(t, w, "new"))
				must(t, kv.Put([]byte("new"), []byte("v")))
				must(t, w.Put([]byte("new"), 1000, []byte("t")))
				return before + fmt.Sprintf(" %q %q", get(t, kv, "new"), fetchAll(t, w, "new"))
			},
			want: `"" "" "v" "1000=t"`,
		},
		{
			name: "Discard drops cached pending writes",
			run: func(t *testing.T, db *state.DB) string {
				kv, w := db.KeyValue("kv"), db.Window("w")
				must(t, kv.Put([]byte("k"), []byte("committed")))
				must(t, w.Put([]byte("k"), 1000, []byte("committed")))
				must(t, db.Commit(nil))
				get(t, kv, "k")
				fetchAll(t, w, "k")
				must(t, kv.Put([]byte("k"), []byte("pending")))
				must(t, w.Put([]byte("k"), 1000, []byte("pending")))
				must(t, w.Put([]byte("k"), 2000, []byte("pending")))
				db.Discard()
				return get(t, kv, "k") + " " + fetchAll(t, w, "k")
			},
			want: "committed 1000=committed",
		},
		{
			name: "Commit keeps the cache",
			run: func(t *testing.T, db *state.DB) string {
				kv := db.KeyValue("kv")
				must(t, kv.Put([]byte("k"), []byte("v")))
				get(t, kv, "k")
				must(t, db.Commit(nil))
				before := db.CacheStats().Hits
				v := get(t, kv, "k")
				return fmt.Sprintf("%s hits+%d", v, db.CacheStats().Hits-before)
			},
			want: "v hits+1",
		},
		{
			name: "Get hands out a copy",
			run: func(t *testing.T, db *state.DB) string {
				kv, w := db.KeyValue("kv"), db.Window("w")
				must(t, kv.Put([]byte("k"), []byte("abc")))
				must(t, w.Put([]byte("k"), 0, []byte("abc")))
				v, err := kv.Get([]byte("k"))
				must(t, err)
				copy(v, "XYZ")
				tile, err := w.Get([]byte("k"), 0)
				must(t, err)
				copy(tile, "XYZ")
				tile, err = w.Get([]byte("k"), 0)
				must(t, err)
				return get(t, kv, "k") + " " + string(tile)
			},
			want: "abc abc",
		},
		{
			name: "Put does not keep the caller's buffer",
			run: func(t *testing.T, db *state.DB) string {
				kv, w := db.KeyValue("kv"), db.Window("w")
				get(t, kv, "k")
				fetchAll(t, w, "k")
				buf := []byte("abc")
				must(t, kv.Put([]byte("k"), buf))
				must(t, w.Put([]byte("k"), 0, buf))
				copy(buf, "XYZ")
				return get(t, kv, "k") + " " + fetchAll(t, w, "k")
			},
			want: "abc 0=abc",
		},
		{
			name:  "an entry too large to keep is read from Pebble",
			limit: 1 << 10,
			run: func(t *testing.T, db *state.DB) string {
				w := db.Window("w")
				for s := int64(0); s < 10; s++ {
					must(t, w.Put([]byte("k"), s*1000, bytes.Repeat([]byte{'x'}, 50)))
				}
				fetchAll(t, w, "k")
				must(t, w.Put([]byte("k"), 0, []byte("small")))
				n, err := w.DeleteBefore([]byte("k"), 9000)
				must(t, err)
				return fmt.Sprintf("%d %s entries=%d", n, fetchAll(t, w, "k"), db.CacheStats().Entries)
			},
			want: "9 9000=" + strings.Repeat("x", 50) + " entries=0",
		},
		{
			name:  "an entry that outgrows the bound leaves",
			limit: 2 << 10,
			run: func(t *testing.T, db *state.DB) string {
				w := db.Window("w")
				fetchAll(t, w, "k")
				in := db.CacheStats().Entries
				for s := int64(0); s < 10; s++ {
					must(t, w.Put([]byte("k"), s*1000, bytes.Repeat([]byte{'x'}, 50)))
				}
				return fmt.Sprintf("%d→%d %d tiles", in, db.CacheStats().Entries, strings.Count(fetchAll(t, w, "k"), "="))
			},
			want: "1→0 10 tiles",
		},
		{
			name: "a store used as both kinds is not cached",
			run: func(t *testing.T, db *state.DB) string {
				w := db.Window("w")
				must(t, w.Put([]byte("k"), 1000, []byte("old")))
				fetchAll(t, w, "k")
				// A raw KeyValue over the window's entries (as tests read
				// them) and a write through it.
				raw := db.KeyValue("w")
				var tileKey []byte
				must(t, raw.Range(nil, nil, func(k, _ []byte) error { tileKey = bytes.Clone(k); return nil }))
				get(t, raw, string(tileKey))
				// The raw handle, which read the tile, sees a write
				// through the window.
				must(t, w.Put([]byte("k"), 1000, []byte("win")))
				seen := get(t, raw, string(tileKey))
				must(t, raw.Put(tileKey, []byte("raw")))
				return seen + " " + fetchAll(t, w, "k") + " " + fetchAll(t, db.Window("w"), "k")
			},
			want: "win 1000=raw 1000=raw",
		},
		{
			name: "the committed views bypass a warm cache",
			run: func(t *testing.T, db *state.DB) string {
				kv, w := db.KeyValue("kv"), db.Window("w")
				must(t, kv.Put([]byte("k"), []byte("committed")))
				must(t, w.Put([]byte("k"), 0, []byte("committed")))
				must(t, db.Commit(nil))
				must(t, kv.Put([]byte("k"), []byte("pending")))
				must(t, w.Put([]byte("k"), 0, []byte("pending")))
				get(t, kv, "k")
				fetchAll(t, w, "k")
				v, err := db.GetCommitted("kv", []byte("k"))
				must(t, err)
				return fmt.Sprintf("%s %s %s", v, get(t, db.CommittedKeyValue("kv"), "k"), fetchAll(t, db.CommittedWindow("w"), "k"))
			},
			want: "committed committed 0=committed",
		},
		{
			name: "NoCache keeps a store out",
			run: func(t *testing.T, db *state.DB) string {
				kv, other := db.KeyValue("dedupe"), db.KeyValue("kv")
				get(t, kv, "k")
				kv.NoCache()
				must(t, kv.Put([]byte("k"), []byte("v")))
				get(t, kv, "k")
				get(t, other, "k")
				get(t, other, "k")
				st := db.CacheStats()
				return fmt.Sprintf("%s hits=%d entries=%d", get(t, db.KeyValue("dedupe"), "k"), st.Hits, st.Entries)
			},
			want: "v hits=1 entries=1",
		},
		{
			name: "writes to a read key are logged once, at Flush",
			run: func(t *testing.T, db *state.DB) string {
				rec := &recorder{}
				db.SetChangeLogger(rec)
				kv := db.KeyValue("kv")
				get(t, kv, "k")
				must(t, kv.Put([]byte("k"), []byte("v1")))
				must(t, kv.Delete([]byte("k")))
				must(t, kv.Put([]byte("k"), []byte("v2")))
				before := fmt.Sprint(rec.changes)
				must(t, db.Flush())
				committed := get(t, db.CommittedKeyValue("kv"), "k")
				must(t, db.Commit(nil))
				st := db.CacheStats()
				return fmt.Sprintf("%s %v committed before %q after %q absorbed=%d written=%d",
					before, rec.changes, committed, get(t, db.CommittedKeyValue("kv"), "k"), st.Absorbed, st.WrittenBack)
			},
			want: `[] [kv:k=v2] committed before "" after "v2" absorbed=2 written=1`,
		},
		{
			name: "tile writes to a read key are logged once at Flush, deletions at once",
			run: func(t *testing.T, db *state.DB) string {
				rec := &recorder{}
				db.SetChangeLogger(rec)
				w := db.Window("w")
				fetchAll(t, w, "k")
				must(t, w.Put([]byte("k"), 1000, []byte("a")))
				must(t, w.Put([]byte("k"), 1000, []byte("b")))
				must(t, w.Put([]byte("k"), 2000, []byte("c")))
				must(t, w.Put([]byte("k"), 2000, nil))
				before := len(rec.changes)
				must(t, db.Flush())
				st := db.CacheStats()
				return fmt.Sprintf("%d→%d %s absorbed=%d written=%d", before, len(rec.changes), fetchAll(t, w, "k"), st.Absorbed, st.WrittenBack)
			},
			// The deletion of 2000 is logged when made; the value of
			// 1000 once, at the Flush.
			want: "1→2 1000=b absorbed=1 written=1",
		},
		{
			name: "a new key's writes fold too, once the filter said it was absent",
			run: func(t *testing.T, db *state.DB) string {
				kv := db.KeyValue("kv")
				must(t, kv.Put([]byte("old"), []byte("x")))
				get(t, kv, "probe") // a read makes the store's filter
				must(t, db.Commit(nil))
				state.AwaitFilters(db)
				filtered := db.CacheStats().Filtered
				rec := &recorder{}
				db.SetChangeLogger(rec)
				get(t, kv, "new") // answered by the filter
				must(t, kv.Put([]byte("new"), []byte("v1")))
				must(t, kv.Put([]byte("new"), []byte("v2")))
				must(t, db.Flush())
				st := db.CacheStats()
				return fmt.Sprintf("%v filtered=%d absorbed=%d %s", rec.changes, st.Filtered-filtered, st.Absorbed, get(t, kv, "new"))
			},
			want: "[kv:new=v2] filtered=1 absorbed=1 v2",
		},
		{
			name:  "an evicted entry is written back first",
			limit: 2 << 10,
			run: func(t *testing.T, db *state.DB) string {
				rec := &recorder{}
				db.SetChangeLogger(rec)
				kv := db.KeyValue("kv")
				get(t, kv, "k")
				must(t, kv.Put([]byte("k"), []byte("held")))
				for i := range 40 { // evicts k
					get(t, kv, fmt.Sprint(i))
				}
				logged := fmt.Sprint(rec.changes)
				must(t, db.Flush())
				return fmt.Sprintf("%s %v %s", logged, rec.changes, get(t, kv, "k"))
			},
			want: "[kv:k=held] [kv:k=held] held",
		},
		{
			name: "a scan writes back the held writes in its range only",
			run: func(t *testing.T, db *state.DB) string {
				rec := &recorder{}
				db.SetChangeLogger(rec)
				kv := db.KeyValue("kv")
				get(t, kv, "a")
				get(t, kv, "z")
				must(t, kv.Put([]byte("a"), []byte("1")))
				must(t, kv.Put([]byte("z"), []byte("2")))
				var seen []string
				must(t, kv.Range([]byte("a"), []byte("b"), func(k, v []byte) error {
					seen = append(seen, string(k)+"="+string(v))
					return nil
				}))
				return fmt.Sprintf("%v %v", seen, rec.changes)
			},
			want: "[a=1] [kv:a=1]",
		},
		{
			name:  "disabled",
			limit: -1,
			run: func(t *testing.T, db *state.DB) string {
				kv := db.KeyValue("kv")
				must(t, kv.Put([]byte("k"), []byte("v")))
				get(t, kv, "k")
				return fmt.Sprintf("%s %+v", get(t, kv, "k"), db.CacheStats())
			},
			want: "v {Hits:0 Misses:0 Evictions:0 Clears:0 Filtered:0 Absorbed:0 WrittenBack:0 Repacks:0 Bytes:0 Entries:0}",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := state.Open("/db", state.Options{FS: vfs.NewMem(), CacheSize: 8 << 20, MemTableSize: 2 << 20, ReadCacheSize: tt.limit})
			must(t, err)
			defer db.Close()
			if got := tt.run(t, db); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestReadCacheEvictsToItsBound fills a small cache with many keys and
// checks that it stays within its bound and that a key read again and
// again stays in it while one-off reads pass through.
func TestReadCacheEvictsToItsBound(t *testing.T) {
	const limit = 8 << 10
	db, err := state.Open("/db", state.Options{FS: vfs.NewMem(), CacheSize: 8 << 20, MemTableSize: 2 << 20, ReadCacheSize: limit})
	must(t, err)
	defer db.Close()
	kv := db.KeyValue("kv")
	for i := range 1000 {
		must(t, kv.Put([]byte(fmt.Sprint(i)), []byte("value")))
	}
	must(t, db.Commit(nil))
	get(t, kv, "hot")
	for i := range 1000 {
		get(t, kv, "hot")
		get(t, kv, fmt.Sprint(i))
		if st := db.CacheStats(); st.Bytes > limit {
			t.Fatalf("after %d reads the cache holds %d bytes, over %d", i, st.Bytes, limit)
		}
	}
	st := db.CacheStats()
	if st.Evictions == 0 {
		t.Errorf("nothing was evicted: %+v", st)
	}
	// The hot key missed once; the others once each.
	if st.Misses != 1001 {
		t.Errorf("%d misses, want 1001 (the hot key stays): %+v", st.Misses, st)
	}
}

// TestFetchErrorStopsIteration pins that fn's error ends a Fetch served
// from the cache, as it ends one served from Pebble.
func TestFetchErrorStopsIteration(t *testing.T) {
	for _, limit := range []int64{0, -1} {
		db, err := state.Open("/db", state.Options{FS: vfs.NewMem(), CacheSize: 8 << 20, MemTableSize: 2 << 20, ReadCacheSize: limit})
		must(t, err)
		w := db.Window("w")
		for s := range int64(3) {
			must(t, w.Put([]byte("k"), s, []byte("v")))
		}
		stop := errors.New("stop")
		calls := 0
		err = w.Fetch([]byte("k"), 0, 10, func(int64, []byte) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("cache bound %d: Fetch = %v after %d calls, want stop after 1", limit, err, calls)
		}
		must(t, db.Close())
	}
}

func fetchAll(t *testing.T, w *state.Window, key string) string {
	t.Helper()
	var got []string
	must(t, w.Fetch([]byte(key), 0, math.MaxInt64, func(start int64, v []byte) error {
		got = append(got, fmt.Sprintf("%d=%s", start, v))
		return nil
	}))
	return strings.Join(got, ",")
}
