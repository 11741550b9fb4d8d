package state_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/tessera-cdp/tessera/state"
)

// BenchmarkReadCacheCollection times a full garbage collection with a read
// cache holding the feature tiles of 20,000 profiles, laid out as the
// profile stage keeps them (a window key per profile and feature, 8
// features), with 1, 6 or 30 tiles per key (30: a month of daily tiles),
// and reports the heap objects. The collector visits every live object at
// each cycle, so this is the read cache's share of each mark phase of the
// hub (bench/README.md, "4 December, late morning").
//
// go test ./state -run '^$' -bench ReadCacheCollection -benchtime 10x
func BenchmarkReadCacheCollection(b *testing.B) {
	for _, tiles := range []int{1, 6, 30} {
		b.Run(fmt.Sprint("tiles=", tiles), func(b *testing.B) {
			benchmarkCacheCollection(b, 20000, tiles)
		})
	}
}

func benchmarkCacheCollection(b *testing.B, profiles, tiles int) {
	db, err := state.Open(b.TempDir(), state.Options{ReadCacheSize: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	w := db.Window("features")
	key := func(p, f int) []byte { return fmt.Appendf(nil, "\x0cprofile-%06d/f%d", p, f) }
	// Values of 24 bytes, as a sum's or an average's tile: past the Go
	// allocator's tiny blocks, which would pack smaller ones together.
	value := func(p, d int) []byte { return fmt.Appendf(nil, "%024d", p*d) }
	for p := range profiles {
		for f := range 8 {
			for d := range tiles {
				if err := w.Put(key(p, f), int64(d)*86400, value(p, d)); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	if err := db.Commit(nil); err != nil {
		b.Fatal(err)
	}
	// Every key read after the commit, so that each has its entry,
	// loaded by one scan.
	for p := range profiles {
		for f := range 8 {
			if _, err := w.Get(key(p, f), 0); err != nil {
				b.Fatal(err)
			}
		}
	}
	if got := db.CacheStats().Entries; got != 8*profiles {
		b.Fatalf("the cache holds %d entries, want %d", got, 8*profiles)
	}
	runtime.GC()
	for b.Loop() {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapObjects), "heap-objects")
}
