// Package kafkasource reads Segment-spec events from external Kafka topics
// into tessera: each configured topic (config.KafkaSource) is consumed by
// its own consumer group, <app>.source.<topic>, and every record becomes
// either an event on <app>.events or an input on <app>.events.invalid with
// its reason. Nothing is dropped and nothing sticks: a record that cannot
// be read is rejected and its offset advances like any other.
//
// # Delivery
//
// At-least-once. A poll's records are normalized and published through a
// Publisher (ingest.Writer), which returns once they are durable
// (acks=all); only then are the source offsets committed. Rebalances are
// held off while a poll is processed (kgo.BlockRebalanceOnPoll), so a
// commit never lands on a partition the member no longer owns. A crash
// between publish and commit redelivers the records, and the profile's
// messageId dedupe absorbs the repeats: a record without a messageId is
// given one derived from its topic, partition and offset (MessageID), and
// receivedAt is the record's timestamp, so a redelivered record normalizes
// to the same event, byte for byte.
//
// Failures of tessera's own cluster (Publish or Reject returning an error)
// are retried with backoff until they succeed or Run's context ends; the
// offsets do not move meanwhile. So is an unreachable schema registry.
//
// # Formats
//
//   - json: each record value is one Segment-spec event as JSON.
//   - avro: each record value is in the Confluent wire format (a zero
//     byte, the schema id as a big-endian uint32, the Avro binary). The
//     schema is fetched from the registry by id once and cached; the value
//     is decoded with goavro and converted to JSON guided by the schema
//     (unions unwrapped, records in field order, logical timestamps and
//     dates as ISO-8601 strings, decimals as exact numbers, bytes as
//     base64) and then normalized like JSON. Schema references are not
//     resolved: records of such a schema are rejected with that reason.
//
// Partitions of one poll are processed in parallel by up to Workers
// goroutines, each with its own schemas.Normalizer.
package kafkasource

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/ingest"
	"github.com/tessera-cdp/tessera/schemas"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/valyala/fastjson"
)

// Publisher is where a Source writes: the methods of ingest.Writer.
type Publisher interface {
	// PublishFrom writes events durably; source(i) names event i if a
	// tracking plan blocks it.
	PublishFrom(ctx context.Context, evs []schemas.Normalized, source func(i int) string) (ingest.Result, error)
	// Reject writes inputs that could not be read to the invalid-events
	// topic, durably.
	Reject(ctx context.Context, rs ...ingest.Rejection) error
}

// Formats of a source topic.
const (
	FormatJSON = "json"
	FormatAvro = "avro"
)

// Results labelling tessera_source_records_total.
const (
	resultPublished = "published" // on <app>.events
	resultBlocked   = "blocked"   // refused by a tracking plan with policy block
	resultInvalid   = "invalid"   // unreadable: not JSON, bad Avro, spec violation
)

// Opt configures a Source.
type Opt interface{ apply(*cfg) }

type opt func(*cfg)

func (o opt) apply(c *cfg) { o(c) }

type cfg struct {
	brokers    []string
	log        *slog.Logger
	reg        prometheus.Registerer
	clientOpts []kgo.Opt
	srOpts     []sr.ClientOpt
	workers    int
	maxPoll    int
	backoffMin time.Duration
	backoffMax time.Duration
}

func defaultCfg() cfg {
	return cfg{
		log:        slog.Default(),
		workers:    runtime.GOMAXPROCS(0),
		maxPoll:    5000,
		backoffMin: 100 * time.Millisecond,
		backoffMax: 5 * time.Second,
	}
}

// Brokers sets the brokers to read from when the source's configuration
// names none (the hub's own cluster). There is no default: one of the two
// is required.
func Brokers(addrs ...string) Opt {
	return opt(func(c *cfg) { c.brokers = addrs })
}

// Logger sets the logger, overriding slog.Default().
func Logger(l *slog.Logger) Opt {
	return opt(func(c *cfg) { c.log = l })
}

// Registerer registers the source's metrics with reg, overriding the
// default of not registering them: tessera_source_records_total{topic,
// result}, result being published, blocked or invalid. Sources may share
// a registry.
func Registerer(reg prometheus.Registerer) Opt {
	return opt(func(c *cfg) { c.reg = reg })
}

// ClientOpts adds options to the consumer's Kafka client (TLS, SASL,
// kgo.ConsumeResetOffset, …), after and so overriding its defaults: the
// group <app>.source.<topic>, read_committed, offsets committed by the
// Source only, rebalances held during processing, and a new group
// starting at the earliest offset, so that a topic's retained history is
// read on the first run.
func ClientOpts(opts ...kgo.Opt) Opt {
	return opt(func(c *cfg) { c.clientOpts = append(c.clientOpts, opts...) })
}

// RegistryOpts adds options to the schema registry client (credentials,
// TLS), after sr.URLs(the configured schema_registry).
func RegistryOpts(opts ...sr.ClientOpt) Opt {
	return opt(func(c *cfg) { c.srOpts = append(c.srOpts, opts...) })
}

// Workers sets how many partitions of one poll are processed at once,
// overriding the default of GOMAXPROCS.
func Workers(n int) Opt {
	return opt(func(c *cfg) { c.workers = n })
}

// MaxPollRecords sets how many records one poll takes, overriding the
// default of 5,000. A poll is published and committed as one unit.
func MaxPollRecords(n int) Opt {
	return opt(func(c *cfg) { c.maxPoll = n })
}

// RetryBackoff sets the backoff between retries of a failed publish or
// schema registry call, overriding the default jittery exponential
// backoff from 100ms to 5s.
func RetryBackoff(minWait, maxWait time.Duration) Opt {
	return opt(func(c *cfg) { c.backoffMin, c.backoffMax = minWait, maxWait })
}

// Source reads one external topic into tessera. Build it with New and run
// it with Run, once.
type Source struct {
	topic   string
	group   string
	format  string
	pub     Publisher
	cfg     cfg
	avro    *registry // nil for json
	records *prometheus.CounterVec
	log     *slog.Logger
}

// New returns a Source for one configured topic of application app,
// writing through pub.
func New(app string, src config.KafkaSource, pub Publisher, opts ...Opt) (*Source, error) {
	c := defaultCfg()
	for _, o := range opts {
		o.apply(&c)
	}
	if src.Topic == "" {
		return nil, errors.New("kafka source: topic must not be empty")
	}
	if len(src.Brokers) > 0 {
		c.brokers = src.Brokers
	}
	if len(c.brokers) == 0 {
		return nil, fmt.Errorf("kafka source %s: no brokers (set its brokers or the hub's)", src.Topic)
	}
	if c.workers < 1 {
		return nil, fmt.Errorf("kafka source %s: workers must be at least 1, got %d", src.Topic, c.workers)
	}
	if c.maxPoll < 1 {
		return nil, fmt.Errorf("kafka source %s: max poll records must be at least 1, got %d", src.Topic, c.maxPoll)
	}
	s := &Source{
		topic: src.Topic,
		group: app + ".source." + src.Topic,
		pub:   pub,
		cfg:   c,
		log:   c.log.With("source", "kafka", "topic", src.Topic),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_source_records_total",
			Help: "Records read from external Kafka topics, by topic and result (published, blocked by a tracking plan, invalid).",
		}, []string{"topic", "result"}),
	}
	switch src.Format {
	case "", FormatJSON:
		s.format = FormatJSON
	case FormatAvro:
		if src.SchemaRegistry == "" {
			return nil, fmt.Errorf("kafka source %s: format avro needs a schema registry", src.Topic)
		}
		cl, err := sr.NewClient(append([]sr.ClientOpt{sr.URLs(src.SchemaRegistry)}, c.srOpts...)...)
		if err != nil {
			return nil, fmt.Errorf("kafka source %s: creating schema registry client: %w", src.Topic, err)
		}
		s.format = FormatAvro
		s.avro = newRegistry(cl)
	default:
		return nil, fmt.Errorf("kafka source %s: format must be json or avro, got %q", src.Topic, src.Format)
	}
	if c.reg != nil {
		if err := c.reg.Register(s.records); err != nil {
			// Another Source registered it first: share its counter.
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("kafka source %s: registering metrics: %w", src.Topic, err)
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return nil, fmt.Errorf("kafka source %s: registering metrics: %w", src.Topic, err)
			}
			s.records = existing
		}
	}
	return s, nil
}

// Group returns the consumer group the source commits its offsets in.
func (s *Source) Group() string { return s.group }

// Run consumes the topic until ctx is done, then commits what it has
// published and returns nil. It returns an error only if the consumer
// cannot be created.
func (s *Source) Run(ctx context.Context) error {
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(s.cfg.brokers...),
		kgo.ConsumeTopics(s.topic),
		kgo.ConsumerGroup(s.group),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}, s.cfg.clientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("creating consumer for %s: %w", s.topic, err)
	}
	defer cl.Close()
	defer cl.AllowRebalance()

	pool := make(chan *worker, s.cfg.workers)
	for range s.cfg.workers {
		pool <- &worker{}
	}
	s.log.Info("kafka source started", "group", s.group, "format", s.format)
	for {
		fs := cl.PollRecords(ctx, s.cfg.maxPoll)
		if fs.IsClientClosed() || ctx.Err() != nil {
			break
		}
		fs.EachError(func(topic string, p int32, err error) {
			s.log.Warn("fetching", "partition", p, "err", err)
		})
		done := s.process(ctx, fs, pool)
		s.commit(ctx, cl, done)
		cl.AllowRebalance()
		if ctx.Err() != nil {
			break
		}
	}
	s.log.Info("kafka source stopped", "group", s.group)
	return nil
}

// commit commits the offsets after done's records. It runs even when ctx
// is done (what was published must be committed, or it is published again
// on restart), bounded by its own timeout. A failed commit is logged: the
// records are redelivered and deduplicated downstream.
func (s *Source) commit(ctx context.Context, cl *kgo.Client, done []*kgo.Record) {
	if len(done) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := cl.CommitRecords(cctx, done...); err != nil {
		s.log.Warn("committing offsets; the records will be read again", "err", err)
	}
}

// process handles a poll, partition by partition, in parallel, and returns
// the last record of each partition that was fully published (all of them
// unless ctx ended).
func (s *Source) process(ctx context.Context, fs kgo.Fetches, pool chan *worker) []*kgo.Record {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		done []*kgo.Record
	)
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		w := <-pool
		wg.Go(func() {
			defer func() { pool <- w }()
			if err := s.handle(ctx, w, p.Records); err != nil {
				return // ctx ended: leave the partition uncommitted
			}
			mu.Lock()
			done = append(done, p.Records[len(p.Records)-1])
			mu.Unlock()
		})
	})
	wg.Wait()
	return done
}

// worker holds what one goroutine reuses from batch to batch.
type worker struct {
	norm    schemas.Normalizer
	arena   fastjson.Arena
	evs     []schemas.Normalized
	from    []*kgo.Record
	rejects []ingest.Rejection
}

// handle reads one partition's records, publishes the events and rejects
// the rest, each durably. It fails only when ctx ends.
func (s *Source) handle(ctx context.Context, w *worker, recs []*kgo.Record) error {
	w.evs, w.from, w.rejects = w.evs[:0], w.from[:0], w.rejects[:0]
	for _, r := range recs {
		ev, err := s.read(ctx, w, r)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			w.rejects = append(w.rejects, ingest.Rejection{Raw: r.Value, Reason: err.Error(), Source: sourceOf(r)})
			continue
		}
		w.evs = append(w.evs, ev)
		w.from = append(w.from, r)
	}
	var res ingest.Result
	if len(w.evs) > 0 {
		err := s.retry(ctx, "publishing events", func() error {
			var err error
			res, err = s.pub.PublishFrom(ctx, w.evs, func(i int) string { return sourceOf(w.from[i]) })
			return err
		})
		if err != nil {
			return err
		}
	}
	if len(w.rejects) > 0 {
		if err := s.retry(ctx, "rejecting records", func() error { return s.pub.Reject(ctx, w.rejects...) }); err != nil {
			return err
		}
		for _, r := range w.rejects {
			s.log.Debug("record rejected", "at", r.Source, "reason", r.Reason)
		}
	}
	s.records.WithLabelValues(s.topic, resultPublished).Add(float64(len(w.evs) - len(res.Blocked)))
	s.records.WithLabelValues(s.topic, resultBlocked).Add(float64(len(res.Blocked)))
	s.records.WithLabelValues(s.topic, resultInvalid).Add(float64(len(w.rejects)))
	// The events are durable and owned by the Writer's records no more.
	clear(w.evs)
	clear(w.from)
	clear(w.rejects)
	return nil
}

// read turns one record into a normalized event, or says why it cannot.
func (s *Source) read(ctx context.Context, w *worker, r *kgo.Record) (schemas.Normalized, error) {
	if len(r.Value) == 0 {
		return schemas.Normalized{}, errors.New("record has no value")
	}
	in := schemas.Input{ReceivedAt: r.Timestamp, MessageID: MessageID(r.Topic, r.Partition, r.Offset)}
	if s.format == FormatJSON {
		v, err := w.norm.Parse(r.Value)
		if err != nil {
			return schemas.Normalized{}, err
		}
		return w.norm.Normalize(v, in)
	}
	id, payload, err := (&sr.ConfluentHeader{}).DecodeID(r.Value)
	if err != nil {
		return schemas.Normalized{}, fmt.Errorf("reading Confluent wire format: %w", err)
	}
	var sch *avroSchema
	err = s.retry(ctx, "fetching schema "+strconv.Itoa(id), func() error {
		var err error
		sch, err = s.avro.schema(ctx, id)
		return err
	})
	if err != nil {
		return schemas.Normalized{}, err
	}
	w.arena.Reset()
	v, err := sch.decode(&w.arena, payload)
	if err != nil {
		return schemas.Normalized{}, err
	}
	return w.norm.Normalize(v, in)
}

// retry calls fn until it succeeds, returns a permanent error (an
// input's fault, not the infrastructure's), or ctx ends, sleeping a
// jittered exponential backoff between attempts.
func (s *Source) retry(ctx context.Context, what string, fn func() error) error {
	wait := s.cfg.backoffMin
	for attempt := 1; ; attempt++ {
		err := fn()
		var perm *permanentError
		if err == nil || errors.As(err, &perm) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.log.Warn(what+"; retrying", "attempt", attempt, "err", err)
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, s.cfg.backoffMax)
	}
}

// permanentError is an error that retrying does not cure: the record is
// rejected with it.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// sourceOf names a record for <app>.events.invalid: kafka:orders[2]@57.
func sourceOf(r *kgo.Record) string {
	b := make([]byte, 0, len(r.Topic)+24)
	b = append(b, "kafka:"...)
	b = append(b, r.Topic...)
	b = append(b, '[')
	b = strconv.AppendInt(b, int64(r.Partition), 10)
	b = append(b, "]@"...)
	b = strconv.AppendInt(b, r.Offset, 10)
	return string(b)
}

// MessageID returns the messageId given to a record of topic at partition
// and offset that has none: a UUID (version 8) from the SHA-256 of the
// three, so a redelivered record gets the same one and is deduplicated.
// (A topic deleted and recreated reuses offsets; its records are
// deduplicated against the old ones' within the dedupe window.)
func MessageID(topic string, partition int32, offset int64) string {
	b := make([]byte, 0, len(topic)+32)
	b = append(b, "kafka:"...)
	b = append(b, topic...)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(partition), 10)
	b = append(b, 0)
	b = strconv.AppendInt(b, offset, 10)
	sum := sha256.Sum256(b)
	u := sum[:16]
	u[6] = u[6]&0x0f | 0x80
	u[8] = u[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], u[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], u[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], u[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], u[8:10])
	out[23] = '-'
	hex.Encode(out[24:], u[10:16])
	return string(out[:])
}
