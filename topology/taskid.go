package topology

import (
	"cmp"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// TaskID names a task: partition Partition of every source topic of the
// co-partitioned source group (sub-topology) with index Group. A task is the
// unit of assignment, of processing and of state: its stores live under a
// directory named by String, and the task balancer moves all of its
// partitions together.
//
// INVARIANT: Group >= 0 and Partition >= 0 for every TaskID the engine
// creates; ParseTaskID refuses anything else.
type TaskID struct {
	// Group is the index of the source group in the topology.
	Group int
	// Partition is the partition number shared by every topic of the group.
	Partition int32
}

// String returns the Kafka Streams spelling "<group>_<partition>", e.g.
// "0_3". It is the name of the task's state directory, so it must stay
// stable: ParseTaskID(t.String()) == t.
func (t TaskID) String() string {
	return strconv.Itoa(t.Group) + "_" + strconv.FormatInt(int64(t.Partition), 10)
}

// Less reports whether t orders before u: by Group, then by Partition. It is
// the one order the engine uses for tasks, so that anything derived from a
// set of tasks (balance plans, join metadata, logs) is deterministic.
func (t TaskID) Less(u TaskID) bool {
	return t.compare(u) < 0
}

// compare is Less as a three-way comparison, for slices.SortFunc.
func (t TaskID) compare(u TaskID) int {
	if c := cmp.Compare(t.Group, u.Group); c != 0 {
		return c
	}
	return cmp.Compare(t.Partition, u.Partition)
}

// ParseTaskID parses the "<group>_<partition>" form that TaskID.String
// produces. Both numbers must be non-negative decimal integers without a sign
// or surrounding space, so that every task has exactly one spelling and a
// state directory can never be read as two different tasks.
func ParseTaskID(s string) (TaskID, error) {
	g, p, ok := strings.Cut(s, "_")
	if !ok {
		return TaskID{}, fmt.Errorf("topology: parsing task id %q: missing '_' between group and partition", s)
	}
	group, err := parseTaskIDPart(g, strconv.IntSize)
	if err != nil {
		return TaskID{}, fmt.Errorf("topology: parsing task id %q: group: %w", s, err)
	}
	partition, err := parseTaskIDPart(p, 32)
	if err != nil {
		return TaskID{}, fmt.Errorf("topology: parsing task id %q: partition: %w", s, err)
	}
	return TaskID{Group: int(group), Partition: int32(partition)}, nil
}

// parseTaskIDPart parses one canonical non-negative decimal number of at
// most bits bits: no sign, no leading zeros (except "0" itself).
func parseTaskIDPart(s string, bits int) (int64, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%q is not a non-negative decimal number", s)
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%q has a leading zero", s)
	}
	// ParseInt's error already names s and says "value out of range".
	return strconv.ParseInt(s, 10, bits)
}
