package kafkasource_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/ingest"
	"github.com/tessera-cdp/tessera/connectors/kafkasource"
	"github.com/tessera-cdp/tessera/schemas"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"github.com/valyala/fastjson"
)

const (
	app   = "tessera"
	topic = "orders"
	wait  = 30 * time.Second
)

// env is an embedded broker over TCP with the ingest topics and a source
// topic of two partitions, and a real ingest.Writer.
type env struct {
	t       *testing.T
	brokers []string
	adm     *kadm.Client
	w       *ingest.Writer
	reg     *prometheus.Registry
}

func newEnv(t *testing.T, wopts ...ingest.WriterOption) *env {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	e := &env{t: t, brokers: c.ListenAddrs(), reg: prometheus.NewRegistry()}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	e.adm = kadm.NewClient(cl)
	ctx := context.Background()
	if err := ingest.EnsureTopics(ctx, e.adm, app, 3, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := e.adm.CreateTopic(ctx, 2, 1, nil, topic); err != nil {
		t.Fatal(err)
	}
	wopts = append([]ingest.WriterOption{ingest.ClientOpts(kgo.SeedBrokers(e.brokers...)), ingest.Registerer(e.reg)}, wopts...)
	if e.w, err = ingest.New(app, wopts...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.w.Close)
	return e
}

// produce writes values to the source topic, value i to partition
// i%2, and returns the records with their offsets.
func (e *env) produce(values ...[]byte) []*kgo.Record {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topic, Partition: int32(i % 2), Value: v, Timestamp: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC).Add(time.Duration(i) * time.Second)}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
	return recs
}

// run starts a Source on the topic and returns a stop function that
// cancels it and waits for Run to return.
func (e *env) run(src config.KafkaSource, opts ...kafkasource.Opt) (s *kafkasource.Source, stop func()) {
	e.t.Helper()
	if src.Topic == "" {
		src.Topic = topic
	}
	opts = append([]kafkasource.Opt{
		kafkasource.Brokers(e.brokers...),
		kafkasource.Registerer(e.reg),
		kafkasource.Logger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		kafkasource.RetryBackoff(time.Millisecond, 20*time.Millisecond),
	}, opts...)
	s, err := kafkasource.New(app, src, e.w, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					e.t.Errorf("Run: %v", err)
				}
			case <-time.After(wait):
				e.t.Errorf("Run did not return %v after its context ended", wait)
			}
		})
	}
	e.t.Cleanup(stop)
	return s, stop
}

// await polls cond until it holds or the deadline passes.
func (e *env) await(what string, cond func() (bool, string)) {
	e.t.Helper()
	deadline := time.Now().Add(wait)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not after %v (%s)", what, wait, state)
		}
		<-tick.C
	}
}

// awaitCommitted waits until group has committed every record produced
// to the source topic.
func (e *env) awaitCommitted(group string) {
	e.t.Helper()
	ctx := context.Background()
	e.await("offsets committed to the end of "+topic, func() (bool, string) {
		ends, err := e.adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return false, err.Error()
		}
		committed, err := e.adm.FetchOffsets(ctx, group)
		if err != nil {
			return false, err.Error()
		}
		ok := true
		var state []string
		ends.Each(func(o kadm.ListedOffset) {
			c, _ := committed.Lookup(topic, o.Partition)
			state = append(state, fmt.Sprintf("p%d committed %d end %d", o.Partition, c.At, o.Offset))
			ok = ok && c.At == o.Offset
		})
		return ok, strings.Join(state, ", ")
	})
}

// count returns how many records topic holds.
func (e *env) count(topic string) int64 {
	e.t.Helper()
	ends, err := e.adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		e.t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// read returns every record of topic, which holds n.
func (e *env) read(topic string, n int) []*kgo.Record {
	e.t.Helper()
	e.await(fmt.Sprintf("%d records on %s", n, topic), func() (bool, string) {
		c := e.count(topic)
		return c >= int64(n), fmt.Sprintf("%d records", c)
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			e.t.Fatalf("read %d of %d records of %s", len(out), n, topic)
		}
		out = append(out, fs.Records()...)
	}
	if got := e.count(topic); got != int64(n) {
		e.t.Fatalf("%s holds %d records, want %d", topic, got, n)
	}
	return out
}

// invalid reads the invalid-events topic, which holds n, as reasons by
// source.
func (e *env) invalid(n int) map[string]schemas.InvalidEvent {
	e.t.Helper()
	out := map[string]schemas.InvalidEvent{}
	for _, r := range e.read(e.w.InvalidTopic(), n) {
		inv, err := schemas.DecodeInvalidEvent(r.Value)
		if err != nil {
			e.t.Fatal(err)
		}
		out[inv.Source] = inv
	}
	return out
}

// events reads the events topic, which holds n, parsed, by messageId.
func (e *env) events(n int) map[string]*fastjson.Value {
	e.t.Helper()
	out := map[string]*fastjson.Value{}
	for _, r := range e.read(e.w.EventsTopic(), n) {
		v, err := fastjson.ParseBytes(r.Value)
		if err != nil {
			e.t.Fatal(err)
		}
		out[string(v.GetStringBytes("messageId"))] = v
	}
	return out
}

func (e *env) compareMetric(want string) {
	e.t.Helper()
	want = "# HELP tessera_source_records_total Records read from external Kafka topics, by topic and result (published, blocked by a tracking plan, invalid).\n" +
		"# TYPE tessera_source_records_total counter\n" + want
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(want), "tessera_source_records_total"); err != nil {
		e.t.Fatal(err)
	}
}

// specReason is why a real Normalizer refuses raw: the reason a source
// must pass on unchanged.
func specReason(t *testing.T, raw []byte) string {
	t.Helper()
	var n schemas.Normalizer
	v, err := n.Parse(raw)
	if err == nil {
		_, err = n.Normalize(v, schemas.Input{})
	}
	if err == nil {
		t.Fatalf("%s is a valid event", raw)
	}
	return err.Error()
}

func at(r *kgo.Record) string { return fmt.Sprintf("kafka:%s[%d]@%d", r.Topic, r.Partition, r.Offset) }

func orderPlan(t *testing.T) *schemas.TrackingPlans {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "order.json"), []byte(`{"type":"object","required":["revenue"],"properties":{"revenue":{"type":"number"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := schemas.LoadTrackingPlans([]config.TrackingPlan{{Event: "Order Completed", Schema: "order.json", Policy: "block"}}, dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestJSONSource(t *testing.T) {
	e := newEnv(t, ingest.TrackingPlans(orderPlan(t)))
	recs := e.produce(
		[]byte(`{"type":"track","userId":"u1","event":"Order Completed","properties":{"revenue":10},"messageId":"m-1","timestamp":"2026-01-02T03:04:05.000Z"}`),
		[]byte(`{"type":"identify","userId":"u2","traits":{"email":"jane@example.com"}}`),
		[]byte(`not json`),
		[]byte(`{"type":"track","userId":"u3"}`),
		[]byte(`[1,2]`),
		nil,
		[]byte(`{"type":"track","userId":"u4","event":"Order Completed","properties":{"revenue":"x"}}`),
	)
	s, stop := e.run(config.KafkaSource{Format: "json"})
	if s.Group() != "tessera.source.orders" {
		t.Fatalf("group %q", s.Group())
	}
	e.awaitCommitted(s.Group())
	stop()

	evs := e.events(2)
	if v := evs["m-1"]; v == nil || string(v.GetStringBytes("event")) != "Order Completed" || string(v.GetStringBytes("timestamp")) != "2026-01-02T03:04:05.000Z" {
		t.Fatalf("event m-1 = %v", v)
	}
	// No messageId: one derived from where the record sits; receivedAt
	// is the record's timestamp, so a redelivery is the same event.
	id := kafkasource.MessageID(topic, recs[1].Partition, recs[1].Offset)
	if v := evs[id]; v == nil || string(v.GetStringBytes("userId")) != "u2" || string(v.GetStringBytes("receivedAt")) != "2026-05-06T07:08:10.000Z" {
		t.Fatalf("event %s = %v (events: %v)", id, v, evs)
	}

	want := map[string]string{
		at(recs[2]): specReason(t, recs[2].Value),
		at(recs[3]): specReason(t, recs[3].Value),
		at(recs[4]): specReason(t, recs[4].Value),
		at(recs[5]): "record has no value",
		at(recs[6]): `tracking plan "Order Completed": /revenue: got string, want number`,
	}
	got := e.invalid(len(want))
	for src, reason := range want {
		if got[src].Reason != reason {
			t.Errorf("%s: reason %q, want %q", src, got[src].Reason, reason)
		}
	}
	if raw := got[at(recs[2])].Raw; string(raw) != "not json" {
		t.Errorf("raw input kept as %q", raw)
	}
	e.compareMetric(`tessera_source_records_total{result="blocked",topic="orders"} 1
tessera_source_records_total{result="invalid",topic="orders"} 4
tessera_source_records_total{result="published",topic="orders"} 2
`)
}

func TestRestartResumesAfterCommittedOffsets(t *testing.T) {
	e := newEnv(t)
	ev := func(i int) []byte { return fmt.Appendf(nil, `{"type":"track","userId":"u%d","event":"Viewed"}`, i) }
	e.produce(ev(0), ev(1), ev(2))
	s, stop := e.run(config.KafkaSource{})
	e.awaitCommitted(s.Group())
	stop()
	if n := e.count(e.w.EventsTopic()); n != 3 {
		t.Fatalf("%d events after the first run, want 3", n)
	}

	e.produce(ev(3), ev(4))
	s, stop = e.run(config.KafkaSource{})
	e.awaitCommitted(s.Group())
	stop()
	evs := e.events(5) // exactly 5: nothing committed was published again
	var users []string
	for _, v := range evs {
		users = append(users, string(v.GetStringBytes("userId")))
	}
	slices.Sort(users)
	if want := []string{"u0", "u1", "u2", "u3", "u4"}; !slices.Equal(users, want) {
		t.Fatalf("users %v, want %v", users, want)
	}
}

// flaky publishes, then reports a failure the first time: the events are
// durable but the Source cannot know, as when a connection drops before
// the acks arrive.
type flaky struct {
	*ingest.Writer
	failed atomic.Bool
}

func (f *flaky) PublishFrom(ctx context.Context, evs []schemas.Normalized, source func(int) string) (ingest.Result, error) {
	res, err := f.Writer.PublishFrom(ctx, evs, source)
	if err == nil && f.failed.CompareAndSwap(false, true) {
		return ingest.Result{}, errors.New("connection reset by peer")
	}
	return res, err
}

func TestRetriedPublishRepeatsTheSameEvents(t *testing.T) {
	e := newEnv(t)
	e.produce([]byte(`{"type":"track","userId":"u1","event":"Viewed"}`))
	f := &flaky{Writer: e.w}
	s, err := kafkasource.New(app, config.KafkaSource{Topic: topic}, f, kafkasource.Brokers(e.brokers...),
		kafkasource.RetryBackoff(time.Millisecond, time.Millisecond), kafkasource.Logger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	e.awaitCommitted(s.Group())
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	recs := e.read(e.w.EventsTopic(), 2)
	if string(recs[0].Value) != string(recs[1].Value) {
		t.Fatalf("a retried record published two different events:\n  %s\n  %s", recs[0].Value, recs[1].Value)
	}
	if !f.failed.Load() {
		t.Fatal("the publisher never failed")
	}
}

const avroSchema = `{"type":"record","name":"Event","namespace":"com.shop","fields":[
	{"name":"type","type":"string"},
	{"name":"event","type":["null","string"],"default":null},
	{"name":"userId","type":["null","string"],"default":null},
	{"name":"timestamp","type":{"type":"long","logicalType":"timestamp-millis"}},
	{"name":"properties","type":{"type":"map","values":["null","string","double","long","boolean"]}}
]}`

func avroRecord(t *testing.T, id int, native map[string]any) []byte {
	t.Helper()
	codec, err := goavro.NewCodec(avroSchema)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := new(sr.ConfluentHeader).AppendEncode(nil, id, nil)
	b, err = codec.BinaryFromNative(b, native)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAvroSource(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	id, _, err := reg.RegisterSchema("orders-value", sr.Schema{Schema: avroSchema, Type: sr.TypeAvro})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	ts := time.Date(2026, 3, 4, 5, 6, 7, 890e6, time.UTC)
	order := map[string]any{
		"type": "track", "event": goavro.Union("string", "Order Completed"), "userId": goavro.Union("string", "u1"), "timestamp": ts,
		"properties": map[string]any{"revenue": goavro.Union("double", 12.5), "currency": goavro.Union("string", "EUR"), "coupon": nil, "items": goavro.Union("long", int64(3))},
	}
	identify := map[string]any{"type": "identify", "event": nil, "userId": goavro.Union("string", "u2"), "timestamp": ts, "properties": map[string]any{}}
	noEvent := map[string]any{"type": "track", "event": nil, "userId": goavro.Union("string", "u3"), "timestamp": ts, "properties": map[string]any{}}
	good := avroRecord(t, id, order)
	recs := e.produce(
		good,
		avroRecord(t, id, identify),
		avroRecord(t, 999, order),
		append(good[:5:5], 0xff), // a string length that runs past the end
		[]byte(`{"type":"track"}`),
		avroRecord(t, id, noEvent),
	)
	s, stop := e.run(config.KafkaSource{Format: "avro", SchemaRegistry: reg.URL()})
	e.awaitCommitted(s.Group())
	stop()

	evs := e.events(2)
	v := evs[kafkasource.MessageID(topic, recs[0].Partition, recs[0].Offset)]
	if v == nil {
		t.Fatalf("order event missing: %v", evs)
	}
	if got, want := string(v.Get("properties").MarshalTo(nil)), `{"coupon":null,"currency":"EUR","items":3,"revenue":12.5}`; got != want {
		t.Errorf("properties %s, want %s", got, want)
	}
	if got := string(v.GetStringBytes("timestamp")); got != "2026-03-04T05:06:07.890Z" {
		t.Errorf("timestamp %s", got)
	}
	if got := string(v.GetStringBytes("event")); got != "Order Completed" {
		t.Errorf("event %s", got)
	}
	if v := evs[kafkasource.MessageID(topic, recs[1].Partition, recs[1].Offset)]; v == nil || string(v.GetStringBytes("type")) != "identify" || v.Get("event").Type() != fastjson.TypeNull {
		t.Errorf("identify event = %v", v)
	}

	want := map[string]string{
		at(recs[2]): "schema id 999 is not in the schema registry",
		at(recs[3]): fmt.Sprintf("decoding Avro record with schema id %d: ", id),
		at(recs[4]): "reading Confluent wire format: 5 byte header for value is missing or does not have 0 magic byte",
		at(recs[5]): specReason(t, []byte(`{"type":"track","event":null,"userId":"u3","timestamp":"2026-03-04T05:06:07.890Z","properties":{}}`)),
	}
	got := e.invalid(len(want))
	for src, reason := range want {
		if !strings.HasPrefix(got[src].Reason, reason) {
			t.Errorf("%s: reason %q, want %q", src, got[src].Reason, reason)
		}
	}
	e.compareMetric(`tessera_source_records_total{result="blocked",topic="orders"} 0
tessera_source_records_total{result="invalid",topic="orders"} 4
tessera_source_records_total{result="published",topic="orders"} 2
`)
}

func TestAvroRegistryOutageIsRetried(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	id, _, err := reg.RegisterSchema("orders-value", sr.Schema{Schema: avroSchema, Type: sr.TypeAvro})
	if err != nil {
		t.Fatal(err)
	}
	var failures atomic.Int32
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/schemas/ids/") && failures.Add(1) <= 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	e := newEnv(t)
	e.produce(avroRecord(t, id, map[string]any{
		"type": "track", "event": goavro.Union("string", "Viewed"), "userId": goavro.Union("string", "u1"),
		"timestamp": time.Now(), "properties": map[string]any{},
	}))
	s, stop := e.run(config.KafkaSource{Format: "avro", SchemaRegistry: reg.URL()})
	e.awaitCommitted(s.Group())
	stop()
	if n := e.count(e.w.EventsTopic()); n != 1 {
		t.Fatalf("%d events, want 1: an unreachable registry must not reject records", n)
	}
	if n := e.count(e.w.InvalidTopic()); n != 0 {
		t.Fatalf("%d invalid events, want 0", n)
	}
	if failures.Load() < 4 {
		t.Fatalf("registry asked %d times, want the 3 failures and a success", failures.Load())
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		src  config.KafkaSource
		opts []kafkasource.Opt
		want string
	}{
		{"no topic", config.KafkaSource{}, []kafkasource.Opt{kafkasource.Brokers("b:9092")}, "kafka source: topic must not be empty"},
		{"no brokers", config.KafkaSource{Topic: "t"}, nil, "kafka source t: no brokers (set its brokers or the hub's)"},
		{"bad format", config.KafkaSource{Topic: "t", Format: "xml"}, []kafkasource.Opt{kafkasource.Brokers("b:9092")}, `kafka source t: format must be json or avro, got "xml"`},
		{"avro without registry", config.KafkaSource{Topic: "t", Format: "avro", Brokers: []string{"b:9092"}}, nil, "kafka source t: format avro needs a schema registry"},
		{"no workers", config.KafkaSource{Topic: "t"}, []kafkasource.Opt{kafkasource.Brokers("b:9092"), kafkasource.Workers(0)}, "kafka source t: workers must be at least 1, got 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := kafkasource.New(app, tt.src, nil, tt.opts...)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}
