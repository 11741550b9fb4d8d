package console

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tessera-cdp/tessera/connectors/ingest"
	"github.com/tessera-cdp/tessera/schemas"
)

// TestQuality: invalid events are grouped by reason, most frequent first,
// with the newest examples; only the tail of each partition is read; the
// tracking-plan violations add up the counters by event with the
// writer's samples.
func TestQuality(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
	reg := prometheus.NewRegistry()
	violations := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tessera_tracking_plan_violations_total"}, []string{"event", "policy"})
	reg.MustRegister(violations)
	violations.WithLabelValues("Order Completed", "block").Add(3)
	violations.WithLabelValues("Order Completed", "allow").Add(1)
	violations.WithLabelValues("Signed Up", "allow").Add(9)
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	samples := []ingest.ViolationSample{
		{Event: "Order Completed", Policy: "block", Errors: []string{"/revenue: got string, want number"}, Blocked: true, Example: []byte(`{"event":"Order Completed"}`), At: at},
	}
	q := NewQuality("shop", reg, func() []ingest.ViolationSample { return samples }, opts...)
	ctx := context.Background()

	// No invalid-events topic yet: nothing was refused.
	v, err := q.View(ctx)
	if err != nil || len(v.Invalid) != 0 || v.Total != 0 {
		t.Fatalf("without the topic: %+v, %v", v, err)
	}
	if len(v.Violations) != 2 || v.Violations[0].Event != "Signed Up" || v.Violations[0].Allowed != 9 ||
		v.Violations[1].Blocked != 3 || v.Violations[1].Allowed != 1 || len(v.Violations[1].Examples) != 1 {
		t.Errorf("violations: %+v", v.Violations)
	}

	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, "shop.events.invalid"); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	add := func(p int32, reason string, i int) {
		b, err := schemas.InvalidEvent{Raw: []byte(fmt.Sprintf(`{"n":%d}`, i)), Reason: reason, Source: fmt.Sprintf("http:/v1/batch[%d]", i),
			ReceivedAt: at.Add(time.Duration(i) * time.Second)}.Encode()
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: "shop.events.invalid", Partition: p, Value: b})
	}
	// Partition 0: 100 old "bad json" ones the tail does not reach, then
	// the newest qualityTail; partition 1: a few.
	for i := range 100 {
		add(0, "old reason", i)
	}
	for i := range qualityTail {
		add(0, []string{"not JSON", "not JSON", "no identifier"}[i%3], 1000+i)
	}
	for i := range 4 {
		add(1, "no identifier", 5000+i)
	}
	manual, err := kgo.NewClient(append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer manual.Close()
	if err := manual.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	q = NewQuality("shop", reg, nil, opts...) // a new one: the first cached its reading
	v, err = q.View(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v.Total != 100+qualityTail+4 || v.Read != qualityTail+4 {
		t.Errorf("total %d, read %d; want %d and %d", v.Total, v.Read, 100+qualityTail+4, qualityTail+4)
	}
	var got []string
	for _, r := range v.Invalid {
		got = append(got, fmt.Sprintf("%s×%d", r.Reason, r.Count))
	}
	if want := fmt.Sprintf("[not JSON×%d no identifier×%d]", 334, 166+4); fmt.Sprint(got) != want {
		t.Errorf("reasons %v, want %s", got, want)
	}
	noID := v.Invalid[1]
	if len(noID.Examples) != qualityExamples || noID.Examples[0].Raw != `{"n":5003}` || noID.Examples[0].Source != "http:/v1/batch[5003]" ||
		!noID.Last.Equal(at.Add(5003*time.Second)) {
		t.Errorf("newest examples of %q: %+v, last %v", noID.Reason, noID.Examples, noID.Last)
	}
	if len(v.Violations) != 2 || len(v.Violations[1].Examples) != 0 {
		t.Errorf("violations without samples: %+v", v.Violations)
	}
}
