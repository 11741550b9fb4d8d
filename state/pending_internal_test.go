package state

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"
	"unsafe"
)

// TestPendingBatchKeepsItsBuffer pins that a cycle larger than the 1 MiB
// Pebble keeps of a reset batch does not make the pending batch a new
// buffer: after a commit, and after a discard, the batch writes into the
// same memory as before. It also checks that the reused buffer leaves
// every committed value readable and every discarded one gone.
func TestPendingBatchKeepsItsBuffer(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "db"), Options{ReadCacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	kv := db.KeyValue("s")
	const (
		perCycle  = 1000
		valueSize = 2000 // 2 MB a cycle, twice what Pebble keeps
	)
	value := func(c, i int) []byte { return bytes.Repeat([]byte{byte('a' + (c+i)%26)}, valueSize) }
	cycle := func(c int) {
		t.Helper()
		for i := 0; i < perCycle; i++ {
			if err := kv.Put(fmt.Appendf(nil, "k%05d", i), value(c, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(c int, when string) {
		t.Helper()
		for i := 0; i < perCycle; i++ {
			got, err := kv.Get(fmt.Appendf(nil, "k%05d", i))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, value(c, i)) {
				t.Fatalf("%s: k%05d holds %.8q…, want the value of cycle %d", when, i, got, c)
			}
		}
	}
	buffer := func() *byte { return unsafe.SliceData(db.pending.Repr()) }

	cycle(0)
	if err := db.Commit(map[string]int64{"s": 0}); err != nil {
		t.Fatal(err)
	}
	if c := cap(db.pending.Repr()); c < perCycle*valueSize {
		t.Fatalf("after a commit the pending batch holds %d bytes of buffer, want the cycle's %d", c, perCycle*valueSize)
	}
	kept := buffer()
	for c := 1; c <= 4; c++ {
		cycle(c)
		if err := db.Commit(map[string]int64{"s": int64(c)}); err != nil {
			t.Fatal(err)
		}
		if buffer() != kept {
			t.Fatalf("cycle %d: the pending batch has a new buffer", c)
		}
		check(c, fmt.Sprintf("after cycle %d", c))
	}
	cycle(100)
	db.Discard()
	if buffer() != kept {
		t.Fatal("after a discard the pending batch has a new buffer")
	}
	check(4, "after a discard")
	cycle(200)
	if err := db.Commit(nil); err != nil {
		t.Fatal(err)
	}
	check(200, "after the cycle that follows a discard")
}
