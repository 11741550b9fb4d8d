package fileimport

import (
	"context"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tessera-cdp/tessera/connectors/ingest"
	"github.com/tessera-cdp/tessera/schemas"
)

// cdnowFile is the CDNOW sample, in shared/ beside the repository.
const cdnowFile = "../../../shared/data/cdnow/CDNOW_sample.txt"

// testBroker starts a one-broker kfake cluster over TCP with tessera's
// ingest topics, and returns its address and a Writer on it.
func testBroker(t *testing.T, ctx context.Context) (string, *ingest.Writer) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	addr := c.ListenAddrs()[0]
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := ingest.EnsureTopics(ctx, kadm.NewClient(cl), "tessera", 12, 1); err != nil {
		t.Fatal(err)
	}
	w, err := ingest.NewWriter("tessera", kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return addr, w
}

// readTopic returns every record of topic, reading up to its end offsets.
func readTopic(t *testing.T, ctx context.Context, addr, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	ends.Each(func(o kadm.ListedOffset) { want += o.Offset })
	var recs []*kgo.Record
	for int64(len(recs)) < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records of %s: %v", len(recs), want, topic, err)
		}
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	}
	return recs
}

// TestCDNOWOnBroker imports the CDNOW sample with the shipped mapping into
// the embedded broker twice: 6,919 events for 2,357 customers, and the
// second import yields exactly the same messageIds, so the profiles'
// messageId dedupe makes it a no-op.
func TestCDNOWOnBroker(t *testing.T) {
	if _, err := os.Stat(cdnowFile); err != nil {
		t.Fatalf("the CDNOW sample is missing: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	addr, w := testBroker(t, ctx)
	m, err := LoadMapping("../../examples/cdnow/mapping.yaml")
	if err != nil {
		t.Fatal(err)
	}
	im := NewImporter(m, w, Options{})

	var runs []map[string]string // messageId → key, per import
	for run := range 2 {
		start := time.Now()
		rep, err := im.ImportFile(ctx, cdnowFile)
		elapsed := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Lines != 6919 || rep.Imported != 6919 || rep.Skipped != 0 || rep.Invalid != 0 {
			t.Fatalf("import %d: report %+v, want 6919 lines imported", run+1, rep)
		}
		t.Logf("import %d: %d events in %s, %.0f events/s", run+1, rep.Imported, elapsed.Round(time.Millisecond), float64(rep.Imported)/elapsed.Seconds())

		recs := readTopic(t, ctx, addr, "tessera.events")
		if want := 6919 * (run + 1); len(recs) != want {
			t.Fatalf("tessera.events holds %d events, want %d", len(recs), want)
		}
		ids := make(map[string]string)
		var p schemas.Normalizer
		for _, r := range recs {
			v, err := p.Parse(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			id := string(v.GetStringBytes("messageId"))
			if old, ok := ids[id]; ok && run == 0 {
				t.Fatalf("messageId %s on two events (keys %s and %s)", id, old, r.Key)
			}
			ids[id] = string(r.Key)
			if string(r.Key) != string(v.GetStringBytes("userId")) {
				t.Fatalf("key %q but userId %q", r.Key, v.GetStringBytes("userId"))
			}
		}
		runs = append(runs, ids)
	}
	first, both := runs[0], runs[1]
	if len(first) != 6919 {
		t.Errorf("%d distinct messageIds, want 6919", len(first))
	}
	if !maps.Equal(first, both) {
		t.Errorf("re-importing added messageIds: %d distinct after the first import, %d after the second", len(first), len(both))
	}
	keys := make(map[string]bool)
	for _, k := range first {
		keys[k] = true
	}
	if len(keys) != 2357 {
		t.Errorf("%d distinct userIds, want 2357", len(keys))
	}
	if !keys["0001"] || !keys["2357"] {
		t.Errorf("userIds lost their leading zeros: %v", slices.Sorted(maps.Keys(keys))[:3])
	}
}

// TestBadLinesOnBroker checks that bad lines land on tessera.events.invalid
// with the reason and source that name the line, and the rest on
// tessera.events.
func TestBadLinesOnBroker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr, w := testBroker(t, ctx)
	m, err := ParseMapping([]byte(ordersMapping), "orders.yaml")
	if err != nil {
		t.Fatal(err)
	}
	input := "customer,date,amount,qty\nu1,2026-01-01,1,1\nu2,2026-01-02\nu3,2026-01-03,lots,1\nu4,2026-01-04,4,4\n"
	rep, err := NewImporter(m, w, Options{}).Import(ctx, strings.NewReader(input), "orders.csv", -1)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Imported != 2 || rep.Invalid != 2 {
		t.Errorf("report %+v, want 2 imported and 2 invalid", rep)
	}
	if n := len(readTopic(t, ctx, addr, "tessera.events")); n != 2 {
		t.Errorf("tessera.events holds %d events, want 2", n)
	}
	want := []schemas.InvalidEvent{
		{Raw: []byte("u2,2026-01-02"), Source: "import:orders.csv:3", Reason: "line 3: has 2 columns, expected 4 (as in the header on line 1)"},
		{Raw: []byte("u3,2026-01-03,lots,1"), Source: "import:orders.csv:4", Reason: `line 4, column "amount" ($3) (properties.revenue): "lots" is not a number`},
	}
	recs := readTopic(t, ctx, addr, "tessera.events.invalid")
	if len(recs) != len(want) {
		t.Fatalf("tessera.events.invalid holds %d records, want %d", len(recs), len(want))
	}
	for i, r := range recs {
		got, err := schemas.DecodeInvalidEvent(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Raw) != string(want[i].Raw) || got.Source != want[i].Source || got.Reason != want[i].Reason || string(r.Key) != want[i].Source {
			t.Errorf("invalid record %d: key %s %+v\nwant %+v", i, r.Key, got, want[i])
		}
	}
}
