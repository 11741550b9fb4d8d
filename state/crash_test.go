package state_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/tessera-cdp/tessera/state"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The DB runs without a WAL (see state.Open). These tests pin what that
// must not cost: a clean Close keeps everything, and a crash at any moment
// leaves checkpoints that never claim more than the data holds.

// openSmall opens a DB with a memtable small enough for a test to fill a
// few of them and force flushes.
func openSmall(t *testing.T, fs vfs.FS) *state.DB {
	t.Helper()
	db, err := state.Open("/db", state.Options{FS: fs, CacheSize: 8 << 20, MemTableSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// commitCycle writes cycle i as the engine's commit cycle would: in store
// "s" a value for key k-i and the counter n=i, in store "t" the counter
// n=i, and both stores' checkpoints i+1, all in one Commit.
func commitCycle(t *testing.T, db *state.DB, i int, value []byte) {
	t.Helper()
	s, u := db.KeyValue("s"), db.KeyValue("t")
	must(t, s.Put([]byte(fmt.Sprintf("k-%05d", i)), value))
	must(t, s.Put([]byte("n"), []byte(strconv.Itoa(i))))
	must(t, u.Put([]byte("n"), []byte(strconv.Itoa(i))))
	must(t, db.Commit(map[string]int64{"s": int64(i + 1), "t": int64(i + 1)}))
}

// checkPrefix verifies that db holds exactly cycles 0..c-1 of commitCycle,
// c being its checkpoint, and returns c.
func checkPrefix(t *testing.T, db *state.DB, cycles int) int {
	t.Helper()
	c, _, err := db.Checkpoint("s")
	must(t, err)
	if ct, _, err := db.Checkpoint("t"); err != nil || ct != c {
		t.Fatalf("checkpoints s=%d t=%d (%v): committed together, they must agree", c, ct, err)
	}
	if c < 0 || c > int64(cycles) {
		t.Fatalf("checkpoint %d outside 0..%d", c, cycles)
	}
	wantN := ""
	if c > 0 {
		wantN = strconv.Itoa(int(c) - 1)
	}
	for _, store := range []string{"s", "t"} {
		if got := get(t, db.KeyValue(store), "n"); got != wantN {
			t.Fatalf("checkpoint %d but %s:n = %q, want %q", c, store, got, wantN)
		}
	}
	for i := 0; i < cycles; i++ {
		got := get(t, db.KeyValue("s"), fmt.Sprintf("k-%05d", i))
		if present := got != ""; present != (int64(i) < c) {
			t.Fatalf("checkpoint %d but k-%05d present=%v", c, i, present)
		}
	}
	return int(c)
}

func TestCloseFlushesEverythingWithoutWAL(t *testing.T) {
	fs := vfs.NewCrashableMem()
	db := openSmall(t, fs)
	const cycles = 50 // well within one memtable: nothing flushed before Close
	value := make([]byte, 100)
	for i := 0; i < cycles; i++ {
		commitCycle(t, db, i, value)
	}
	must(t, db.Close())

	// Only what was synced survives this clone: without Close's flush,
	// and without a WAL, that would be nothing.
	db = openSmall(t, fs.CrashClone(vfs.CrashCloneCfg{}))
	defer db.Close()
	if c := checkPrefix(t, db, cycles); c != cycles {
		t.Fatalf("checkpoint %d after a clean Close, want %d", c, cycles)
	}
}

func TestCrashLeavesCheckpointsWithinTheData(t *testing.T) {
	fs := vfs.NewCrashableMem()
	db := openSmall(t, fs)
	defer db.Close()
	// 1 KiB per cycle: 1,500 cycles fill several 256 KiB memtables, and
	// writes stall until flushes catch up, so flushes finish during the
	// run (the synced state is not empty).
	const cycles = 1500
	value := make([]byte, 1024)
	rng := rand.New(rand.NewPCG(1, 2))
	survived := 0
	for i := 0; i < cycles; i++ {
		commitCycle(t, db, i, value)
		if i%100 != 99 {
			continue
		}
		// A crash now: the synced files, and some share of the
		// unsynced ones (torn and missing writes included).
		for _, pct := range []int{0, 50, 100} {
			crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rng})
			cdb := openSmall(t, crashed)
			c := checkPrefix(t, cdb, i+1)
			must(t, cdb.Close())
			if pct == 0 {
				survived = c
			}
		}
	}
	if survived == 0 {
		t.Fatal("no cycle survived a crash after the last one: the test checked only empty DBs")
	}
}

func TestCloseReturnsWhenTheFlushFails(t *testing.T) {
	mem := vfs.NewMem()
	failing := &errorfs.Toggle{Injector: errorfs.ErrInjected.If(errorfs.PathMatch("/db/*.sst"))}
	fs := errorfs.Wrap(mem, failing)
	open := func() *state.DB {
		db, err := state.Open("/db", state.Options{FS: fs, CacheSize: 8 << 20, MemTableSize: 256 << 10, CloseFlushTimeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	db := open()
	value := make([]byte, 100)
	for i := 0; i < 10; i++ {
		commitCycle(t, db, i, value)
	}
	must(t, db.Close())

	db = open()
	for i := 10; i < 20; i++ {
		commitCycle(t, db, i, value)
	}
	failing.On()
	// Pebble retries the failing flush until the DB closes: Close gives
	// up after CloseFlushTimeout and reports it.
	if err := db.Close(); err == nil {
		t.Fatal("Close reported no error although its flush could not write")
	}
	failing.Off()

	// What the first Close flushed is there, the lost cycles are not
	// claimed by the checkpoints: a restore reads them again.
	db = open()
	defer db.Close()
	if c := checkPrefix(t, db, 20); c != 10 {
		t.Fatalf("checkpoint %d after a failed flush, want the 10 flushed before", c)
	}
}

func TestRestoreAfterCrashResumesFromTheSurvivingCheckpoint(t *testing.T) {
	const topic = "app.s-changelog"
	c, adm := cluster(t, topic, 1)
	opts := state.RestoreOptions{Client: []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, Admin: adm}
	logs := []state.Changelog{{Store: "s", Topic: topic, Partition: 0}}
	ctx := context.Background()
	// Record i (at offset i) sets key-(i%keys) to value-i, padded so
	// that the restores fill several memtables and flushes carry
	// checkpoints to disk: large rounds, then small ones, as after a
	// wipe and then a standby's tails.
	const keys = 5_000
	rounds := []int{keys, keys, keys, keys}
	for range 12 {
		rounds = append(rounds, 400)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	must(t, err)
	defer cl.Close()
	pad := strings.Repeat("x", 200)
	fs := vfs.NewCrashableMem()
	db := openSmall(t, fs)
	records := 0
	for _, n := range rounds {
		for i := records; i < records+n; i++ {
			cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("key-%d", i%keys)), Value: []byte(fmt.Sprintf("value-%d-%s", i, pad))}, nil)
		}
		records += n
		must(t, cl.Flush(ctx))
		_, err = state.Restore(ctx, db, logs, opts)
		must(t, err)
	}
	crashed := fs.CrashClone(vfs.CrashCloneCfg{})
	must(t, db.Close())

	db = openSmall(t, crashed)
	defer db.Close()
	cp, _, err := db.Checkpoint("s")
	must(t, err)
	if cp <= int64(4*keys) {
		t.Fatalf("checkpoint %d after the crash: the test meant the later rounds to flush checkpoints past %d", cp, 4*keys)
	}
	// Every key written below the checkpoint holds that write or a later
	// one (a batch committed within a fetch may have made it, unclaimed).
	kv := db.KeyValue("s")
	for k := 0; k < keys && k < int(cp); k++ {
		last := k + (int(cp)-1-k)/keys*keys // the last write of key-k below cp
		got := get(t, kv, fmt.Sprintf("key-%d", k))
		var n int
		if _, err := fmt.Sscanf(got, "value-%d-", &n); err != nil || n < last {
			t.Fatalf("checkpoint %d claims key-%d at value-%d or later, the DB holds %.20q", cp, k, last, got)
		}
	}
	// The next restore reads from there and completes it.
	n, err := state.Restore(ctx, db, logs, opts)
	must(t, err)
	if n["s"].Records != int64(records)-cp {
		t.Errorf("second restore read %d records, want the %d after the checkpoint", n["s"].Records, int64(records)-cp)
	}
	for k := 0; k < keys; k++ {
		last := k + (records-1-k)/keys*keys
		want := fmt.Sprintf("value-%d-%s", last, pad)
		if got := get(t, kv, fmt.Sprintf("key-%d", k)); got != want {
			t.Fatalf("after the second restore key-%d = %.20q, want %.20q", k, got, want)
		}
	}
}
