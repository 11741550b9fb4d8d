// Package kafkasink is the kafka sink: activations produced to a topic on
// any Kafka cluster, the hub's own or another.
//
// Each activation is one record: the key is the profile id (so a
// profile's activations stay in order on one partition), the value the
// activation as JSON (sink.Activation's fields) or the destination's
// template rendered (see sink.Template; any bytes), with the headers
// Idempotency-Key (the activation id, for consumers to deduplicate a
// redelivery) and Content-Type (application/json without a template). A
// batch is produced at once, with acks=all and the idempotent producer.
//
// Produce errors Kafka calls retriable (a leader moving, not enough
// replicas, a timeout) are retried by the client a few times and then by
// the runtime; the others (a record too large, an invalid record, no
// authorization) are permanent: the activation goes to the dead-letter
// topic with Kafka's error. The topic is not created: a missing one is an
// error retried until it exists.
package kafkasink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
)

// Opt configures the sink.
type Opt interface{ apply(*cfg) }

type opt func(*cfg)

func (o opt) apply(c *cfg) { o(c) }

type cfg struct {
	hub        []string
	clientOpts []kgo.Opt
}

// HubBrokers sets the brokers used when the destination names none: the
// hub's own cluster. There is no default: without it, brokers is required.
func HubBrokers(addrs ...string) Opt {
	return opt(func(c *cfg) { c.hub = addrs })
}

// ClientOpts adds options to the producer (TLS, SASL, retries), after and
// so overriding the sink's: the seed brokers, acks=all, 3 tries per record
// before the runtime retries it, and no linger.
func ClientOpts(opts ...kgo.Opt) Opt {
	return opt(func(c *cfg) { c.clientOpts = append(c.clientOpts, opts...) })
}

// Sink is the kafka sink. Build it with New.
type Sink struct {
	name    string
	topic   string
	brokers []string
	tmpl    *sink.Template // nil: the activation as JSON
	opts    []kgo.Opt

	mu sync.Mutex
	cl *kgo.Client // nil until Connect, and after Close
}

// New returns the kafka sink of dest: topic is required, brokers default
// to HubBrokers, template is optional. getenv is unused (credentials go in
// ClientOpts).
func New(dest config.Destination, getenv func(string) string, opts ...Opt) (sink.Sink, error) {
	var c cfg
	for _, o := range opts {
		o.apply(&c)
	}
	if err := sink.CheckFields(dest, "topic", "brokers", "template"); err != nil {
		return nil, fmt.Errorf("kafka %s: %w", dest.Name, err)
	}
	if dest.Topic == "" {
		return nil, fmt.Errorf("kafka %s: topic is required", dest.Name)
	}
	brokers := dest.Brokers
	if len(brokers) == 0 {
		brokers = c.hub
	}
	if len(brokers) == 0 {
		return nil, fmt.Errorf("kafka %s: brokers is required (no hub brokers were given)", dest.Name)
	}
	s := &Sink{name: dest.Name, topic: dest.Topic, brokers: brokers}
	if dest.Template != "" {
		var err error
		if s.tmpl, err = sink.ParseTemplate(dest.Name+".template", dest.Template, ""); err != nil {
			return nil, fmt.Errorf("kafka %s: %w", dest.Name, err)
		}
	}
	s.opts = append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.DefaultProduceTopic(dest.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordRetries(3),
		kgo.ProducerLinger(0),
	}, c.clientOpts...)
	return s, nil
}

// Connect creates the producer and checks that a broker answers.
func (s *Sink) Connect(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cl != nil {
		return nil
	}
	cl, err := kgo.NewClient(s.opts...)
	if err != nil {
		return sink.Permanent(fmt.Errorf("creating the producer: %w", err))
	}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		return fmt.Errorf("connecting to %v: %w", s.brokers, err)
	}
	s.cl = cl
	return nil
}

// WriteBatch produces the batch and waits for every record's
// acknowledgement.
func (s *Sink) WriteBatch(ctx context.Context, batch []sink.Activation) error {
	s.mu.Lock()
	cl := s.cl
	s.mu.Unlock()
	if cl == nil {
		return sink.ErrNotConnected
	}
	var (
		errs sink.BatchError
		mu   sync.Mutex
		wg   sync.WaitGroup
	)
	fail := func(i int, err error) {
		mu.Lock()
		errs.Fail(i, err)
		mu.Unlock()
	}
	for i, a := range batch {
		rec, err := s.record(a)
		if err != nil {
			fail(i, err)
			continue
		}
		wg.Add(1)
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				fail(i, classify(fmt.Errorf("producing to %s: %w", s.topic, err)))
			}
		})
	}
	wg.Wait()
	if len(errs.Failed) > 0 {
		return &errs
	}
	return nil
}

// classify marks err Permanent when Kafka says retrying will not help,
// and as a lost connection when the client is closed.
func classify(err error) error {
	var ke *kerr.Error
	switch {
	case errors.Is(err, kgo.ErrClientClosed):
		return fmt.Errorf("%w: %w", sink.ErrNotConnected, err)
	case errors.As(err, &ke) && !ke.Retriable:
		return sink.Permanent(err)
	}
	return err
}

// record is a's record.
func (s *Sink) record(a sink.Activation) (*kgo.Record, error) {
	rec := &kgo.Record{
		Key:     []byte(a.ProfileID),
		Headers: []kgo.RecordHeader{{Key: sink.IdempotencyKeyHeader, Value: []byte(a.ID)}},
	}
	if s.tmpl != nil {
		v, err := s.tmpl.Render(a)
		if err != nil {
			return nil, err
		}
		rec.Value = v
		return rec, nil
	}
	v, err := json.Marshal(a)
	if err != nil {
		return nil, sink.Permanent(fmt.Errorf("encoding activation %s: %w", a.ID, err))
	}
	rec.Value = v
	rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: "Content-Type", Value: []byte("application/json")})
	return rec, nil
}

// Close flushes nothing (every write waits for its records) and closes the
// producer. It is idempotent.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cl != nil {
		s.cl.Close()
		s.cl = nil
	}
	return nil
}
