package topology

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestNoCycleWhileRejoining pins the loop's side of a rejoin: a revoke, a
// loss or a JoinGroup written makes the member rejoining and the next
// assignment ends it; while
// it lasts the loop's wait ends only on a done context, which leaves it
// rejoining, and never on time alone: it warns every rebalance timeout
// instead. (TestExactlyOnceUnderCrash covers a whole rejoin, under load.)
// No broker is reachable: the callbacks only pause partitions on the
// client, which needs none.
func TestNoCycleWhileRejoining(t *testing.T) {
	topo := nopTopology(t)
	// The rebalance timeout, the warnings' period, is short: the last
	// case waits for two warnings.
	warned := make(chan struct{}, 16)
	runtime := func(rebalance time.Duration) *Runtime {
		r, err := NewRuntime(topo, Config{
			App: "app", Brokers: []string{"127.0.0.1:1"}, StateDir: t.TempDir(),
			SessionTimeout: 300 * time.Millisecond, HeartbeatInterval: 100 * time.Millisecond,
			RebalanceTimeout: rebalance,
			Logger:           slog.New(warnSignal{warned}),
		})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := runtime(200 * time.Millisecond)
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()

	wait := func(ctx context.Context) chan struct{} {
		done := make(chan struct{})
		r := r
		go func() {
			r.awaitAssignment(ctx)
			close(done)
		}()
		return done
	}
	ended := func(done chan struct{}, why string) {
		t.Helper()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("the wait did not end on %s", why)
		}
	}

	// Not rejoining: no wait at all.
	ended(wait(ctx), "nothing to wait for")

	// Writes other than a JoinGroup, and a JoinGroup that was not
	// written, begin no rejoin.
	hook := joinWatch{r}
	hook.OnBrokerWrite(kgo.BrokerMetadata{}, int16(kmsg.Heartbeat), 100, 0, 0, nil)
	hook.OnBrokerWrite(kgo.BrokerMetadata{}, int16(kmsg.SyncGroup), 100, 0, 0, nil)
	hook.OnBrokerWrite(kgo.BrokerMetadata{}, int16(kmsg.JoinGroup), 0, 0, 0, errors.New("connection reset"))
	if r.isRejoining() {
		t.Fatal("a write that is not a JoinGroup made the member rejoining")
	}

	// A revoke, a loss and a JoinGroup written (which may come with no
	// revoke: see joinWatch) each begin a rejoin that the assignment ends.
	for _, end := range []string{"revoke", "loss", "JoinGroup"} {
		switch end {
		case "revoke":
			r.onRevoked(ctx, cl, nil)
		case "loss":
			r.onLost(ctx, cl, nil)
		default:
			hook.OnBrokerWrite(kgo.BrokerMetadata{}, int16(kmsg.JoinGroup), 100, 0, 0, nil)
		}
		if !r.isRejoining() {
			t.Fatalf("after a %s the member is not rejoining", end)
		}
		r.onAssigned(ctx, cl, nil)
		ended(wait(ctx), "an assignment after a "+end)
		if r.isRejoining() {
			t.Fatalf("after the assignment that followed a %s the member is still rejoining", end)
		}
	}

	// A done context ends the wait, and leaves the member rejoining.
	r.onRevoked(ctx, cl, nil)
	cctx, cancel := context.WithCancel(ctx)
	done := wait(cctx)
	cancel()
	ended(done, "a done context")
	if !r.isRejoining() {
		t.Fatal("a done context ended the rejoin itself")
	}

	// Time alone does not: two warnings, two rebalance timeouts (and
	// more than the rebalance and session timeouts), leave it waiting
	// until the assignment.
	for len(warned) > 0 {
		<-warned
	}
	done = wait(ctx)
	for range 2 {
		select {
		case <-warned:
		case <-done:
			t.Fatal("the wait ended with the member still rejoining")
		case <-time.After(30 * time.Second):
			t.Fatal("no warning that the wait goes on")
		}
	}
	select {
	case <-done:
		t.Fatal("the wait ended with the member still rejoining")
	default:
	}
	r.onAssigned(ctx, cl, nil)
	ended(done, "an assignment after two warnings")
}

// warnSignal is a slog.Handler that sends on its channel for each record
// at warning level or above, and drops the rest.
type warnSignal struct{ c chan struct{} }

func (w warnSignal) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (w warnSignal) Handle(context.Context, slog.Record) error {
	select {
	case w.c <- struct{}{}:
	default:
	}
	return nil
}

func (w warnSignal) WithAttrs([]slog.Attr) slog.Handler { return w }

func (w warnSignal) WithGroup(string) slog.Handler { return w }

// TestAssignmentDropsUnreportedRevokes pins onAssigned's reconciliation
// with the member's whole assignment (dropUnassignedLocked): franz-go's
// transactional session can drop a revoke, and a task whose revoke or
// loss went unreported must not stay open. A task the assignment no
// longer names is closed; one it names and the client calls new is
// reopened (another member may have processed it); one it keeps is left
// alone. The restores wait for a restore slot, held by the test, so no
// broker is needed.
func TestAssignmentDropsUnreportedRevokes(t *testing.T) {
	r, cl := assigningRuntime(t, nopTopology(t), slog.New(slog.NewTextHandler(io.Discard, nil)))
	task := func(p int32) TaskID { return TaskID{Group: 0, Partition: p} }

	// Held: 0, 1 and 2. The last sync assigned 1, 2 and 3, and the
	// client reports 2 and 3 as new: 0's revoke and 2's loss went
	// unreported.
	r.mu.Lock()
	before := make(map[TaskID]*assigned)
	for p := range int32(3) {
		before[task(p)] = r.startRestoreLocked(task(p))
	}
	r.mu.Unlock()
	r.synced.parse(memberAssignment(map[string][]int32{"in": {1, 2, 3}}), r.topicGroup)
	r.onAssigned(context.Background(), cl, map[string][]int32{"in": {2, 3}})

	r.mu.Lock()
	defer r.mu.Unlock()
	for p, want := range map[int32]string{0: "closed", 1: "kept", 2: "reopened", 3: "opened"} {
		a, held := r.tasks[task(p)]
		var got string
		switch {
		case !held:
			got = "closed"
		case before[task(p)] == nil:
			got = "opened"
		case a == before[task(p)]:
			got = "kept"
		default:
			got = "reopened"
		}
		if got != want {
			t.Errorf("task %v: %s, want %s", task(p), got, want)
		}
	}
	for _, p := range []int32{0, 2} {
		select {
		case <-before[task(p)].done:
		default:
			t.Errorf("the old task %v's restore still runs", task(p))
		}
	}
	r.closeTasksLocked()
}

// TestAssignmentOfATwoTopicGroup pins that a task whose group has two
// source topics, which the assignment names once per topic, is started
// once: not restarted as if its loss had gone unreported.
func TestAssignmentOfATwoTopicGroup(t *testing.T) {
	topo, err := NewBuilder().
		AddSource("a", "a", 4).
		AddSource("b", "b", 4).
		AddProcessor("p", func() Processor { return nopProcessor{} }, "a", "b").
		AddStore("s", KeyValueStore, "p").
		Build()
	if err != nil {
		t.Fatal(err)
	}
	warned := make(chan struct{}, 16)
	r, cl := assigningRuntime(t, topo, slog.New(warnSignal{warned}))
	parts := map[string][]int32{"a": {0, 1}, "b": {0, 1}}
	r.synced.parse(memberAssignment(parts), r.topicGroup)
	r.onAssigned(context.Background(), cl, parts)

	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.tasks) != 2 {
		t.Errorf("%d tasks held, want 2", len(r.tasks))
	}
	for id, a := range r.tasks {
		select {
		case <-a.done:
			t.Errorf("task %v's restore ended; it was restarted", id)
		default:
		}
	}
	if n := len(warned); n != 0 {
		t.Errorf("%d warnings, want none: a task was taken for one whose loss went unreported", n)
	}
	r.closeTasksLocked()
}

// assigningRuntime returns a runtime of topo, and a client, for calling
// the assignment callbacks directly. No broker is reachable, and the test
// holds the only restore slot, so every restore started waits for it with
// its store open.
func assigningRuntime(t *testing.T, topo *Topology, log *slog.Logger) (*Runtime, *kgo.Client) {
	t.Helper()
	r, err := NewRuntime(topo, Config{
		App: "app", Brokers: []string{"127.0.0.1:1"}, StateDir: t.TempDir(), RestoreConcurrency: 1,
		Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	r.restoreSlots <- struct{}{}
	return r, cl
}

// memberAssignment encodes a member's assignment of parts as a sync
// carries it, without UserData.
func memberAssignment(parts map[string][]int32) []byte {
	var a kmsg.ConsumerMemberAssignment
	for topic, ps := range parts {
		st := kmsg.NewConsumerMemberAssignmentTopic()
		st.Topic, st.Partitions = topic, ps
		a.Topics = append(a.Topics, st)
	}
	return a.AppendTo(nil)
}
