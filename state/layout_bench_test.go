package state_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/state"
)

// BenchmarkProfileFeatures reads all eight features of a random profile
// from a store much larger than the read cache, as the profile stage does
// for a profile it has not seen for a while. It measures what a features
// store layout with each profile's features contiguous would save (the
// "one scan per profile" of bench/README.md):
//
//   - name-in-key: today's layout, a window key per feature of
//     uvarint(len p) p name 0x00 fingerprint(8), one cache load (one
//     Pebble iterator seek) per feature; the names have different
//     lengths, so a profile's features lie in different ranges;
//   - fixed-suffix: the name folded into the fingerprint, so a profile's
//     feature keys have one length and lie together, still read one
//     feature at a time;
//   - one-scan: that layout read with one scan of the profile's range,
//     without filling the read cache (a real preload would add the eight
//     entries' copies).
//
// go test ./state -run '^$' -bench ProfileFeatures -benchtime 20000x
func BenchmarkProfileFeatures(b *testing.B) {
	const profiles, tiles = 20_000, 4
	names := []string{"orders_7d", "page_views_30d", "revenue_365d", "distinct_products_90d",
		"top_category_30d", "max_order_90d", "avg_order_365d", "sessions_7d"}
	db, err := state.Open(b.TempDir(), state.Options{ReadCacheSize: 64 << 10})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	check := func(err error) {
		if err != nil {
			b.Fatal(err)
		}
	}
	profile := func(i int) []byte { return []byte(fmt.Sprintf("profile-%08d", i)) }
	byName := func(p []byte, name string) []byte {
		k := append(binary.AppendUvarint(nil, uint64(len(p))), p...)
		return append(append(append(k, name...), 0), "fpfpfpfp"...)
	}
	fixed := func(p []byte, f int) []byte {
		k := append(binary.AppendUvarint(nil, uint64(len(p))), p...)
		return binary.BigEndian.AppendUint64(k, uint64(f)*0x9e3779b97f4a7c15)
	}
	v1, v2, raw := db.Window("v1"), db.Window("v2"), db.Window("raw")
	value := make([]byte, 48)
	for i := range profiles {
		p := profile(i)
		for f, name := range names {
			for t := range tiles {
				start := int64(t) * 86_400_000
				check(v1.Put(byName(p, name), start, value))
				check(v2.Put(fixed(p, f), start, value))
				check(raw.Put(fixed(p, f), start, value))
			}
		}
		if i%1000 == 999 {
			check(db.Commit(nil))
		}
	}
	check(db.Commit(nil))
	// The raw view reads the "raw" copy as Pebble keys: a window key is
	// uvarint(len(key)) key start(8), and every key of a profile has one
	// length in the fixed layout.
	scan := db.KeyValue("raw")
	rng := rand.New(rand.NewPCG(1, 2))
	perFeature := func(w *state.Window, key func(p []byte, f int) []byte) func(p []byte) int {
		return func(p []byte) int {
			n := 0
			for f := range names {
				check(w.Fetch(key(p, f), 0, 1<<62, func(int64, []byte) error { n++; return nil }))
			}
			return n
		}
	}
	ways := []struct {
		name string
		read func(p []byte) int
	}{
		{"name-in-key", perFeature(v1, func(p []byte, f int) []byte { return byName(p, names[f]) })},
		{"fixed-suffix", perFeature(v2, fixed)},
		{"one-scan", func(p []byte) int {
			k := fixed(p, 0)
			prefix := append(binary.AppendUvarint(nil, uint64(len(k))), k[:len(k)-8]...)
			n := 0
			check(scan.Prefix(prefix, func(_, _ []byte) error { n++; return nil }))
			return n
		}},
	}
	// The ways take turns on the same profiles, so that the background
	// compactions after the load, and the machine's drift, fall on all
	// three alike.
	took := make([]time.Duration, len(ways))
	i := 0
	for b.Loop() {
		p := profile(rng.IntN(profiles))
		for j := range ways {
			w := ways[(i+j)%len(ways)]
			start := time.Now()
			if got := w.read(p); got != len(names)*tiles {
				b.Fatalf("%s read %d tiles of %s, want %d", w.name, got, p, len(names)*tiles)
			}
			took[(i+j)%len(ways)] += time.Since(start)
		}
		i++
	}
	for j, w := range ways {
		b.ReportMetric(float64(took[j].Nanoseconds())/float64(i), w.name+"-ns/profile")
	}
}
