package topology_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/state"
	"github.com/tessera-cdp/tessera/topology"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The engine's integration tests run the counting topology over the
// embedded broker, over TCP, with 12 partitions and 200,000 keyed records,
// and check the result against a reference count: exactly, with no count
// lost and none doubled, in the read_committed output and in the stores.

const (
	app        = "counter"
	inTopic    = "records"
	outTopic   = "counts"
	partitions = 12
	total      = 200_000
	keys       = 1000
)

func keyOf(i int) []byte { return []byte(fmt.Sprintf("k%04d", (i*7919)%keys)) }

// reference returns the count per key after records [0, n).
func reference(n int) map[string]uint64 {
	m := make(map[string]uint64, keys)
	for i := 0; i < n; i++ {
		m[string(keyOf(i))]++
	}
	return m
}

func TestMain(m *testing.M) {
	if os.Getenv("TESSERA_TEST_CHILD") != "" {
		os.Exit(runChild())
	}
	os.Exit(m.Run())
}

// runChild runs one instance of the counting topology in this process until
// SIGTERM (clean) or SIGKILL (not).
func runChild() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	cfg := childConfig(strings.Split(os.Getenv("TESSERA_TEST_BROKERS"), ","), os.Getenv("TESSERA_TEST_STATE"))
	cfg.Threads, _ = strconv.Atoi(os.Getenv("TESSERA_TEST_THREADS"))
	// A child's log, the engine's and the Kafka client's, goes to the
	// test's output, which go test shows only when the test fails.
	name := filepath.Base(cfg.StateDir)
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("child", name)
	cfg.ClientOpts = append(cfg.ClientOpts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, func() string {
		return "child=" + name + " " + time.Now().Format("15:04:05.000") + " "
	})))
	rt, err := topology.NewRuntime(counting(inTopic, outTopic, partitions), cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := rt.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func childConfig(brokers []string, stateDir string) topology.Config {
	return topology.Config{
		App:                app,
		Brokers:            brokers,
		StateDir:           stateDir,
		SessionTimeout:     3 * time.Second,
		RebalanceTimeout:   10 * time.Second,
		TransactionTimeout: 4 * time.Second,
		Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

type harness struct {
	t *testing.T
	// threads is the instances' Config.Threads: tests that check exact
	// results run tasks on several threads too.
	threads int
	cluster *kfake.Cluster
	brokers []string
	dataDir string
	port    int
}

func newHarness(t *testing.T, persist bool) *harness {
	h := &harness{t: t}
	if persist {
		h.dataDir = t.TempDir()
	}
	h.startBroker()
	t.Cleanup(func() { h.cluster.Close() })
	adm := h.admin()
	defer adm.Close()
	if _, err := adm.CreateTopic(context.Background(), partitions, 1, nil, inTopic); err != nil {
		t.Fatal(err)
	}
	return h
}

// startBroker starts the harness's broker, on its port if it had one
// (restartBroker). A first start picks a port below the kernel's range of
// ephemeral ports (stablePorts): the port of an ephemeral listener can be
// taken, while the broker is down, as the local port of any outgoing
// connection on the machine (another package's tests run alongside), and
// the restart would then fail to bind it.
func (h *harness) startBroker() {
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(500 * time.Millisecond)}
	if h.dataDir != "" {
		opts = append(opts, kfake.DataDir(h.dataDir))
	}
	ports := []int{h.port}
	if h.port == 0 {
		ports = append(stablePorts(), 0) // 0: any port, if none of those is free
	}
	var c *kfake.Cluster
	var err error
	for _, p := range ports {
		if c, err = kfake.NewCluster(append(opts, kfake.Ports(p))...); err == nil {
			break
		}
	}
	if err != nil {
		h.t.Fatalf("starting the broker on port %v: %v", ports, err)
	}
	h.cluster = c
	h.brokers = c.ListenAddrs()
	_, port, _ := strings.Cut(h.brokers[0], ":")
	h.port, _ = strconv.Atoi(port)
	h.t.Logf("broker listening at %s", h.brokers[0])
}

// stablePorts returns a few random ports below the kernel's ephemeral
// range (net.ipv4.ip_local_port_range), none if that range is unknown or
// starts too low to leave room.
func stablePorts() []int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return nil
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return nil
	}
	low, err := strconv.Atoi(f[0])
	if err != nil || low < 11_024 {
		return nil
	}
	ports := make([]int, 8)
	for i := range ports {
		ports[i] = low - 10_000 + rand.IntN(10_000)
	}
	return ports
}

func (h *harness) restartBroker() {
	h.cluster.Close()
	h.startBroker()
}

func (h *harness) admin() *kadm.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...))
	if err != nil {
		h.t.Fatal(err)
	}
	return kadm.NewClient(cl)
}

// changelogRecords counts the committed records of the counting store's
// changelog, over all its partitions: what a restore from scratch applies.
// It reads each partition up to its end offset, transaction markers
// included, so it knows where the data ends.
func (h *harness) changelogRecords() int64 {
	h.t.Helper()
	topic := topology.ChangelogTopic(app, countStore)
	adm := h.admin()
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	adm.Close()
	if err != nil {
		h.t.Fatal(err)
	}
	left := make(map[int32]int64)
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n int64
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			h.t.Fatalf("reading %s: partitions %v not read to their end in 30s", topic, left)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if !r.Attrs.IsControl() {
				n++
			}
			if end, ok := left[r.Partition]; ok && r.Offset >= end-1 {
				delete(left, r.Partition)
			}
		})
	}
	return n
}

// produce writes records [from, to) to the input topic.
func (h *harness) produce(from, to int) {
	h.t.Helper()
	if err := h.tryProduce(from, to); err != nil {
		h.t.Fatal(err)
	}
}

// tryProduce is produce for goroutines other than the test's.
func (h *harness) tryProduce(from, to int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx := context.Background()
	var mu sync.Mutex
	var perr error
	for i := from; i < to; i++ {
		cl.Produce(ctx, &kgo.Record{Topic: inTopic, Key: keyOf(i), Value: []byte(strconv.Itoa(i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				perr = err
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return perr
}

// output reads the whole read_committed output until it holds want records
// (or the deadline passes) and checks that each key's counts run 1, 2, 3 …
// with no gap and no repeat: an exact, exactly-once result.
func (h *harness) awaitOutput(want int) {
	h.t.Helper()
	h.awaitOutputWithin(want, 90*time.Second)
}

// awaitOutputWithin is awaitOutput with a deadline of its own.
func (h *harness) awaitOutputWithin(want int, within time.Duration) {
	h.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ConsumeTopics(outTopic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	last := make(map[string]uint64)
	seen := 0
	for seen < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			h.t.Fatalf("output has %d records after %s, want %d; %s", seen, within, want, h.state())
		}
		var bad error
		fs.EachRecord(func(r *kgo.Record) {
			n, err := strconv.ParseUint(string(r.Value), 10, 64)
			if err != nil {
				bad = err
				return
			}
			if n != last[string(r.Key)]+1 && bad == nil {
				bad = fmt.Errorf("key %s: count %d follows %d at %s[%d]@%d", r.Key, n, last[string(r.Key)], r.Topic, r.Partition, r.Offset)
			}
			last[string(r.Key)] = n
			seen++
		})
		if bad != nil {
			h.t.Fatal(bad)
		}
	}
	ref := reference(want)
	for k, n := range ref {
		if last[k] != n {
			h.t.Errorf("output: key %s last count %d, want %d", k, last[k], n)
		}
	}
	if seen != want {
		h.t.Errorf("output has %d records, want %d", seen, want)
	}
}

// checkStores opens every task's store under stateDir and compares the
// counts with the reference after n records.
func checkStores(t *testing.T, stateDir string, n int) {
	t.Helper()
	got := make(map[string]uint64)
	for p := int32(0); p < partitions; p++ {
		dir := filepath.Join(stateDir, topology.TaskID{Partition: p}.String())
		db, err := state.Open(dir, state.Options{})
		if err != nil {
			t.Fatal(err)
		}
		err = db.KeyValue(countStore).Range(nil, nil, func(k, v []byte) error {
			if topology.PartitionFor(k, partitions) != p {
				return fmt.Errorf("key %s in task %d's store", k, p)
			}
			got[string(k)] = decodeCount(v)
			return nil
		})
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	ref := reference(n)
	for k, want := range ref {
		if got[k] != want {
			t.Errorf("store: key %s = %d, want %d", k, got[k], want)
		}
	}
	if len(got) != len(ref) {
		t.Errorf("store has %d keys, want %d", len(got), len(ref))
	}
}

// instance is a runtime in this process.
type instance struct {
	rt     *topology.Runtime
	cancel context.CancelFunc
	done   chan error
	dir    string
}

func (h *harness) start(dir string) *instance {
	h.t.Helper()
	cfg := childConfig(h.brokers, dir)
	cfg.Threads = h.threads
	rt, err := topology.NewRuntime(counting(inTopic, outTopic, partitions), cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{rt: rt, cancel: cancel, done: make(chan error, 1), dir: dir}
	go func() { in.done <- rt.Run(ctx) }()
	h.t.Cleanup(func() { in.stop(h.t) })
	return in
}

func (in *instance) stop(t *testing.T) {
	if in.cancel == nil {
		return
	}
	in.cancel()
	in.cancel = nil
	if err := <-in.done; err != nil {
		t.Errorf("instance stopped with %v", err)
	}
}

// awaitReady waits until every instance is ready and the instances'
// running tasks together are all partitions, each exactly once.
func awaitTasks(t *testing.T, ins ...*instance) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		owned := make(map[topology.TaskID]int)
		ready := true
		for _, in := range ins {
			if in.rt.Ready() != nil {
				ready = false
			}
			for id, running := range in.rt.Tasks() {
				if running {
					owned[id]++
				}
			}
		}
		balanced := ready && len(owned) == partitions
		for _, n := range owned {
			balanced = balanced && n == 1
		}
		if balanced {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasks not settled after 60s: %v", owned)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, not synchronising on time
	}
}

func TestExactlyOnceUnderCrash(t *testing.T) {
	h := newHarness(t, false)
	a, b := h.startChild(t), h.startChild(t)

	h.produce(0, total/2)
	h.awaitProgress(total / 4)
	// Kill A mid-stream: no commit, no leave, an open transaction.
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.Wait()
	h.produce(total/2, total)
	h.awaitOutput(total)

	if err := b.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(); err != nil {
		t.Fatalf("survivor exited with %v", err)
	}
	checkStores(t, b.dir, total)
}

// TestExactlyOnceKillDuringRebalance kills an instance during the second
// phase of a cooperative rebalance, which a third instance's join began:
// the survivors' second join waits for the dead member. Two kinds of
// failure were seen here. The survivor's commit waited for a heartbeat
// that no member sends during a join, until its context expired and the
// instance stopped: because franz-go's transactional session dropped the
// revoke that ends the first phase's session (joinWatch), or because the
// wait for the next assignment gave up before the join ended
// (awaitAssignment; kfake expires a member that waits in a join and never
// answers it). The output must still be exact, and both survivors must
// stop cleanly.
func TestExactlyOnceKillDuringRebalance(t *testing.T) {
	h := newHarness(t, false)
	a, b := h.startChild(t), h.startChild(t)
	h.produce(0, total/2)
	h.awaitProgress(total / 4)
	h.awaitGroupState("Stable")
	c := h.startChild(t)
	// The first phase moves tasks off A and B, which then join again
	// at once: kill A in that second phase, or at the latest 5 s after
	// the first began.
	h.awaitGroupState("PreparingRebalance")
	h.awaitGroupStateWithin(func(s string) bool { return s != "PreparingRebalance" }, 5*time.Second)
	h.awaitGroupStateWithin(func(s string) bool { return s == "PreparingRebalance" }, 5*time.Second)
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.Wait()
	h.produce(total/2, total)
	h.awaitOutput(total)
	for _, p := range []child{b, c} {
		if err := p.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(); err != nil {
			t.Fatalf("survivor exited with %v", err)
		}
	}
}

// TestAtLeastOnceSurvivesAnEndedSession fails an at-least-once instance's
// offset commits as the coordinator does once the member's generation has
// ended (ILLEGAL_GENERATION): the instance must carry on, and commit
// later. Its outputs and changelogs were flushed, so the output stays
// exact here, where nothing moves and nothing is processed twice.
func TestAtLeastOnceSurvivesAnEndedSession(t *testing.T) {
	h := newHarness(t, false)
	cfg := childConfig(h.brokers, t.TempDir())
	cfg.Guarantee = topology.AtLeastOnce
	rt, err := topology.NewRuntime(counting(inTopic, outTopic, partitions), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	h.produce(0, total/4)
	h.awaitProgress(total / 8)

	const fail = 3
	failed := make(chan struct{}, fail)
	left := fail
	h.cluster.ControlKey(int16(kmsg.OffsetCommit), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		h.cluster.KeepControl()
		if left == 0 { // control functions run one at a time
			return nil, nil, false
		}
		left--
		failed <- struct{}{}
		req := kr.(*kmsg.OffsetCommitRequest)
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.IllegalGeneration.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	h.produce(total/4, total)
	for n := 0; n < fail; n++ {
		select {
		case <-failed:
		case err := <-done:
			t.Fatalf("instance stopped with %v after %d failed offset commits", err, n)
		case <-time.After(60 * time.Second):
			t.Fatalf("%d offset commits in 60s, want %d", n, fail)
		}
	}
	h.awaitOutput(total)
	h.awaitProgress(total)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("instance stopped with %v", err)
	}
}

// child is an instance of the counting topology in a process of its own
// (runChild), so that a test can kill it.
type child struct {
	*exec.Cmd
	dir string // its state directory
}

// startChild starts a child with four threads; the test's end kills it.
func (h *harness) startChild(t *testing.T) child {
	t.Helper()
	c := child{Cmd: exec.Command(os.Args[0], "-test.run=^$"), dir: t.TempDir()}
	// Four threads: a crash hits transactions whose records several
	// goroutines produced.
	c.Env = append(os.Environ(), "TESSERA_TEST_CHILD=1", "TESSERA_TEST_THREADS=4",
		"TESSERA_TEST_BROKERS="+strings.Join(h.brokers, ","), "TESSERA_TEST_STATE="+c.dir)
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill() })
	return c
}

// awaitGroupState waits until the group is in the given state.
func (h *harness) awaitGroupState(want string) {
	h.t.Helper()
	if !h.awaitGroupStateWithin(func(s string) bool { return s == want }, 60*time.Second) {
		h.t.Fatalf("group not %s in 60s; %s", want, h.state())
	}
}

// awaitGroupStateWithin polls the group's state until ok accepts it, and
// reports whether it did before the deadline.
func (h *harness) awaitGroupStateWithin(ok func(string) bool, within time.Duration) bool {
	adm := h.admin()
	defer adm.Close()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		groups, err := adm.DescribeGroups(context.Background(), app)
		if err == nil && ok(groups[app].State) {
			return true
		}
		time.Sleep(2 * time.Millisecond) // polling a condition
	}
	return false
}

// awaitProgress waits until the group has committed n input offsets.
func (h *harness) awaitProgress(n int64) {
	h.t.Helper()
	adm := h.admin()
	defer adm.Close()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		offs, err := adm.FetchOffsets(context.Background(), app)
		if err == nil {
			var sum int64
			offs.Each(func(o kadm.OffsetResponse) { sum += o.At })
			if sum >= n {
				return
			}
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
	h.t.Fatalf("group did not commit %d offsets in 60s; %s", n, h.state())
}

// state sums up, for a failure's message, what the broker says of the
// group and the topics: whether the group is stable and who holds which
// partitions, how far it committed, and whether an open transaction holds
// back the read_committed output (last stable offsets below the ends).
// CI shows only the end of a failed run's output, so this goes into the
// failure's own line.
func (h *harness) state() string {
	adm := h.admin()
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b strings.Builder
	groups, err := adm.DescribeGroups(ctx, app)
	if g, ok := groups[app]; err == nil && ok {
		fmt.Fprintf(&b, "group %s: %s, %d members", app, g.State, len(g.Members))
		for _, m := range g.Members {
			if c, ok := m.Assigned.AsConsumer(); ok {
				var parts []int32
				for _, t := range c.Topics {
					parts = append(parts, t.Partitions...)
				}
				fmt.Fprintf(&b, " [%s@%s %v]", m.ClientID, m.ClientHost, parts)
			}
		}
	} else {
		fmt.Fprintf(&b, "group %s: not described (%v)", app, err)
	}
	total := func(l kadm.ListedOffsets, err error) string {
		if err != nil {
			return err.Error()
		}
		var n int64
		l.Each(func(o kadm.ListedOffset) { n += max(o.Offset, 0) })
		return strconv.FormatInt(n, 10)
	}
	var committed int64
	if offs, err := adm.FetchOffsets(ctx, app); err == nil {
		offs.Each(func(o kadm.OffsetResponse) { committed += max(o.At, 0) })
	}
	fmt.Fprintf(&b, "; input: committed %d, end %s", committed, total(adm.ListEndOffsets(ctx, inTopic)))
	fmt.Fprintf(&b, "; output: last stable %s, end %s", total(adm.ListCommittedOffsets(ctx, outTopic)), total(adm.ListEndOffsets(ctx, outTopic)))
	return b.String()
}

func TestScaleOneToThreeToOne(t *testing.T) {
	h := newHarness(t, false)
	h.threads = 3 // tasks move between instances that each run several threads
	first := h.start(t.TempDir())
	awaitTasks(t, first)

	// Records flow the whole time: a producer paced at about 40,000/s
	// while instances join and leave on progress thresholds.
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for from := 0; from < total; from += 2000 {
			if err := h.tryProduce(from, from+2000); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(50 * time.Millisecond) // pacing the load, not synchronising
		}
	}()
	h.awaitProgress(total / 5)
	second, third := h.start(t.TempDir()), h.start(t.TempDir())
	awaitTasks(t, first, second, third)
	h.awaitProgress(total / 2)
	second.stop(t)
	third.stop(t)
	awaitTasks(t, first)
	<-produced
	h.awaitOutput(total)
	first.stop(t)
	checkStores(t, first.dir, total)
}

func TestRestore(t *testing.T) {
	h := newHarness(t, false)
	dirX := t.TempDir()
	x := h.start(dirX)
	h.produce(0, total/2)
	h.awaitOutput(total / 2)
	x.stop(t)
	checkStores(t, dirX, total/2)
	atX := h.changelogRecords()

	// Another instance, elsewhere, processes the next records: the
	// changelog grows past X's checkpoint by a write per key and cycle
	// (the read cache holds a key's writes back until the cycle ends).
	y := h.start(t.TempDir())
	h.produce(total/2, total/2+30_000)
	h.awaitOutput(total/2 + 30_000)
	y.stop(t)
	atY := h.changelogRecords()
	if atX < keys || atY-atX < keys {
		t.Fatalf("the changelog grew by %d and %d records, want at least a write per key (%d) each time", atX, atY-atX, keys)
	}

	// With its state intact, X restores exactly that tail.
	x = h.start(dirX)
	awaitTasks(t, x)
	if got := sum(x.rt.RestoredRecords()); got != atY-atX {
		t.Errorf("restart with intact state restored %d records, want the %d of the tail", got, atY-atX)
	}
	x.stop(t)
	checkStores(t, dirX, total/2+30_000)

	// Wiped, it rebuilds everything from the changelogs.
	if err := os.RemoveAll(dirX); err != nil {
		t.Fatal(err)
	}
	x = h.start(dirX)
	awaitTasks(t, x)
	if got := sum(x.rt.RestoredRecords()); got != atY {
		t.Errorf("restart with wiped state restored %d records, want all %d", got, atY)
	}
	x.stop(t)
	checkStores(t, dirX, total/2+30_000)
}

func sum(m map[topology.TaskID]int64) int64 {
	var s int64
	for _, v := range m {
		s += v
	}
	return s
}

func TestBrokerRestart(t *testing.T) {
	h := newHarness(t, true)
	dir := t.TempDir()
	in := h.start(dir)
	h.produce(0, total/2)
	h.awaitOutput(total / 2)

	// The broker goes away under the running instance and comes back with
	// its log; the instance reconnects and carries on.
	h.restartBroker()
	h.produce(total/2, total)
	h.awaitOutput(total)
	in.stop(t)
	checkStores(t, dir, total)
}

func TestUnreachableBrokerIsRetriedAndReported(t *testing.T) {
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	rt, err := topology.NewRuntime(counting(inTopic, outTopic, partitions), childConfig([]string{addr}, t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := rt.Ready()
		if err != nil && strings.Contains(err.Error(), "connecting to Kafka at "+addr) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ready() = %v, want it to report the unreachable broker", err)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel with no broker = %v, want nil", err)
	}
}
