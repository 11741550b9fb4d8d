package topology

import (
	"errors"
	"fmt"
	"slices"
	"sort"
)

// NodeKind says what a node of a topology does.
type NodeKind int

// The kinds of node.
const (
	// SourceNode reads a topic.
	SourceNode NodeKind = iota
	// ProcessorNode runs user code on each record it receives.
	ProcessorNode
	// SinkNode writes the records it receives to a topic.
	SinkNode
)

func (k NodeKind) String() string {
	switch k {
	case SourceNode:
		return "source"
	case ProcessorNode:
		return "processor"
	case SinkNode:
		return "sink"
	}
	return fmt.Sprintf("NodeKind(%d)", int(k))
}

// StoreKind says how a store is laid out.
type StoreKind int

// The kinds of store.
const (
	// KeyValueStore is a plain key-value store (state.KeyValue).
	KeyValueStore StoreKind = iota
	// WindowStore keeps values per key and time tile (state.Window).
	WindowStore
)

// ProcessorSupplier returns a new Processor. The engine calls it once per
// task, so a processor instance never sees two partitions.
type ProcessorSupplier func() Processor

type node struct {
	name       string
	kind       NodeKind
	topic      string // source and sink
	partitions int32  // source: declared partition count, 0 = as found
	supplier   ProcessorSupplier
	parents    []string
	children   []string
	stores     []string
	group      int
}

type storeDef struct {
	name  string
	kind  StoreKind
	users []string
}

// Builder declares a topology: sources, processors, stores and sinks. Its
// methods record mistakes instead of returning them, and Build reports them
// all, each naming the node, so a topology reads as one declaration.
type Builder struct {
	nodes  []*node
	byName map[string]*node
	stores []*storeDef
	errs   []error
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder {
	return &Builder{byName: make(map[string]*node)}
}

func (b *Builder) add(n *node) {
	if n.name == "" {
		b.errs = append(b.errs, fmt.Errorf("%s with an empty name", n.kind))
		return
	}
	if prev, ok := b.byName[n.name]; ok {
		b.errs = append(b.errs, fmt.Errorf("%s %q: name already used by a %s", n.kind, n.name, prev.kind))
		return
	}
	b.byName[n.name] = n
	b.nodes = append(b.nodes, n)
}

// AddSource adds a source node that reads topic. partitions declares the
// topic's partition count (the engine creates a missing topic with it and
// refuses to run if an existing one differs); 0 takes the topic as found, or
// the runtime's default when it must create it.
func (b *Builder) AddSource(name, topic string, partitions int32) *Builder {
	if topic == "" {
		b.errs = append(b.errs, fmt.Errorf("source %q: empty topic", name))
	}
	if partitions < 0 {
		b.errs = append(b.errs, fmt.Errorf("source %q: negative partition count %d", name, partitions))
	}
	b.add(&node{name: name, kind: SourceNode, topic: topic, partitions: partitions})
	return b
}

// AddProcessor adds a processor node fed by the named parents (sources or
// processors).
func (b *Builder) AddProcessor(name string, supplier ProcessorSupplier, parents ...string) *Builder {
	if supplier == nil {
		b.errs = append(b.errs, fmt.Errorf("processor %q: nil supplier", name))
	}
	b.add(&node{name: name, kind: ProcessorNode, supplier: supplier, parents: parents})
	return b
}

// AddSink adds a sink node that writes what the named parents forward to
// topic, partitioned by key (murmur2, as Kafka's default partitioner).
func (b *Builder) AddSink(name, topic string, parents ...string) *Builder {
	if topic == "" {
		b.errs = append(b.errs, fmt.Errorf("sink %q: empty topic", name))
	}
	b.add(&node{name: name, kind: SinkNode, topic: topic, parents: parents})
	return b
}

// AddStore adds a store used by the named processors. Every store has a
// changelog topic <app>.<store>-changelog.
func (b *Builder) AddStore(name string, kind StoreKind, processors ...string) *Builder {
	for _, s := range b.stores {
		if s.name == name {
			b.errs = append(b.errs, fmt.Errorf("store %q: declared twice", name))
			return b
		}
	}
	if name == "" {
		b.errs = append(b.errs, errors.New("store with an empty name"))
		return b
	}
	if len(processors) == 0 {
		b.errs = append(b.errs, fmt.Errorf("store %q: used by no processor", name))
	}
	b.stores = append(b.stores, &storeDef{name: name, kind: kind, users: processors})
	return b
}

// Build validates the declaration and returns the Topology, or every
// mistake found, each naming its node.
func (b *Builder) Build() (*Topology, error) {
	errs := append([]error(nil), b.errs...)
	for _, n := range b.nodes {
		if n.kind == SourceNode {
			continue
		}
		if len(n.parents) == 0 {
			errs = append(errs, fmt.Errorf("%s %q: no parents", n.kind, n.name))
		}
		for _, p := range n.parents {
			pn, ok := b.byName[p]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("%s %q: parent %q does not exist", n.kind, n.name, p))
			case pn.kind == SinkNode:
				errs = append(errs, fmt.Errorf("%s %q: parent %q is a sink, which forwards nothing", n.kind, n.name, p))
			case pn == n:
				errs = append(errs, fmt.Errorf("%s %q: is its own parent", n.kind, n.name))
			default:
				pn.children = append(pn.children, n.name)
			}
		}
	}
	for _, s := range b.stores {
		for _, u := range s.users {
			n, ok := b.byName[u]
			switch {
			case !ok:
				errs = append(errs, fmt.Errorf("store %q: processor %q does not exist", s.name, u))
			case n.kind != ProcessorNode:
				errs = append(errs, fmt.Errorf("store %q: %q is a %s, only processors use stores", s.name, u, n.kind))
			default:
				n.stores = append(n.stores, s.name)
			}
		}
	}
	sourceTopics := make(map[string]string)
	for _, n := range b.nodes {
		if n.kind != SourceNode {
			continue
		}
		if other, ok := sourceTopics[n.topic]; ok {
			errs = append(errs, fmt.Errorf("source %q: topic %q is already read by source %q", n.name, n.topic, other))
		}
		sourceTopics[n.topic] = n.name
	}
	if len(sourceTopics) == 0 {
		errs = append(errs, errors.New("topology has no source"))
	}
	if err := b.checkCycles(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid topology: %w", errors.Join(errs...))
	}
	t := &Topology{nodes: b.nodes, byName: b.byName, stores: b.stores}
	if err := t.group(); err != nil {
		return nil, fmt.Errorf("invalid topology: %w", err)
	}
	return t, nil
}

func (b *Builder) checkCycles() error {
	const (
		unseen = iota
		active
		done
	)
	mark := make(map[string]int, len(b.nodes))
	var visit func(n *node) error
	visit = func(n *node) error {
		switch mark[n.name] {
		case active:
			return fmt.Errorf("%s %q: is part of a cycle", n.kind, n.name)
		case done:
			return nil
		}
		mark[n.name] = active
		for _, c := range n.children {
			if err := visit(b.byName[c]); err != nil {
				return err
			}
		}
		mark[n.name] = done
		return nil
	}
	for _, n := range b.nodes {
		if err := visit(n); err != nil {
			return err
		}
	}
	return nil
}

// Topology is a validated, immutable graph. One Topology may run in many
// runtimes and test drivers at once.
type Topology struct {
	nodes  []*node
	byName map[string]*node
	stores []*storeDef
	groups []group
}

// group is a sub-topology: the nodes connected through parent links or a
// shared store. Its sources must be co-partitioned, and each partition of
// them is one task.
type group struct {
	sources    []string // topics, in declaration order
	partitions int32    // declared count, 0 = as found
	stores     []string
}

// group splits the nodes into connected sub-topologies (union-find) and
// checks that the declared partition counts agree within each.
func (t *Topology) group() error {
	parent := make(map[string]string, len(t.nodes))
	var find func(string) string
	find = func(x string) string {
		for parent[x] != x {
			parent[x] = parent[parent[x]]
			x = parent[x]
		}
		return x
	}
	union := func(a, b string) { parent[find(a)] = find(b) }
	for _, n := range t.nodes {
		parent[n.name] = n.name
	}
	for _, n := range t.nodes {
		for _, p := range n.parents {
			union(n.name, p)
		}
	}
	for _, s := range t.stores {
		for _, u := range s.users[1:] {
			union(s.users[0], u)
		}
	}
	index := make(map[string]int)
	for _, n := range t.nodes {
		r := find(n.name)
		if _, ok := index[r]; !ok && n.kind == SourceNode {
			index[r] = len(t.groups)
			t.groups = append(t.groups, group{})
		}
	}
	var errs []error
	declaredBy := make(map[int]*node)
	for _, n := range t.nodes {
		gi, ok := index[find(n.name)]
		if !ok {
			errs = append(errs, fmt.Errorf("%s %q: not reachable from any source", n.kind, n.name))
			continue
		}
		n.group = gi
		g := &t.groups[gi]
		if n.kind != SourceNode {
			continue
		}
		g.sources = append(g.sources, n.topic)
		if n.partitions == 0 {
			continue
		}
		if g.partitions != 0 && g.partitions != n.partitions {
			d := declaredBy[gi]
			errs = append(errs, fmt.Errorf("source %q: topic %q has %d partitions but source %q of the same sub-topology has %d; sources that feed the same stores must be co-partitioned",
				n.name, n.topic, n.partitions, d.name, d.partitions))
			continue
		}
		g.partitions = n.partitions
		declaredBy[gi] = n
	}
	for _, s := range t.stores {
		if len(s.users) == 0 {
			continue
		}
		if n, ok := t.byName[s.users[0]]; ok {
			g := &t.groups[n.group]
			g.stores = append(g.stores, s.name)
		}
	}
	return errors.Join(errs...)
}

// SourceTopics returns the topics the topology reads, sorted.
func (t *Topology) SourceTopics() []string {
	var out []string
	for _, g := range t.groups {
		out = append(out, g.sources...)
	}
	sort.Strings(out)
	return out
}

// SinkTopics returns the topics the topology writes, sorted and deduplicated.
func (t *Topology) SinkTopics() []string {
	var out []string
	for _, n := range t.nodes {
		if n.kind == SinkNode && !slices.Contains(out, n.topic) {
			out = append(out, n.topic)
		}
	}
	sort.Strings(out)
	return out
}

// Stores returns the names of the topology's stores in declaration order.
func (t *Topology) Stores() []string {
	out := make([]string, len(t.stores))
	for i, s := range t.stores {
		out[i] = s.name
	}
	return out
}

// ChangelogTopic returns the changelog topic of store for application app.
func ChangelogTopic(app, store string) string {
	return app + "." + store + "-changelog"
}

// Describe returns a human-readable outline of the topology, one
// sub-topology per paragraph, as Kafka Streams' TopologyDescription.
func (t *Topology) Describe() string {
	var s string
	for gi, g := range t.groups {
		s += fmt.Sprintf("sub-topology %d (sources %v, stores %v)\n", gi, g.sources, g.stores)
		for _, n := range t.nodes {
			if n.group != gi {
				continue
			}
			s += fmt.Sprintf("  %s %q", n.kind, n.name)
			if n.topic != "" {
				s += fmt.Sprintf(" topic %q", n.topic)
			}
			if len(n.stores) > 0 {
				s += fmt.Sprintf(" stores %v", n.stores)
			}
			if len(n.children) > 0 {
				s += fmt.Sprintf(" -> %v", n.children)
			}
			s += "\n"
		}
	}
	return s
}
