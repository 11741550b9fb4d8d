package main

import (
	"encoding/binary"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/topology"
)

// hubTopology is the topology `tessera run` runs. Until the CDP processors
// (identity, profile, features, audiences) land, it is the walking
// skeleton's: it reads <app>.events and keeps an exact count of events per
// routing key in the store "event-counts", exercising the whole engine path
// (co-partitioned tasks, changelog, restore, transactions) on the real topic.
func hubTopology(cfg config.Config) (*topology.Topology, error) {
	return topology.NewBuilder().
		AddSource("events", cfg.Topic("events"), int32(cfg.Kafka.Partitions)).
		AddProcessor("count-events", func() topology.Processor { return eventCounter{} }, "events").
		AddStore("event-counts", topology.KeyValueStore, "count-events").
		Build()
}

// eventCounter counts events per key as a big-endian uint64.
type eventCounter struct{}

func (eventCounter) Init(*topology.Context) error { return nil }

func (eventCounter) Process(ctx *topology.Context, r topology.Record) error {
	kv := ctx.KeyValue("event-counts")
	v, err := kv.Get(r.Key)
	if err != nil {
		return err
	}
	var n uint64
	if len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	return kv.Put(r.Key, binary.BigEndian.AppendUint64(v[:0], n+1))
}
