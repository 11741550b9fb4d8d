package state_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/tessera-cdp/tessera/state"
)

// TestPendingBatchKeepsItsBuffer pins that a cycle larger than the 1 MiB
// Pebble keeps of a reset batch does not allocate its batch again: over
// eight cycles of 2 MB each, after a warm-up cycle, the Go heap grows by
// less than one cycle's writes (it grew by about twice each cycle's writes
// per cycle before). It also checks, against a map, that the reused
// buffer leaves every committed value readable and every discarded one
// gone.
func TestPendingBatchKeepsItsBuffer(t *testing.T) {
	// A memtable larger than all the writes, so no rotation allocates.
	db, err := state.Open(filepath.Join(t.TempDir(), "db"), state.Options{MemTableSize: 64 << 20, ReadCacheSize: -1})
	must(t, err)
	defer db.Close()
	kv := db.KeyValue("s")
	const (
		perCycle  = 1000
		valueSize = 2000
		cycles    = 9
	)
	// The values are made once, so that the cycles allocate nothing of
	// their own.
	var values [26][]byte
	for i := range values {
		values[i] = bytes.Repeat([]byte{byte('a' + i)}, valueSize)
	}
	value := func(c, i int) []byte { return values[(c+i)%26] }
	key := make([]byte, 0, 16)
	cycle := func(c int) {
		for i := 0; i < perCycle; i++ {
			key = fmt.Appendf(key[:0], "k%05d", i)
			must(t, kv.Put(key, value(c, i)))
		}
	}
	var before runtime.MemStats
	for c := 0; c < cycles; c++ {
		if c == 1 {
			runtime.ReadMemStats(&before)
		}
		cycle(c)
		must(t, db.Commit(map[string]int64{"s": int64(c)}))
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > perCycle*valueSize {
		t.Errorf("%d cycles of %d bytes allocated %d bytes: the pending batch's buffer is not kept", cycles-1, perCycle*valueSize, grew)
	}

	// A discarded cycle on the kept buffer, then a committed one.
	cycle(100)
	db.Discard()
	for i := 0; i < perCycle; i++ {
		if got := get(t, kv, fmt.Sprintf("k%05d", i)); got != string(value(cycles-1, i)) {
			t.Fatalf("after a discard, k%05d holds %.8q…, want the last committed value", i, got)
		}
	}
	cycle(200)
	must(t, db.Commit(nil))
	for i := 0; i < perCycle; i++ {
		if got := get(t, kv, fmt.Sprintf("k%05d", i)); got != string(value(200, i)) {
			t.Fatalf("k%05d holds %.8q…, want the last committed value", i, got)
		}
	}
}
