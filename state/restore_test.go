package state_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/state"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// cluster starts an embedded broker with a compacted changelog topic.
func cluster(t testing.TB, topic string, partitions int32) (*kfake.Cluster, *kadm.Client) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	adm := kadm.NewClient(cl)
	compact := "compact"
	if _, err := adm.CreateTopic(context.Background(), partitions, 1, map[string]*string{"cleanup.policy": &compact}, topic); err != nil {
		t.Fatal(err)
	}
	return c, adm
}

// produceTxn writes n records key-i=value-i (i from first) to partition p in
// one transaction, committed or aborted.
func produceTxn(t testing.TB, c *kfake.Cluster, topic string, p int32, first, n int, commit bool) {
	t.Helper()
	recs := make([]*kgo.Record, 0, n)
	for i := first; i < first+n; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Key: []byte(fmt.Sprintf("key-%d", i%1000)), Value: []byte(fmt.Sprintf("value-%d", i))})
	}
	transact(t, c, fmt.Sprintf("txn-%v", commit), commit, recs)
}

// produceTombstones deletes keys in partition p, in one transaction.
func produceTombstones(t testing.TB, c *kfake.Cluster, topic string, p int32, keys ...string) {
	t.Helper()
	recs := make([]*kgo.Record, 0, len(keys))
	for _, k := range keys {
		recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Key: []byte(k)})
	}
	transact(t, c, "txn-tombstones", true, recs)
}

// transact produces recs (to their own partitions) in one transaction of
// transactional id txid, committed or aborted, and returns once a
// transaction ended as asked.
//
// franz-go (v1.22.3) can end a producer-only transaction with an abort
// although its produces succeeded and the commit was asked for, and
// return nil: it logs "no produce succeeded in this transaction". It
// happened to a client new to the topic, as these are: 3 in 600
// transactions of fresh clients under load, none in 600 of one
// long-lived client (a scratch test, not kept), and once in about 500
// runs of the test below. transact reads the marker the transaction ended
// with, and on such an abort produces the records again in a new
// transaction: the tests count offsets from the log, not from the number
// of transactions.
func transact(t testing.TB, c *kfake.Cluster, txid string, commit bool, recs []*kgo.Record) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		ended := transactOnce(t, c, txid, commit, recs)
		if ended == commit {
			return
		}
		if attempt == 3 {
			t.Fatalf("transaction %s (commit: %v) ended the other way %d times", txid, commit, attempt)
		}
		t.Logf("transaction %s (commit: %v) ended the other way; producing it again", txid, commit)
	}
}

// transactOnce runs one transaction of recs and reports whether it ended
// with a commit marker.
func transactOnce(t testing.TB, c *kfake.Cluster, txid string, commit bool, recs []*kgo.Record) bool {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.TransactionalID(txid),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	// A produce that fails leaves EndTransaction nothing to commit, and
	// it returns nil: the records must be checked here.
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("producing in transaction %s: %v", txid, err)
	}
	if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatal(err)
	}
	// The marker follows the transaction's last record in its
	// partition: nothing else writes to the tests' topics meanwhile.
	last := recs[len(recs)-1]
	rd, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{last.Topic: {last.Partition: kgo.NewOffset().At(last.Offset + 1)}}),
		kgo.KeepControlRecords(), kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		fs := rd.PollRecords(pctx, 1)
		if err := pctx.Err(); err != nil {
			t.Fatalf("reading the end marker of transaction %s: %v", txid, err)
		}
		if err := fs.Err(); err != nil {
			t.Fatalf("reading the end marker of transaction %s: %v", txid, err)
		}
		if rs := fs.Records(); len(rs) > 0 {
			m := rs[0]
			// A control record's key is version (int16), type (int16):
			// 0 abort, 1 commit.
			if !m.Attrs.IsControl() || len(m.Key) < 4 {
				t.Fatalf("record after transaction %s at offset %d is not its end marker", txid, m.Offset)
			}
			return binary.BigEndian.Uint16(m.Key[2:4]) == 1
		}
	}
}

func TestRestoreFromCheckpointSkipsAbortedWrites(t *testing.T) {
	const topic = "app.s-changelog"
	c, adm := cluster(t, topic, 2)
	opts := state.RestoreOptions{Client: []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, Admin: adm}
	logs := []state.Changelog{{Store: "s", Topic: topic, Partition: 1}}
	dir := filepath.Join(t.TempDir(), "0_1")
	ctx := context.Background()

	produceTxn(t, c, topic, 1, 0, 1500, true)   // key-0..999 end at value-1000..1499 / 500..999
	produceTxn(t, c, topic, 1, 5000, 10, false) // aborted: must never be seen
	produceTxn(t, c, topic, 0, 9000, 10, true)  // another partition: not ours

	db, err := state.Open(dir, state.Options{})
	must(t, err)
	n, err := state.Restore(ctx, db, logs, opts)
	must(t, err)
	if n["s"].Records != 1500 {
		t.Errorf("restored %d records, want 1500", n["s"].Records)
	}
	kv := db.KeyValue("s")
	for i := 0; i < 1000; i++ {
		want := fmt.Sprintf("value-%d", i)
		if i < 500 {
			want = fmt.Sprintf("value-%d", i+1000)
		}
		if got := get(t, kv, fmt.Sprintf("key-%d", i)); got != want {
			t.Fatalf("key-%d = %q, want %q", i, got, want)
		}
	}
	// 1500 records, a commit marker, 10 aborted records and an abort
	// marker: the checkpoint is past all of them (at offset 1512, or
	// later if transact produced again) although the last data record
	// seen was at offset 1499.
	ends, err := adm.ListEndOffsets(ctx, topic)
	must(t, err)
	end, _ := ends.Lookup(topic, 1)
	if off, _, _ := db.Checkpoint("s"); off != end.Offset || off < 1512 {
		t.Errorf("checkpoint = %d, want the end offset %d (at least 1512)", off, end.Offset)
	}
	must(t, db.Close())

	// With the directory intact, only the tail after the checkpoint is
	// read. In one fetch: key-1..3 set, then deleted, then key-3 set
	// again; only the last write of each key is applied.
	produceTxn(t, c, topic, 1, 2000, 7, true)
	produceTombstones(t, c, topic, 1, "key-1", "key-2", "key-3")
	produceTxn(t, c, topic, 1, 3003, 1, true)
	db, err = state.Open(dir, state.Options{})
	must(t, err)
	n, err = state.Restore(ctx, db, logs, opts)
	must(t, err)
	if n["s"].Records != 11 {
		t.Errorf("restored %d records from the checkpoint, want 11", n["s"].Records)
	}
	kv = db.KeyValue("s")
	for key, want := range map[string]string{"key-0": "value-2000", "key-1": "", "key-2": "", "key-3": "value-3003", "key-6": "value-2006", "key-7": "value-1007"} {
		if got := get(t, kv, key); got != want {
			t.Errorf("%s = %q after tail restore, want %q", key, got, want)
		}
	}
	// Nothing new: nothing read.
	n, err = state.Restore(ctx, db, logs, opts)
	must(t, err)
	if n["s"].Records != 0 {
		t.Errorf("restored %d records when up to date", n["s"].Records)
	}
	must(t, db.Close())
}

// BenchmarkRestore measures changelog records restored into Pebble per
// second (target: 300,000/s, DESIGN.md §9).
func BenchmarkRestore(b *testing.B) {
	const topic = "app.s-changelog"
	const records = 500_000
	c, adm := cluster(b, topic, 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		b.Fatal(err)
	}
	value := make([]byte, 100)
	for i := 0; i < records; i++ {
		cl.Produce(context.Background(), &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("key-%08d", i%200_000)), Value: value}, nil)
	}
	if err := cl.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	cl.Close()
	opts := state.RestoreOptions{Client: []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, Admin: adm}
	cpu0 := processCPU(b)
	b.ResetTimer()
	var total int64
	for i := 0; i < b.N; i++ {
		db, err := state.Open(filepath.Join(b.TempDir(), "t"), state.Options{})
		if err != nil {
			b.Fatal(err)
		}
		n, err := state.Restore(context.Background(), db, []state.Changelog{{Store: "s", Topic: topic}}, opts)
		if err != nil {
			b.Fatal(err)
		}
		total += n["s"].Records
		db.Close()
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "records/s")
	// CPU time varies less than wall time when other processes share
	// the cores; it includes the embedded broker's share.
	b.ReportMetric(float64(total)/(processCPU(b)-cpu0).Seconds(), "records/cpu-s")
}

// processCPU returns the CPU time (user and system) this process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestRestoreClearsTheReadCache pins that a restore into an open DB, which
// writes Pebble without the stores' handles, leaves no stale cached value
// or absence behind.
func TestRestoreClearsTheReadCache(t *testing.T) {
	const topic = "app.s-changelog"
	c, adm := cluster(t, topic, 1)
	opts := state.RestoreOptions{Client: []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, Admin: adm}
	logs := []state.Changelog{{Store: "s", Topic: topic, Partition: 0}}
	ctx := context.Background()

	produceTxn(t, c, topic, 0, 0, 2, true) // key-0, key-1
	db, err := state.Open(filepath.Join(t.TempDir(), "0_0"), state.Options{})
	must(t, err)
	defer db.Close()
	res, err := state.Restore(ctx, db, logs, opts)
	must(t, err)
	// Said apart from the values, so that a failure tells a restore that
	// read too little from a stale read.
	if res["s"].Records != 2 {
		t.Fatalf("the first restore read %d records, want 2", res["s"].Records)
	}
	kv := db.KeyValue("s")
	// Cached: a value, and an absence.
	if got := get(t, kv, "key-1") + "," + get(t, kv, "key-2"); got != "value-1," {
		t.Fatalf("after the first restore: %q", got)
	}
	produceTxn(t, c, topic, 0, 1001, 2, true) // key-1, key-2
	_, err = state.Restore(ctx, db, logs, opts)
	must(t, err)
	if got := get(t, kv, "key-1") + "," + get(t, kv, "key-2"); got != "value-1001,value-1002" {
		t.Errorf("after the second restore: %q, want the restored values", got)
	}
}

// TestRestoreWaitsForAnOpenTransaction pins that a restore which starts
// while a transaction is open on its changelog (the task's previous owner
// committing its last cycle) reads that transaction once it is decided,
// instead of stopping at the last stable offset the open transaction held
// back.
func TestRestoreWaitsForAnOpenTransaction(t *testing.T) {
	const topic = "app.s-changelog"
	c, adm := cluster(t, topic, 1)
	opts := state.RestoreOptions{Client: []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, Admin: adm}
	logs := []state.Changelog{{Store: "s", Topic: topic, Partition: 0}}
	ctx := context.Background()
	produceTxn(t, c, topic, 0, 0, 3, true) // key-0..2 = value-0..2

	// The owner's last transaction: produced, flushed, not yet ended.
	owner, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.TransactionalID("owner"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	must(t, err)
	defer owner.Close()
	must(t, owner.BeginTransaction())
	for i := 1; i <= 2; i++ {
		k := fmt.Sprintf("key-%d", i)
		must(t, owner.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(k), Value: []byte("last-" + k)}).FirstErr())
	}

	// The restore's first read-committed ListOffsets sees the open
	// transaction; only then does the owner commit.
	listed := make(chan struct{}, 1)
	c.ControlKey(kmsg.ListOffsets.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if req.(*kmsg.ListOffsetsRequest).IsolationLevel == 1 {
			select {
			case listed <- struct{}{}:
			default:
			}
		}
		return nil, nil, false
	})
	db, err := state.Open(filepath.Join(t.TempDir(), "0_0"), state.Options{})
	must(t, err)
	defer db.Close()
	type result struct {
		n   map[string]state.RestoreResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := state.Restore(ctx, db, logs, opts)
		done <- result{n, err}
	}()
	<-listed
	must(t, owner.EndTransaction(ctx, kgo.TryCommit))
	res := <-done
	must(t, res.err)
	if res.n["s"].Records != 5 {
		t.Errorf("restored %d records, want 5 (3 committed before, 2 in the open transaction)", res.n["s"].Records)
	}
	kv := db.KeyValue("s")
	if got := get(t, kv, "key-0") + "," + get(t, kv, "key-1") + "," + get(t, kv, "key-2"); got != "value-0,last-key-1,last-key-2" {
		t.Errorf("restored %q, want the open transaction's values", got)
	}
}

// TestRestoreRebuildsTheAbsentFilter pins that a restore into an open DB
// drops the absent-key filters, which it writes around: a window key read
// as having no tiles, and a key read as absent, before the restore have
// the restored tiles and value after it.
func TestRestoreRebuildsTheAbsentFilter(t *testing.T) {
	const topic = "app.w-changelog"
	c, adm := cluster(t, topic, 1)
	opts := state.RestoreOptions{Client: []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, Admin: adm}
	const kvTopic = "app.kv-changelog"
	compact := "compact"
	if _, err := adm.CreateTopic(context.Background(), 1, 1, map[string]*string{"cleanup.policy": &compact}, kvTopic); err != nil {
		t.Fatal(err)
	}
	logs := []state.Changelog{{Store: "w", Topic: topic, Partition: 0}, {Store: "kv", Topic: kvTopic, Partition: 0}}
	db, err := state.Open(filepath.Join(t.TempDir(), "0_0"), state.Options{})
	must(t, err)
	defer db.Close()
	w := db.Window("w")
	kv := db.KeyValue("kv")
	if got := fetchAll(t, w, "k"); got != "" {
		t.Fatalf("before the restore: %q, want no tiles", got)
	}
	if got := get(t, kv, "k"); got != "" {
		t.Fatalf("before the restore: %q, want no value", got)
	}
	// The reads asked for filters, which a commit builds.
	must(t, db.Commit(nil))
	state.AwaitFilters(db)
	// Keys not read yet, so not in the read cache: the filters answer.
	if got := fetchAll(t, w, "x") + get(t, kv, "x"); got != "" || db.CacheStats().Filtered != 2 {
		t.Fatalf("before the restore: %q, %d reads answered by the filters; want nothing, 2", got, db.CacheStats().Filtered)
	}
	// The changelog key of a tile, as Window writes it: uvarint(len(key)),
	// key, big-endian start.
	tile := binary.BigEndian.AppendUint64(append(binary.AppendUvarint(nil, 1), 'k'), 5000)
	transact(t, c, "owner", true, []*kgo.Record{{Topic: topic, Partition: 0, Key: tile, Value: []byte("v")},
		{Topic: kvTopic, Partition: 0, Key: []byte("k"), Value: []byte("kv")}})
	_, err = state.Restore(context.Background(), db, logs, opts)
	must(t, err)
	if got := fetchAll(t, w, "k"); got != "5000=v" {
		t.Errorf("after the restore: %q, want the restored tile", got)
	}
	if got := get(t, kv, "k"); got != "kv" {
		t.Errorf("after the restore: %q, want the restored value", got)
	}
}
