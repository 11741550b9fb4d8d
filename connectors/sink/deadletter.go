package sink

// The dead-letter topic, and replaying it.
//
// After its last attempt, or at once for a Permanent error, an activation
// is written to <app>.activations.dlq, one topic for every destination,
// as Kafka Connect does it: the original key, value and headers, and
// headers saying which destination gave up, at which stage, after how many
// attempts, with which error, and where the record was read (HeaderTopic,
// HeaderPartition, HeaderOffset). A record that does not decode as an
// activation goes there too, with stage "decode". The write uses acks=all
// and the source offset is committed only after it.
//
// # Replay
//
// ReplayDLQ sends one destination's dead letters again. It does not write
// them back to <app>.activations: every destination would get them again.
// It writes them to <app>.activations.retry.<name>, which only that
// destination's Runner consumes (in its group, alongside
// <app>.activations), so they go through the Runner again: filters,
// retries, metrics, the delivery log and, if they fail once more, the
// dead-letter topic. A replayed activation keeps its id, so a receiver
// that got it after all deduplicates it; it may arrive after later
// activations of its profile.
//
// What has been replayed is remembered as committed offsets of the group
// <app>.sink.<name>.replay on the dead-letter topic (no member ever joins
// it), so a second replay sends only what was dead-lettered since, unless
// ReplayAll. Offsets are committed after each poll's records are on the
// retry topic (acks=all): an interrupted replay resumes where it stopped,
// and at worst sends a poll's records twice. Run one replay of a
// destination at a time.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Headers a dead letter carries after the original record's own.
const (
	// HeaderDestination names the destination that gave up.
	HeaderDestination = "tessera.dlq.destination"
	// HeaderStage is "deliver", or "decode" for a record that is not an
	// activation.
	HeaderStage = "tessera.dlq.stage"
	// HeaderAttempts is how many writes were tried, in decimal.
	HeaderAttempts = "tessera.dlq.attempts"
	// HeaderError is the last attempt's error.
	HeaderError = "tessera.dlq.error"
	// HeaderTopic is the topic the Runner read the record from:
	// <app>.activations or the destination's retry topic.
	HeaderTopic = "tessera.dlq.topic"
	// HeaderPartition is the record's partition there, in decimal.
	HeaderPartition = "tessera.dlq.partition"
	// HeaderOffset is the record's offset there, in decimal.
	HeaderOffset = "tessera.dlq.offset"
	// HeaderTime is when the Runner gave up, in RFC 3339 with nanoseconds.
	HeaderTime = "tessera.dlq.time"
)

// dlqHeaderPrefix starts every header the dead-letter topic adds; a
// replay drops them.
const dlqHeaderPrefix = "tessera.dlq."

// Stages of a dead letter.
const (
	stageDecode  = "decode"
	stageDeliver = "deliver"
)

// DLQTopic returns the dead-letter topic: <app>.activations.dlq.
func DLQTopic(app string) string { return app + ".activations.dlq" }

// replayGroup is the group whose offsets on the dead-letter topic mark
// what ReplayDLQ has sent again.
func replayGroup(app, destination string) string { return Group(app, destination) + ".replay" }

// deadLetter writes items to the dead-letter topic, retrying until it is
// acknowledged or ctx ends, and then marks them done.
func (r *Runner) deadLetter(ctx context.Context, items []*item, stage string) error {
	now := r.cfg.clock.Now()
	todo := make([]*kgo.Record, len(items))
	for i, it := range items {
		todo[i] = r.deadLetterRecord(it, stage, now)
	}
	err := r.retry(ctx, "writing to the dead-letter topic", func() error {
		var failed []*kgo.Record
		var first error
		for _, res := range r.cl.ProduceSync(ctx, todo...) {
			if res.Err != nil {
				failed = append(failed, res.Record)
				first = cmpOr(first, res.Err)
			}
		}
		todo = failed
		return first
	})
	if err != nil {
		return err
	}
	for _, it := range items {
		it.done = true
		r.deadLettered.Add(1)
		r.m.deadLettered.Inc()
		r.logDelivery(it, StatusDeadLettered, now, r.latency(it, now))
		r.log.Warn("activation dead-lettered", "activation", it.act.ID, "stage", stage,
			"attempts", it.attempts, "err", it.err, "topic", it.rec.Topic, "partition", it.rec.Partition, "offset", it.rec.Offset)
	}
	return nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

func (r *Runner) deadLetterRecord(it *item, stage string, now time.Time) *kgo.Record {
	h := make([]kgo.RecordHeader, 0, len(it.rec.Headers)+8)
	for _, rh := range it.rec.Headers {
		if !strings.HasPrefix(rh.Key, dlqHeaderPrefix) {
			h = append(h, rh)
		}
	}
	errText := ""
	if it.err != nil {
		errText = it.err.Error()
	}
	add := func(k, v string) { h = append(h, kgo.RecordHeader{Key: k, Value: []byte(v)}) }
	add(HeaderDestination, r.dest.Name)
	add(HeaderStage, stage)
	add(HeaderAttempts, strconv.Itoa(it.attempts))
	add(HeaderError, errText)
	add(HeaderTopic, it.rec.Topic)
	add(HeaderPartition, strconv.FormatInt(int64(it.rec.Partition), 10))
	add(HeaderOffset, strconv.FormatInt(it.rec.Offset, 10))
	add(HeaderTime, now.UTC().Format(time.RFC3339Nano))
	return &kgo.Record{Topic: r.dlqTopic, Key: it.rec.Key, Value: it.rec.Value, Headers: h}
}

// ensureTopics creates the topics that are missing.
func ensureTopics(ctx context.Context, adm *kadm.Client, partitions int32, replication int16, topics ...string) error {
	for _, t := range topics {
		resp, err := adm.CreateTopic(ctx, partitions, replication, nil, t)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating topic %s: %w", t, err)
		}
	}
	return nil
}

// DeadLetter is a record of the dead-letter topic, as ListDLQ reads it.
type DeadLetter struct {
	// Partition and Offset locate it on the dead-letter topic; Time is
	// its record's timestamp.
	Partition int32
	Offset    int64
	Time      time.Time
	// Destination, Stage, Attempts and Error are its headers'.
	Destination string
	Stage       string
	Attempts    int
	Error       string
	// Topic, SourcePartition and SourceOffset are where it was read.
	Topic           string
	SourcePartition int32
	SourceOffset    int64
	// Activation is the activation; the zero value when it does not
	// decode (stage "decode").
	Activation Activation
	// Replayed reports that ReplayDLQ has sent it again.
	Replayed bool
}

func readDeadLetter(rec *kgo.Record) DeadLetter {
	dl := DeadLetter{Partition: rec.Partition, Offset: rec.Offset, Time: rec.Timestamp}
	for _, h := range rec.Headers {
		v := string(h.Value)
		switch h.Key {
		case HeaderDestination:
			dl.Destination = v
		case HeaderStage:
			dl.Stage = v
		case HeaderAttempts:
			dl.Attempts, _ = strconv.Atoi(v)
		case HeaderError:
			dl.Error = v
		case HeaderTopic:
			dl.Topic = v
		case HeaderPartition:
			p, _ := strconv.ParseInt(v, 10, 32)
			dl.SourcePartition = int32(p)
		case HeaderOffset:
			dl.SourceOffset, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	if a, err := Decode(rec.Value); err == nil {
		dl.Activation = a
	}
	return dl
}

func destinationOf(rec *kgo.Record) string {
	for _, h := range rec.Headers {
		if h.Key == HeaderDestination {
			return string(h.Value)
		}
	}
	return ""
}

// ListDLQ returns the dead letters of destination, or of every destination
// when it is "", oldest first per partition, marking those ReplayDLQ has
// sent again. Brokers is a required option; ClientOpts apply.
func ListDLQ(ctx context.Context, app, destination string, opts ...Opt) ([]DeadLetter, error) {
	c := defaultCfg()
	for _, o := range opts {
		o.apply(&c)
	}
	a, err := openAdmin(c)
	if err != nil {
		return nil, fmt.Errorf("listing dead letters: %w", err)
	}
	defer a.cl.Close()
	topic := DLQTopic(app)
	bounds, err := a.bounds(ctx, topic)
	if err != nil || len(bounds) == 0 {
		return nil, err
	}
	var out []DeadLetter
	replayed := map[string]map[int32]int64{} // destination → partition → first offset not replayed
	replayedUpTo := func(dest string, p int32) (int64, error) {
		if m, ok := replayed[dest]; ok {
			return m[p], nil
		}
		m, err := a.committed(ctx, replayGroup(app, dest), topic)
		replayed[dest] = m
		return m[p], err
	}
	err = scan(ctx, c, topic, bounds, func(recs []*kgo.Record) error {
		for _, rec := range recs {
			dest := destinationOf(rec)
			if destination != "" && dest != destination {
				continue
			}
			dl := readDeadLetter(rec)
			upTo, err := replayedUpTo(dest, rec.Partition)
			if err != nil {
				return err
			}
			dl.Replayed = rec.Offset < upTo
			out = append(out, dl)
		}
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("listing dead letters: %w", err)
	}
	return out, nil
}

// ReplayDLQ sends destination's dead letters again, through its retry
// topic (see the package's dead-letter notes), and returns how many it
// sent. Only those not replayed before are sent, unless ReplayAll. The
// destination's Runner delivers them. Brokers is a required option;
// ClientOpts and Topics (for creating the retry topic) apply.
func ReplayDLQ(ctx context.Context, app, destination string, opts ...Opt) (int, error) {
	c := defaultCfg()
	for _, o := range opts {
		o.apply(&c)
	}
	if !topicName.MatchString(destination) {
		return 0, fmt.Errorf("replaying dead letters: destination %q must match [a-zA-Z0-9._-]+", destination)
	}
	a, err := openAdmin(c)
	if err != nil {
		return 0, fmt.Errorf("replaying dead letters of %s: %w", destination, err)
	}
	defer a.cl.Close()
	topic, retryTopic, group := DLQTopic(app), RetryTopic(app, destination), replayGroup(app, destination)
	bounds, err := a.bounds(ctx, topic)
	if err != nil || len(bounds) == 0 {
		return 0, err
	}
	if !c.replayAll {
		done, err := a.committed(ctx, group, topic)
		if err != nil {
			return 0, fmt.Errorf("replaying dead letters of %s: %w", destination, err)
		}
		for p, b := range bounds {
			b.start = max(b.start, done[p])
			bounds[p] = b
		}
	}
	if err := ensureTopics(ctx, a.adm, c.partitions, c.replication, retryTopic); err != nil {
		return 0, fmt.Errorf("replaying dead letters of %s: %w", destination, err)
	}
	n := 0
	err = scan(ctx, c, topic, bounds, func(recs []*kgo.Record) error {
		var out []*kgo.Record
		var offsets kadm.Offsets
		for _, rec := range recs {
			offsets.AddOffset(topic, rec.Partition, rec.Offset+1, -1)
			if destinationOf(rec) != destination {
				continue
			}
			var h []kgo.RecordHeader
			for _, rh := range rec.Headers {
				if !strings.HasPrefix(rh.Key, dlqHeaderPrefix) {
					h = append(h, rh)
				}
			}
			out = append(out, &kgo.Record{Topic: retryTopic, Key: rec.Key, Value: rec.Value, Headers: h})
		}
		if len(out) > 0 {
			if err := a.cl.ProduceSync(ctx, out...).FirstErr(); err != nil {
				return fmt.Errorf("writing to %s: %w", retryTopic, err)
			}
			n += len(out)
		}
		if err := a.adm.CommitAllOffsets(ctx, group, offsets); err != nil {
			return fmt.Errorf("committing what was replayed: %w", err)
		}
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("replaying dead letters of %s: %w", destination, err)
	}
	return n, nil
}

// admin is a client for producing and admin requests.
type admin struct {
	cl  *kgo.Client
	adm *kadm.Client
}

func openAdmin(c cfg) (admin, error) {
	if len(c.brokers) == 0 {
		return admin{}, errors.New("no brokers (use the Brokers option)")
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(c.brokers...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
	}, c.clientOpts...)...)
	if err != nil {
		return admin{}, fmt.Errorf("creating the Kafka client: %w", err)
	}
	return admin{cl: cl, adm: kadm.NewClient(cl)}, nil
}

// span is the part of a partition to read: [start, end).
type span struct{ start, end int64 }

// bounds returns topic's partitions from their log start to their end; no
// partitions if the topic does not exist.
func (a admin) bounds(ctx context.Context, topic string) (map[int32]span, error) {
	starts, err := a.adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing the offsets of %s: %w", topic, err)
	}
	ends, err := a.adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("listing the offsets of %s: %w", topic, err)
	}
	out := make(map[int32]span)
	ends.Each(func(o kadm.ListedOffset) {
		s, _ := starts.Lookup(o.Topic, o.Partition)
		out[o.Partition] = span{start: max(s.Offset, 0), end: o.Offset}
	})
	return out, nil
}

// committed returns group's committed offsets on topic, by partition.
func (a admin) committed(ctx context.Context, group, topic string) (map[int32]int64, error) {
	resp, err := a.adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil, nil // nothing committed yet
	}
	if err != nil {
		return nil, fmt.Errorf("fetching the offsets of group %s: %w", group, err)
	}
	out := make(map[int32]int64)
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out, nil
}

// scan reads topic's partitions over their spans, calling each with the
// records of every poll, until all are read or ctx ends. The dead-letter
// topic is not transactional: every offset below the end holds a record.
func scan(ctx context.Context, c cfg, topic string, spans map[int32]span, each func([]*kgo.Record) error) error {
	from := make(map[int32]kgo.Offset)
	left := make(map[int32]int64) // partition → end
	for p, s := range spans {
		if s.start < s.end {
			from[p] = kgo.NewOffset().At(s.start)
			left[p] = s.end
		}
	}
	if len(from) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(c.brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}, c.clientOpts...)...)
	if err != nil {
		return fmt.Errorf("creating the Kafka client: %w", err)
	}
	defer cl.Close()
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, fe := range fs.Errors() {
			var loss *kgo.ErrDataLoss
			if !errors.As(fe.Err, &loss) {
				return fmt.Errorf("reading %s: %w", topic, fe.Err)
			}
		}
		var recs []*kgo.Record
		for rec := range fs.RecordsAll() {
			end, ok := left[rec.Partition]
			if !ok || rec.Offset >= end {
				continue
			}
			recs = append(recs, rec)
			if rec.Offset >= end-1 {
				delete(left, rec.Partition)
			}
		}
		if err := each(recs); err != nil {
			return err
		}
	}
	return nil
}
