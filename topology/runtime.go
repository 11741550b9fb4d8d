package topology

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tessera-cdp/tessera/state"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Runtime runs a topology as one member of a Kafka consumer group. Several
// runtimes with the same App, in one process or many, share the tasks.
//
// # Threads and locks
//
// One goroutine, the loop of Run, polls, processes and commits (cycle.go
// describes its commit cycles). To process a poll's records it may hand
// whole tasks to Config.Threads goroutines and wait for them
// (processTasks), while it holds r.mu; each task is used by one of them
// at a time. Rebalance callbacks run on the client's
// group goroutine, but only while the loop allows it
// (kgo.BlockRebalanceOnPoll): between the end of a commit cycle that left
// no polled record unprocessed and the return of the next poll, so never
// while a task is processing, a transaction is open or polled records wait.
// Restores run in their own goroutines, one per task, at most
// Config.RestoreConcurrency at once (restoreSlots), and hand the restored
// store to the loop over a channel; restorePhase, under its own lock, times
// them together.
//
// Lock order: the session's internal lock (held by its revoke wrapper) →
// r.mu. The loop never holds r.mu across a poll or a transaction end.
type Runtime struct {
	topo    *Topology
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	topicGroup map[string]int // source topic → group index

	cl   *kgo.Client
	sess *kgo.GroupTransactSession // nil under at-least-once
	// inTxn says that the open cycle's transaction has begun (see
	// beginCycle); the loop's alone.
	inTxn bool
	// commitCost is a moving average of how long ending a transaction
	// takes; the loop's alone (see minCycle).
	commitCost time.Duration
	admin      *kadm.Client
	// queryAdmin is admin for interactive queries (Owner, Endpoints) on
	// other goroutines: nil until Run has connected.
	queryAdmin atomic.Pointer[kadm.Client]

	restored chan struct{} // wakes the loop when a restore ends
	// restoreSlots holds a token per restore running, so that at most
	// Config.RestoreConcurrency run at once.
	restoreSlots chan struct{}
	phase        restorePhase
	prodErr      errSlot
	// promise is onProduced as a func value, made once.
	promise func(*kgo.Record, error)
	// firsts are the open transaction's writes to topics the producer
	// had not written to (firstwrite.go); exactly-once only.
	firsts firstWrites
	// fetches lends the consumer its decompression buffers and record
	// slices; the loop recycles the records it processed (fetchpool.go).
	fetches fetchPool

	mu sync.Mutex
	// tasks are the tasks assigned to this instance. REQUIRES: r.mu.
	tasks map[TaskID]*assigned
	// notReady says why the instance is not ready; "" when it is.
	// REQUIRES: r.mu.
	notReady string
	// restoredRecords counts records restored per task since start, for
	// operators and tests. REQUIRES: r.mu.
	restoredRecords map[TaskID]int64
	// partitions is the partition count of each group, known once the
	// topics exist. REQUIRES: r.mu.
	partitions []int32

	// rejoining says the group session ended (a revoke or a loss ran, or
	// the client wrote a JoinGroup: joinWatch) and the next assignment
	// has not come yet: the member is joining again, and the loop must
	// not begin a cycle (awaitAssignment) nor commit one (commit).
	// REQUIRES: r.mu.
	rejoining bool
	// joined is rejoining's part that joinWatch sets: the hook runs on a
	// broker connection's goroutine, which must not wait for r.mu.
	// onAssigned clears both.
	joined atomic.Bool
	// assignedC wakes the loop when an assignment ends a rejoin.
	assignedC chan struct{}
	// synced receives the tasks of each sync: onAssigned reconciles the
	// tasks with its active ones, syncStandbys the standbys with its
	// standbys. standbyGen is the generation syncStandbys last applied
	// (the loop's alone).
	synced     *syncedTasks
	standbyGen uint64
	// standbys are the standby replicas kept here (see standby.go).
	// REQUIRES: r.mu.
	standbys map[TaskID]*standbyTask

	ownersMu sync.Mutex
	// owners caches task → endpoint from the group's description.
	// REQUIRES: ownersMu.
	owners   map[TaskID]string
	ownersAt time.Time
}

// assigned is an assigned task: restoring (t == nil) or running.
type assigned struct {
	id     TaskID
	t      *task
	db     *state.DB
	cancel context.CancelFunc
	done   chan struct{} // closed when the restore goroutine returns
	// cacheSeen is db's read cache counts when the metrics last read
	// them (applyAll, on the loop).
	cacheSeen state.CacheStats

	// resMu guards res, which the restore goroutine sets when it ends.
	resMu sync.Mutex
	res   *restoreDone
}

type restoreDone struct {
	db       *state.DB
	restored map[string]state.RestoreResult
	took     time.Duration
	err      error
}

// NewRuntime prepares a runtime; Run starts it.
func NewRuntime(topo *Topology, cfg Config) (*Runtime, error) {
	cfg.ensureDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	if cfg.InstanceID == "" {
		id, err := instanceID(cfg.StateDir)
		if err != nil {
			return nil, err
		}
		cfg.InstanceID = id
	}
	r := &Runtime{
		topo:            topo,
		cfg:             cfg,
		log:             cfg.Logger.With("app", cfg.App, "instance", cfg.InstanceID),
		metrics:         newMetrics(cfg.Registerer, cfg.Threads),
		topicGroup:      make(map[string]int),
		restored:        make(chan struct{}, 1),
		assignedC:       make(chan struct{}, 1),
		restoreSlots:    make(chan struct{}, cfg.RestoreConcurrency),
		tasks:           make(map[TaskID]*assigned),
		restoredRecords: make(map[TaskID]int64),
		notReady:        "starting",
		synced:          &syncedTasks{},
		standbys:        make(map[TaskID]*standbyTask),
	}
	r.promise = r.onProduced
	for gi, g := range topo.groups {
		for _, s := range g.sources {
			r.topicGroup[s] = gi
		}
	}
	return r, nil
}

// fetchMaxWait is how long the broker may hold a fetch that finds too
// little data: the Java consumer's default, not franz-go's 5 s. A
// partition resumed after its task restored joins the next fetch request
// (ResumeFetchPartitions starts none while one is in flight), so behind a
// fetch held for partitions with nothing new, such as the profile stage's
// when its tasks restored first, it could wait the whole 5 s. That is the
// likely cause of a few `tessera bench` runs that took about 5 s longer
// at the usual CPU; they were too rare to reproduce on demand.
const fetchMaxWait = 500 * time.Millisecond

// instanceID reads the instance id persisted in dir, creating it on first
// use.
func instanceID(dir string) (string, error) {
	p := filepath.Join(dir, "instance-id")
	b, err := os.ReadFile(p)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	var raw [6]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("making instance id: %w", err)
	}
	id := hex.EncodeToString(raw[:])
	if err := os.WriteFile(p, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("writing instance id: %w", err)
	}
	return id, nil
}

// Ready returns nil once the instance has joined its group and every task
// assigned to it has restored, and otherwise says why not.
func (r *Runtime) Ready() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.notReady != "" {
		return errors.New(r.notReady)
	}
	for id, a := range r.tasks {
		if a.t == nil {
			return fmt.Errorf("task %s is restoring", id)
		}
	}
	return nil
}

// RestoredRecords returns how many changelog records each task restored
// since the runtime started.
func (r *Runtime) RestoredRecords() map[TaskID]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.restoredRecords)
}

// Tasks returns the tasks assigned to this instance and whether each runs.
func (r *Runtime) Tasks() map[TaskID]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[TaskID]bool, len(r.tasks))
	for id, a := range r.tasks {
		out[id] = a.t != nil
	}
	return out
}

func (r *Runtime) setNotReady(why string) {
	r.mu.Lock()
	r.notReady = why
	r.mu.Unlock()
}

// Run connects, creates the topics the topology needs, joins the group and
// processes until ctx is done; then it commits the open cycle, closes the
// stores and leaves the group. An unreachable broker is retried with backoff
// and reported by Ready, not returned.
func (r *Runtime) Run(ctx context.Context) error {
	if err := r.connect(ctx); err != nil {
		return err
	}
	if r.cl == nil {
		return nil // stopped before the brokers answered
	}
	defer r.admin.Close()
	err := r.loop(ctx)
	r.shutdown(err == nil)
	return err
}

func (r *Runtime) baseOpts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(r.cfg.Brokers...),
		kgo.ClientID(r.cfg.App + "-" + r.cfg.InstanceID),
		kgo.RetryBackoffFn(func(tries int) time.Duration {
			return min(time.Duration(tries)*100*time.Millisecond, 2*time.Second)
		}),
	}
	return append(opts, r.cfg.ClientOpts...)
}

// connect creates the admin client and the topics, retrying with backoff
// until the brokers answer or ctx is done.
func (r *Runtime) connect(ctx context.Context) error {
	adminCl, err := kgo.NewClient(r.baseOpts()...)
	if err != nil {
		return fmt.Errorf("creating admin client: %w", err)
	}
	r.admin = kadm.NewClient(adminCl)
	r.queryAdmin.Store(r.admin)
	backoff := 200 * time.Millisecond
	for {
		err := r.ensureTopics(ctx)
		if err == nil {
			break
		}
		var fatal *topologyMismatch
		if errors.As(err, &fatal) {
			r.admin.Close()
			return err
		}
		why := fmt.Sprintf("connecting to Kafka at %s: %v", strings.Join(r.cfg.Brokers, ","), err)
		r.setNotReady(why)
		r.log.Warn("kafka not ready; retrying", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			r.admin.Close()
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}

	// Before the client exists: it joins the group at once, and the
	// assignment (onAssigned) clears this; set after, it could overwrite
	// an assignment that came first and leave the instance "joining" for
	// good.
	r.setNotReady("joining consumer group " + r.cfg.App)
	opts := append(r.baseOpts(),
		kgo.ConsumerGroup(r.cfg.App),
		kgo.ConsumeTopics(r.topo.SourceTopics()...),
		kgo.Balancers(r.balancer()),
		kgo.BlockRebalanceOnPoll(),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(r.cfg.SessionTimeout),
		kgo.HeartbeatInterval(r.cfg.HeartbeatInterval),
		kgo.RebalanceTimeout(r.cfg.RebalanceTimeout),
		kgo.OnPartitionsAssigned(r.onAssigned),
		kgo.OnPartitionsRevoked(r.onRevoked),
		kgo.OnPartitionsLost(r.onLost),
		kgo.WithHooks(joinWatch{r}),
		kgo.RecordPartitioner(newPartitioner()),
		kgo.ProducerLinger(r.cfg.ProducerLinger),
		kgo.MaxBufferedRecords(1_000_000),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(fetchMaxWait),
		kgo.WithPools(&r.fetches),
	)
	if r.cfg.Guarantee == ExactlyOnce {
		opts = append(opts,
			kgo.TransactionalID(r.cfg.App+"-"+r.cfg.InstanceID),
			kgo.TransactionTimeout(r.cfg.TransactionTimeout),
			kgo.RequireStableFetchOffsets(),
		)
		r.sess, err = kgo.NewGroupTransactSession(opts...)
		if err != nil {
			r.admin.Close()
			return fmt.Errorf("creating transactional session: %w", err)
		}
		r.cl = r.sess.Client()
	} else {
		r.cl, err = kgo.NewClient(opts...)
		if err != nil {
			r.admin.Close()
			return fmt.Errorf("creating consumer: %w", err)
		}
	}
	return nil
}

func (r *Runtime) balancer() kgo.GroupBalancer {
	b := NewTaskBalancer(r.groupTopics(), r.localTasks)
	b.(*taskBalancer).endpoint = r.cfg.Endpoint
	b.(*taskBalancer).standbyReplicas = r.cfg.StandbyReplicas
	b.(*taskBalancer).synced = r.synced
	return b
}

func (r *Runtime) groupTopics() [][]string {
	out := make([][]string, len(r.topo.groups))
	for i, g := range r.topo.groups {
		out[i] = slices.Clone(g.sources)
	}
	return out
}

// localTasks lists the tasks with a state directory here, so the balancer
// can prefer to place a task where its state already is.
func (r *Runtime) localTasks() []TaskID {
	entries, err := os.ReadDir(r.cfg.StateDir)
	if err != nil {
		return nil
	}
	var out []TaskID
	for _, e := range entries {
		if id, err := ParseTaskID(e.Name()); err == nil && e.IsDir() && id.Group < len(r.topo.groups) {
			out = append(out, id)
		}
	}
	return out
}

// topologyMismatch is an error retrying cannot fix: the topics exist but
// break the topology's co-partitioning.
type topologyMismatch struct{ msg string }

func (e *topologyMismatch) Error() string { return e.msg }

// ensureTopics creates missing source, sink and changelog topics and checks
// that the sources of each sub-topology are co-partitioned.
func (r *Runtime) ensureTopics(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	details, err := r.admin.ListTopics(ctx)
	if err != nil {
		return fmt.Errorf("listing topics: %w", err)
	}
	counts := make(map[string]int32)
	for t, d := range details {
		if d.Err == nil {
			counts[t] = int32(len(d.Partitions))
		}
	}
	create := func(topic string, partitions int32, configs map[string]*string) error {
		if _, ok := counts[topic]; ok {
			return nil
		}
		resp, err := r.admin.CreateTopic(ctx, partitions, r.cfg.ReplicationFactor, configs, topic)
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating topic %s: %w", topic, err)
		}
		if resp.Err != nil && !errors.Is(resp.Err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("creating topic %s: %w", topic, resp.Err)
		}
		if resp.NumPartitions > 0 {
			counts[topic] = resp.NumPartitions
		} else {
			counts[topic] = partitions
		}
		return nil
	}
	for _, n := range r.topo.nodes {
		if n.kind != SourceNode {
			continue
		}
		want := r.topo.groups[n.group].partitions
		if want == 0 {
			want = r.cfg.Partitions
		}
		if err := create(n.topic, want, nil); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.partitions = make([]int32, len(r.topo.groups))
	for gi, g := range r.topo.groups {
		r.partitions[gi] = counts[g.sources[0]]
	}
	r.mu.Unlock()
	for gi, g := range r.topo.groups {
		var first string
		for _, s := range g.sources {
			if first == "" {
				first = s
			}
			if counts[s] != counts[first] {
				return &topologyMismatch{fmt.Sprintf("sub-topology %d: topic %q has %d partitions but %q has %d; sources that feed the same stores must be co-partitioned", gi, s, counts[s], first, counts[first])}
			}
			if g.partitions != 0 && counts[s] != g.partitions {
				return &topologyMismatch{fmt.Sprintf("sub-topology %d: topic %q has %d partitions, the topology declares %d", gi, s, counts[s], g.partitions)}
			}
		}
		compact := "compact"
		for _, st := range g.stores {
			if err := create(ChangelogTopic(r.cfg.App, st), counts[first], map[string]*string{"cleanup.policy": &compact}); err != nil {
				return err
			}
		}
	}
	for _, t := range r.topo.SinkTopics() {
		if err := create(t, r.cfg.Partitions, nil); err != nil {
			return err
		}
	}
	return nil
}

// onAssigned pauses the new tasks' partitions and starts their restores.
// It runs on the group goroutine while the loop is not processing.
func (r *Runtime) onAssigned(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
	r.metrics.rebalances.WithLabelValues("assigned").Inc()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rejoining = false
	r.joined.Store(false)
	select {
	case r.assignedC <- struct{}{}:
	default:
	}
	if r.notReady != "" && strings.HasPrefix(r.notReady, "joining") {
		r.notReady = ""
	}
	if active, ok := r.synced.activeTasks(); ok {
		r.dropUnassignedLocked(cl, active)
	}
	pause := make(map[string][]int32)
	// started are the tasks this call started: a group with several
	// source topics names each of its tasks once per topic.
	started := make(map[TaskID]bool)
	for topic, ps := range parts {
		gi, ok := r.topicGroup[topic]
		if !ok {
			continue
		}
		for _, p := range ps {
			id := TaskID{Group: gi, Partition: p}
			a := r.tasks[id]
			if a != nil && !started[id] {
				// New to the client but still held here: its loss or
				// revoke was not reported (see dropUnassignedLocked),
				// and another member may have processed it since.
				// Reopen it, and restore what the changelog gained.
				r.log.Warn("restarting a task whose loss was not reported", "task", id)
				delete(r.tasks, id)
				r.closeTaskLocked(a)
				a = nil
			}
			if a == nil {
				a = r.startRestoreLocked(id)
				started[id] = true
			}
			if a.t == nil {
				pause[topic] = append(pause[topic], p)
			}
		}
	}
	cl.PauseFetchPartitions(pause)
	r.updateTaskGaugesLocked()
	r.log.Info("partitions assigned", "partitions", parts)
}

func (r *Runtime) onRevoked(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
	r.metrics.rebalances.WithLabelValues("revoked").Inc()
	r.dropTasks(cl, parts)
	r.noteRejoin()
}

func (r *Runtime) onLost(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
	r.metrics.rebalances.WithLabelValues("lost").Inc()
	r.dropTasks(cl, parts)
	r.noteRejoin()
}

// noteRejoin records that the group session ended: franz-go calls
// onRevoked or onLost, then joins again and calls onAssigned.
func (r *Runtime) noteRejoin() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rejoining = true
}

// joinWatch is a kgo hook that marks the member rejoining when its client
// writes a JoinGroup request. The revoke callback alone does not say so:
// franz-go's GroupTransactSession drops a revoke that comes before End has
// answered an earlier one. After the first phase of a cooperative
// rebalance, the member revokes what it lost (onRevoked), is assigned the
// rest (onAssigned ends the rejoin), and joins again at once; the revoke
// that ends that session is dropped, so nothing else marks the second
// join, and a cycle begun during it cannot commit (awaitAssignment).
type joinWatch struct{ r *Runtime }

// OnBrokerWrite implements kgo.HookBrokerWrite. franz-go calls it before it
// reads the request's response, so a join is marked before the assignment
// that ends it.
func (w joinWatch) OnBrokerWrite(_ kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if key == int16(kmsg.JoinGroup) && err == nil {
		w.r.joined.Store(true)
	}
}

// dropUnassignedLocked closes the tasks that the member's whole assignment
// (active, as of its last sync) no longer names. onRevoked normally has,
// but franz-go's GroupTransactSession drops a revoke that comes before End
// has answered an earlier one: the revoke of a cooperative rebalance's
// second phase, when a cycle of the loop committed nothing in between
// (joinWatch keeps it from beginning one). A task left open there would
// go on punctuating, writing to a changelog another member now owns.
// REQUIRES: r.mu.
func (r *Runtime) dropUnassignedLocked(cl *kgo.Client, active []TaskID) {
	keep := make(map[TaskID]bool, len(active))
	for _, id := range active {
		keep[id] = true
	}
	resume := make(map[string][]int32)
	for id, a := range r.tasks {
		if keep[id] {
			continue
		}
		r.log.Warn("closing a task whose revoke was not reported", "task", id)
		delete(r.tasks, id)
		r.closeTaskLocked(a)
		for _, topic := range r.topo.groups[id.Group].sources {
			resume[topic] = append(resume[topic], id.Partition)
		}
	}
	if len(resume) > 0 {
		cl.ResumeFetchPartitions(resume)
	}
}

// dropTasks closes the tasks whose partitions were taken away. No commit
// cycle is open when it runs, so no task holds pending writes.
func (r *Runtime) dropTasks(cl *kgo.Client, parts map[string][]int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for topic, ps := range parts {
		gi, ok := r.topicGroup[topic]
		if !ok {
			continue
		}
		for _, p := range ps {
			id := TaskID{Group: gi, Partition: p}
			a := r.tasks[id]
			if a == nil {
				continue
			}
			delete(r.tasks, id)
			r.closeTaskLocked(a)
		}
	}
	cl.ResumeFetchPartitions(parts)
	r.updateTaskGaugesLocked()
	r.log.Info("partitions revoked", "partitions", parts)
}

// closeTasksLocked closes every task. REQUIRES: r.mu.
func (r *Runtime) closeTasksLocked() {
	for id, a := range r.tasks {
		delete(r.tasks, id)
		r.closeTaskLocked(a)
	}
}

// closeTaskLocked stops a task's restore or closes its store.
// REQUIRES: r.mu.
func (r *Runtime) closeTaskLocked(a *assigned) {
	if a.t == nil {
		a.cancel()
		// The restore goroutine only blocks on Kafka, and returns soon
		// once cancelled; its store, if it got one, is ours to close.
		<-a.done
		if a.res != nil && a.res.db != nil {
			a.db = a.res.db
		}
	}
	if a.db != nil {
		a.db.Discard()
		if err := a.db.Close(); err != nil {
			r.log.Error("closing task store", "task", a.id, "err", err)
		}
		a.db = nil
	}
}

// startRestoreLocked registers task id as restoring and starts its restore.
// REQUIRES: r.mu.
func (r *Runtime) startRestoreLocked(id TaskID) *assigned {
	// A standby of the task hands its warm store over: the restore
	// opens the same directory and reads only the tail.
	r.stopStandbyLocked(id)
	ctx, cancel := context.WithCancel(context.Background())
	a := &assigned{id: id, cancel: cancel, done: make(chan struct{})}
	r.tasks[id] = a
	r.phase.begin()
	go func() {
		defer close(a.done)
		res := r.restore(ctx, a)
		r.phase.end(r, res)
		if res.err == nil && ctx.Err() != nil {
			res.err = ctx.Err()
		}
		if res.err != nil && res.db != nil {
			res.db.Close()
			res.db = nil
		}
		a.resMu.Lock()
		a.res = res
		a.resMu.Unlock()
		select {
		case r.restored <- struct{}{}:
		default: // a wake-up is already pending
		}
	}()
	return a
}

// restore opens task a's store and brings it to the end of its changelogs.
// It runs in its own goroutine, never in a rebalance callback and never on
// the poll loop. The store opens at once; reading the changelogs waits for
// one of the Config.RestoreConcurrency slots.
func (r *Runtime) restore(ctx context.Context, a *assigned) *restoreDone {
	res := &restoreDone{restored: make(map[string]state.RestoreResult)}
	// Opening a store reads its manifest and checkpoints from disk, which
	// costs no Kafka fetch and little CPU: done before taking a slot, it
	// overlaps the restores that hold the slots instead of adding to the
	// queue behind them.
	db, err := state.Open(filepath.Join(r.cfg.StateDir, a.id.String()), state.Options{ReadCacheSize: r.cfg.ReadCacheSize})
	if err != nil {
		res.err = fmt.Errorf("opening store of task %s: %w", a.id, err)
		return res
	}
	res.db = db
	select {
	case r.restoreSlots <- struct{}{}:
		defer func() { <-r.restoreSlots }()
	case <-ctx.Done():
		res.err = ctx.Err()
		return res
	}
	start := time.Now()
	defer func() { res.took = time.Since(start) }()
	var logs []state.Changelog
	for _, s := range r.topo.groups[a.id.Group].stores {
		logs = append(logs, state.Changelog{Store: s, Topic: ChangelogTopic(r.cfg.App, s), Partition: a.id.Partition})
	}
	task := a.id.String()
	opts := state.RestoreOptions{
		Client: r.baseOpts(),
		Admin:  r.admin,
		Progress: func(store string, restored, remaining int64) {
			r.metrics.remaining.WithLabelValues(task, store).Set(float64(remaining))
		},
	}
	// Restore reads to an end no open transaction holds back, so a
	// transaction that the task's previous owner was committing is in.
	n, err := state.Restore(ctx, db, logs, opts)
	for s, c := range n {
		res.restored[s] = c
		r.metrics.restored.WithLabelValues(s).Add(float64(c.Records))
		r.metrics.restoredBytes.WithLabelValues(s).Add(float64(c.Bytes))
	}
	if err != nil {
		res.err = fmt.Errorf("restoring task %s: %w", a.id, err)
		return res
	}
	return res
}

// restorePhase measures the restore phase: the wall time during which at
// least one task of this instance restores (or waits for a restore slot).
// Restores of tasks assigned together overlap, so their sum would overstate
// it; records over this time is the instance's restore rate.
type restorePhase struct {
	mu sync.Mutex
	// running counts the restores under way; start is when the phase
	// began, and records, bytes and tasks sum its restores.
	// REQUIRES: mu.
	running        int
	start          time.Time
	records, bytes int64
	tasks          int
}

// begin counts a restore starting.
func (p *restorePhase) begin() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running == 0 {
		p.start = time.Now()
		p.records, p.bytes, p.tasks = 0, 0, 0
	}
	p.running++
}

// end counts a restore ending with res; the last one of a phase adds the
// phase to tessera_restore_active_seconds_total and logs it.
func (p *restorePhase) end(r *Runtime, res *restoreDone) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.running--
	if res.err == nil {
		p.tasks++
		for _, n := range res.restored {
			p.records += n.Records
			p.bytes += n.Bytes
		}
	}
	if p.running > 0 {
		return
	}
	took := time.Since(p.start)
	r.metrics.restoreSeconds.Add(took.Seconds())
	r.log.Info("restore phase ended", "tasks", p.tasks, "records", p.records, "bytes", p.bytes, "took", took,
		"records_per_sec", int64(float64(p.records)/max(took.Seconds(), 1e-3)))
}

// adoptRestored turns finished restores into running tasks and resumes
// their partitions. It runs on the loop.
func (r *Runtime) adoptRestored() error {
	select {
	case <-r.restored:
	default:
		return nil
	}
	r.mu.Lock()
	var started []*assigned
	for _, a := range r.tasks {
		if a.t != nil {
			continue
		}
		a.resMu.Lock()
		res := a.res
		a.resMu.Unlock()
		if res == nil {
			continue
		}
		if res.err != nil {
			r.mu.Unlock()
			return res.err
		}
		var total state.RestoreResult
		for _, n := range res.restored {
			total.Records += n.Records
			total.Bytes += n.Bytes
		}
		r.restoredRecords[a.id] += total.Records
		a.db = res.db
		a.t = newTask(a.id, r.topo, a.db, r.cfg.App, r, r.cfg.Clock)
		started = append(started, a)
		r.log.Info("task restored", "task", a.id, "records", total.Records, "bytes", total.Bytes, "took", res.took)
	}
	r.updateTaskGaugesLocked()
	r.mu.Unlock()
	resume := make(map[string][]int32)
	for _, a := range started {
		if err := a.t.init(); err != nil {
			return err
		}
		for _, s := range r.topo.groups[a.id.Group].sources {
			resume[s] = append(resume[s], a.id.Partition)
		}
	}
	r.cl.ResumeFetchPartitions(resume)
	return nil
}

// REQUIRES: r.mu.
func (r *Runtime) updateTaskGaugesLocked() {
	var restoring, running int
	for _, a := range r.tasks {
		if a.t == nil {
			restoring++
		} else {
			running++
		}
	}
	r.metrics.tasks.WithLabelValues("restoring").Set(float64(restoring))
	r.metrics.tasks.WithLabelValues("running").Set(float64(running))
	r.metrics.tasks.WithLabelValues("standby").Set(float64(len(r.standbys)))
}

// produce sends a record in the current cycle. A failed record fails the
// whole cycle.
func (r *Runtime) produce(rec *kgo.Record) {
	if r.sess != nil {
		if err := r.beginTxn(); err != nil {
			r.promise(rec, err)
			return
		}
		r.sess.Produce(context.Background(), rec, r.promise)
		return
	}
	r.cl.Produce(context.Background(), rec, r.promise)
}

// onProduced is the promise of every record the runtime produces (kept in
// Runtime.promise, so that passing it allocates nothing): it fails the
// cycle on an error and tells a changelog its record's offset.
func (r *Runtime) onProduced(rec *kgo.Record, err error) {
	if err != nil {
		r.metrics.produceErrors.Inc()
		r.prodErr.set(fmt.Errorf("producing to %s: %w", rec.Topic, err))
	}
	if c, ok := rec.Context.(*changelog); ok {
		c.produced(rec.Offset, err)
	}
	if err == nil && r.sess != nil {
		r.firsts.note(rec)
	}
}

// shutdown leaves the group (closing every task through the revoke
// callback) and closes what is left.
func (r *Runtime) shutdown(clean bool) {
	// The loop may have returned with rebalances blocked by its last
	// poll; leaving the group needs them allowed, or Close waits forever
	// for the revoke.
	if r.sess != nil {
		r.sess.CloseAllowingRebalance()
	} else if r.cl != nil {
		r.cl.CloseAllowingRebalance()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closeTasksLocked()
	for id := range r.standbys {
		r.stopStandbyLocked(id)
	}
	r.notReady = "stopped"
	r.log.Info("runtime stopped", "clean", clean)
}

// errSlot keeps the first error set since the last take.
type errSlot struct {
	mu  sync.Mutex
	err error
}

func (s *errSlot) set(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

func (s *errSlot) take() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.err
	s.err = nil
	return err
}
