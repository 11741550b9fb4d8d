package topology

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// partitioner sends a record with an explicit partition (a changelog write
// goes to its task's partition) there, and any other by the murmur2 hash of
// its key, as Kafka's default partitioner, so that topics the engine writes
// are co-partitioned with topics other Kafka clients write.
type partitioner struct{ hash kgo.Partitioner }

func newPartitioner() kgo.Partitioner {
	return partitioner{hash: kgo.StickyKeyPartitioner(nil)}
}

func (p partitioner) ForTopic(topic string) kgo.TopicPartitioner {
	return topicPartitioner{hash: p.hash.ForTopic(topic)}
}

type topicPartitioner struct{ hash kgo.TopicPartitioner }

func (topicPartitioner) RequiresConsistency(*kgo.Record) bool { return true }

func (tp topicPartitioner) Partition(r *kgo.Record, n int) int {
	if r.Partition >= 0 && int(r.Partition) < n {
		return int(r.Partition)
	}
	return tp.hash.Partition(r, n)
}

// keyHash is Kafka's default partitioning of a keyed record: murmur2 of
// the key, high bit cleared, modulo the partition count. It is built once:
// a partitioner's ForTopic seeds a random source for unkeyed records,
// which cost more than the hash itself when it was done per call (a fifth
// of the hub's CPU in `tessera bench`). Partition is safe for concurrent
// use for records with a non-nil key, which are hashed and nothing else.
var keyHash = kgo.StickyKeyPartitioner(nil).ForTopic("")

// PartitionFor returns the partition of n that key goes to under Kafka's
// default partitioner (murmur2), as the engine's sinks write it. A nil key
// is hashed as the empty key.
func PartitionFor(key []byte, n int) int32 {
	if key == nil {
		key = []byte{}
	}
	// The partitioner takes a record, which escapes through its
	// interface: a new one per call was 160 bytes for every event.
	r := hashRecords.Get().(*kgo.Record)
	r.Key = key
	p := keyHash.Partition(r, n)
	r.Key = nil
	hashRecords.Put(r)
	return int32(p)
}

// hashRecords holds the records PartitionFor hashes keys through.
var hashRecords = sync.Pool{New: func() any { return new(kgo.Record) }}
