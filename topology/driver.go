package topology

import (
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/tessera-cdp/tessera/state"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DriverOptions configures a Driver.
type DriverOptions struct {
	// App names the application, as in Config; default "test".
	App string
	// Partitions is the partition count of every sub-topology that does
	// not declare one; default 1.
	Partitions int32
	// Start is the wall clock's initial time; default 2026-01-01 UTC.
	Start time.Time
}

// Driver runs a topology in memory, single-threaded, with a clock the test
// controls: no broker, stores in Pebble on an in-memory file system. Every
// Pipe is one committed cycle. It is Kafka Streams' TopologyTestDriver.
type Driver struct {
	topo   *Topology
	app    string
	fs     vfs.FS
	now    time.Time
	tasks  map[TaskID]*task
	parts  []int32 // per group
	output map[string][]Record
	offset map[string]int64
	// pending holds records written to topics the topology also reads,
	// per topic-partition in order, until Drain delivers them.
	pending map[topicPartition][]Record
	// sourceGroup maps a source topic to its sub-topology.
	sourceGroup map[string]int
}

type topicPartition struct {
	topic     string
	partition int32
}

// NewDriver starts every task of topo.
func NewDriver(topo *Topology, opts DriverOptions) (*Driver, error) {
	if opts.App == "" {
		opts.App = "test"
	}
	if opts.Partitions <= 0 {
		opts.Partitions = 1
	}
	if opts.Start.IsZero() {
		opts.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	d := &Driver{
		topo: topo, app: opts.App, fs: vfs.NewMem(), now: opts.Start,
		tasks:       make(map[TaskID]*task),
		output:      make(map[string][]Record),
		offset:      make(map[string]int64),
		pending:     make(map[topicPartition][]Record),
		sourceGroup: make(map[string]int),
	}
	for gi, g := range topo.groups {
		for _, src := range g.sources {
			d.sourceGroup[src] = gi
		}
	}
	for gi, g := range topo.groups {
		n := g.partitions
		if n == 0 {
			n = opts.Partitions
		}
		d.parts = append(d.parts, n)
		for p := int32(0); p < n; p++ {
			id := TaskID{Group: gi, Partition: p}
			db, err := state.Open(filepath.Join("/", id.String()), state.Options{FS: d.fs, CacheSize: 8 << 20, MemTableSize: 4 << 20})
			if err != nil {
				d.Close()
				return nil, err
			}
			t := newTask(id, topo, db, d.app, d, d.clock)
			d.tasks[id] = t
			if err := t.init(); err != nil {
				d.Close()
				return nil, err
			}
			if err := d.commit(t); err != nil {
				d.Close()
				return nil, err
			}
		}
	}
	return d, nil
}

func (d *Driver) clock() time.Time { return d.now }

// produce keeps the record as output of its topic, in order.
func (d *Driver) produce(r *kgo.Record) {
	off := d.offset[r.Topic]
	d.offset[r.Topic] = off + 1
	hs := make([]Header, len(r.Headers))
	for i, h := range r.Headers {
		hs[i] = Header{Key: h.Key, Value: h.Value}
	}
	rec := Record{
		Key: r.Key, Value: r.Value, Timestamp: r.Timestamp, Headers: hs,
		Topic: r.Topic, Partition: r.Partition, Offset: off,
	}
	if gi, ok := d.sourceGroup[r.Topic]; ok {
		if rec.Partition < 0 {
			rec.Partition = PartitionFor(r.Key, int(d.parts[gi]))
		}
		tp := topicPartition{r.Topic, rec.Partition}
		d.pending[tp] = append(d.pending[tp], rec)
	} else {
		d.output[r.Topic] = append(d.output[r.Topic], rec)
	}
	if c, ok := r.Context.(*changelog); ok {
		c.produced(off, nil)
	}
}

func (d *Driver) commit(t *task) error {
	// As the runtime does: the held-back writes are logged before the
	// checkpoints are read.
	if err := t.db.Flush(); err != nil {
		return err
	}
	cps, err := t.checkpoints()
	if err != nil {
		return err
	}
	return t.db.Commit(cps)
}

// Pipe processes one record read from topic at time ts, in the task its key
// partitions to, and commits it.
func (d *Driver) Pipe(topic string, key, value []byte, ts time.Time) error {
	gi := -1
	for i, g := range d.topo.groups {
		for _, s := range g.sources {
			if s == topic {
				gi = i
			}
		}
	}
	if gi < 0 {
		return fmt.Errorf("driver: no source reads topic %q", topic)
	}
	p := PartitionFor(key, int(d.parts[gi]))
	return d.pipeTo(gi, p, topic, key, value, ts)
}

// PipeToPartition is Pipe into an explicit partition, for topics whose
// producers partition by something else than the key.
func (d *Driver) PipeToPartition(topic string, partition int32, key, value []byte, ts time.Time) error {
	gi, ok := d.sourceGroup[topic]
	if !ok {
		return fmt.Errorf("driver: no source reads topic %q", topic)
	}
	return d.pipeTo(gi, partition, topic, key, value, ts)
}

func (d *Driver) pipeTo(gi int, p int32, topic string, key, value []byte, ts time.Time) error {
	t := d.tasks[TaskID{Group: gi, Partition: p}]
	off := d.offset["\x00in/"+topic]
	d.offset["\x00in/"+topic] = off + 1
	if err := t.process(Record{Key: key, Value: value, Timestamp: ts, Topic: topic, Partition: p, Offset: off}); err != nil {
		t.abandon()
		return err
	}
	return d.commit(t)
}

// Pending returns how many records wait in topics the topology reads.
func (d *Driver) Pending() int {
	n := 0
	for _, q := range d.pending {
		n += len(q)
	}
	return n
}

// Drain delivers the records waiting in topics the topology reads until
// none is left, each topic-partition in order, choosing which partition
// goes next with pick (given the number of non-empty queues, it returns one
// index; nil takes the first), so a test can explore interleavings as a
// real cluster would produce them.
func (d *Driver) Drain(pick func(n int) int) error {
	for {
		var keys []topicPartition
		for tp, q := range d.pending {
			if len(q) > 0 {
				keys = append(keys, tp)
			}
		}
		if len(keys) == 0 {
			return nil
		}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i].topic != keys[j].topic {
				return keys[i].topic < keys[j].topic
			}
			return keys[i].partition < keys[j].partition
		})
		i := 0
		if pick != nil {
			i = pick(len(keys))
		}
		tp := keys[i]
		rec := d.pending[tp][0]
		d.pending[tp] = d.pending[tp][1:]
		t := d.tasks[TaskID{Group: d.sourceGroup[tp.topic], Partition: tp.partition}]
		if err := t.process(rec); err != nil {
			t.abandon()
			return err
		}
		if err := d.commit(t); err != nil {
			return err
		}
	}
}

// Tasks returns the driver's task ids in order.
func (d *Driver) Tasks() []TaskID { return d.taskIDs() }

// AdvanceWallClock moves the wall clock forward by by and fires the
// wall-clock punctuations that fall due, each task in order.
func (d *Driver) AdvanceWallClock(by time.Duration) error {
	d.now = d.now.Add(by)
	for _, id := range d.taskIDs() {
		t := d.tasks[id]
		if err := t.punctuate(WallClock, d.now); err != nil {
			t.abandon()
			return err
		}
		if err := d.commit(t); err != nil {
			return err
		}
	}
	return nil
}

// Now returns the driver's wall clock.
func (d *Driver) Now() time.Time { return d.now }

func (d *Driver) taskIDs() []TaskID {
	ids := make([]TaskID, 0, len(d.tasks))
	for id := range d.tasks {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].Less(ids[j]) })
	return ids
}

// Output returns and forgets the records written to topic so far. The
// changelog of store s is topic ChangelogTopic(app, s).
func (d *Driver) Output(topic string) []Record {
	out := d.output[topic]
	delete(d.output, topic)
	return out
}

// KeyValue returns store name of the task that key partitions to in
// sub-topology group.
func (d *Driver) KeyValue(group int, key []byte, name string) *state.KeyValue {
	t := d.tasks[TaskID{Group: group, Partition: PartitionFor(key, int(d.parts[group]))}]
	return t.db.KeyValue(name)
}

// TaskKeyValue returns store name of task id.
func (d *Driver) TaskKeyValue(id TaskID, name string) *state.KeyValue {
	return d.tasks[id].db.KeyValue(name)
}

// TaskWindow returns windowed store name of task id.
func (d *Driver) TaskWindow(id TaskID, name string) *state.Window {
	return d.tasks[id].db.Window(name)
}

// Close closes every task's store.
func (d *Driver) Close() error {
	for _, t := range d.tasks {
		t.db.Close()
	}
	return nil
}
