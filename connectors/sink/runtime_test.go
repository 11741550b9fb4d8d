package sink_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
	"github.com/tessera-cdp/tessera/connectors/sink/sinktest"
)

const (
	app  = "tessera"
	wait = 30 * time.Second
)

// env is an embedded broker with the activations topic, a clock that
// records the waits asked of it, and a metrics registry.
type env struct {
	t       *testing.T
	cluster *kfake.Cluster
	brokers []string
	cl      *kgo.Client
	adm     *kadm.Client
	clock   *clock
	reg     *prometheus.Registry
}

func newEnv(t *testing.T, partitions int32) *env {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	e := &env{t: t, cluster: c, brokers: c.ListenAddrs(), reg: prometheus.NewRegistry(),
		clock: &clock{Clock: sinktest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))}}
	if e.cl, err = kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.DefaultProduceTopic(sink.ActivationsTopic(app))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cl.Close)
	e.adm = kadm.NewClient(e.cl)
	if _, err := e.adm.CreateTopic(context.Background(), partitions, 1, nil, sink.ActivationsTopic(app)); err != nil {
		t.Fatal(err)
	}
	return e
}

// clock is sinktest's Clock, recording every wait.
type clock struct {
	*sinktest.Clock
	mu     sync.Mutex
	sleeps []time.Duration
}

func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.mu.Unlock()
	return c.Clock.Sleep(ctx, d)
}

func (c *clock) waits() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.sleeps)
}

// run starts a Runner for dest (named "d" unless set) through s and stops
// it at cleanup.
func (e *env) run(dest config.Destination, s sink.Sink, opts ...sink.Opt) *sink.Runner {
	e.t.Helper()
	if dest.Name == "" {
		dest.Name = "d"
	}
	opts = append([]sink.Opt{
		sink.Brokers(e.brokers...), sink.WithClock(e.clock), sink.Registerer(e.reg),
		sink.Logger(slog.New(slog.NewTextHandler(e.t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))),
	}, opts...)
	r, err := sink.NewRunner(app, dest, s, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				e.t.Errorf("Run: %v", err)
			}
		case <-time.After(wait):
			e.t.Errorf("Run did not return after its context ended")
		}
	})
	return r
}

// activation returns an activation of profile, its id "<profile>-<n>".
func activation(profile string, n int) sink.Activation {
	return sink.Activation{
		ID: fmt.Sprintf("%s-%d", profile, n), Type: sink.AudienceEntered, Name: "vip", ProfileID: profile,
		Timestamp: time.Date(2026, 1, 1, 0, 0, n, 0, time.UTC), Profile: json.RawMessage(`{}`),
	}
}

func (e *env) produce(acts ...sink.Activation) []*kgo.Record {
	e.t.Helper()
	recs := make([]*kgo.Record, len(acts))
	for i, a := range acts {
		v, err := a.Encode()
		if err != nil {
			e.t.Fatal(err)
		}
		recs[i] = &kgo.Record{Key: []byte(a.ProfileID), Value: v}
	}
	if err := e.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
	return recs
}

func (e *env) await(what string, cond func() (bool, string)) {
	e.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not after %v (%s)", what, wait, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// committed returns the group's committed offset on partition 0 of the
// activations topic, or -1.
func (e *env) committed(dest string) int64 {
	offs, err := e.adm.FetchOffsets(context.Background(), sink.Group(app, dest))
	if err != nil {
		return -1
	}
	o, ok := offs.Lookup(sink.ActivationsTopic(app), 0)
	if !ok {
		return -1
	}
	return o.At
}

// fake is a scripted sink: write decides each WriteBatch's result.
type fake struct {
	mu       sync.Mutex
	calls    [][]string // activation ids of each WriteBatch
	connects int
	closes   int
	connect  func(n int) error // nil: succeed
	write    func(n int, batch []sink.Activation) error
}

func (f *fake) Connect(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.connects++
	if f.connect != nil {
		return f.connect(f.connects)
	}
	return nil
}

func (f *fake) WriteBatch(_ context.Context, batch []sink.Activation) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]string, len(batch))
	for i, a := range batch {
		ids[i] = a.ID
	}
	f.calls = append(f.calls, ids)
	if f.write != nil {
		return f.write(len(f.calls), batch)
	}
	return nil
}

func (f *fake) Close(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closes++
	return nil
}

func (f *fake) written() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// delivered returns every id written, in order, across calls.
func (f *fake) delivered() []string {
	var out []string
	for _, c := range f.written() {
		out = append(out, c...)
	}
	return out
}

func TestNewRunner(t *testing.T) {
	ok := config.Destination{Name: "hook", Type: "webhook"}
	for _, tc := range []struct {
		name    string
		dest    config.Destination
		s       sink.Sink
		opts    []sink.Opt
		wantErr string
	}{
		{"valid", ok, &fake{}, []sink.Opt{sink.Brokers("k:9092")}, ""},
		{"no brokers", ok, &fake{}, nil, "destination hook: no brokers (use the Brokers option)"},
		{"no sink", ok, nil, []sink.Opt{sink.Brokers("k:9092")}, "destination hook: no sink"},
		{"bad name", config.Destination{Name: "a b"}, &fake{}, []sink.Opt{sink.Brokers("k:9092")}, `destination "a b": the name must match`},
		{"backoff upside down", config.Destination{Name: "hook", Delivery: config.Delivery{BackoffMin: config.Duration(time.Minute), BackoffMax: config.Duration(time.Second)}},
			&fake{}, []sink.Opt{sink.Brokers("k:9092")}, "destination hook: delivery: backoff_min (1m0s) must not be negative nor above backoff_max (1s)"},
		{"negative attempts", config.Destination{Name: "hook", Delivery: config.Delivery{MaxAttempts: -1}},
			&fake{}, []sink.Opt{sink.Brokers("k:9092")}, "destination hook: delivery: max_attempts must be at least 1, got -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sink.NewRunner(app, tc.dest, tc.s, tc.opts...)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("NewRunner: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("NewRunner error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestPartialFailureRetriesOnlyTheFailed: after a BatchError, only the
// activations it names are written again.
func TestPartialFailureRetriesOnlyTheFailed(t *testing.T) {
	e := newEnv(t, 1)
	f := &fake{write: func(n int, batch []sink.Activation) error {
		if n == 1 {
			return (&sink.BatchError{}).Fail(1, errors.New("mailbox busy"))
		}
		return nil
	}}
	e.produce(activation("p1", 1), activation("p2", 2), activation("p3", 3))
	r := e.run(config.Destination{}, f)
	e.await("all delivered", func() (bool, string) { return r.Status().Sent == 3, fmt.Sprint(f.written()) })
	if got := fmt.Sprint(f.written()); got != "[[p1-1 p2-2 p3-3] [p2-2]]" {
		t.Errorf("writes %s, want the batch then p2-2 alone", got)
	}
	st := r.Status()
	if st.Failed != 1 || st.Retried != 1 || st.DeadLettered != 0 {
		t.Errorf("status %+v, want 1 failed, 1 retried", st)
	}
	e.await("committed", func() (bool, string) { c := e.committed("d"); return c == 3, fmt.Sprint(c) })
}

// TestWaits: a plain failure waits a jittered backoff from BackoffMin,
// doubling; a RetryAfter longer than that is waited in full; a rate limit
// spaces the writes.
func TestWaits(t *testing.T) {
	for _, tc := range []struct {
		name     string
		delivery config.Delivery
		errs     []error // returned by the writes, in turn; then nil
		acts     int
		check    func(t *testing.T, waits []time.Duration, f *fake)
	}{
		{
			name:     "exponential backoff",
			delivery: config.Delivery{BackoffMin: config.Duration(time.Second), BackoffMax: config.Duration(3 * time.Second)},
			errs:     []error{errors.New("e1"), errors.New("e2"), errors.New("e3")},
			acts:     1,
			check: func(t *testing.T, waits []time.Duration, _ *fake) {
				bounds := [][2]time.Duration{{500 * time.Millisecond, time.Second}, {time.Second, 2 * time.Second}, {1500 * time.Millisecond, 3 * time.Second}}
				if len(waits) != 3 {
					t.Fatalf("waits %v, want 3", waits)
				}
				for i, w := range waits {
					if w < bounds[i][0] || w > bounds[i][1] {
						t.Errorf("wait #%d %v, want within %v", i+1, w, bounds[i])
					}
				}
			},
		},
		{
			name:     "Retry-After",
			delivery: config.Delivery{BackoffMin: config.Duration(time.Second)},
			errs:     []error{sink.RetryAfter(errors.New("429"), 42*time.Second), sink.RetryAfter(errors.New("429"), time.Millisecond)},
			acts:     1,
			check: func(t *testing.T, waits []time.Duration, _ *fake) {
				if len(waits) != 2 || waits[0] != 42*time.Second || waits[1] < time.Second {
					t.Errorf("waits %v, want 42s, then the backoff (a shorter Retry-After does not cut it)", waits)
				}
			},
		},
		{
			name:     "rate limit",
			delivery: config.Delivery{RatePerSecond: 2},
			acts:     6,
			check: func(t *testing.T, waits []time.Duration, f *fake) {
				var total time.Duration
				for _, w := range waits {
					total += w
				}
				for _, c := range f.written() {
					if len(c) > 2 {
						t.Errorf("a write of %d activations at 2 per second", len(c))
					}
				}
				if total < 2*time.Second-10*time.Millisecond || total > 2*time.Second {
					t.Errorf("waited %v in all (%v) for 6 activations at 2/s, want 2s", total, waits)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 1)
			f := &fake{write: func(n int, _ []sink.Activation) error {
				if n <= len(tc.errs) {
					return tc.errs[n-1]
				}
				return nil
			}}
			var acts []sink.Activation
			for i := range tc.acts {
				acts = append(acts, activation(fmt.Sprintf("p%d", i), i))
			}
			e.produce(acts...)
			r := e.run(config.Destination{Delivery: tc.delivery}, f)
			e.await("all delivered", func() (bool, string) { return r.Status().Sent == int64(tc.acts), fmt.Sprintf("%+v", r.Status()) })
			tc.check(t, e.clock.waits(), f)
		})
	}
}

// TestDeadLetterRecord: a permanent failure is dead-lettered at once,
// keeping the original key, value and headers and adding Kafka-Connect
// style ones; the offset after it is committed.
func TestDeadLetterRecord(t *testing.T) {
	e := newEnv(t, 1)
	f := &fake{write: func(_ int, batch []sink.Activation) error {
		if batch[0].ID == "p1-1" {
			return sink.Permanent(errors.New("HTTP 400 Bad Request: unknown list"))
		}
		return nil
	}}
	a := activation("p1", 1)
	v, _ := a.Encode()
	orig := &kgo.Record{Key: []byte("p1"), Value: v, Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-abc-01")}}}
	if err := e.cl.ProduceSync(context.Background(), orig).FirstErr(); err != nil {
		t.Fatal(err)
	}
	r := e.run(config.Destination{Name: "crm"}, f)
	e.await("dead-lettered and committed", func() (bool, string) {
		return r.Status().DeadLettered == 1 && e.committed("crm") == 1, fmt.Sprintf("%+v", r.Status())
	})
	if n := len(f.written()); n != 1 {
		t.Errorf("%d writes, want 1: a permanent error is not retried", n)
	}
	recs := readAll(t, e, sink.DLQTopic(app), 1)
	dl := recs[0]
	if string(dl.Key) != "p1" || string(dl.Value) != string(v) {
		t.Errorf("dead letter key %q, value %q: want the original's", dl.Key, dl.Value)
	}
	var got []string
	for _, h := range dl.Headers {
		v := string(h.Value)
		if h.Key == sink.HeaderTime {
			if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
				t.Errorf("%s %q: %v", h.Key, v, err)
			}
			v = "…"
		}
		got = append(got, h.Key+"="+v)
	}
	want := []string{
		"traceparent=00-abc-01",
		"tessera.dlq.destination=crm",
		"tessera.dlq.stage=deliver",
		"tessera.dlq.attempts=1",
		"tessera.dlq.error=delivering to crm: HTTP 400 Bad Request: unknown list",
		"tessera.dlq.topic=tessera.activations",
		"tessera.dlq.partition=0",
		"tessera.dlq.offset=0",
		"tessera.dlq.time=…",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("headers:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	log := r.Deliveries()
	if len(log) != 1 || log[0].Status != sink.StatusDeadLettered || log[0].Error == "" || log[0].ActivationID != "p1-1" {
		t.Errorf("delivery log %+v, want p1-1 dead-lettered with its error", log)
	}
}

// TestUndecodableRecord: a record that is not an activation is
// dead-lettered at the decode stage, never written.
func TestUndecodableRecord(t *testing.T) {
	e := newEnv(t, 1)
	if err := e.cl.ProduceSync(context.Background(), &kgo.Record{Key: []byte("k"), Value: []byte("not avro")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e.produce(activation("p1", 2))
	f := &fake{}
	r := e.run(config.Destination{}, f)
	e.await("delivered and committed", func() (bool, string) {
		return r.Status().Sent == 1 && e.committed("d") == 2, fmt.Sprintf("%+v", r.Status())
	})
	dls, err := sink.ListDLQ(context.Background(), app, "d", sink.Brokers(e.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].Stage != "decode" || dls[0].Attempts != 0 || !strings.Contains(dls[0].Error, "decoding activation") {
		t.Errorf("dead letters %+v, want the record at the decode stage", dls)
	}
	if got := fmt.Sprint(f.delivered()); got != "[p1-2]" {
		t.Errorf("written %s, want [p1-2]", got)
	}
}

// TestNoCommitBeforeTheDeadLetterIsDurable pins the invariant: while the
// dead-letter topic refuses writes, the offset does not move, and nothing
// after it is committed either.
func TestNoCommitBeforeTheDeadLetterIsDurable(t *testing.T) {
	e := newEnv(t, 1)
	fault := e.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: sink.DLQTopic(app), Err: kerr.NotLeaderForPartition, Count: -1})
	f := &fake{write: func(_ int, batch []sink.Activation) error {
		if batch[0].ID == "p1-1" {
			return sink.Permanent(errors.New("refused"))
		}
		return nil
	}}
	e.produce(activation("p1", 1), activation("p1", 2))
	r := e.run(config.Destination{}, f,
		sink.ClientOpts(kgo.RecordRetries(1), kgo.RetryBackoffFn(func(int) time.Duration { return time.Millisecond }), kgo.MetadataMinAge(10*time.Millisecond)))
	e.await("the dead letter was tried", func() (bool, string) { return fault.Hits() >= 3, fmt.Sprint(fault.Hits()) })
	if c := e.committed("d"); c > 0 {
		t.Fatalf("committed offset %d while the dead letter is not written", c)
	}
	if st := r.Status(); st.DeadLettered != 0 || st.Sent != 0 || !strings.Contains(st.LastError, "writing to the dead-letter topic") {
		t.Errorf("status %+v, want nothing done yet and the dead-letter error shown", st)
	}
	fault.Remove()
	e.await("dead-lettered, delivered, committed", func() (bool, string) {
		st := r.Status()
		return st.DeadLettered == 1 && st.Sent == 1 && e.committed("d") == 2, fmt.Sprintf("%+v committed %d", st, e.committed("d"))
	})
}

// TestConnect: Connect is retried with backoff until it succeeds; a write
// reporting ErrNotConnected makes the runtime close the sink and connect
// again before retrying.
func TestConnect(t *testing.T) {
	e := newEnv(t, 1)
	f := &fake{
		connect: func(n int) error {
			if n <= 2 {
				return errors.New("dial tcp: connection refused")
			}
			return nil
		},
		write: func(n int, _ []sink.Activation) error {
			if n == 1 {
				return fmt.Errorf("sending: %w", sink.ErrNotConnected)
			}
			return nil
		},
	}
	e.produce(activation("p1", 1))
	r := e.run(config.Destination{}, f)
	e.await("delivered", func() (bool, string) { return r.Status().Sent == 1, fmt.Sprintf("%+v", r.Status()) })
	f.mu.Lock()
	connects, closes := f.connects, f.closes
	f.mu.Unlock()
	if connects != 4 || closes != 1 {
		t.Errorf("%d connects and %d closes, want 4 (2 failed, 1, 1 after the lost connection) and 1", connects, closes)
	}
	if st := r.Status(); st.State != sink.StateConnected || !st.Connected {
		t.Errorf("status %+v, want connected", st)
	}
	if got := testutil.ToFloat64(e.metric(t, "tessera_sink_connection_errors_total", "d")); got != 2 {
		t.Errorf("connection errors %v, want 2", got)
	}
}

// metric returns the collector of name with the destination label dest.
func (e *env) metric(t *testing.T, name, dest string) prometheus.Collector {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == dest {
				return constCollector{mf.GetName(), m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())}
			}
		}
	}
	t.Fatalf("no metric %s{destination=%q}", name, dest)
	return nil
}

// constCollector is a metric's value, for testutil.ToFloat64.
type constCollector struct {
	name string
	v    float64
}

func (c constCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- prometheus.NewDesc(c.name, "", nil, nil)
}

func (c constCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(c.name, "", nil, nil), prometheus.UntypedValue, c.v)
}

// TestMetricsAndFilter: two destinations share a registry; each counts
// its own, and the filter drops what a destination does not take.
func TestMetricsAndFilter(t *testing.T) {
	e := newEnv(t, 2)
	vip, all := &fake{write: func(n int, _ []sink.Activation) error {
		if n == 1 {
			return errors.New("once")
		}
		return nil
	}}, &fake{}
	other := activation("p2", 2)
	other.Name = "churn"
	exit := activation("p3", 3)
	exit.Type = sink.AudienceExited
	e.produce(activation("p1", 1), other, exit)
	rv := e.run(config.Destination{Name: "vip", Audiences: []string{"vip"}, Types: []string{sink.AudienceEntered}}, vip, sink.LagInterval(10*time.Millisecond))
	ra := e.run(config.Destination{Name: "all"}, all, sink.LagInterval(10*time.Millisecond))
	e.await("delivered", func() (bool, string) {
		return rv.Status().Sent == 1 && ra.Status().Sent == 3, fmt.Sprintf("%+v %+v", rv.Status(), ra.Status())
	})
	for _, tc := range []struct {
		name, dest string
		want       float64
	}{
		{"tessera_sink_sent_total", "vip", 1},
		{"tessera_sink_failed_total", "vip", 1},
		{"tessera_sink_retried_total", "vip", 1},
		{"tessera_sink_filtered_total", "vip", 2},
		{"tessera_sink_dead_lettered_total", "vip", 0},
		{"tessera_sink_delivery_seconds", "vip", 1},
		{"tessera_sink_connected", "vip", 1},
		{"tessera_sink_sent_total", "all", 3},
		{"tessera_sink_filtered_total", "all", 0},
		{"tessera_sink_failed_total", "all", 0},
	} {
		if got := testutil.ToFloat64(e.metric(t, tc.name, tc.dest)); got != tc.want {
			t.Errorf("%s{destination=%q} = %v, want %v", tc.name, tc.dest, got, tc.want)
		}
	}
	e.produce(activation("p4", 4), activation("p5", 5))
	e.await("lag measured", func() (bool, string) {
		// Lag is measured on committed offsets: it returns to 0 once
		// everything is delivered and committed.
		return ra.Status().Sent == 5 && ra.Status().Lag == 0 && testutil.ToFloat64(e.metric(t, "tessera_sink_lag", "all")) == 0, fmt.Sprintf("%+v", ra.Status())
	})
}

// TestOneActivationPerProfilePerBatch: a profile's activations go in
// separate writes, in order, though the batch has room.
func TestOneActivationPerProfilePerBatch(t *testing.T) {
	e := newEnv(t, 1)
	e.produce(activation("p1", 1), activation("p1", 2), activation("p2", 3), activation("p1", 4), activation("p3", 5))
	f := &fake{}
	r := e.run(config.Destination{}, f)
	e.await("delivered", func() (bool, string) { return r.Status().Sent == 5, fmt.Sprint(f.written()) })
	if got := fmt.Sprint(f.written()); got != "[[p1-1 p2-3 p3-5] [p1-2] [p1-4]]" {
		t.Errorf("writes %s, want p1's three in separate writes, in order", got)
	}
}

func TestRunTwice(t *testing.T) {
	e := newEnv(t, 1)
	r := e.run(config.Destination{}, &fake{})
	e.await("running", func() (bool, string) { return r.Status().Connected, fmt.Sprintf("%+v", r.Status()) })
	if err := r.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "has run already") {
		t.Errorf("second Run: %v", err)
	}
}

// readAll reads n records of topic from the start.
func readAll(t *testing.T, e *env, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d records of %s, want %d", len(out), topic, n)
		}
		out = append(out, fs.Records()...)
	}
	return out
}
