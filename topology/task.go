package topology

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/tessera-cdp/tessera/state"
	"github.com/twmb/franz-go/pkg/kgo"
)

// producer is where a task's output goes: the runtime's Kafka client, or the
// test driver's in-memory topics. The record is owned by the producer.
// When the record's Context is a *changelog, the producer reports the
// record's offset or error to it (changelog.produced).
type producer interface {
	produce(r *kgo.Record)
}

// changelog is a store's changelog as one task writes it. It rides along
// as the Context of each record the task logs, so that one promise
// function serves every record: a closure per record was two allocations
// of about a dozen per event.
type changelog struct {
	// Context is never cancelled and carries no value: kgo fills a
	// record's Context with Produce's when it is nil, and reads only its
	// cancellation, to stop waiting for an unknown topic or a retry.
	context.Context
	task  *task
	store string
	topic string
}

// produced learns the offset of one record written to the changelog, or
// why it was not written.
func (c *changelog) produced(offset int64, err error) {
	t := c.task
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		if t.prodErr == nil {
			t.prodErr = fmt.Errorf("writing changelog of %s: %w", c.store, err)
		}
		return
	}
	if offset+1 > t.next[c.store] {
		t.next[c.store] = offset + 1
	}
}

// task is one partition of one sub-topology: its processors, its stores,
// its stream time and punctuations.
type task struct {
	id      TaskID
	topo    *Topology
	db      *state.DB
	app     string
	out     producer
	clock   func() time.Time
	sources map[string]*runNode // by topic
	nodes   map[string]*runNode
	ordered []*runNode            // in declaration order, for Init
	logs    map[string]*changelog // by store
	// slab holds the records the task produces in the cycle, the bytes of
	// its changelog records and its processors' Scratch bytes.
	slab logSlab

	streamTime   time.Time
	punctuations []*punctuation
	// backlog is, per source topic, how many records the last fetch that
	// brought the task records of that topic reported past the last one
	// it processed (Context.Backlog). The loop writes it between runs of
	// the threads, so the task's own thread reads it without a lock.
	backlog map[string]int64

	// mu guards the changelog positions, which produce callbacks update
	// from the client's goroutines.
	mu sync.Mutex
	// next is the next changelog offset of each store that the pending
	// writes reach, known once the producer acknowledges them.
	next    map[string]int64
	prodErr error
}

// runNode is a node instantiated in a task.
type runNode struct {
	node *node
	task *task
	proc Processor
	ctx  *Context
}

func newTask(id TaskID, topo *Topology, db *state.DB, app string, out producer, clock func() time.Time) *task {
	t := &task{
		id: id, topo: topo, db: db, app: app, out: out, clock: clock,
		sources: make(map[string]*runNode),
		nodes:   make(map[string]*runNode),
		logs:    make(map[string]*changelog),
		next:    make(map[string]int64),
	}
	for _, n := range topo.nodes {
		if n.group != id.Group {
			continue
		}
		rn := &runNode{node: n, task: t}
		if n.kind == ProcessorNode {
			rn.proc = n.supplier()
		}
		t.nodes[n.name] = rn
		t.ordered = append(t.ordered, rn)
		if n.kind == SourceNode {
			t.sources[n.topic] = rn
		}
	}
	for _, rn := range t.ordered {
		rn.ctx = &Context{task: t, node: rn.node}
		for _, c := range rn.node.children {
			rn.ctx.children = append(rn.ctx.children, t.nodes[c])
		}
	}
	for _, s := range topo.groups[id.Group].stores {
		t.logs[s] = &changelog{Context: context.Background(), task: t, store: s, topic: ChangelogTopic(app, s)}
	}
	db.SetChangeLogger(t)
	return t
}

// init runs the processors' Init in declaration order.
func (t *task) init() error {
	for _, rn := range t.ordered {
		if rn.proc == nil {
			continue
		}
		if err := rn.proc.Init(rn.ctx); err != nil {
			return fmt.Errorf("initialising processor %q of task %s: %w", rn.node.name, t.id, err)
		}
	}
	return nil
}

// LogChange sends a store write to the store's changelog partition.
func (t *task) LogChange(store string, key, value []byte) {
	c := t.logs[store]
	// One slab allocation holds both: the record owns its key and value
	// until the producer is done with them, at the cycle's commit.
	buf := t.slab.alloc(len(key) + len(value))
	copy(buf, key)
	r := t.slab.record()
	r.Topic, r.Partition, r.Key, r.Context = c.topic, t.id.Partition, buf[:len(key):len(key)], c
	if value != nil {
		r.Value = buf[len(key):]
		copy(r.Value, value)
	}
	t.out.produce(r)
}

// process runs a source record through the task.
func (t *task) process(r Record) error {
	src := t.sources[r.Topic]
	if src == nil {
		return fmt.Errorf("task %s: no source for topic %q", t.id, r.Topic)
	}
	if r.Timestamp.After(t.streamTime) {
		t.streamTime = r.Timestamp
	}
	if err := src.process(r); err != nil {
		return err
	}
	return t.punctuate(StreamTime, t.streamTime)
}

// punctuate fires the punctuations of clock kind that are due at now. A
// punctuation that is several intervals behind fires once and is
// rescheduled from now, as Kafka Streams does.
func (t *task) punctuate(kind PunctuationType, now time.Time) error {
	if now.IsZero() {
		return nil
	}
	for _, p := range t.punctuations {
		if p.kind != kind {
			continue
		}
		if p.next.IsZero() {
			p.next = now.Add(p.interval)
			continue
		}
		if now.Before(p.next) {
			continue
		}
		p.next = p.next.Add(p.interval)
		if !p.next.After(now) {
			p.next = now.Add(p.interval)
		}
		if err := p.fn(p.ctx, now); err != nil {
			return fmt.Errorf("punctuation of processor %q in task %s: %w", p.ctx.node.name, t.id, err)
		}
	}
	return nil
}

// checkpoints returns the changelog positions that the pending writes
// reach, to be written as the checkpoint with them. It must be called after
// the producer has flushed.
func (t *task) checkpoints() (map[string]int64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.prodErr != nil {
		return nil, t.prodErr
	}
	out := maps.Clone(t.next)
	clear(t.next)
	return out, nil
}

// abandon forgets the pending writes and their changelog positions, as
// after an aborted transaction.
func (t *task) abandon() {
	t.db.Discard()
	t.mu.Lock()
	clear(t.next)
	t.prodErr = nil
	t.mu.Unlock()
}

func (rn *runNode) process(r Record) error {
	switch rn.node.kind {
	case SourceNode:
		return rn.ctx.Forward(r)
	case ProcessorNode:
		if err := rn.proc.Process(rn.ctx, r); err != nil {
			return fmt.Errorf("processor %q in task %s at %s[%d]@%d: %w", rn.node.name, rn.task.id, r.Topic, r.Partition, r.Offset, err)
		}
		return nil
	case SinkNode:
		kr := rn.task.slab.record()
		kr.Topic, kr.Key, kr.Value, kr.Timestamp, kr.Partition = rn.node.topic, r.Key, r.Value, r.Timestamp, -1
		if len(r.Headers) > 0 {
			kr.Headers = make([]kgo.RecordHeader, len(r.Headers))
			for i, h := range r.Headers {
				kr.Headers[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
			}
		}
		rn.task.out.produce(kr)
		return nil
	}
	return nil
}

// wallClockDue reports whether a wall-clock punctuation is due at now.
func (t *task) wallClockDue(now time.Time) bool {
	for _, p := range t.punctuations {
		if p.kind == WallClock && !now.Before(p.next) {
			return true
		}
	}
	return false
}
