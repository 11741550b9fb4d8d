package topology

import "github.com/twmb/franz-go/pkg/kgo"

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

// PartitionFor returns the partition of n that key goes to under Kafka's
// default partitioner (murmur2), as the engine's sinks write it.
func PartitionFor(key []byte, n int) int32 {
	return int32(kgo.StickyKeyPartitioner(nil).ForTopic("").Partition(&kgo.Record{Key: key}, n))
}
