package topology

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestFirstWritesNoteNewTopicsOnly: the open transaction's last write per
// partition is kept for topics not written before, and a topic taken once
// is known from then on.
func TestFirstWritesNoteNewTopicsOnly(t *testing.T) {
	var f firstWrites
	for _, r := range []*kgo.Record{
		{Topic: "a", Partition: 0, Offset: 5, ProducerID: 7},
		{Topic: "a", Partition: 0, Offset: 9, ProducerID: 7},
		{Topic: "a", Partition: 1, Offset: 2, ProducerID: 7},
		{Topic: "b", Partition: 0, Offset: 3, ProducerID: 7},
	} {
		f.note(r)
	}
	got := f.take()
	want := map[topicPartition]lastWrite{{"a", 0}: {9, 7}, {"a", 1}: {2, 7}, {"b", 0}: {3, 7}}
	if len(got) != len(want) {
		t.Fatalf("took %v, want %v", got, want)
	}
	for tp, w := range want {
		if got[tp] != w {
			t.Errorf("%v: took %v, want %v", tp, got[tp], w)
		}
	}
	f.note(&kgo.Record{Topic: "a", Partition: 2, Offset: 1})
	f.note(&kgo.Record{Topic: "c", Partition: 0, Offset: 4, ProducerID: 8})
	if got := f.take(); len(got) != 1 || got[topicPartition{"c", 0}] != (lastWrite{4, 8}) {
		t.Errorf("second transaction took %v, want only c[0]", got)
	}
	if got := f.take(); got != nil {
		t.Errorf("an empty transaction took %v", got)
	}
}

// TestEndedCommittedReadsTheMarker: the marker read back is the one of
// the write's own producer, past another producer's records and marker in
// the same partition.
func TestEndedCommittedReadsTheMarker(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	adm0, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer adm0.Close()
	if _, err := kadm.NewClient(adm0).CreateTopic(context.Background(), 1, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	producer := func(id string) *kgo.Client {
		cl, err := kgo.NewClient(append(opts, kgo.TransactionalID(id), kgo.ProducerLinger(0))...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		return cl
	}
	write := func(cl *kgo.Client) lastWrite {
		r := &kgo.Record{Topic: "t", Value: []byte("v")}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
		return lastWrite{r.Offset, r.ProducerID}
	}
	// visible reports whether the record at off is read under
	// read_committed: the truth endedCommitted must tell. (The test's
	// own producers write to a topic new to them in transactions
	// without offsets, so a commit asked for may end as an abort.)
	visible := func(w lastWrite) bool {
		cl, err := kgo.NewClient(append(opts,
			kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"t": {0: kgo.NewOffset().At(w.offset)}}),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		seen := false
		for {
			for _, r := range cl.PollFetches(ctx).Records() {
				if r.Offset == w.offset && !r.Attrs.IsControl() {
					seen = true
				}
				// The producer's marker: the transaction has ended,
				// and read_committed has shown its write or not.
				if r.Attrs.IsControl() && r.ProducerID == w.producerID {
					return seen
				}
			}
		}
	}
	// a writes, b writes and commits, then a ends: a's marker comes
	// after b's records and marker.
	for _, tc := range []struct {
		name    string
		commitA bool
	}{{"a aborts", false}, {"a commits", true}} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := producer("a-"+tc.name), producer("b-"+tc.name)
			wa := write(a)
			wb := write(b)
			if err := b.EndTransaction(ctx, kgo.TryCommit); err != nil {
				t.Fatal(err)
			}
			if err := a.EndTransaction(ctx, kgo.TransactionEndTry(tc.commitA)); err != nil {
				t.Fatal(err)
			}
			tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			for name, w := range map[string]lastWrite{"a": wa, "b": wb} {
				got, err := endedCommitted(tctx, opts, map[topicPartition]lastWrite{{"t", 0}: w})
				if err != nil {
					t.Fatal(err)
				}
				if want := visible(w); got != want {
					t.Errorf("%s's transaction (write at %d) ended committed: %v, but read_committed sees the write: %v", name, w.offset, got, want)
				}
				if name == "a" && !tc.commitA && got {
					t.Errorf("a's aborted transaction read back as committed")
				}
			}
		})
	}
}
