package topology

import (
	"fmt"
	"time"

	"github.com/tessera-cdp/tessera/state"
)

// Header is a record header.
type Header struct {
	Key   string
	Value []byte
}

// Record is what flows through a topology. For a record read from a source,
// Topic, Partition and Offset say where it came from; records a processor
// creates carry the source record's position unless it sets its own.
//
// The bytes of Key, Value and the headers' values belong to the record's
// processing: a processor may read them and forward them during Process,
// but must copy what it keeps after Process returns, since the engine
// reuses a source record's memory for later fetches once the cycle that
// processed it has committed.
type Record struct {
	Key       []byte
	Value     []byte
	Timestamp time.Time
	Headers   []Header

	Topic     string
	Partition int32
	Offset    int64
}

// Processor is user code at a node. The engine calls Init once when the
// task starts (after its stores are restored) and Process for each record,
// always from one goroutine per task.
type Processor interface {
	Init(ctx *Context) error
	Process(ctx *Context, r Record) error
}

// ProcessorFunc adapts a function to a Processor with nothing to initialise.
type ProcessorFunc func(ctx *Context, r Record) error

// Init does nothing.
func (ProcessorFunc) Init(*Context) error { return nil }

// Process calls f.
func (f ProcessorFunc) Process(ctx *Context, r Record) error { return f(ctx, r) }

// PunctuationType selects the clock a punctuation follows.
type PunctuationType int

// The clocks.
const (
	// StreamTime advances with the largest record timestamp a task has
	// seen: it stands still while no records arrive, and replays fire the
	// same punctuations as the live run.
	StreamTime PunctuationType = iota
	// WallClock follows the system clock (or the test driver's).
	WallClock
)

// Punctuator is called when its schedule is due, with the time of the
// clock it follows.
type Punctuator func(ctx *Context, now time.Time) error

// Context is what a processor sees of its task. It is valid for the life of
// the task and must not be used from other goroutines.
type Context struct {
	task *task
	node *node
	// children are the runtime nodes the processor forwards to.
	children []*runNode
}

// TaskID returns the task the processor runs in.
func (c *Context) TaskID() TaskID { return c.task.id }

// Partition returns the partition of the task's sources.
func (c *Context) Partition() int32 { return c.task.id.Partition }

// StreamTime returns the task's stream time: the largest record timestamp
// it has processed.
func (c *Context) StreamTime() time.Time { return c.task.streamTime }

// Backlog returns how many records wait in the task's source partitions
// behind the last ones it processed, as the fetches that brought those
// reported it: the processors' sign that the task is behind, for work
// that can wait (a maintenance sweep) to yield to records. It is 0 before
// the task processed a record, and holds between the records it
// processes: what read_committed skips at the end of a partition (an
// aborted transaction's records, a transaction marker or two of a
// caught-up task under exactly-once) counts until later records pass it.
func (c *Context) Backlog() int64 {
	var n int64
	for _, b := range c.task.backlog {
		n += b
	}
	return n
}

// WallClock returns the current wall-clock time (the driver's clock in tests).
func (c *Context) WallClock() time.Time { return c.task.clock() }

// Forward sends r to every child of the processor, depth-first, before
// returning.
func (c *Context) Forward(r Record) error {
	for _, ch := range c.children {
		if err := ch.process(r); err != nil {
			return err
		}
	}
	return nil
}

// Scratch returns n bytes, of unspecified content, for the key or value
// of a record the processor forwards while processing the current record
// or punctuation. They stay valid until the commit cycle that carries the
// record has committed, when every output is flushed; the engine then
// reuses them, so a processor must not keep them. Unlike a slice it
// allocates, they cost the garbage collector nothing.
func (c *Context) Scratch(n int) []byte { return c.task.slab.alloc(n) }

// ForwardTo sends r to the named child only.
func (c *Context) ForwardTo(child string, r Record) error {
	for _, ch := range c.children {
		if ch.node.name == child {
			return ch.process(r)
		}
	}
	return fmt.Errorf("processor %q: no child %q", c.node.name, child)
}

// KeyValue returns the named key-value store; the processor must have been
// declared as one of its users.
func (c *Context) KeyValue(name string) *state.KeyValue {
	c.mustUse(name)
	return c.task.db.KeyValue(name)
}

// Window returns the named windowed store; the processor must have been
// declared as one of its users.
func (c *Context) Window(name string) *state.Window {
	c.mustUse(name)
	return c.task.db.Window(name)
}

func (c *Context) mustUse(name string) {
	for _, s := range c.node.stores {
		if s == name {
			return
		}
	}
	// A programming error, like an out-of-range index: the topology
	// declaration and the processor disagree.
	panic(fmt.Sprintf("processor %q uses store %q, which it was not declared with (AddStore)", c.node.name, name))
}

// Schedule calls fn every interval of the chosen clock, starting one
// interval from now. It is usually called from Init.
func (c *Context) Schedule(interval time.Duration, kind PunctuationType, fn Punctuator) {
	if interval <= 0 {
		panic(fmt.Sprintf("processor %q: punctuation interval must be positive, got %v", c.node.name, interval))
	}
	p := &punctuation{ctx: c, interval: interval, kind: kind, fn: fn}
	switch kind {
	case StreamTime:
		if !c.task.streamTime.IsZero() {
			p.next = c.task.streamTime.Add(interval)
		}
	case WallClock:
		p.next = c.task.clock().Add(interval)
	}
	c.task.punctuations = append(c.task.punctuations, p)
}

type punctuation struct {
	ctx      *Context
	interval time.Duration
	kind     PunctuationType
	fn       Punctuator
	// next is when the punctuation is due; zero for a stream-time one
	// until the task has seen its first record.
	next time.Time
}
