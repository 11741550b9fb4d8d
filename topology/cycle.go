package topology

// The processing loop and its commit cycles.
//
// The loop of Run polls records, runs the wall-clock punctuations that are
// due, processes the records and ends each commit cycle with a commit.
// Under exactly-once a cycle is one Kafka transaction holding its outputs,
// changelog writes and input offsets, and the tasks' stores apply the
// cycle's writes once it has committed; under at-least-once the cycle
// flushes its outputs, applies the store writes, then commits the offsets.
//
// A cycle ends by time, not by how much a poll returned: once
// Config.CommitInterval has passed since it began, the loop commits before
// it starts another unit of work (a record, or one task's wall-clock
// punctuation), even in the middle of a polled batch. The rest of the batch
// stays in the cycle's pending records, which the next cycles process in
// poll order before the loop polls again. A cycle commits, for each source
// partition, the offset after the last record it processed, never the
// polled position, so no pending record is skipped. A transaction thus
// lasts about the commit interval plus one record or one punctuation plus
// the commit, however slow processing is and however many records a poll
// returned, and stays inside the transaction timeout; this is how Kafka
// Streams uses commit.interval.ms. Every cycle runs the due punctuations
// first, for at most a tenth of its interval, and then the pending records, at
// least one of each when there are any, so neither starves the other
// however slow either is.
//
// Under exactly-once a cycle also ends early when its input runs dry: once
// it has processed records and lasted Config.MinCommitInterval, a poll that
// finds nothing new ends it. An output is readable only after its
// transaction commits, and an event crosses two sub-topologies, so on a
// light stream waiting out the interval at each would add two intervals of
// idle waiting to every event's latency; under load polls always find
// records and cycles keep their full length.
//
// Rebalance callbacks run only between cycles that left nothing pending
// (kgo.BlockRebalanceOnPoll), so a revoke never finds a polled record
// unprocessed. When a cycle aborts, the consumer is rewound (by the
// transact session to the committed offsets under exactly-once, by the loop
// to the cycle's first records under at-least-once) and the pending
// records are dropped: they are fetched again.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// cycle is the loop's commit cycle and the records it has polled but not
// processed. Only the loop uses it, so it has no lock.
type cycle struct {
	open     bool
	start    time.Time
	deadline time.Time // start + CommitInterval
	// records and punctuations count the records processed and the
	// tasks' wall-clock punctuations run since the cycle began.
	records, punctuations int
	// punctuationsLeft says that the last cycle ended with wall-clock
	// punctuations still due, which the next one runs without waiting
	// for records.
	punctuationsLeft bool
	// pending are the polled partitions with records still to process,
	// in poll order; each one's Records start at its next record.
	pending []kgo.FetchTopicPartition
	// last is the last record the cycle processed of each source
	// partition: the cycle commits its offset + 1.
	last map[topicPartition]*kgo.Record
	// first is the first record the cycle processed of each source
	// partition: where an aborted at-least-once cycle rewinds to.
	first map[topicPartition]kgo.EpochOffset
	// done are the records the cycle processed, to recycle once it has
	// committed (recycle).
	done []*kgo.Record
}

func newCycle() *cycle {
	return &cycle{
		last:  make(map[topicPartition]*kgo.Record),
		first: make(map[topicPartition]kgo.EpochOffset),
	}
}

// due reports whether the cycle's interval has passed at now and it has
// processed records, so that it must commit before the next record.
func (c *cycle) due(now time.Time) bool {
	return c.open && c.records > 0 && !now.Before(c.deadline)
}

// processed notes that the cycle processed records rs, in order, of one
// partition.
func (c *cycle) processed(rs []*kgo.Record) {
	if len(rs) == 0 {
		return
	}
	tp := topicPartition{rs[0].Topic, rs[0].Partition}
	if _, ok := c.first[tp]; !ok {
		c.first[tp] = kgo.EpochOffset{Epoch: rs[0].LeaderEpoch, Offset: rs[0].Offset}
	}
	c.last[tp] = rs[len(rs)-1]
	c.records += len(rs)
	c.done = append(c.done, rs...)
}

// recycle hands the memory of the records the cycle processed back to the
// Kafka client's pool (fetchPool), or, when the cycle did not commit, only
// forgets them.
//
// Recycling reuses a record's key and value for a later fetch, so it is
// safe only when nothing refers to them any longer. After a commit that
// holds: the outputs that a processor built on an input's bytes (a
// forwarded key, say) were produced, and the producer has flushed them
// (at-least-once) or ended their transaction (exactly-once); the stores
// copied what was written to them; and the processors keep no input bytes
// from one record to the next (INVARIANT of every Processor: a Record's
// Key and Value are the processor's only during Process). After an abort,
// or a commit that failed, records may still wait in the producer, so the
// garbage collector reclaims them instead, when they are done with.
func (c *cycle) recycle(committed bool) {
	if committed {
		for _, r := range c.done {
			r.Recycle()
		}
	}
	clear(c.done)
	c.done = c.done[:0]
}

// reset closes the cycle; with drop it also forgets the pending records,
// as when the consumer was rewound before them.
func (c *cycle) reset(drop bool) {
	c.open, c.records, c.punctuations = false, 0, 0
	clear(c.last)
	clear(c.first)
	if drop {
		c.pending = nil
	}
}

// rewriteTxnOffsets is the cycle's kgo.PreTxnCommitFnContext hook. The
// transact session fills the TxnOffsetCommit with the polled positions;
// this sets each partition to the offset after the last record the cycle
// processed, and leaves out a partition the cycle processed nothing of,
// which keeps its committed offset. Records still pending are therefore
// not committed. The session records the request as sent as the committed
// state, and rewinds to that after an abort. It runs under the client's
// transaction lock, so it only edits the request.
func (c *cycle) rewriteTxnOffsets(req *kmsg.TxnOffsetCommitRequest) error {
	matched := 0
	topics := req.Topics[:0]
	for _, t := range req.Topics {
		parts := t.Partitions[:0]
		for _, p := range t.Partitions {
			rec := c.last[topicPartition{t.Topic, p.Partition}]
			if rec == nil {
				continue
			}
			p.Offset, p.LeaderEpoch = rec.Offset+1, rec.LeaderEpoch
			parts = append(parts, p)
			matched++
		}
		if len(parts) > 0 {
			t.Partitions = parts
			topics = append(topics, t)
		}
	}
	req.Topics = topics
	if matched != len(c.last) {
		// INVARIANT: a partition the cycle processed records of has
		// a polled position past its committed offset, so the session
		// lists it. Committing without it would lose its progress.
		return fmt.Errorf("committing offsets: the transaction lists %d of the %d partitions the cycle processed", matched, len(c.last))
	}
	return nil
}

// loop is the processing loop: poll, punctuate, process, commit.
func (r *Runtime) loop(ctx context.Context) error {
	c := newCycle()
	for {
		if !c.open && len(c.pending) == 0 {
			r.allowRebalance()
			r.awaitAssignment(ctx)
		}
		if ctx.Err() != nil {
			if c.open {
				return r.endCycle(c, true)
			}
			return nil
		}
		drained := false
		if len(c.pending) == 0 {
			var closed bool
			if drained, closed = r.pollInto(ctx, c); closed {
				return nil
			}
			if !c.open && r.isRejoining() {
				// A revoke ran before this poll took its
				// records (rebalances go first): hand them
				// back unprocessed and wait for the
				// assignment.
				r.rewind(c)
				c.pending = nil
				continue
			}
		}
		if err := r.adoptRestored(); err != nil {
			r.failCycle(c)
			return err
		}
		r.syncStandbys()
		if err := r.punctuateWallClock(c); err != nil {
			r.failCycle(c)
			return err
		}
		if err := r.processPending(c); err != nil {
			r.failCycle(c)
			return err
		}
		if c.open && (!time.Now().Before(c.deadline) || drained && r.endsEarly(c)) {
			if err := r.endCycle(c, true); err != nil {
				return err
			}
		}
	}
}

// awaitAssignment waits, between cycles, while the member is joining the
// group again (Runtime.rejoining): until the next assignment or until ctx
// is done. It warns every rebalance timeout that it is still waiting.
//
// Under exactly-once a cycle must not run then. Its commit (franz-go's
// GroupTransactSession.End) waits for a heartbeat to confirm the member
// is still in the group, and between the revoke and the next assignment
// no heartbeat runs. Nor can the join's failure end that wait: franz-go
// reports it through the loss callback, which BlockRebalanceOnPoll holds
// back until the open cycle ends. So the commit outlasts its context and
// the instance stops with "ending transaction: context deadline
// exceeded". At-least-once waits too: a cycle then would commit its
// offsets in a generation that is ending.
//
// INVARIANT: the wait has no time limit, because only the next
// assignment ends a rejoin (a loss is followed by another join). A fetch
// error cannot end it either: franz-go retries a failed join and logs
// why. franz-go gives a join the rebalance timeout plus its request
// overhead (10 s by default) to answer, and the sync after it the
// rebalance timeout again; a join the coordinator never answers ends
// only then, with a loss and another join. A bound of the rebalance and session timeouts plus 5 s, which
// this wait had, ran out first: TestExactlyOnceUnderCrash's survivor
// stopped that way in CI when kfake, the embedded broker, expired the
// survivor's session while its join waited for the killed member (a
// member in a join sends no heartbeats, and kfake, unlike Kafka, does
// not keep it alive) and never answered the join.
func (r *Runtime) awaitAssignment(ctx context.Context) {
	if !r.isRejoining() {
		return
	}
	start := time.Now()
	defer func() {
		if took := time.Since(start); took > time.Second {
			r.log.Info("processing waited for the group's next assignment", "took", took)
		}
	}()
	warn := time.NewTicker(r.cfg.RebalanceTimeout)
	defer warn.Stop()
	for r.isRejoining() {
		select {
		case <-r.assignedC:
		case <-ctx.Done():
			return
		case <-warn.C:
			r.log.Warn("still waiting for the group's next assignment; processing is paused", "waited", time.Since(start).Round(time.Millisecond))
		}
	}
}

// isRejoining reports whether the member is joining the group again.
func (r *Runtime) isRejoining() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rejoining || r.joined.Load()
}

// beginCycle opens a cycle if none is open. Under exactly-once its
// transaction begins with the cycle's first record produced (beginTxn), or
// at its commit if it processed records but produced none: a cycle that
// did neither has nothing to commit and ends without a transaction.
func (r *Runtime) beginCycle(c *cycle) error {
	if c.open {
		return nil
	}
	c.open, c.records, c.punctuations = true, 0, 0
	c.start = time.Now()
	c.deadline = c.start.Add(r.cfg.CommitInterval)
	return nil
}

// endCycle commits the open cycle (or aborts it, without tryCommit) and
// closes it. After an abort the consumer is back before the cycle's
// records, so the pending ones are dropped and fetched again.
func (r *Runtime) endCycle(c *cycle, tryCommit bool) error {
	commitStart := time.Now()
	committed, err := r.commit(c, tryCommit)
	// A commit that returned no error flushed every output: the cycle's
	// inputs and output bytes can be reused.
	flushed := committed && err == nil
	c.recycle(flushed)
	if flushed {
		r.resetSlabs()
	}
	r.log.Debug("commit cycle ended", "committed", committed, "records", c.records, "punctuations", c.punctuations, "pending", len(c.pending), "took", time.Since(c.start), "commit", time.Since(commitStart))
	if took := time.Since(c.start); r.sess != nil && took > r.cfg.TransactionTimeout/2 {
		r.log.Warn("commit cycle took over half the transaction timeout; a record or punctuation is slow",
			"took", took, "transaction_timeout", r.cfg.TransactionTimeout, "commit_interval", r.cfg.CommitInterval)
	}
	if !committed && err == nil && r.sess == nil {
		r.rewind(c)
	}
	c.reset(!committed)
	return err
}

// resetSlabs frees the produced records and their bytes of every running
// task for reuse (logSlab), after a commit: the producer has flushed every
// record.
func (r *Runtime) resetSlabs() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.tasks {
		if a.t != nil {
			a.t.slab.reset()
		}
	}
}

// failCycle aborts the open cycle, if any, after an error that stops the
// loop; the error is what the loop returns.
func (r *Runtime) failCycle(c *cycle) {
	if !c.open {
		return
	}
	if err := r.endCycle(c, false); err != nil {
		r.log.Error("aborting commit cycle", "err", err)
	}
}

// rewind moves the consumer back to the first record the cycle processed
// of each partition (or its first pending one), so that they are fetched
// again: after an aborted at-least-once cycle (the transact session
// rewinds itself under exactly-once), and for records polled after a
// revoke, before any cycle began. Rebalances are blocked (a poll came
// last), as SetOffsets requires.
func (r *Runtime) rewind(c *cycle) {
	to := make(map[string]map[int32]kgo.EpochOffset)
	set := func(tp topicPartition, at kgo.EpochOffset) {
		if to[tp.topic] == nil {
			to[tp.topic] = make(map[int32]kgo.EpochOffset)
		}
		if _, ok := to[tp.topic][tp.partition]; !ok {
			to[tp.topic][tp.partition] = at
		}
	}
	for tp, at := range c.first {
		set(tp, at)
	}
	for _, fp := range c.pending {
		if len(fp.Records) > 0 {
			set(topicPartition{fp.Topic, fp.Partition}, kgo.EpochOffset{Epoch: fp.Records[0].LeaderEpoch, Offset: fp.Records[0].Offset})
		}
	}
	r.cl.SetOffsets(to)
}

func (r *Runtime) allowRebalance() {
	if r.sess != nil {
		r.sess.AllowRebalance()
	} else {
		r.cl.AllowRebalance()
	}
}

// endsEarly reports whether the open cycle, whose last poll found nothing
// new, may commit before its deadline: under exactly-once, once it has
// processed records and lasted minCycle.
func (r *Runtime) endsEarly(c *cycle) bool {
	least, ok := r.minCycle()
	return ok && c.records > 0 && !time.Now().Before(c.start.Add(least))
}

// minCycle returns how long a cycle lasts at least before its input
// running dry ends it, and false when cycles never end early (at-least-once,
// or Config.MinCommitInterval at or above CommitInterval). It is
// MinCommitInterval, or twice the recent cost of a commit when that is
// more: ending a transaction takes several round trips to the broker,
// during which the loop processes nothing, so a cycle lasts at least twice
// as long as its commit, and a slow broker lengthens cycles instead of
// leaving the loop committing most of the time.
func (r *Runtime) minCycle() (time.Duration, bool) {
	if r.sess == nil || r.cfg.MinCommitInterval >= r.cfg.CommitInterval {
		return 0, false
	}
	return min(max(r.cfg.MinCommitInterval, 2*r.commitCost), r.cfg.CommitInterval), true
}

// noteCommitCost folds the duration of one ended transaction into
// r.commitCost, an exponentially weighted average over about the last
// eight commits.
func (r *Runtime) noteCommitCost(d time.Duration) {
	if r.commitCost == 0 {
		r.commitCost = d
		return
	}
	r.commitCost += (d - r.commitCost) / 8
}

// maxPollWait bounds every poll, so that the loop notices due wall-clock
// punctuations and finished restores (whose partitions it must resume)
// within it however long the commit interval is.
const maxPollWait = 100 * time.Millisecond

// pollInto polls records into c.pending, waiting at most until the open
// cycle's deadline (a commit interval when none is open, hardly at all
// when punctuations are left to run), and never over maxPollWait. A cycle
// that may end early (endsEarly) waits only until it has lasted
// Config.MinCommitInterval, or a millisecond once it has: a poll that then
// finds nothing means the input is drained, which it reports, with whether
// the client is closed.
func (r *Runtime) pollInto(ctx context.Context, c *cycle) (drained, closed bool) {
	wait := min(r.cfg.CommitInterval, maxPollWait)
	switch {
	case c.punctuationsLeft:
		// Not zero: a poll with a done context returns nothing, not
		// even buffered records.
		wait = time.Millisecond
	case c.open:
		wait = min(max(time.Until(c.deadline), time.Millisecond), maxPollWait)
		if least, ok := r.minCycle(); ok && c.records > 0 {
			wait = min(wait, max(time.Until(c.start.Add(least)), time.Millisecond))
		}
	}
	pollCtx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var fetches kgo.Fetches
	if r.sess != nil {
		fetches = r.sess.PollRecords(pollCtx, r.cfg.MaxPollRecords)
	} else {
		fetches = r.cl.PollRecords(pollCtx, r.cfg.MaxPollRecords)
	}
	if err := fetchErr(fetches); err != nil {
		if errors.Is(err, kgo.ErrClientClosed) {
			return false, true
		}
		r.log.Warn("fetch error", "err", err)
	}
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if len(fp.Records) > 0 {
			c.pending = append(c.pending, fp)
		}
	})
	return len(c.pending) == 0, false
}

// fetchErr returns the first fetch error that is not the poll timeout.
func fetchErr(fs kgo.Fetches) error {
	var out error
	fs.EachError(func(t string, p int32, err error) {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return
		}
		if out == nil {
			out = fmt.Errorf("fetching %s[%d]: %w", t, p, err)
		}
	})
	return out
}

// processPending runs the pending records through their tasks, in order,
// until none is left or the cycle is due. With Config.Threads above one and
// records of several tasks pending, the tasks run on that many goroutines
// at once (processTasks).
func (r *Runtime) processPending(c *cycle) error {
	if len(c.pending) == 0 {
		return nil
	}
	if err := r.beginCycle(c); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.processTasks(c)
}

// taskOf returns the running task that processes the records of fp.
// REQUIRES: r.mu.
func (r *Runtime) taskOf(fp *kgo.FetchTopicPartition) (*task, error) {
	a := r.tasks[TaskID{Group: r.topicGroup[fp.Topic], Partition: fp.Partition}]
	if a == nil || a.t == nil {
		// INVARIANT: a restoring task's partitions are paused from
		// before their first fetch, and no rebalance runs while
		// records are pending, so this cannot happen; if it did,
		// processing would skip records, so fail loudly instead.
		return nil, fmt.Errorf("records for %s[%d] arrived for a task that is not running", fp.Topic, fp.Partition)
	}
	return a.t, nil
}

// runPartition processes fp's records through t, in order, until none is
// left or deadline has passed, and returns how many it processed. It
// processes at least one: the deadline is checked after each record, so a
// cycle always makes progress, even after punctuations took its whole
// interval. It touches only t and fp, so tasks run it in parallel.
func runPartition(t *task, fp *kgo.FetchTopicPartition, deadline time.Time) (int, error) {
	n := 0
	for n < len(fp.Records) {
		kr := fp.Records[n]
		rec := Record{Key: kr.Key, Value: kr.Value, Timestamp: kr.Timestamp, Topic: kr.Topic, Partition: kr.Partition, Offset: kr.Offset}
		if len(kr.Headers) > 0 {
			rec.Headers = make([]Header, len(kr.Headers))
			for i, h := range kr.Headers {
				rec.Headers[i] = Header{Key: h.Key, Value: h.Value}
			}
		}
		if err := t.process(rec); err != nil {
			return n, err
		}
		n++
		if !time.Now().Before(deadline) {
			break
		}
	}
	return n, nil
}

// noteProcessed records that the first n pending records of fp, task t's,
// were processed, in took, and drops them from fp. It runs on the loop.
func (r *Runtime) noteProcessed(c *cycle, t *task, fp *kgo.FetchTopicPartition, n int, took time.Duration) {
	if n == 0 {
		return
	}
	done := fp.Records[:n]
	c.processed(done)
	r.metrics.processed.WithLabelValues(fp.Topic).Add(float64(n))
	r.metrics.latency.Observe(took.Seconds() / float64(n))
	last := done[n-1].Offset
	lag := max(fp.HighWatermark-last-1, 0)
	r.metrics.lag.WithLabelValues(fp.Topic, strconv.Itoa(int(fp.Partition))).Set(float64(lag))
	if t.backlog == nil {
		t.backlog = make(map[string]int64, len(t.sources))
	}
	t.backlog[fp.Topic] = lag
	fp.Records = fp.Records[n:]
}

// taskWork is one task's share of a poll in processTasks: its pending
// partitions, in poll order, and what became of them.
type taskWork struct {
	t       *task
	parts   []int // indexes into the cycle's pending partitions
	records int   // pending records over parts, to balance the threads
	// n and took are, for each of parts, how many records were processed
	// and in how long; err is what stopped the task, if anything.
	n    []int
	took []time.Duration
	err  error
}

// processTasks runs the pending records on up to Config.Threads
// goroutines, the loop's own being the first, so that one thread (or one
// task pending) runs on the loop alone. The tasks with pending records are
// dealt to the threads, the largest first, each to the thread with the
// fewest records so far; each thread runs its tasks one after another, and
// each task its partitions in poll order, until it is done or the cycle is
// due. The loop waits for every thread, then accounts for what they
// processed in poll order.
//
// INVARIANT: while the threads run, each task, its store and its
// processors are used by one thread only, and the threads share only
// what is safe for concurrent use: the Kafka client (Produce), the
// metrics, and the read-only topology. The transaction of an exactly-once
// cycle has begun before they start, since beginning it is the loop's.
// REQUIRES: r.mu, held by the loop throughout.
func (r *Runtime) processTasks(c *cycle) error {
	var works []*taskWork
	byTask := make(map[*task]*taskWork)
	for i := range c.pending {
		fp := &c.pending[i]
		t, err := r.taskOf(fp)
		if err != nil {
			return err
		}
		w := byTask[t]
		if w == nil {
			w = &taskWork{t: t}
			byTask[t] = w
			works = append(works, w)
		}
		w.parts = append(w.parts, i)
		w.records += len(fp.Records)
	}
	if c.due(time.Now()) {
		return nil
	}
	if r.sess != nil {
		if err := r.beginTxn(); err != nil {
			return err
		}
	}
	threads := make([][]*taskWork, min(r.cfg.Threads, len(works)))
	loads := make([]int, len(threads))
	sorted := slices.Clone(works)
	slices.SortStableFunc(sorted, func(a, b *taskWork) int { return b.records - a.records })
	for _, w := range sorted {
		i := slices.Index(loads, slices.Min(loads))
		threads[i] = append(threads[i], w)
		loads[i] += w.records
	}
	// A cycle that has processed records may end before a thread's next
	// partition; one that has not must process at least one record, which
	// runPartition does.
	progressed := c.records > 0
	busy := make([]time.Duration, len(threads))
	var wg sync.WaitGroup
	for i, ws := range threads[1:] {
		wg.Go(func() { busy[i+1] = r.runThread(c, ws, progressed) })
	}
	busy[0] = r.runThread(c, threads[0], progressed)
	wg.Wait()
	for i, d := range busy {
		r.metrics.busy[i].Add(d.Seconds())
	}

	var first error
	for _, w := range works {
		for j, i := range w.parts {
			r.noteProcessed(c, w.t, &c.pending[i], w.n[j], w.took[j])
		}
		if first == nil {
			first = w.err
		}
	}
	left := c.pending[:0]
	for _, fp := range c.pending {
		if len(fp.Records) > 0 {
			left = append(left, fp)
		}
	}
	clear(c.pending[len(left):]) // release the processed batches
	c.pending = left
	if len(c.pending) == 0 {
		c.pending = nil
	}
	return first
}

// runThread runs one thread's tasks of processTasks and returns how
// long it was busy. progressed says the cycle had processed records
// before, so it may stop at its deadline before a partition's first
// record. It reads c only for the deadline and the pending records of its
// own tasks' partitions.
func (r *Runtime) runThread(c *cycle, ws []*taskWork, progressed bool) (busy time.Duration) {
	stopped := false
	for _, w := range ws {
		w.n = make([]int, len(w.parts))
		w.took = make([]time.Duration, len(w.parts))
		for j, i := range w.parts {
			if stopped || progressed && !time.Now().Before(c.deadline) {
				stopped = true
				continue
			}
			start := time.Now()
			n, err := runPartition(w.t, &c.pending[i], c.deadline)
			w.n[j], w.took[j] = n, time.Since(start)
			busy += w.took[j]
			progressed = progressed || n > 0
			if err != nil {
				w.err = err
				stopped = true
			}
		}
		if w.err == nil && w.t.db.HoldsWrites() {
			// The writes this poll's records made to keys the task
			// holds are logged now rather than at the commit, so
			// that their records go out while the next ones are
			// processed: a busy task's polls are large, so a hot
			// key is still logged once for many of its records.
			start := time.Now()
			if err := w.t.db.Flush(); err != nil {
				w.err = fmt.Errorf("flushing stores of task %s: %w", w.t.id, err)
				stopped = true
			}
			busy += time.Since(start)
		}
	}
	return busy
}

// punctuationShare is the part of a cycle's interval in which wall-clock
// punctuations may start: past it (once one has run) they wait for the
// next cycle. Records queue behind punctuations, so this bounds what
// punctuations add to a record's latency (plus one punctuation's run); it
// was half the interval, so the profile stage's sweeps of twelve tasks,
// all due at once, could hold records back 50ms.
const punctuationShare = 10

// punctuateWallClock runs the wall-clock punctuations that are due, one
// task at a time, opening a cycle for them. Once 1/punctuationShare of the
// cycle's interval has passed (and it has run at least one) it stops,
// leaving the rest to records: the remaining tasks are still due and run
// in the next cycle.
//
// The profile stage's sweep is such a punctuation, on every task four
// times a second: run back to back in one transaction, the sweeps of many
// tasks add up to more than the transaction timeout on a loaded machine.
func (r *Runtime) punctuateWallClock(c *cycle) error {
	now := r.cfg.Clock()
	r.mu.Lock()
	defer r.mu.Unlock()
	c.punctuationsLeft = false
	for _, a := range r.tasks {
		if a.t == nil || !a.t.wallClockDue(now) {
			continue
		}
		if c.open && c.punctuations > 0 && !time.Now().Before(c.start.Add(r.cfg.CommitInterval/punctuationShare)) {
			c.punctuationsLeft = true
			return nil
		}
		if err := r.beginCycle(c); err != nil {
			return err
		}
		c.punctuations++
		r.metrics.punctuations.WithLabelValues("wall_clock").Inc()
		if err := a.t.punctuate(WallClock, now); err != nil {
			return err
		}
	}
	return nil
}

// commit ends the open cycle and reports whether it committed. With
// tryCommit it commits the transaction (or, at-least-once, flushes,
// applies and commits offsets), the offsets being those after the last
// record the cycle processed of each partition; then each task's pending
// writes are applied with their checkpoint. Otherwise, or when the
// transaction aborts, it drops the pending writes.
func (r *Runtime) commit(c *cycle, tryCommit bool) (bool, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.RebalanceTimeout)
	defer cancel()
	phase := start
	if tryCommit && r.isRejoining() {
		// The member began to join again during the cycle (joinWatch
		// saw the JoinGroup after the poll that began it). The commit
		// would wait for a heartbeat, and none runs until the join
		// ends: abort, and process the records again after it.
		r.log.Info("aborting a cycle: the member began to join the group again during it", "records", c.records)
		tryCommit = false
	}
	if tryCommit {
		// Before the transaction ends or the producer flushes: the
		// stores' held-back writes produce their changelog records.
		if err := r.flushAll(); err != nil {
			r.log.Error("aborting cycle after a store flush error", "err", err)
			tryCommit = false
		}
		phase = r.endPhase(phaseStoreFlush, phase)
	}
	if err := r.prodErr.take(); err != nil {
		r.log.Error("aborting cycle after produce error", "err", err)
		tryCommit = false
	}
	if r.sess != nil && !r.inTxn && c.records == 0 {
		// Nothing produced and no offsets to commit: there is no
		// transaction to end, and no store write waits (every write
		// has produced its changelog record by now: flushAll).
		// Ending an empty transaction is not free: franz-go learns
		// that the broker supports KIP-447 only from a
		// TxnOffsetCommit, and without one holds its session lock
		// for 500ms after the commit, delaying the next cycle's.
		return tryCommit, nil
	}
	var committed bool
	if r.sess != nil {
		if err := r.beginTxn(); err != nil {
			r.abandonAll()
			return false, err
		}
		var err error
		r.inTxn = false
		committed, err = r.sess.End(kgo.PreTxnCommitFnContext(ctx, c.rewriteTxnOffsets), kgo.TransactionEndTry(tryCommit))
		endStart := phase
		phase = r.endPhase(phaseTransactionEnd, phase)
		r.noteCommitCost(phase.Sub(endStart))
		firsts := r.firsts.take()
		if err != nil {
			r.abandonAll()
			return false, fmt.Errorf("ending transaction: %w", err)
		}
		if err := r.prodErr.take(); err != nil && committed {
			// INVARIANT: a produce error leaves the transaction
			// unable to commit, so End cannot report success.
			return true, fmt.Errorf("transaction committed despite produce error: %w", err)
		}
		if committed && c.records == 0 && len(firsts) > 0 {
			// No offsets in the transaction, and a first write to a
			// topic: franz-go may have aborted it (firstwrite.go).
			ok, err := endedCommitted(ctx, r.baseOpts(), firsts)
			if err != nil {
				// Stopping leaves the stores at the last checkpoint;
				// a restart restores whatever the transaction wrote.
				r.abandonAll()
				return false, fmt.Errorf("checking a transaction without input: %w", err)
			}
			if !ok {
				r.metrics.txnChecks.WithLabelValues("aborted").Inc()
				r.log.Warn("a transaction the Kafka client reported committed ended in an abort; dropping the cycle's writes", "partitions", len(firsts))
				committed = false
			} else {
				r.metrics.txnChecks.WithLabelValues("committed").Inc()
			}
		}
		if committed {
			if err := r.checkCommitted(c); err != nil {
				return true, err
			}
		}
	} else if tryCommit {
		if err := r.cl.Flush(ctx); err != nil {
			r.abandonAll()
			return false, fmt.Errorf("flushing: %w", err)
		}
		phase = r.endPhase(phaseProduceFlush, phase)
		if err := r.prodErr.take(); err != nil {
			r.abandonAll()
			return false, err
		}
		committed = true
	}
	if !committed {
		r.metrics.transactions.WithLabelValues("aborted").Inc()
		r.abandonAll()
		return false, nil
	}
	if err := r.applyAll(); err != nil {
		return true, err
	}
	phase = r.endPhase(phaseApply, phase)
	if r.sess == nil && len(c.last) > 0 {
		recs := make([]*kgo.Record, 0, len(c.last))
		for _, rec := range c.last {
			recs = append(recs, rec)
		}
		if err := r.cl.CommitRecords(ctx, recs...); err != nil {
			if !sessionEnded(err) {
				return true, fmt.Errorf("committing offsets: %w", err)
			}
			// The group session ended during the cycle (the loss
			// callback waits for the cycle to end). At-least-once
			// loses nothing by it: the outputs and changelogs are
			// flushed, and whoever is assigned the partitions next
			// processes the records again from the last offsets
			// committed.
			r.metrics.transactions.WithLabelValues("offsets_uncommitted").Inc()
			r.log.Warn("input offsets not committed: the group session ended during the cycle; its records will be processed again", "err", err)
			return true, nil
		}
		r.endPhase(phaseOffsetCommit, phase)
	}
	r.metrics.transactions.WithLabelValues("committed").Inc()
	r.metrics.commitLatency.Observe(time.Since(start).Seconds())
	return true, nil
}

// sessionEnded reports whether an offset commit failed because the
// member's group session (its generation) ended.
func sessionEnded(err error) bool {
	return errors.Is(err, kerr.IllegalGeneration) || errors.Is(err, kerr.UnknownMemberID) ||
		errors.Is(err, kerr.RebalanceInProgress) || errors.Is(err, kerr.StaleMemberEpoch)
}

// The phases of a commit, as tessera_commit_phase_seconds labels them.
const (
	phaseStoreFlush     = "store_flush"
	phaseProduceFlush   = "produce_flush"
	phaseTransactionEnd = "transaction_end"
	phaseApply          = "apply"
	phaseOffsetCommit   = "offset_commit"
)

// endPhase observes that a commit's phase ran from since until now, and
// returns now, when the next phase begins.
func (r *Runtime) endPhase(phase string, since time.Time) time.Time {
	now := time.Now()
	r.metrics.commitPhase.WithLabelValues(phase).Observe(now.Sub(since).Seconds())
	return now
}

// beginTxn begins the cycle's transaction if it has not begun. It runs on
// the loop (produce and commit), which alone uses r.inTxn.
func (r *Runtime) beginTxn() error {
	if r.inTxn {
		return nil
	}
	if err := r.sess.Begin(); err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	r.inTxn = true
	return nil
}

// checkCommitted verifies, after a committed transaction, that the
// session's committed offsets are the cycle's: the session rewinds to them
// after an abort, and a position past a pending record would skip it.
func (r *Runtime) checkCommitted(c *cycle) error {
	if len(c.last) == 0 {
		return nil
	}
	committed := r.cl.CommittedOffsets()
	for tp, rec := range c.last {
		if got, ok := committed[tp.topic][tp.partition]; !ok || got.Offset != rec.Offset+1 {
			// INVARIANT: the session records the TxnOffsetCommit as
			// sent, which rewriteTxnOffsets set.
			return fmt.Errorf("committing transaction: %s[%d] committed at %d, the cycle processed up to %d", tp.topic, tp.partition, got.Offset, rec.Offset)
		}
	}
	return nil
}

// flushAll writes back what each running task's read cache still holds
// back (state.DB.Flush), producing the changelog records: the writes of
// the punctuations, since the threads flush their tasks after each poll
// (runThread).
func (r *Runtime) flushAll() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.tasks {
		if a.t == nil || !a.db.HoldsWrites() {
			continue
		}
		if err := a.db.Flush(); err != nil {
			return fmt.Errorf("flushing stores of task %s: %w", a.id, err)
		}
	}
	return nil
}

// applyAll writes each running task's pending writes and checkpoint. The
// tasks' DBs are independent, so they apply on up to Config.Threads
// goroutines, the loop's own among them: inserting a cycle's writes into
// the memtables was most of an at-least-once commit (21 of 27 ms at 8,000
// events/s in `tessera bench`), and the loop processes nothing meanwhile.
// It returns the first error in task order; the tasks after it apply all
// the same, as every error here stops the runtime.
func (r *Runtime) applyAll() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	running := make([]*assigned, 0, len(r.tasks))
	for _, a := range r.tasks {
		if a.t != nil {
			running = append(running, a)
		}
	}
	slices.SortFunc(running, func(a, b *assigned) int { return a.id.compare(b.id) })
	errs := make([]error, len(running))
	var next atomic.Int64
	apply := func() {
		for {
			i := int(next.Add(1)) - 1
			if i >= len(running) {
				return
			}
			errs[i] = r.apply(running[i])
		}
	}
	var wg sync.WaitGroup
	for range min(r.cfg.Threads, len(running)) - 1 {
		wg.Go(apply)
	}
	apply()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// apply writes task a's pending writes and checkpoint. applyAll calls it
// with r.mu held, on any goroutine: nothing else uses the task meanwhile.
func (r *Runtime) apply(a *assigned) error {
	cps, err := a.t.checkpoints()
	if err != nil {
		return err
	}
	if err := a.db.Commit(cps); err != nil {
		return fmt.Errorf("applying writes of task %s: %w", a.id, err)
	}
	r.metrics.storeSize.WithLabelValues(a.id.String()).Set(float64(a.db.Size()))
	r.metrics.readCacheStats(&a.cacheSeen, a.db.CacheStats())
	return nil
}

// abandonAll drops every task's pending writes. Under exactly-once the
// session has rewound the consumer to the committed offsets, so the
// records are processed again from the committed state. Tasks do not
// reset their stream time to what the committed state had seen, so
// stream-time punctuation may fire again, which processors must tolerate.
func (r *Runtime) abandonAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.tasks {
		if a.t != nil {
			a.t.abandon()
		}
	}
}
