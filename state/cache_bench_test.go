package state_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/tessera-cdp/tessera/state"
)

// BenchmarkReadCacheCollection times a full garbage collection with a read
// cache holding 20,000 window entries of 48 tiles each (8 features of 6
// periods, as a profile's), and reports the heap objects. The collector
// visits every live object at each cycle, so this is the read cache's
// share of every mark phase of the hub (bench/README.md, "4 December, late
// morning"): tiles kept in one buffer per entry cut it from 444,000
// objects and 16.7 ms a collection to 83,000 and 6.7 ms (one run each,
// 4 December).
//
// go test ./state -run '^$' -bench ReadCacheCollection -benchtime 20x
func BenchmarkReadCacheCollection(b *testing.B) {
	db, err := state.Open(b.TempDir(), state.Options{ReadCacheSize: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	w := db.Window("features")
	const profiles = 20000
	key := func(k int) []byte { return fmt.Appendf(nil, "profile-%06d", k) }
	for k := range profiles {
		for f := range 8 {
			for d := range 6 {
				if err := w.Put(key(k), int64(f*1000+d)*86400, fmt.Appendf(nil, "v%d", k*d)); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	if err := db.Commit(nil); err != nil {
		b.Fatal(err)
	}
	// Every key read once more after the commit, so that each has its
	// entry, loaded by one scan.
	for k := range profiles {
		if _, err := w.Get(key(k), 0); err != nil {
			b.Fatal(err)
		}
	}
	if got := db.CacheStats().Entries; got != profiles {
		b.Fatalf("the cache holds %d entries, want %d", got, profiles)
	}
	runtime.GC()
	for b.Loop() {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapObjects), "heap-objects")
	runtime.KeepAlive(db)
}
