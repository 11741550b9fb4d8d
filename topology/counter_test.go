package topology_test

import (
	"encoding/binary"
	"strconv"

	"github.com/tessera-cdp/tessera/topology"
)

// The counting topology of the engine's tests: count records per key into
// store "counts" and emit each new count, as decimal text, to the output.
const (
	countStore = "counts"
)

type counter struct{}

func (counter) Init(*topology.Context) error { return nil }

func (counter) Process(ctx *topology.Context, r topology.Record) error {
	kv := ctx.KeyValue(countStore)
	v, err := kv.Get(r.Key)
	if err != nil {
		return err
	}
	var n uint64
	if v != nil {
		n = binary.BigEndian.Uint64(v)
	}
	n++
	if err := kv.Put(r.Key, binary.BigEndian.AppendUint64(nil, n)); err != nil {
		return err
	}
	return ctx.Forward(topology.Record{Key: r.Key, Value: strconv.AppendUint(nil, n, 10), Timestamp: r.Timestamp})
}

func counting(in, out string, partitions int32) *topology.Topology {
	t, err := topology.NewBuilder().
		AddSource("input", in, partitions).
		AddProcessor("count", func() topology.Processor { return counter{} }, "input").
		AddStore(countStore, topology.KeyValueStore, "count").
		AddSink("output", out, "count").
		Build()
	if err != nil {
		panic(err)
	}
	return t
}

func decodeCount(v []byte) uint64 { return binary.BigEndian.Uint64(v) }
