// Package ingest is the path every source takes into tessera: events that
// passed validation go to <app>.events keyed by their routing identifier,
// and inputs that did not go to <app>.events.invalid with their reason, so
// nothing is silently dropped. The HTTP API, the Kafka source and the file
// import all write through a Writer.
//
// The Writer also applies the tracking plans (schemas.TrackingPlans): an
// event that breaks a plan with policy block goes to the invalid topic
// instead of the events topic, one that breaks a plan with policy allow is
// published, and both are counted and sampled for the console's
// data-quality page.
package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tessera-cdp/tessera/schemas"
	"github.com/tessera-cdp/tessera/topology"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Writer produces to the events and invalid-events topics with acks=all:
// Publish returns only once every event is durable, so a source can answer
// its caller (HTTP 200, a committed offset) truthfully. A Writer is safe
// for concurrent use.
type Writer struct {
	cl         *kgo.Client
	events     string
	invalid    string
	ownsClient bool
	now        func() time.Time
	plans      *schemas.TrackingPlans

	violations *prometheus.CounterVec // event, policy
	rejected   *prometheus.CounterVec // source
	suppressed *prometheus.CounterVec // type
	suppress   func(event []byte) bool
	route      func(event []byte) []byte

	samples *sampler
}

// WriterOption configures a Writer built by New.
type WriterOption interface{ apply(*writerCfg) }

type writerOption func(*writerCfg)

func (o writerOption) apply(c *writerCfg) { o(c) }

type writerCfg struct {
	clientOpts []kgo.Opt
	plans      *schemas.TrackingPlans
	reg        prometheus.Registerer
	samples    int
	now        func() time.Time
	suppress   func(event []byte) bool
	route      func(event []byte) []byte
}

func defaultWriterCfg() writerCfg {
	return writerCfg{samples: 10, now: time.Now}
}

// ClientOpts adds options to the Writer's Kafka client (seed brokers at
// least), after and so overriding its defaults: acks from all in-sync
// replicas, a 2 ms linger, 4 MiB batches, 100,000 buffered records.
func ClientOpts(opts ...kgo.Opt) WriterOption {
	return writerOption(func(c *writerCfg) { c.clientOpts = append(c.clientOpts, opts...) })
}

// TrackingPlans sets the plans Publish checks events against, overriding
// the default of none.
func TrackingPlans(p *schemas.TrackingPlans) WriterOption {
	return writerOption(func(c *writerCfg) { c.plans = p })
}

// Registerer registers the Writer's metrics with reg, overriding the
// default of not registering them:
// tessera_tracking_plan_violations_total{event,policy} and
// tessera_events_invalid_total{source}. Several Writers may share a
// registry; they then share the counters.
func Registerer(reg prometheus.Registerer) WriterOption {
	return writerOption(func(c *writerCfg) { c.reg = reg })
}

// ViolationSamples sets how many recent violations Violations keeps per
// plan, overriding the default of 10; 0 keeps none.
func ViolationSamples(n int) WriterOption {
	return writerOption(func(c *writerCfg) { c.samples = max(n, 0) })
}

// Suppress sets the test of suppressed events: Publish drops an event for
// which suppress (given the normalized event JSON) is true, and counts it
// in tessera_ingest_suppressed_total{type}; it is never stored. The
// default suppresses nothing. suppress is called concurrently.
func Suppress(suppress func(event []byte) bool) WriterOption {
	return writerOption(func(c *writerCfg) { c.suppress = suppress })
}

// RouteBy sets how an event's partition is chosen: by the murmur2 hash of
// route(event) (the routing identifier as identity resolution writes it,
// identity.Rules.Routing) instead of its key. The key stays the Segment
// routing key (userId, else anonymousId). The identity stage resolves an
// event on the partition of its routing identifier: an event written there
// is resolved where it is read, one written by its key alone first travels
// through <app>.identity-links. A nil result partitions by the key. The
// default partitions by the key. route is called concurrently.
func RouteBy(route func(event []byte) []byte) WriterOption {
	return writerOption(func(c *writerCfg) { c.route = route })
}

// Clock sets the time source of receivedAt stamps on invalid events and of
// violation samples, overriding time.Now.
func Clock(now func() time.Time) WriterOption {
	return writerOption(func(c *writerCfg) { c.now = now })
}

// Help texts of the metrics; names and labels are part of the product's
// interface (dashboards read them).
const (
	violationsHelp = "Events that broke their tracking plan, by plan event and policy (block: sent to the invalid-events topic; allow: published)."
	invalidHelp    = "Inputs written to the invalid-events topic, by source kind (http, kafka, import, publish)."
	suppressedHelp = "Events dropped at ingest because one of their identifiers is suppressed (a privacy regulation), by event type."
)

// New returns a Writer for application app with its own Kafka client.
func New(app string, opts ...WriterOption) (*Writer, error) {
	cfg := defaultWriterCfg()
	for _, o := range opts {
		o.apply(&cfg)
	}
	kopts := append([]kgo.Opt{
		kgo.RecordPartitioner(routePartitioner{}),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(2 * time.Millisecond),
		kgo.ProducerBatchMaxBytes(4 << 20),
		kgo.MaxBufferedRecords(100_000),
	}, cfg.clientOpts...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("creating events producer: %w", err)
	}
	w := &Writer{
		cl:         cl,
		events:     app + ".events",
		invalid:    app + ".events.invalid",
		ownsClient: true,
		now:        cfg.now,
		plans:      cfg.plans,
		violations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_tracking_plan_violations_total",
			Help: violationsHelp,
		}, []string{"event", "policy"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_events_invalid_total",
			Help: invalidHelp,
		}, []string{"source"}),
		suppressed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_ingest_suppressed_total",
			Help: suppressedHelp,
		}, []string{"type"}),
		suppress: cfg.suppress,
		route:    cfg.route,
		samples:  newSampler(cfg.samples),
	}
	if cfg.reg != nil {
		if w.violations, err = register(cfg.reg, w.violations); err == nil {
			w.rejected, err = register(cfg.reg, w.rejected)
		}
		if err == nil {
			w.suppressed, err = register(cfg.reg, w.suppressed)
		}
		if err != nil {
			cl.Close()
			return nil, err
		}
	}
	return w, nil
}

// NewWriter returns a Writer for application app on its own client built
// from opts (seed brokers at least): New(app, ClientOpts(opts...)).
func NewWriter(app string, opts ...kgo.Opt) (*Writer, error) {
	return New(app, ClientOpts(opts...))
}

// register registers c, or returns the equal collector already there.
func register(reg prometheus.Registerer, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
			return existing, nil
		}
	}
	return nil, fmt.Errorf("registering ingest metrics: %w", err)
}

// EventsTopic returns the topic Publish writes to.
func (w *Writer) EventsTopic() string { return w.events }

// InvalidTopic returns the topic Reject writes to.
func (w *Writer) InvalidTopic() string { return w.invalid }

// Blocked is an event a tracking plan with policy block refused; Publish
// has sent it to the invalid-events topic instead.
type Blocked struct {
	// Index is the event's position in the slice given to Publish.
	Index  int
	Reason string
}

// Result says what Publish did beyond writing: the events it blocked,
// and how many it dropped as suppressed.
type Result struct {
	Blocked    []Blocked
	Suppressed int
}

// Publish writes events and waits until all are acknowledged by all
// in-sync replicas. On error some may have been written; the caller
// answers with an error and the client retries, and the profile's
// messageId dedupe absorbs the repeats.
//
// Events that break a tracking plan with policy block are written to the
// invalid-events topic instead, with the reason
// (`tracking plan "Order Completed": /revenue: got string, want number`),
// and listed in Result.Blocked; the invalid record's Raw is the
// normalized event and its Source "publish[i]". Use PublishFrom to name
// where each event came from.
func (w *Writer) Publish(ctx context.Context, evs []schemas.Normalized) (Result, error) {
	return w.PublishFrom(ctx, evs, nil)
}

// PublishFrom is Publish with the provenance of each event: source(i) is
// the Source of event i if a tracking plan blocks it, as for Reject
// ("http:/v1/batch[3]", "kafka:orders[2]@57"). It is called only for
// blocked events; nil names them "publish[i]".
func (w *Writer) PublishFrom(ctx context.Context, evs []schemas.Normalized, source func(i int) string) (Result, error) {
	var res Result
	if len(evs) == 0 {
		return res, nil
	}
	recs := make([]*kgo.Record, 0, len(evs))
	var found []violation
	now := w.now()
	for i, e := range evs {
		if w.suppress != nil && w.suppress(e.Value) {
			w.suppressed.WithLabelValues(e.Type).Inc()
			res.Suppressed++
			continue
		}
		if v, bad := w.plans.Check(e); bad {
			if !v.Blocked {
				found = append(found, violation{Violation: v, index: i})
			} else {
				src := fmt.Sprintf("publish[%d]", i)
				if source != nil {
					src = source(i)
				}
				found = append(found, violation{Violation: v, index: i, source: src})
				reason := v.Reason()
				val, err := schemas.InvalidEvent{Raw: e.Value, Reason: reason, Source: src, ReceivedAt: now}.Encode()
				if err != nil {
					return Result{}, err
				}
				recs = append(recs, &kgo.Record{Topic: w.invalid, Key: []byte(src), Value: val})
				res.Blocked = append(res.Blocked, Blocked{Index: i, Reason: reason})
				continue
			}
		}
		rec := &kgo.Record{Topic: w.events, Key: e.Key, Value: e.Value, Timestamp: e.Timestamp}
		if w.route != nil {
			if rk := w.route(e.Value); rk != nil {
				rec.Context = context.WithValue(ctx, routeKey{}, rk)
			}
		}
		recs = append(recs, rec)
	}
	if err := w.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return Result{}, fmt.Errorf("writing %d events to %s: %w", len(recs), w.events, err)
	}
	for _, v := range found {
		w.violations.WithLabelValues(v.Event, v.Policy).Inc()
		w.samples.add(ViolationSample{
			Event: v.Event, Policy: v.Policy, Errors: v.Errors, Blocked: v.Blocked,
			Example: bytes.Clone(evs[v.index].Value), At: now,
		})
		if v.Blocked {
			w.rejected.WithLabelValues(sourceKind(v.source)).Inc()
		}
	}
	return res, nil
}

type violation struct {
	schemas.Violation
	index  int
	source string // of a blocked event
}

// sourceKind is the metric label of a Rejection's Source: the part before
// the first ':' or '[' ("kafka:orders[2]@57" → "kafka"), so the label's
// values stay few.
func sourceKind(src string) string {
	if i := strings.IndexAny(src, ":["); i >= 0 {
		src = src[:i]
	}
	if src == "" {
		return "unknown"
	}
	return src
}

// Rejection is one input that could not be processed.
type Rejection struct {
	Raw    []byte
	Reason string
	// Source says where the input came from, its kind first
	// ("http:/v1/batch[3]", "import:orders.csv:12", "kafka:orders[2]@57");
	// the kind labels tessera_events_invalid_total.
	Source string
}

// Reject writes rejected inputs to the invalid-events topic and waits for
// them to be durable.
func (w *Writer) Reject(ctx context.Context, rs ...Rejection) error {
	if len(rs) == 0 {
		return nil
	}
	now := w.now()
	recs := make([]*kgo.Record, 0, len(rs))
	var errs []error
	for _, r := range rs {
		v, err := schemas.InvalidEvent{Raw: r.Raw, Reason: r.Reason, Source: r.Source, ReceivedAt: now}.Encode()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		recs = append(recs, &kgo.Record{Topic: w.invalid, Key: []byte(r.Source), Value: v})
	}
	if err := w.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		errs = append(errs, fmt.Errorf("writing %d rejected inputs to %s: %w", len(recs), w.invalid, err))
	} else {
		for _, r := range rs {
			w.rejected.WithLabelValues(sourceKind(r.Source)).Inc()
		}
	}
	return errors.Join(errs...)
}

// ViolationSample is one recent tracking-plan violation, for the
// console's data-quality page.
type ViolationSample struct {
	// Event and Policy name the plan.
	Event  string
	Policy string
	// Errors are the violation's errors ("/revenue: got string, want
	// number").
	Errors []string
	// Blocked is true when the event went to the invalid-events topic.
	Blocked bool
	// Example is the offending event as published or blocked (JSON).
	Example []byte
	// At is when it was seen.
	At time.Time
}

// Violations returns the most recent violations, at most
// ViolationSamples per plan, ordered by plan event and newest first. The
// slices are shared: do not modify them.
func (w *Writer) Violations() []ViolationSample {
	return w.samples.list()
}

// sampler keeps the last n violations of each plan in a ring. Plans are
// few and fixed, so it is bounded by n × plans × the largest event.
type sampler struct {
	n  int
	mu sync.Mutex
	// rings by plan event; each holds up to n samples, next is where the
	// next one goes.
	rings map[string]*ring // REQUIRES: mu is held.
}

type ring struct {
	buf  []ViolationSample
	next int
}

func newSampler(n int) *sampler {
	return &sampler{n: n, rings: map[string]*ring{}}
}

func (s *sampler) add(v ViolationSample) {
	if s.n == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rings[v.Event]
	if r == nil {
		r = &ring{buf: make([]ViolationSample, 0, s.n)}
		s.rings[v.Event] = r
	}
	if len(r.buf) < s.n {
		r.buf = append(r.buf, v)
	} else {
		r.buf[r.next] = v
	}
	r.next = (r.next + 1) % s.n
}

func (s *sampler) list() []ViolationSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ViolationSample
	events := make([]string, 0, len(s.rings))
	for e := range s.rings {
		events = append(events, e)
	}
	slices.Sort(events)
	for _, e := range events {
		r := s.rings[e]
		// Newest first: walk back from the slot before next.
		for i := range len(r.buf) {
			out = append(out, r.buf[(r.next-1-i+2*len(r.buf))%len(r.buf)])
		}
	}
	return out
}

// EnsureTopics creates the events and invalid-events topics of app if they
// are missing: events with partitions partitions (the pipeline's
// parallelism), invalid events with one.
func EnsureTopics(ctx context.Context, adm *kadm.Client, app string, partitions int32, replication int16) error {
	for topic, n := range map[string]int32{app + ".events": partitions, app + ".events.invalid": 1} {
		resp, err := adm.CreateTopic(ctx, n, replication, nil, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating topic %s: %w", topic, err)
		}
	}
	return nil
}

// Close flushes and closes the producer.
func (w *Writer) Close() {
	if w.ownsClient {
		w.cl.Close()
	}
}

// routeKey is the context key of a record's routing identifier (RouteBy).
type routeKey struct{}

// routePartitioner partitions a record by its routing identifier when it
// carries one, else by its key, both as topology.PartitionFor hashes: the
// engine's partitioning, Kafka's default.
type routePartitioner struct{}

func (routePartitioner) ForTopic(string) kgo.TopicPartitioner { return routePartitioner{} }

func (routePartitioner) RequiresConsistency(*kgo.Record) bool { return true }

func (routePartitioner) Partition(r *kgo.Record, n int) int {
	key := r.Key
	if r.Context != nil {
		if rk, ok := r.Context.Value(routeKey{}).([]byte); ok {
			key = rk
		}
	}
	return int(topology.PartitionFor(key, n))
}
