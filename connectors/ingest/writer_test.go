package ingest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/schemas"
	"github.com/tessera-cdp/tessera/topology"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fastjson"
)

const app = "tessera"

// startBroker runs an embedded broker over TCP with the ingest topics.
func startBroker(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := EnsureTopics(context.Background(), kadm.NewClient(cl), app, 3, 1); err != nil {
		t.Fatal(err)
	}
	return brokers
}

// writePlans writes the schemas of plans (file name → schema) to a fresh
// folder and loads them.
func writePlans(t *testing.T, files map[string]string, plans []config.TrackingPlan) *schemas.TrackingPlans {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, err := schemas.LoadTrackingPlans(plans, dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var planFiles = map[string]string{
	"order.json":    `{"type":"object","required":["revenue"],"properties":{"revenue":{"type":"number"}}}`,
	"signup.json":   `{"type":"object","properties":{"plan":{"enum":["free","pro"]}}}`,
	"identify.json": `{"type":"object","properties":{"email":{"type":"string","format":"email"}}}`,
}

var plans = []config.TrackingPlan{
	{Event: "Order Completed", Schema: "order.json", Policy: "block"},
	{Event: "Signed Up", Schema: "signup.json", Policy: "allow"},
	{Event: "identify", Schema: "identify.json", Policy: "block"},
}

func normalize(t *testing.T, raw string) schemas.Normalized {
	t.Helper()
	var n schemas.Normalizer
	v, err := n.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := n.Normalize(v, schemas.Input{})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// readTopic reads topic from the start until it holds n records or the
// deadline passes.
func readTopic(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s holds %d records after 20s, want %d", topic, len(out), n)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// endOffsets sums the end offsets of topic's partitions: how many records
// it holds, without waiting for more.
func endOffsets(t *testing.T, brokers []string, topic string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

func TestPublishTrackingPlans(t *testing.T) {
	tests := []struct {
		name        string
		event       string
		wantBlocked string // the reason, "" when published
		wantViol    string // policy label of the violation counted, "" for none
	}{
		{
			name:  "no plan",
			event: `{"type":"track","userId":"u1","event":"Product Viewed","properties":{"revenue":"x"}}`,
		},
		{
			name:  "block plan matched",
			event: `{"type":"track","userId":"u1","event":"Order Completed","properties":{"revenue":12.5}}`,
		},
		{
			name:        "block plan broken",
			event:       `{"type":"track","userId":"u1","event":"Order Completed","properties":{"revenue":"12.50"}}`,
			wantBlocked: `tracking plan "Order Completed": /revenue: got string, want number`,
			wantViol:    "block",
		},
		{
			name:     "allow plan broken",
			event:    `{"type":"track","userId":"u2","event":"Signed Up","properties":{"plan":"gold"}}`,
			wantViol: "allow",
		},
		{
			name:        "identify plan broken",
			event:       `{"type":"identify","userId":"u3","traits":{"email":"nope"}}`,
			wantBlocked: `tracking plan "identify": /email: 'nope' is not valid email: missing @`,
			wantViol:    "block",
		},
		{
			name:  "identify plan matched",
			event: `{"type":"identify","userId":"u3","traits":{"email":"jane@example.com"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			brokers := startBroker(t)
			reg := prometheus.NewRegistry()
			w, err := New(app, ClientOpts(kgo.SeedBrokers(brokers...)), TrackingPlans(writePlans(t, planFiles, plans)), Registerer(reg))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			// A good event around the one under test, so indexes matter.
			good := normalize(t, `{"type":"track","userId":"u0","event":"Page Loaded"}`)
			ev := normalize(t, tt.event)
			res, err := w.PublishFrom(context.Background(), []schemas.Normalized{good, ev, good}, func(i int) string {
				return fmt.Sprintf("test:case[%d]", i)
			})
			if err != nil {
				t.Fatal(err)
			}

			wantEvents := 3
			if tt.wantBlocked != "" {
				wantEvents = 2
				if want := []Blocked{{Index: 1, Reason: tt.wantBlocked}}; !slices.Equal(res.Blocked, want) {
					t.Fatalf("Result.Blocked = %+v, want %+v", res.Blocked, want)
				}
				recs := readTopic(t, brokers, w.InvalidTopic(), 1)
				inv, err := schemas.DecodeInvalidEvent(recs[0].Value)
				if err != nil {
					t.Fatal(err)
				}
				if inv.Reason != tt.wantBlocked || inv.Source != "test:case[1]" || string(inv.Raw) != string(ev.Value) {
					t.Fatalf("invalid event = {reason %q, source %q, raw %s}, want {%q, test:case[1], %s}", inv.Reason, inv.Source, inv.Raw, tt.wantBlocked, ev.Value)
				}
			} else if len(res.Blocked) != 0 {
				t.Fatalf("Result.Blocked = %+v, want none", res.Blocked)
			}
			// Publish waited for acks=all: the topics hold their records now.
			if n := endOffsets(t, brokers, w.EventsTopic()); n != int64(wantEvents) {
				t.Fatalf("%s holds %d events, want %d", w.EventsTopic(), n, wantEvents)
			}
			if n, want := endOffsets(t, brokers, w.InvalidTopic()), int64(3-wantEvents); n != want {
				t.Fatalf("%s holds %d events, want %d", w.InvalidTopic(), n, want)
			}

			var want strings.Builder
			if tt.wantViol != "" {
				v, _ := w.plans.Check(ev)
				fmt.Fprintf(&want, "# HELP tessera_tracking_plan_violations_total %s\n# TYPE tessera_tracking_plan_violations_total counter\n", violationsHelp)
				fmt.Fprintf(&want, "tessera_tracking_plan_violations_total{event=%q,policy=%q} 1\n", v.Event, tt.wantViol)
			}
			if tt.wantBlocked != "" {
				fmt.Fprintf(&want, "# HELP tessera_events_invalid_total %s\n# TYPE tessera_events_invalid_total counter\n", invalidHelp)
				want.WriteString("tessera_events_invalid_total{source=\"test\"} 1\n")
			}
			if err := testutil.GatherAndCompare(reg, strings.NewReader(want.String()),
				"tessera_tracking_plan_violations_total", "tessera_events_invalid_total"); err != nil {
				t.Fatal(err)
			}

			samples := w.Violations()
			if tt.wantViol == "" {
				if len(samples) != 0 {
					t.Fatalf("Violations() = %+v, want none", samples)
				}
				return
			}
			if len(samples) != 1 || string(samples[0].Example) != string(ev.Value) || samples[0].Blocked != (tt.wantBlocked != "") {
				t.Fatalf("Violations() = %+v, want the event under test", samples)
			}
		})
	}
}

func TestPublishWithoutSourceNamesIndex(t *testing.T) {
	brokers := startBroker(t)
	w, err := New(app, ClientOpts(kgo.SeedBrokers(brokers...)), TrackingPlans(writePlans(t, planFiles, plans)))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	bad := normalize(t, `{"type":"track","userId":"u1","event":"Order Completed"}`)
	res, err := w.Publish(context.Background(), []schemas.Normalized{bad})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Blocked) != 1 || res.Blocked[0].Reason != `tracking plan "Order Completed": /: missing property 'revenue'` {
		t.Fatalf("Result.Blocked = %+v", res.Blocked)
	}
	inv, err := schemas.DecodeInvalidEvent(readTopic(t, brokers, w.InvalidTopic(), 1)[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Source != "publish[0]" {
		t.Fatalf("source %q, want publish[0]", inv.Source)
	}
	if got := testutil.ToFloat64(w.rejected.WithLabelValues("publish")); got != 1 {
		t.Fatalf("tessera_events_invalid_total{source=publish} = %v, want 1", got)
	}
}

func TestRejectCountsBySourceKind(t *testing.T) {
	brokers := startBroker(t)
	reg := prometheus.NewRegistry()
	w, err := New(app, ClientOpts(kgo.SeedBrokers(brokers...)), Registerer(reg))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// A second Writer on the same registry shares the counters.
	w2, err := New(app, ClientOpts(kgo.SeedBrokers(brokers...)), Registerer(reg))
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	ctx := context.Background()
	if err := w.Reject(ctx,
		Rejection{Raw: []byte("{"), Reason: "malformed JSON", Source: "http:/v1/batch[3]"},
		Rejection{Raw: []byte("x"), Reason: "bad", Source: "kafka:orders[2]@57"},
	); err != nil {
		t.Fatal(err)
	}
	if err := w2.Reject(ctx, Rejection{Raw: []byte("y"), Reason: "bad", Source: "kafka:orders[0]@1"}, Rejection{Reason: "empty"}); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`# HELP tessera_events_invalid_total %s
# TYPE tessera_events_invalid_total counter
tessera_events_invalid_total{source="http"} 1
tessera_events_invalid_total{source="kafka"} 2
tessera_events_invalid_total{source="unknown"} 1
`, invalidHelp)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "tessera_events_invalid_total"); err != nil {
		t.Fatal(err)
	}
}

func TestViolationSamplesAreBounded(t *testing.T) {
	brokers := startBroker(t)
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	w, err := New(app, ClientOpts(kgo.SeedBrokers(brokers...)), TrackingPlans(writePlans(t, planFiles, plans)),
		ViolationSamples(3), Clock(func() time.Time { clock = clock.Add(time.Second); return clock }))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var evs []schemas.Normalized
	for i := range 5 {
		evs = append(evs, normalize(t, fmt.Sprintf(`{"type":"track","userId":"u%d","event":"Signed Up","properties":{"plan":"p%d"}}`, i, i)))
	}
	evs = append(evs, normalize(t, `{"type":"track","userId":"x","event":"Order Completed"}`))
	for _, ev := range evs { // one Publish each, so each sample has its own time
		if _, err := w.Publish(context.Background(), []schemas.Normalized{ev}); err != nil {
			t.Fatal(err)
		}
	}
	got := w.Violations()
	var summary []string
	for _, s := range got {
		summary = append(summary, fmt.Sprintf("%s %s %s", s.Event, s.At.Format("15:04:05"), s.Errors[0]))
	}
	want := []string{
		"Order Completed 03:04:11 /: missing property 'revenue'",
		"Signed Up 03:04:10 /plan: value must be one of 'free', 'pro'",
		"Signed Up 03:04:09 /plan: value must be one of 'free', 'pro'",
		"Signed Up 03:04:08 /plan: value must be one of 'free', 'pro'",
	}
	if !slices.Equal(summary, want) {
		t.Fatalf("Violations() =\n  %s\nwant\n  %s", strings.Join(summary, "\n  "), strings.Join(want, "\n  "))
	}
	if !strings.Contains(string(got[1].Example), `"userId":"u4"`) {
		t.Fatalf("newest sample's example is %s, want u4's event", got[1].Example)
	}
}

func TestSourceKind(t *testing.T) {
	for src, want := range map[string]string{
		"http:/v1/batch[3]":    "http",
		"kafka:orders[2]@57":   "kafka",
		"import:orders.csv:12": "import",
		"publish[4]":           "publish",
		"":                     "unknown",
		"cli":                  "cli",
	} {
		if got := sourceKind(src); got != want {
			t.Errorf("sourceKind(%q) = %q, want %q", src, got, want)
		}
	}
}

// TestRouteByPartitionsByRoutingIdentifier: with RouteBy, an event lands on
// the partition of the identifier route names, keeps its Segment key, and
// one route cannot name goes by its key.
func TestRouteByPartitionsByRoutingIdentifier(t *testing.T) {
	brokers := startBroker(t)
	route := func(event []byte) []byte {
		if strings.Contains(string(event), `"userId":"u`) {
			u := event[strings.Index(string(event), `"userId":"`)+len(`"userId":"`):]
			return []byte("user_id:" + string(u[:strings.IndexByte(string(u), '"')]))
		}
		return nil
	}
	w, err := New(app, ClientOpts(kgo.SeedBrokers(brokers...)), RouteBy(route))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var evs []schemas.Normalized
	want := map[string]int32{}     // messageId → partition
	wantKey := map[string]string{} // messageId → Segment key
	for i := range 30 {
		id := fmt.Sprintf("m%d", i)
		if i%3 == 0 {
			evs = append(evs, normalize(t, fmt.Sprintf(`{"type":"page","anonymousId":"a%d","messageId":%q}`, i, id)))
			want[id], wantKey[id] = topology.PartitionFor([]byte(fmt.Sprintf("a%d", i)), 3), fmt.Sprintf("a%d", i)
			continue
		}
		evs = append(evs, normalize(t, fmt.Sprintf(`{"type":"track","event":"E","userId":"u%d","messageId":%q}`, i, id)))
		want[id], wantKey[id] = topology.PartitionFor([]byte(fmt.Sprintf("user_id:u%d", i)), 3), fmt.Sprintf("u%d", i)
	}
	if _, err := w.Publish(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	moved := 0
	for _, r := range readTopic(t, brokers, app+".events", len(evs)) {
		id := fastjson.GetString(r.Value, "messageId")
		if r.Partition != want[id] {
			t.Errorf("%s (key %s) on partition %d, want %d", id, r.Key, r.Partition, want[id])
		}
		if r.Partition != topology.PartitionFor(r.Key, 3) {
			moved++
		}
		if string(r.Key) != wantKey[id] {
			t.Errorf("%s has key %q, want its Segment routing key %q", id, r.Key, wantKey[id])
		}
	}
	if moved == 0 {
		t.Error("no event left its key's partition: the test shows nothing")
	}
}
