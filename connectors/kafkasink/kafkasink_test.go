package kafkasink_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/kafkasink"
	"github.com/tessera-cdp/tessera/connectors/sink"
	"github.com/tessera-cdp/tessera/connectors/sink/sinktest"
)

const topic = "crm.activations"

// fastRetries makes the producer's own retries quick: it waits for a
// metadata refresh before retrying a record, at most every
// MetadataMinAge (5s by default).
var fastRetries = []kgo.Opt{
	kgo.RetryBackoffFn(func(int) time.Duration { return 5 * time.Millisecond }),
	kgo.MetadataMinAge(10 * time.Millisecond),
}

func TestConformance(t *testing.T) {
	sinktest.Run(t, sinktest.Harness{Start: func(t *testing.T, env sinktest.Env) sinktest.Receiver {
		return newReceiver(t, env.Now)
	}})
}

// receiver is another Kafka cluster (an embedded broker) with the target
// topic, read back record by record. Faults are the broker's: produce
// requests answered NOT_ENOUGH_REPLICAS (Down) or INVALID_RECORD
// (Reject), or held (Stall). Kafka has no Retry-After.
type receiver struct {
	t       *testing.T
	now     func() time.Time
	cluster *kfake.Cluster

	mu     sync.Mutex
	got    []sinktest.Received
	faults *kfake.FaultHandle
	stall  chan struct{} // closed by Heal
}

func newReceiver(t *testing.T, now func() time.Time) *receiver {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	r := &receiver{t: t, now: now, cluster: c, stall: make(chan struct{})}
	t.Cleanup(r.Heal)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; cl.Close() })
	go func() {
		defer close(done)
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			fs.EachRecord(r.read)
		}
	}()
	return r
}

// read checks a record is the documented one and records it.
func (r *receiver) read(rec *kgo.Record) {
	var a sink.Activation
	if err := json.Unmarshal(rec.Value, &a); err != nil {
		r.t.Errorf("record value %s is not an activation: %v", rec.Value, err)
	}
	h := map[string]string{}
	for _, rh := range rec.Headers {
		h[rh.Key] = string(rh.Value)
	}
	if h[sink.IdempotencyKeyHeader] != a.ID || h["Content-Type"] != "application/json" || len(h) != 2 {
		r.t.Errorf("record headers %v, want Idempotency-Key %s and Content-Type application/json", h, a.ID)
	}
	if string(rec.Key) != a.ProfileID {
		r.t.Errorf("record key %q, want the profile id %q", rec.Key, a.ProfileID)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, sinktest.Received{Key: h[sink.IdempotencyKeyHeader], ActivationID: a.ID, Type: a.Type, Name: a.Name, ProfileID: a.ProfileID, At: r.now()})
}

func (r *receiver) Sink(dest config.Destination) (config.Destination, sink.Sink, error) {
	dest.Type, dest.Topic, dest.Brokers = "kafka", topic, r.cluster.ListenAddrs()
	s, err := kafkasink.New(dest, nil, kafkasink.ClientOpts(fastRetries...))
	return dest, s, err
}

func (r *receiver) Received() []sinktest.Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sinktest.Received(nil), r.got...)
}

func (r *receiver) Inject(f sinktest.Fault) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch f.Kind {
	case sinktest.Down, sinktest.Reject:
		err := kerr.NotEnoughReplicas
		if f.Kind == sinktest.Reject {
			err = kerr.InvalidRecord
		}
		r.faults = r.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: err, Count: f.Times})
		return true
	case sinktest.Stall:
		stall := r.stall
		r.cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
			select {
			case <-stall:
				r.cluster.DropControl()
			default:
				r.cluster.SleepControl(func() { <-stall })
			}
			return nil, nil, false // then the broker handles it
		})
		return true
	}
	return false
}

func (r *receiver) Heal() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.faults != nil {
		r.faults.Remove()
		r.faults = nil
	}
	select {
	case <-r.stall:
	default:
		close(r.stall)
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dest    config.Destination
		opts    []kafkasink.Opt
		wantErr string
	}{
		{"own cluster", config.Destination{Topic: "t", Brokers: []string{"k:9092"}}, nil, ""},
		{"the hub's", config.Destination{Topic: "t"}, []kafkasink.Opt{kafkasink.HubBrokers("hub:9092")}, ""},
		{"no topic", config.Destination{Brokers: []string{"k:9092"}}, nil, "kafka crm: topic is required"},
		{"no brokers", config.Destination{Topic: "t"}, nil, "kafka crm: brokers is required (no hub brokers were given)"},
		{"an unused field", config.Destination{Topic: "t", Path: "/x"}, []kafkasink.Opt{kafkasink.HubBrokers("hub:9092")}, "kafka crm: path is not used by kafka destinations (they use topic, brokers, template)"},
		{"bad template", config.Destination{Topic: "t", Template: "{{"}, []kafkasink.Opt{kafkasink.HubBrokers("hub:9092")}, "kafka crm: parsing template"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.dest.Name, tc.dest.Type = "crm", "kafka"
			_, err := kafkasink.New(tc.dest, nil, tc.opts...)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("New error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestRecords pins the records of a batch on the hub's cluster, with a
// template, and that errors Kafka calls final are permanent.
func TestRecords(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := kafkasink.New(config.Destination{Name: "crm", Type: "kafka", Topic: topic, Template: `{{.ProfileMap.traits.email}},{{.Name}}`},
		nil, kafkasink.HubBrokers(c.ListenAddrs()...), kafkasink.ClientOpts(fastRetries...))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.WriteBatch(ctx, []sink.Activation{{ID: "a0"}}); !errors.Is(err, sink.ErrNotConnected) {
		t.Errorf("WriteBatch before Connect: %v, want ErrNotConnected", err)
	}
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	batch := []sink.Activation{
		{ID: "a1", Name: "vip", ProfileID: "p1", Profile: json.RawMessage(`{"traits":{"email":"ada@example.com"}}`)},
		{ID: "a2", Name: "vip", ProfileID: "p2", Profile: json.RawMessage(`{"traits":{"email":"bob@example.com"}}`)},
	}
	if err := s.WriteBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []string
	for len(got) < 2 {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			got = append(got, string(r.Key)+"="+string(r.Value)+" "+r.Headers[0].Key+":"+string(r.Headers[0].Value))
		})
	}
	want := []string{"p1=ada@example.com,vip Idempotency-Key:a1", "p2=bob@example.com,vip Idempotency-Key:a2"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("records\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: kerr.MessageTooLarge})
	err = s.WriteBatch(ctx, batch[:1])
	var be *sink.BatchError
	if !errors.As(err, &be) || !sink.IsPermanent(be.Failed[0]) || !strings.Contains(be.Failed[0].Error(), "MESSAGE_TOO_LARGE") {
		t.Fatalf("WriteBatch with MESSAGE_TOO_LARGE: %v, want it permanent", err)
	}
	if err := s.WriteBatch(ctx, batch[:1]); err != nil {
		t.Errorf("WriteBatch after the fault: %v", err)
	}
}
