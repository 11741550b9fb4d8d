package topology_test

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tessera-cdp/tessera/topology"
)

// TestPartitionForMatchesKafka pins PartitionFor to franz-go's (and so
// Kafka's) default partitioning of keyed records, which the engine's sinks
// and every other client use: the shared partitioner built once must give
// what a fresh one gives.
func TestPartitionForMatchesKafka(t *testing.T) {
	for _, n := range []int{1, 3, 12, 100} {
		for i := range 2000 {
			key := []byte(fmt.Sprintf("user_id:user-%d", i))
			want := int32(kgo.StickyKeyPartitioner(nil).ForTopic("t").Partition(&kgo.Record{Key: key}, n))
			if got := topology.PartitionFor(key, n); got != want {
				t.Fatalf("PartitionFor(%q, %d) = %d, want %d", key, n, got, want)
			}
		}
	}
	if a, b := topology.PartitionFor(nil, 12), topology.PartitionFor([]byte{}, 12); a != b {
		t.Fatalf("a nil key goes to %d, the empty key to %d: want the same", a, b)
	}
}

// BenchmarkPartitionFor is on the hot path: the identity stage calls it
// for every event.
func BenchmarkPartitionFor(b *testing.B) {
	key := []byte("user_id:user-12345")
	b.ReportAllocs()
	for b.Loop() {
		topology.PartitionFor(key, 12)
	}
}
