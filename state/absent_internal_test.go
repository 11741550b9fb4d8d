package state

import (
	"fmt"
	"testing"
)

// TestFilterIsRebuiltAsKeysComeAndGo: a store whose keys are written once
// and deleted later, as the dedupe store's messageIds, keeps a filter of
// about its live keys, not of every key it ever held, and reads right
// through the rebuilds.
func TestFilterIsRebuiltAsKeysComeAndGo(t *testing.T) {
	defer SetFilterMinCapacity(100)()
	db, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	kv := db.KeyValue("d")
	kv.NoCache()
	key := func(round, i int) []byte { return fmt.Appendf(nil, "%03d-%03d", round, i) }
	const rounds, perRound = 50, 100
	for round := range rounds {
		for i := range perRound {
			if v, err := kv.Get(key(round, i)); err != nil || v != nil {
				t.Fatalf("round %d: new key %s reads %q, %v", round, key(round, i), v, err)
			}
			if err := kv.Put(key(round, i), []byte("seen")); err != nil {
				t.Fatal(err)
			}
			if round >= 2 {
				// Two rounds later the key expires.
				if err := kv.Delete(key(round-2, i)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := db.Commit(nil); err != nil {
			t.Fatal(err)
		}
		AwaitFilters(db)
		for _, k := range [][]byte{key(round, 0), key(round, perRound-1)} {
			if v, err := kv.Get(k); err != nil || string(v) != "seen" {
				t.Fatalf("round %d: live key %s reads %q, %v", round, k, v, err)
			}
		}
	}
	sf := db.cache.filters.m["d"]
	if sf == nil || sf.ready == nil {
		t.Fatalf("no filter in use: %v", sf)
	}
	// 5,000 keys were written and at most 200 are live at a commit: a
	// filter never rebuilt would hold all 5,000.
	if n := sf.ready.n; n > 1000 {
		t.Errorf("the filter holds %d keys, want about the live ones (%v)", n, sf)
	}
	if db.cache.filters.absents < rounds*perRound/2 {
		t.Errorf("the filter answered %d of %d reads of new keys", db.cache.filters.absents, rounds*perRound)
	}
}
