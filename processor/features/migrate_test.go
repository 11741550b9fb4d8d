package features_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/processor/features"
	"github.com/tessera-cdp/tessera/state"
	"github.com/valyala/fastjson"
)

// TestMigrateKeepsValues upgrades a store that the first layout holds while
// events, expiry and merges go on, against a store that had the second
// layout from the start: both get the same operations, and every
// profile's values must agree before, during and after the migration.
// Both stores are Pebble on disk; each round commits or aborts. A failure
// names its seed: go test ./processor/features -run
// 'TestMigrateKeepsValues/seed=N'.
func TestMigrateKeepsValues(t *testing.T) {
	seeds := 6
	if testing.Short() {
		seeds = 2
	}
	for seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) { runMigrate(t, uint64(seed)) })
	}
}

func runMigrate(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x3a7e))
	var defs []config.Feature
	for _, f := range referenceFeatures() {
		defs = append(defs, f.def)
	}
	// A bound of 5 makes count_distinct tiles sketches as well.
	s, err := features.Compile(defs, features.Options{DistinctExact: []int{0, 5}[seed%2]})
	if err != nil {
		t.Fatal(err)
	}
	open := func() (*state.DB, *state.Window) {
		db, err := state.Open(t.TempDir(), state.Options{CacheSize: 1 << 20, MemTableSize: 1 << 20, ReadCacheSize: []int64{64 << 10, 1 << 20, 1 << 20}[seed%3]})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db, db.Window("features")
	}
	refDB, ref := open()
	oldDB, old := open()
	var empty features.Migration
	for i := 0; ; i++ {
		done, err := s.Migrate(ref, &empty, 100)
		if err != nil {
			t.Fatal(err)
		}
		if done {
			break
		}
		if i == 2 {
			t.Fatal("migrating an empty store took more than two calls")
		}
	}

	g := &generator{rng: rng, lateness: 7 * day, wide: seed%2 == 1}
	profiles := []string{"p0", "p1", "p2", "p3", "p4"}
	stream := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	both := func(what string, fn func(w *state.Window) error) {
		t.Helper()
		for i, w := range []*state.Window{ref, old} {
			if err := fn(w); err != nil {
				t.Fatalf("seed %d: %s (store %d): %v", seed, what, i, err)
			}
		}
	}
	events := func(n int) {
		for range n {
			stream = stream.Add(g.gap() / 4)
			e := g.event(stream.Add(-g.jitter()).UnixMilli())
			ev := fastjson.MustParseBytes(e.json())
			p := []byte(profiles[rng.IntN(len(profiles))])
			both("update", func(w *state.Window) error { _, err := s.Update(w, p, ev, stream); return err })
		}
	}
	compare := func(when string) {
		t.Helper()
		for _, p := range profiles {
			want, err := s.Values(ref, []byte(p), stream)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.Values(old, []byte(p), stream)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				for k := range want {
					if !reflect.DeepEqual(got[k], want[k]) {
						t.Errorf("seed %d, %s: %s of %s = %#v, want %#v", seed, when, k, p, got[k], want[k])
					}
				}
				t.FailNow()
			}
		}
	}
	commit := func() {
		t.Helper()
		for _, db := range []*state.DB{refDB, oldDB} {
			if err := db.Commit(nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	// abort drops both stores' writes since the last commit, as an
	// aborted transaction does: the migration's moves among them.
	abort := func() {
		refDB.Discard()
		oldDB.Discard()
	}

	// What the previous version wrote.
	events(300)
	if err := features.ToFirstLayout(s, old); err != nil {
		t.Fatal(err)
	}
	commit()
	compare("before the migration")

	var m features.Migration
	migrating, aborts := true, 0
	for round := 0; round < 300 && (migrating || round < 20); round++ {
		events(rng.IntN(15))
		switch r := rng.IntN(20); {
		case r < 4:
			both("expire", func(w *state.Window) error { return s.Expire(w, []byte(profiles[round%5]), stream) })
		case r < 5:
			a, b := profiles[rng.IntN(5)], profiles[rng.IntN(5)]
			both("merge", func(w *state.Window) error { return s.Merge(w, []byte(a), []byte(b)) })
		}
		if migrating {
			done, err := s.Migrate(old, &m, 1+rng.IntN(200))
			if err != nil {
				t.Fatal(err)
			}
			migrating = !done
		}
		if rng.IntN(6) == 0 {
			abort()
			aborts++
			migrating = true // the mark may be gone with the rest
		} else {
			commit()
		}
		if round%4 == 0 || !migrating {
			compare(fmt.Sprintf("round %d (migrating %v)", round, migrating))
		}
	}
	if migrating {
		t.Fatalf("seed %d: the migration did not end: %+v", seed, m)
	}
	if m.Moved == 0 || aborts == 0 {
		t.Fatalf("seed %d: the migration moved nothing, or nothing aborted (%d aborts): %+v", seed, aborts, m)
	}
	// Every key left is the mark or of the second layout.
	err = old.Scan(nil, func(key []byte, start int64, _ []byte) error {
		n, m := binary.Uvarint(key)
		if len(key) != 0 && len(key) != m+int(n)+8 {
			return fmt.Errorf("key %q at %d is left in the first layout", key, start)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("seed %d: %d aborts, %+v", seed, aborts, m)
}
