package state_test

import (
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tessera-cdp/tessera/state"
)

type recorder struct{ changes []string }

func (r *recorder) LogChange(store string, key, value []byte) {
	if value == nil {
		r.changes = append(r.changes, fmt.Sprintf("%s:%s=<nil>", store, key))
		return
	}
	r.changes = append(r.changes, fmt.Sprintf("%s:%s=%s", store, key, value))
}

func openMem(t *testing.T, fs vfs.FS) *state.DB {
	t.Helper()
	db, err := state.Open("/db", state.Options{FS: fs, CacheSize: 8 << 20, MemTableSize: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func TestKeyValueSeesPendingWritesAndDiscardDropsThem(t *testing.T) {
	fs := vfs.NewMem()
	db := openMem(t, fs)
	rec := &recorder{}
	db.SetChangeLogger(rec)
	kv := db.KeyValue("a")
	other := db.KeyValue("b")

	must(t, kv.Put([]byte("k1"), []byte("v1")))
	must(t, other.Put([]byte("k1"), []byte("other")))
	if got := get(t, kv, "k1"); got != "v1" {
		t.Fatalf("pending write not visible: %q", got)
	}
	must(t, db.Commit(map[string]int64{"a": 1, "b": 1}))

	must(t, kv.Put([]byte("k1"), []byte("v2")))
	must(t, kv.Delete([]byte("k1")))
	if got := get(t, kv, "k1"); got != "" {
		t.Fatalf("pending delete not visible: %q", got)
	}
	db.Discard()
	if got := get(t, kv, "k1"); got != "v1" {
		t.Fatalf("after Discard: %q, want the committed v1", got)
	}
	if got := get(t, other, "k1"); got != "other" {
		t.Fatalf("stores leak into each other: %q", got)
	}
	// The discarded cycle wrote only k1, which it had read: the read
	// cache held those writes back, and Discard dropped them unlogged.
	want := []string{"a:k1=v1", "b:k1=other"}
	if fmt.Sprint(rec.changes) != fmt.Sprint(want) {
		t.Errorf("logged %v, want %v", rec.changes, want)
	}

	// The checkpoint and the data were committed together and survive a
	// reopen; the discarded writes do not.
	must(t, db.Close())
	must(t, db.Close()) // idempotent
	db = openMem(t, fs)
	defer db.Close()
	if off, ok, err := db.Checkpoint("a"); err != nil || !ok || off != 1 {
		t.Fatalf("checkpoint after reopen = %d %v %v, want 1 true nil", off, ok, err)
	}
	if _, ok, _ := db.Checkpoint("c"); ok {
		t.Fatal("checkpoint of an unknown store")
	}
	if got := get(t, db.KeyValue("a"), "k1"); got != "v1" {
		t.Fatalf("after reopen: %q", got)
	}
}

func TestKeyValueRangeAndPrefix(t *testing.T) {
	db := openMem(t, vfs.NewMem())
	defer db.Close()
	kv := db.KeyValue("s")
	for _, k := range []string{"a1", "a2", "b1", "b2", "c"} {
		must(t, kv.Put([]byte(k), []byte("v"+k)))
	}
	must(t, db.Commit(nil))
	must(t, kv.Put([]byte("a3"), []byte("pending")))
	tests := []struct {
		name string
		run  func(fn func(k, v []byte) error) error
		want string
	}{
		{"all", func(fn func(k, v []byte) error) error { return kv.Range(nil, nil, fn) }, "[a1 a2 a3 b1 b2 c]"},
		{"range", func(fn func(k, v []byte) error) error { return kv.Range([]byte("a2"), []byte("b2"), fn) }, "[a2 a3 b1]"},
		{"prefix", func(fn func(k, v []byte) error) error { return kv.Prefix([]byte("b"), fn) }, "[b1 b2]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			must(t, tt.run(func(k, _ []byte) error { got = append(got, string(k)); return nil }))
			if fmt.Sprint(got) != tt.want {
				t.Errorf("got %v, want %s", got, tt.want)
			}
		})
	}
}

func TestWindowTiles(t *testing.T) {
	db := openMem(t, vfs.NewMem())
	defer db.Close()
	w := db.Window("w")
	// "ab" must not see the tiles of "a", nor "a" those of "ab".
	for _, k := range []string{"a", "ab"} {
		for _, start := range []int64{0, 1000, 2000, 3000} {
			must(t, w.Put([]byte(k), start, []byte(fmt.Sprintf("%s@%d", k, start))))
		}
	}
	var got []string
	must(t, w.Fetch([]byte("a"), 1000, 3000, func(start int64, v []byte) error {
		got = append(got, fmt.Sprintf("%d=%s", start, v))
		return nil
	}))
	if want := "[1000=a@1000 2000=a@2000]"; fmt.Sprint(got) != want {
		t.Errorf("Fetch = %v, want %s", got, want)
	}
	n, err := w.DeleteBefore([]byte("a"), 2000)
	must(t, err)
	if n != 2 {
		t.Errorf("DeleteBefore deleted %d, want 2", n)
	}
	v, err := w.Get([]byte("a"), 1000)
	must(t, err)
	if v != nil {
		t.Errorf("expired tile still there: %s", v)
	}
	v, err = w.Get([]byte("ab"), 1000)
	must(t, err)
	if string(v) != "ab@1000" {
		t.Errorf("expiring a touched ab: %q", v)
	}
}

func get(t *testing.T, kv *state.KeyValue, k string) string {
	t.Helper()
	v, err := kv.Get([]byte(k))
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestCommittedViewSkipsPendingWrites(t *testing.T) {
	db := openMem(t, vfs.NewMem())
	defer db.Close()
	w := db.Window("w")
	must(t, w.Put([]byte("k"), 1000, []byte("committed")))
	must(t, db.Commit(nil))
	must(t, w.Put([]byte("k"), 1000, []byte("pending")))
	must(t, w.Put([]byte("k"), 2000, []byte("pending")))
	view := db.CommittedWindow("w")
	var got []string
	must(t, view.Fetch([]byte("k"), 0, 10_000, func(start int64, v []byte) error {
		got = append(got, fmt.Sprintf("%d=%s", start, v))
		return nil
	}))
	if fmt.Sprint(got) != "[1000=committed]" {
		t.Errorf("committed view sees %v", got)
	}
	if err := view.Put([]byte("k"), 3000, []byte("x")); err == nil {
		t.Error("a committed view accepted a write")
	}
}

// TestKeyValueHas checks Has against what Get answers, through pending,
// committed, deleted and held-back writes, and that it leaves the read
// cache as it found it.
// storeAfter opens a DB in memory and runs ops on key k of its store "s":
// "put" writes its next value ("v1", "v2", …), "del" deletes it, "get"
// reads it, "commit" commits the DB.
func storeAfter(t *testing.T, ops []string) (db *state.DB, kv *state.KeyValue, k []byte) {
	t.Helper()
	db = openMem(t, vfs.NewMem())
	kv = db.KeyValue("s")
	k = []byte("k")
	n := 0
	for _, op := range ops {
		switch op {
		case "put":
			n++
			must(t, kv.Put(k, []byte(fmt.Sprintf("v%d", n))))
		case "del":
			must(t, kv.Delete(k))
		case "get":
			_, err := kv.Get(k)
			must(t, err)
		case "commit":
			must(t, db.Commit(map[string]int64{"s": 1}))
		default:
			t.Fatalf("unknown op %q", op)
		}
	}
	return db, kv, k
}

func TestKeyValueView(t *testing.T) {
	for _, tc := range []struct {
		name string
		// ops runs on the store before View("k") (storeAfter).
		ops  []string
		want string // "" for absent
		// shared says View hands out the cache's slice, not a copy,
		// once the key has a cache entry.
		shared bool
	}{
		{"absent", nil, "", false},
		{"pending put", []string{"put"}, "v1", true},
		{"committed put, not read since", []string{"put", "commit"}, "v1", true},
		{"overwritten", []string{"put", "commit", "get", "put"}, "v2", true},
		{"deleted", []string{"put", "commit", "get", "del"}, "", false},
		{"committed delete", []string{"put", "commit", "del", "commit"}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, kv, k := storeAfter(t, tc.ops)
			defer db.Close()
			v, err := kv.View(k)
			must(t, err)
			if string(v) != tc.want || (v == nil) != (tc.want == "") {
				t.Fatalf("View = %q, want %q", v, tc.want)
			}
			// The first View may have read the store and made the
			// cache entry; the next two both read that entry.
			v2, err := kv.View(k)
			must(t, err)
			v3, err := kv.View(k)
			must(t, err)
			if string(v2) != tc.want || string(v3) != tc.want {
				t.Fatalf("Views again = %q, %q; want %q", v2, v3, tc.want)
			}
			if shared := len(v2) > 0 && &v2[0] == &v3[0]; shared != tc.shared {
				t.Errorf("two Views share their bytes: %v, want %v", shared, tc.shared)
			}
			if g, err := kv.Get(k); err != nil || string(g) != tc.want {
				t.Errorf("Get after View = %q, %v; want %q", g, err, tc.want)
			} else if len(g) > 0 && &g[0] == &v[0] {
				t.Error("Get returned the slice View shares; it must copy")
			}
		})
	}
}

func TestKeyValueHas(t *testing.T) {
	for _, tc := range []struct {
		name string
		// ops runs on the store before Has("k") (storeAfter).
		ops  []string
		want bool
	}{
		{"absent", nil, false},
		{"pending put", []string{"put"}, true},
		{"committed put", []string{"put", "commit"}, true},
		{"pending delete of a committed key", []string{"put", "commit", "del"}, false},
		{"committed delete", []string{"put", "commit", "del", "commit"}, false},
		{"held back in the cache", []string{"put", "commit", "get", "put"}, true},
		{"deletion held back in the cache", []string{"put", "commit", "get", "del"}, false},
		{"absent, read before", []string{"get"}, false},
		{"absent, read, then written", []string{"get", "put"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, kv, k := storeAfter(t, tc.ops)
			defer db.Close()
			before := db.CacheStats()
			got, err := kv.Has(k)
			must(t, err)
			if got != tc.want {
				t.Errorf("Has = %v, want %v", got, tc.want)
			}
			v, err := kv.Get(k)
			must(t, err)
			if (v != nil) != tc.want {
				t.Errorf("Get = %q, which disagrees with want %v", v, tc.want)
			}
			// Has made no entry and counted no read: Get's lookup
			// above is what moves the counters.
			after := db.CacheStats()
			if got, want := after.Hits+after.Misses+after.Filtered, before.Hits+before.Misses+before.Filtered+1; got != want {
				t.Errorf("cache reads went from %d to %d around one Get and one Has, want one more", before.Hits+before.Misses+before.Filtered, got)
			}
			if tc.ops == nil && after.Entries != before.Entries+1 {
				// Get of an absent key makes a (negative) entry;
				// Has before it made none.
				t.Errorf("entries %d → %d, want one more (Get's only)", before.Entries, after.Entries)
			}
		})
	}
}
