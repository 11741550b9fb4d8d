// Package ingest is the path every source takes into tessera: events that
// passed validation go to <app>.events keyed by their routing identifier,
// and inputs that did not go to <app>.events.invalid with their reason, so
// nothing is silently dropped. The HTTP API, the Kafka source and the file
// import all write through a Writer.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tessera-cdp/tessera/schemas"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Writer produces to the events and invalid-events topics with acks=all:
// Publish returns only once every event is durable, so a source can answer
// its caller (HTTP 200, a committed offset) truthfully.
type Writer struct {
	cl         *kgo.Client
	events     string
	invalid    string
	ownsClient bool
	now        func() time.Time
}

// NewWriter returns a Writer for application app on its own client built
// from opts (seed brokers at least).
func NewWriter(app string, opts ...kgo.Opt) (*Writer, error) {
	opts = append([]kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(2 * time.Millisecond),
		kgo.ProducerBatchMaxBytes(4 << 20),
		kgo.MaxBufferedRecords(100_000),
	}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating events producer: %w", err)
	}
	return &Writer{cl: cl, events: app + ".events", invalid: app + ".events.invalid", ownsClient: true, now: time.Now}, nil
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

// Result says what Publish did beyond writing: the events it blocked.
type Result struct {
	Blocked []Blocked
}

// Publish writes events and waits until all are acknowledged by all
// in-sync replicas. On error some may have been written; the caller
// answers with an error and the client retries, and the profile's
// messageId dedupe absorbs the repeats.
func (w *Writer) Publish(ctx context.Context, evs []schemas.Normalized) (Result, error) {
	var res Result
	if len(evs) == 0 {
		return res, nil
	}
	recs := make([]*kgo.Record, len(evs))
	for i, e := range evs {
		recs[i] = &kgo.Record{Topic: w.events, Key: e.Key, Value: e.Value, Timestamp: e.Timestamp}
	}
	if err := w.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return res, fmt.Errorf("writing %d events to %s: %w", len(evs), w.events, err)
	}
	return res, nil
}

// Rejection is one input that could not be processed.
type Rejection struct {
	Raw    []byte
	Reason string
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
	}
	return errors.Join(errs...)
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
