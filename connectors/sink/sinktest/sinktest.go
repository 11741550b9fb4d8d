// Package sinktest is the conformance suite every sink passes: Run drives
// a sink through the runtime (sink.Runner) on an embedded Kafka broker,
// against a receiver the sink's own test provides, and checks what the
// receiver got.
//
// A sink's test adapts its receiver (an httptest server checking the exact
// request, a real server, a file) to Receiver and calls Run:
//
//	func TestConformance(t *testing.T) {
//		sinktest.Run(t, sinktest.Harness{Start: func(t *testing.T, env sinktest.Env) sinktest.Receiver {
//			return newReceiver(t, env)
//		}})
//	}
//
// The cases: delivered exactly as specified (filters applied, each
// activation once, a profile's in order, offsets committed); a receiver
// down for a while then back gets everything, duplicates carrying the
// same idempotency key; a restart resends nothing that was committed; a
// permanent failure ends on the dead-letter topic with its error and a
// replay delivers it; the last failed attempt dead-letters; a 429 with
// Retry-After is honoured (measured on the suite's Clock); while one
// destination is stalled, another's deliveries keep flowing. A case whose
// fault the receiver cannot inject is skipped.
//
// Time: the Runners run on a Clock whose Sleep returns at once, moving
// the clock forward; so backoffs and Retry-After cost no real time, and
// a receiver that stamps what it gets with Env.Now shows the waits.
package sinktest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
)

// App is the application id the suite runs under: its topics are
// tessera.activations and so on.
const App = "tessera"

// wait bounds every wait for a condition.
const wait = 30 * time.Second

// Env is what the suite gives a receiver.
type Env struct {
	// Now is the suite's clock (a Clock's Now): stamp Received.At with it.
	Now func() time.Time
	// Brokers is the hub's Kafka cluster for this test, an embedded
	// broker, where the activations are.
	Brokers []string
}

// FaultKind is a way a receiver fails.
type FaultKind int

// The faults a receiver may be asked to inject.
const (
	// Down fails deliveries transiently: unreachable, a dropped
	// connection, a 500 or 503 without Retry-After.
	Down FaultKind = iota + 1
	// Reject refuses deliveries permanently: a 400, an invalid record.
	Reject
	// Throttle answers 429 with a Retry-After of Fault.RetryAfter.
	Throttle
	// Stall holds deliveries unanswered until Heal (or until the sink
	// gives up on the request).
	Stall
)

// String names the fault, "accepted" for none.
func (k FaultKind) String() string {
	switch k {
	case 0:
		return "accepted"
	case Down:
		return "down"
	case Reject:
		return "reject"
	case Throttle:
		return "throttle"
	case Stall:
		return "stall"
	}
	return fmt.Sprintf("FaultKind(%d)", int(k))
}

// Fault is a failure to inject into a receiver.
type Fault struct {
	Kind FaultKind
	// Times is how many deliveries (requests, writes) fail, for Down,
	// Reject and Throttle; the ones after succeed.
	Times int
	// RetryAfter is the wait a Throttle asks for.
	RetryAfter time.Duration
}

// Received is one delivery a receiver saw.
type Received struct {
	// Key is the idempotency key it carried.
	Key string
	// ActivationID, Type, Name and ProfileID are what the receiver read
	// of the activation; "" where the channel does not carry one (the
	// suite checks those that are set).
	ActivationID, Type, Name, ProfileID string
	// At is when it arrived, on Env.Now.
	At time.Time
	// Refused is the fault the receiver answered it with; zero when it
	// accepted it. Receivers that cannot see refused deliveries leave
	// them out, but Throttle's must be there.
	Refused FaultKind
}

// Receiver is one test's receiving end of the sink under test. Its
// methods are called from several goroutines.
type Receiver interface {
	// Sink completes dest (its type, address, credentials, template) to
	// deliver to this receiver, and returns it with the sink under test
	// built from it by the sink package's New. dest arrives with its
	// name, filters and delivery settings.
	Sink(dest config.Destination) (config.Destination, sink.Sink, error)
	// Received returns what the receiver got so far, in arrival order.
	Received() []Received
	// Inject makes the receiver fail as f says; it returns false if it
	// cannot, and the case is skipped.
	Inject(f Fault) bool
	// Heal ends every fault and releases stalled deliveries.
	Heal()
}

// Harness adapts a sink type to the suite.
type Harness struct {
	// Start starts a fresh receiver for one test and stops it with
	// t.Cleanup. The cases run in parallel: Start is called concurrently.
	Start func(t *testing.T, env Env) Receiver
}

// Run runs the conformance suite against h.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Start == nil {
		t.Fatal("sinktest: Harness.Start is nil")
	}
	cases := []struct {
		name string
		run  func(*suite)
	}{
		{"delivers exactly as specified", (*suite).delivers},
		{"redelivers after the receiver was down", (*suite).down},
		{"resends nothing committed after a restart", (*suite).restart},
		{"dead-letters a permanent failure and replays it", (*suite).permanent},
		{"dead-letters after the last attempt", (*suite).exhausted},
		{"honours Retry-After", (*suite).retryAfter},
		{"keeps delivering while another destination is stalled", (*suite).isolation},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(newSuite(t, h))
		})
	}
}

// Clock is a sink.Clock whose Sleep returns at once (unless its context
// has ended), moving the time forward by the wait. Its methods are safe
// for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a Clock at start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep moves the clock forward by d, at once.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(max(d, 0))
	return nil
}

// suite is one case's world: a broker with the activations topic, the
// clock, and the harness.
type suite struct {
	t       *testing.T
	h       Harness
	brokers []string
	clock   *Clock
	cl      *kgo.Client
	adm     *kadm.Client
	reg     *prometheus.Registry
	seq     atomic.Int64
}

func newSuite(t *testing.T, h Harness) *suite {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s := &suite{t: t, h: h, brokers: c.ListenAddrs(), clock: NewClock(time.Now()), reg: prometheus.NewRegistry()}
	if s.cl, err = kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.DefaultProduceTopic(sink.ActivationsTopic(App))); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.cl.Close)
	s.adm = kadm.NewClient(s.cl)
	if _, err := s.adm.CreateTopic(context.Background(), 3, 1, nil, sink.ActivationsTopic(App)); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *suite) env() Env { return Env{Now: s.clock.Now, Brokers: s.brokers} }

// runner starts a Runner for destination name delivering to rcv, and
// returns it with a function that stops it (also run at cleanup).
func (s *suite) runner(rcv Receiver, dest config.Destination) (*sink.Runner, func()) {
	s.t.Helper()
	if dest.Delivery.MaxAttempts == 0 {
		dest.Delivery.MaxAttempts = 5
	}
	dest.Delivery.BackoffMin = config.Duration(100 * time.Millisecond)
	dest.Delivery.BackoffMax = config.Duration(2 * time.Second)
	dest.Delivery.Timeout = config.Duration(5 * time.Second)
	dest, sk, err := rcv.Sink(dest)
	if err != nil {
		s.t.Fatalf("building the sink: %v", err)
	}
	r, err := sink.NewRunner(App, dest, sk,
		sink.Brokers(s.brokers...),
		sink.WithClock(s.clock),
		sink.Registerer(s.reg),
		sink.Logger(slog.New(slog.NewTextHandler(s.t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))),
		sink.Topics(2, 1),
	)
	if err != nil {
		s.t.Fatalf("NewRunner: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-errc:
				if err != nil {
					s.t.Errorf("Run: %v", err)
				}
			case <-time.After(wait):
				s.t.Errorf("Run did not return %v after its context ended", wait)
			}
		})
	}
	s.t.Cleanup(stop)
	return r, stop
}

// activation returns a new activation of profile.
func (s *suite) activation(typ, name, profile string) sink.Activation {
	n := s.seq.Add(1)
	a := sink.Activation{
		ID:        fmt.Sprintf("act-%s-%d", strings.ReplaceAll(s.t.Name(), "/", "-"), n),
		Type:      typ,
		Name:      name,
		ProfileID: profile,
		Timestamp: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC).Add(time.Duration(n) * time.Second),
		Profile: json.RawMessage(fmt.Sprintf(`{"id":%q,"identifiers":[{"type":"email","value":"%s@example.com"}],`+
			`"traits":{"email":"%s@example.com","phone":"+1555000%04d","first_name":"Ada","plan":"pro"},`+
			`"features":{"orders_30d":3},"predictions":{},"audiences":[%q]}`, profile, profile, profile, n, name)),
	}
	if typ == sink.EventTriggered {
		a.Event = json.RawMessage(`{"type":"track","event":"Order Completed","properties":{"revenue":612.5}}`)
	}
	return a
}

// produce writes acts to the activations topic, keyed by profile.
func (s *suite) produce(acts ...sink.Activation) {
	s.t.Helper()
	recs := make([]*kgo.Record, len(acts))
	for i, a := range acts {
		v, err := a.Encode()
		if err != nil {
			s.t.Fatal(err)
		}
		recs[i] = &kgo.Record{Key: []byte(a.ProfileID), Value: v}
	}
	if err := s.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		s.t.Fatalf("producing activations: %v", err)
	}
}

// await polls cond until it holds, failing the test after wait.
func (s *suite) await(what string, cond func() (bool, string)) {
	s.t.Helper()
	deadline := time.Now().Add(wait)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s: not after %v (%s)", what, wait, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// accepted returns what rcv accepted.
func accepted(rcv Receiver) []Received {
	var out []Received
	for _, r := range rcv.Received() {
		if r.Refused == 0 {
			out = append(out, r)
		}
	}
	return out
}

// awaitAccepted waits until rcv has accepted each of acts at least once.
func (s *suite) awaitAccepted(rcv Receiver, acts ...sink.Activation) {
	s.t.Helper()
	s.await("the receiver gets every activation", func() (bool, string) {
		got := keys(accepted(rcv))
		var missing []string
		for _, a := range acts {
			if !got[a.ID] {
				missing = append(missing, a.ID)
			}
		}
		return len(missing) == 0, fmt.Sprintf("missing %v", missing)
	})
}

func keys(rs []Received) map[string]bool {
	m := make(map[string]bool, len(rs))
	for _, r := range rs {
		m[r.Key] = true
	}
	return m
}

// checkContent checks that every accepted delivery is one of acts, under
// its id as the idempotency key, with the fields the receiver read.
func (s *suite) checkContent(rcv Receiver, acts ...sink.Activation) {
	s.t.Helper()
	byID := make(map[string]sink.Activation, len(acts))
	for _, a := range acts {
		byID[a.ID] = a
	}
	for _, r := range accepted(rcv) {
		a, ok := byID[r.Key]
		if !ok {
			s.t.Errorf("received %+v: no such activation was expected (idempotency key %q)", r, r.Key)
			continue
		}
		for _, f := range []struct{ field, got, want string }{
			{"activation id", r.ActivationID, a.ID}, {"type", r.Type, a.Type}, {"name", r.Name, a.Name}, {"profile id", r.ProfileID, a.ProfileID},
		} {
			if f.got != "" && f.got != f.want {
				s.t.Errorf("delivery with key %s: %s is %q, want %q", r.Key, f.field, f.got, f.want)
			}
		}
	}
}

// awaitCommitted waits until r's group has committed the end of every
// partition of the activations topic.
func (s *suite) awaitCommitted(r *sink.Runner) {
	s.t.Helper()
	topic := sink.ActivationsTopic(App)
	s.await("the offsets are committed", func() (bool, string) {
		ctx := context.Background()
		ends, err := s.adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return false, err.Error()
		}
		offs, err := s.adm.FetchOffsets(ctx, sink.Group(App, r.Name()))
		if err != nil {
			return false, err.Error()
		}
		ok := true
		var state []string
		ends.Each(func(e kadm.ListedOffset) {
			c, _ := offs.Lookup(topic, e.Partition)
			if e.Offset > 0 && c.At != e.Offset {
				ok = false
			}
			state = append(state, fmt.Sprintf("p%d committed %d of %d", e.Partition, c.At, e.Offset))
		})
		return ok, strings.Join(state, ", ")
	})
}

func (s *suite) dest(name string) config.Destination {
	return config.Destination{Name: name}
}

func (s *suite) delivers() {
	rcv := s.h.Start(s.t, s.env())
	d := s.dest("conform")
	d.Audiences = []string{"vip", "big_order"}
	d.Types = []string{sink.AudienceEntered, sink.EventTriggered}
	r, _ := s.runner(rcv, d)
	want := []sink.Activation{
		s.activation(sink.AudienceEntered, "vip", "p1"),
		s.activation(sink.AudienceEntered, "vip", "p2"),
		s.activation(sink.EventTriggered, "big_order", "p1"),
		s.activation(sink.AudienceEntered, "vip", "p3"),
	}
	filtered := []sink.Activation{
		s.activation(sink.AudienceEntered, "churn_risk", "p3"), // audience not taken
		s.activation(sink.AudienceExited, "vip", "p2"),         // type not taken
	}
	s.produce(want[0], want[1], filtered[0], want[2], filtered[1], want[3])
	s.awaitAccepted(rcv, want...)
	s.await("the filtered activations are counted", func() (bool, string) {
		st := r.Status()
		return st.Filtered == int64(len(filtered)), fmt.Sprintf("%+v", st)
	})
	s.awaitCommitted(r)

	got := accepted(rcv)
	s.checkContent(rcv, want...)
	count := map[string]int{}
	for _, g := range got {
		count[g.Key]++
	}
	for _, a := range want {
		if count[a.ID] != 1 {
			s.t.Errorf("activation %s received %d times, want once", a.ID, count[a.ID])
		}
	}
	if len(got) != len(want) {
		s.t.Errorf("received %d deliveries, want %d: %+v", len(got), len(want), got)
	}
	// A profile's activations arrive in order.
	pos := map[string]int{}
	for i, g := range got {
		pos[g.Key] = i
	}
	if pos[want[0].ID] > pos[want[2].ID] {
		s.t.Errorf("p1's activations arrived out of order: %s after %s", want[0].ID, want[2].ID)
	}
	delivered := 0
	for _, d := range r.Deliveries() {
		if d.Status == sink.StatusDelivered {
			delivered++
		}
		if d.Status != sink.StatusDelivered || d.Attempts != 1 {
			s.t.Errorf("delivery log entry %+v, want delivered at the first attempt", d)
		}
	}
	if delivered != len(want) {
		s.t.Errorf("delivery log has %d deliveries, want %d", delivered, len(want))
	}
	if st := r.Status(); st.Sent != int64(len(want)) || !st.Connected || st.DeadLettered != 0 {
		s.t.Errorf("status %+v, want %d sent, connected, none dead-lettered", st, len(want))
	}
}

func (s *suite) down() {
	rcv := s.h.Start(s.t, s.env())
	if !rcv.Inject(Fault{Kind: Down, Times: 3}) {
		s.t.Skip("the receiver cannot be down")
	}
	r, _ := s.runner(rcv, s.dest("conform"))
	acts := []sink.Activation{
		s.activation(sink.AudienceEntered, "vip", "p1"),
		s.activation(sink.AudienceEntered, "vip", "p2"),
		s.activation(sink.AudienceEntered, "vip", "p3"),
		s.activation(sink.AudienceExited, "vip", "p1"),
	}
	s.produce(acts...)
	s.awaitAccepted(rcv, acts...)
	s.awaitCommitted(r)
	s.checkContent(rcv, acts...)
	if st := r.Status(); st.DeadLettered != 0 || st.Sent < int64(len(acts)) {
		s.t.Errorf("status %+v, want all %d sent and none dead-lettered", st, len(acts))
	}
}

func (s *suite) restart() {
	rcv := s.h.Start(s.t, s.env())
	first := []sink.Activation{s.activation(sink.AudienceEntered, "vip", "p1"), s.activation(sink.AudienceEntered, "vip", "p2")}
	r1, stop := s.runner(rcv, s.dest("conform"))
	s.produce(first...)
	s.awaitAccepted(rcv, first...)
	s.awaitCommitted(r1)
	stop()
	second := []sink.Activation{s.activation(sink.AudienceExited, "vip", "p1"), s.activation(sink.AudienceEntered, "vip", "p3")}
	r2, _ := s.runner(rcv, s.dest("conform"))
	s.produce(second...)
	s.awaitAccepted(rcv, second...)
	s.awaitCommitted(r2)
	s.checkContent(rcv, append(first, second...)...)
	count := map[string]int{}
	for _, g := range accepted(rcv) {
		count[g.Key]++
	}
	for _, a := range append(first, second...) {
		if count[a.ID] != 1 {
			s.t.Errorf("activation %s received %d times across the restart, want once", a.ID, count[a.ID])
		}
	}
}

// dlq returns the dead letters of destination name.
func (s *suite) dlq(name string) []sink.DeadLetter {
	s.t.Helper()
	dls, err := sink.ListDLQ(context.Background(), App, name, sink.Brokers(s.brokers...))
	if err != nil {
		s.t.Fatalf("ListDLQ: %v", err)
	}
	return dls
}

func (s *suite) permanent() {
	rcv := s.h.Start(s.t, s.env())
	if !rcv.Inject(Fault{Kind: Reject, Times: 1}) {
		s.t.Skip("the receiver cannot refuse permanently")
	}
	r, _ := s.runner(rcv, s.dest("conform"))
	bad := s.activation(sink.AudienceEntered, "vip", "p1")
	s.produce(bad)
	s.await("the refused activation is dead-lettered", func() (bool, string) {
		st := r.Status()
		return st.DeadLettered == 1, fmt.Sprintf("%+v", st)
	})
	dls := s.dlq("conform")
	if len(dls) != 1 {
		s.t.Fatalf("dead letters %+v, want one", dls)
	}
	dl := dls[0]
	if dl.Activation.ID != bad.ID || dl.Destination != "conform" || dl.Stage != "deliver" || dl.Attempts != 1 ||
		dl.Error == "" || dl.Topic != sink.ActivationsTopic(App) || dl.Replayed {
		s.t.Errorf("dead letter %+v, want %s of conform at the deliver stage after 1 attempt, with its error, from %s, not replayed",
			dl, bad.ID, sink.ActivationsTopic(App))
	}
	good := s.activation(sink.AudienceEntered, "vip", "p2")
	s.produce(good)
	s.awaitAccepted(rcv, good)
	s.awaitCommitted(r)

	n, err := sink.ReplayDLQ(context.Background(), App, "conform", sink.Brokers(s.brokers...))
	if err != nil || n != 1 {
		s.t.Fatalf("ReplayDLQ = %d, %v; want 1, nil", n, err)
	}
	s.awaitAccepted(rcv, bad)
	s.checkContent(rcv, bad, good)
	if dls := s.dlq("conform"); len(dls) != 1 || !dls[0].Replayed {
		s.t.Errorf("after the replay, dead letters %+v, want the one, replayed", dls)
	}
	if n, err := sink.ReplayDLQ(context.Background(), App, "conform", sink.Brokers(s.brokers...)); err != nil || n != 0 {
		s.t.Errorf("a second ReplayDLQ = %d, %v; want 0, nil", n, err)
	}
}

func (s *suite) exhausted() {
	rcv := s.h.Start(s.t, s.env())
	if !rcv.Inject(Fault{Kind: Down, Times: 1 << 20}) {
		s.t.Skip("the receiver cannot be down")
	}
	d := s.dest("conform")
	d.Delivery.MaxAttempts = 3
	r, _ := s.runner(rcv, d)
	lost := s.activation(sink.AudienceEntered, "vip", "p1")
	s.produce(lost)
	s.await("the activation is dead-lettered", func() (bool, string) {
		st := r.Status()
		return st.DeadLettered == 1, fmt.Sprintf("%+v", st)
	})
	dls := s.dlq("conform")
	if len(dls) != 1 || dls[0].Activation.ID != lost.ID || dls[0].Attempts != 3 || dls[0].Error == "" {
		s.t.Fatalf("dead letters %+v, want %s after 3 attempts, with its error", dls, lost.ID)
	}
	var statuses []string
	for _, d := range slices.Backward(r.Deliveries()) {
		statuses = append(statuses, fmt.Sprintf("%s/%d", d.Status, d.Attempts))
	}
	if got, want := strings.Join(statuses, " "), "retrying/1 retrying/2 dead_lettered/3"; got != want {
		s.t.Errorf("delivery log %s, want %s", got, want)
	}
	rcv.Heal()
	next := s.activation(sink.AudienceEntered, "vip", "p2")
	s.produce(next)
	s.awaitAccepted(rcv, next)
	s.awaitCommitted(r)
}

func (s *suite) retryAfter() {
	const after = 30 * time.Second
	rcv := s.h.Start(s.t, s.env())
	if !rcv.Inject(Fault{Kind: Throttle, Times: 1, RetryAfter: after}) {
		s.t.Skip("the receiver cannot throttle")
	}
	s.runner(rcv, s.dest("conform"))
	a := s.activation(sink.AudienceEntered, "vip", "p1")
	s.produce(a)
	s.awaitAccepted(rcv, a)
	var refused, ok *Received
	for _, r := range rcv.Received() {
		if r.Key != a.ID {
			continue
		}
		switch {
		case r.Refused == Throttle && refused == nil:
			refused = &r
		case r.Refused == 0 && ok == nil:
			ok = &r
		}
	}
	if refused == nil {
		s.t.Fatalf("the receiver did not record the throttled attempt: %+v", rcv.Received())
	}
	if gap := ok.At.Sub(refused.At); gap < after {
		s.t.Errorf("retried %v after a 429 with Retry-After %v", gap, after)
	}
}

func (s *suite) isolation() {
	stalled, flowing := s.h.Start(s.t, s.env()), s.h.Start(s.t, s.env())
	if !stalled.Inject(Fault{Kind: Stall}) {
		s.t.Skip("the receiver cannot stall")
	}
	rs, _ := s.runner(stalled, s.dest("stalled"))
	rf, _ := s.runner(flowing, s.dest("flowing"))
	acts := []sink.Activation{
		s.activation(sink.AudienceEntered, "vip", "p1"),
		s.activation(sink.AudienceEntered, "vip", "p2"),
		s.activation(sink.AudienceEntered, "vip", "p3"),
		s.activation(sink.AudienceExited, "vip", "p1"),
		s.activation(sink.AudienceExited, "vip", "p2"),
	}
	start := time.Now()
	s.produce(acts...)
	s.awaitAccepted(flowing, acts...)
	s.awaitCommitted(rf)
	took := time.Since(start)
	if n := len(accepted(stalled)); n != 0 || rs.Status().Sent != 0 {
		s.t.Fatalf("the stalled receiver accepted %d deliveries (status %+v), want none while stalled", n, rs.Status())
	}
	s.t.Logf("the flowing destination delivered everything in %v while the other was stalled", took)
	stalled.Heal()
	s.awaitAccepted(stalled, acts...)
	s.awaitCommitted(rs)
	s.checkContent(stalled, acts...)
	s.checkContent(flowing, acts...)
}
