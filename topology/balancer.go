package topology

// The task balancer: a kgo.GroupBalancer whose unit of assignment is the task.
//
// franz-go's cooperative-sticky balancer places every topic-partition on its
// own, so partition 3 of "orders" and partition 3 of "payments" may land on
// different members even though one task must join them. This balancer
// decides per task and only then expands each task into its partitions, so a
// member holds either every partition of a task or none of them.
//
// A balance runs in five steps (see Balance):
//
//  1. Claims. A member owns a task if its OwnedPartitions hold any partition
//     of it. Two members claiming one task (a member that missed a
//     generation, or a group that used another balancer before) is settled
//     for the higher generation, then the lower member id. Every member
//     keeps what it owns, for now.
//  2. Quotas: floor(T/M) or ceil(T/M) of the T tasks per member, the ceil
//     going to the members that own the most. Quotas only bound step 3.
//  3. Free tasks (nobody owns them: new, or their owner left) go first to a
//     member under quota that reports local state for them, then to the
//     least loaded eligible member, preferring the one with the fewest tasks
//     of the task's group.
//  4. Evening out. While a member has two or more tasks more than an
//     eligible member it can reach, directly or through a chain of members
//     each passing one task on, a task moves. Tasks that revoke nothing go
//     first, then tasks the receiver has state for.
//  5. Cooperation. BalancePlan.AdjustCooperative holds back every partition
//     that would go straight from one live owner to another: the owner
//     revokes it and rejoins, and the next generation places it. A task that
//     lost only some of its partitions that way is held back whole.
//
// With uniform subscriptions a membership change settles in two
// generations: the first revokes what must move, the second places it. The
// second cannot revoke anything: every member then owns at most what the
// first plan gave it, so at most T%M members own ceil(T/M) and nobody more;
// those are the members with quota ceil(T/M), step 3 never lifts anyone
// else above floor(T/M), and the counts end within one of each other, which
// leaves step 4 nothing to move. A plan for which nobody revoked is a fixed
// point: balancing it again changes nothing, because step 4 left no move in
// it. Uneven subscriptions have no such proof (the property test has not
// seen one need a third generation).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// taskBalancerProtocol is the group protocol name. Every member of a group
// must offer it, so renaming it (or changing what the metadata means without
// a new name) splits a rolling upgrade into two groups that cannot agree on a
// protocol.
const taskBalancerProtocol = "tessera-tasks-v1"

// localTasksVersion is the version of the UserData encoding of a member's
// local tasks. Layout of version 1:
//
//	uint8   version
//	uvarint n
//	n × (uvarint group, uvarint partition), sorted by TaskID.Less, no duplicates
//
// A later version may only append fields after these: a reader parses the
// fields it knows and ignores the rest, so an old leader still balances a
// group of newer members.
const localTasksVersion = 1

// taskBalancer implements kgo.GroupBalancer (the protocol side) and
// kgo.ConsumerBalancerBalance (the leader side).
type taskBalancer struct {
	// endpoint is this member's HTTP address, published in its join
	// metadata so any instance can forward a query to a task's owner.
	endpoint string
	// groups[i] holds the source topics of group i, sorted, without
	// duplicates.
	// INVARIANT: a topic appears in at most one group.
	groups [][]string
	// groupOf maps each source topic to the index of its group.
	groupOf map[string]int
	// localTasks reports the tasks with a state directory on this member;
	// nil means none.
	localTasks func() []TaskID
	// standbyReplicas is how many standbys of each task the leader places
	// (see standby.go); synced, when non-nil, receives this member's
	// active and standby tasks from each sync.
	standbyReplicas int
	synced          *syncedTasks
}

// NewTaskBalancer returns a cooperative kgo.GroupBalancer that assigns tasks:
// partition p of every topic in groups[i] is always assigned to one member,
// as task TaskID{Group: i, Partition: p}. Pass it to kgo.Balancers; every
// member of the group must use it.
//
// groups[i] lists the source topics of group i; topics that are in no group
// are never assigned. A member gets tasks of a group only if it subscribes to
// every topic of that group.
//
// All topics of one group must have the same partition count. A balance that
// sees different counts fails: the leader's client reports the error through
// PollFetches as a *kgo.ErrGroupSession, loses its partitions and rejoins
// after a backoff, until the counts agree. A group with a topic whose
// partition count is not known yet (not created, or no metadata) is left
// unassigned rather than started without one of its inputs.
//
// localTasks, which may be nil, returns the tasks this member holds local
// state for; the leader prefers to place a task that must move on a member
// that already has its state, which saves a restore. The client calls it on
// every join, from its group-management goroutine, so it must be safe to
// call concurrently with the rest of the program and should be quick (a
// cached directory listing, not a walk of the state directory).
//
// NewTaskBalancer panics if a topic is listed in two groups: partition p of
// that topic would belong to two tasks. Topology validation refuses such a
// topology, so reaching the panic is a programming error.
func NewTaskBalancer(groups [][]string, localTasks func() []TaskID) kgo.GroupBalancer {
	tb := &taskBalancer{
		groups:     make([][]string, len(groups)),
		groupOf:    make(map[string]int),
		localTasks: localTasks,
	}
	for i, topics := range groups {
		topics = slices.Clone(topics)
		slices.Sort(topics)
		topics = slices.Compact(topics)
		for _, topic := range topics {
			if j, dup := tb.groupOf[topic]; dup {
				panic(fmt.Sprintf("topology: task balancer: topic %q is a source of groups %d and %d", topic, j, i))
			}
			tb.groupOf[topic] = i
		}
		tb.groups[i] = topics
	}
	return tb
}

// ProtocolName implements kgo.GroupBalancer.
func (*taskBalancer) ProtocolName() string { return taskBalancerProtocol }

// IsCooperative implements kgo.GroupBalancer: members keep their tasks
// through a rebalance and revoke only what moves.
func (*taskBalancer) IsCooperative() bool { return true }

// JoinGroupMetadata implements kgo.GroupBalancer. The output is deterministic
// for equal inputs (the broker compares metadata to decide whether a rejoin
// changes anything), so owned partitions and local tasks are sorted.
func (tb *taskBalancer) JoinGroupMetadata(interests []string, currentAssignment map[string][]int32, generation int32) []byte {
	meta := kmsg.NewConsumerMemberMetadata()
	meta.Version = 3
	meta.Topics = interests
	meta.Generation = generation
	for topic, partitions := range currentAssignment {
		if len(partitions) == 0 {
			continue
		}
		owned := kmsg.NewConsumerMemberMetadataOwnedPartition()
		owned.Topic = topic
		owned.Partitions = slices.Clone(partitions)
		slices.Sort(owned.Partitions)
		meta.OwnedPartitions = append(meta.OwnedPartitions, owned)
	}
	// KAFKA-12898: owned topics must be sorted.
	slices.SortFunc(meta.OwnedPartitions, func(a, b kmsg.ConsumerMemberMetadataOwnedPartition) int {
		return strings.Compare(a.Topic, b.Topic)
	})
	if tb.localTasks != nil {
		meta.UserData = encodeMemberInfo(tb.localTasks(), tb.endpoint)
	}
	return meta.AppendTo(nil)
}

// ParseSyncAssignment implements kgo.GroupBalancer. It also records the
// assignment's active tasks and the standby tasks its UserData names.
func (tb *taskBalancer) ParseSyncAssignment(assignment []byte) (map[string][]int32, error) {
	if tb.synced != nil {
		tb.synced.parse(assignment, tb.groupOf)
	}
	return kgo.ParseConsumerSyncAssignment(assignment)
}

// MemberBalancer implements kgo.GroupBalancer.
func (tb *taskBalancer) MemberBalancer(members []kmsg.JoinGroupResponseMember) (kgo.GroupMemberBalancer, map[string]struct{}, error) {
	b, err := kgo.NewConsumerBalancer(tb, members)
	if err != nil {
		return nil, nil, fmt.Errorf("topology: task balancer: %w", err)
	}
	return b, b.MemberTopics(), nil
}

// taskMember is one member as the leader sees it during a balance.
type taskMember struct {
	// index is the member's position in taskBalance.members.
	index int
	join  *kmsg.JoinGroupResponseMember
	meta  *kmsg.ConsumerMemberMetadata
	// eligible[g] reports whether the member subscribes to every topic of
	// group g.
	eligible []bool
	// local holds the existing tasks the member has state for, restricted
	// to the groups it is eligible for.
	local map[TaskID]bool
	// owned holds the tasks whose ownership this member won, sorted.
	owned []TaskID
	// quota is the number of tasks the member should end up with when
	// subscriptions are uniform; it bounds the free-task placement.
	quota int
	// assigned holds the tasks placed on the member so far.
	assigned []TaskID
	// groupCount[g] counts the assigned tasks of group g, and
	// freeCount[g] those of them the member did not own before this
	// balance: moving one of those away revokes nothing.
	// INVARIANT: len(assigned) == sum(groupCount); freeCount[g] <= groupCount[g].
	groupCount []int
	freeCount  []int
}

// taskBalance is the leader's state during one balance.
type taskBalance struct {
	tb *taskBalancer
	// parts[g] is the partition count of group g, or 0 if the group is
	// not assigned in this balance.
	parts []int32
	// members is sorted by member id: every tie is broken by this order.
	members []*taskMember
	// owner maps each owned task to the member that won its claim.
	owner map[TaskID]*taskMember
	// order lists the assignable groups (known size, some eligible
	// member), the most constrained (fewest eligible members) first.
	order []int
}

// taskHop moves one task of group from one member to another.
type taskHop struct {
	from, to *taskMember
	group    int
}

// Balance implements kgo.ConsumerBalancerBalance. It is deterministic: the
// same members, metadata and topics always produce the same plan.
func (tb *taskBalancer) Balance(b *kgo.ConsumerBalancer, topics map[string]int32) kgo.IntoSyncAssignment {
	parts, err := tb.partitionCounts(topics)
	if err != nil {
		b.SetError(err)
		return nil
	}
	bal := tb.newBalance(b, parts)
	bal.claim()     // step 1
	bal.setQuotas() // step 2
	bal.placeFree() // step 3
	bal.even()      // step 4

	plan := b.NewPlan()
	for _, m := range bal.members {
		slices.SortFunc(m.assigned, TaskID.compare)
		for _, t := range m.assigned {
			for _, topic := range tb.groups[t.Group] {
				plan.AddPartition(m.join, topic, t.Partition)
			}
		}
	}
	// Step 5.
	plan.AdjustCooperative(b)
	tb.dropPartialTasks(plan)
	if tb.standbyReplicas > 0 {
		return &standbyPlan{BalancePlan: plan, standbys: bal.placeStandbys(tb.standbyReplicas, plan)}
	}
	return plan
}

// partitionCounts returns the partition count of every group, 0 for a group
// with a topic whose count is not known (not created yet, or no metadata):
// such a group is held back whole rather than started without one of its
// inputs. Two known counts that differ within a group are an error.
func (tb *taskBalancer) partitionCounts(topics map[string]int32) ([]int32, error) {
	parts := make([]int32, len(tb.groups))
	for g, gtopics := range tb.groups {
		var first string
		var want int32
		missing := false
		for _, topic := range gtopics {
			switch n := topics[topic]; {
			case n <= 0:
				missing = true
			case want == 0:
				want, first = n, topic
			case n != want:
				return nil, fmt.Errorf("topology: balancing tasks: source group %d is not co-partitioned: topic %q has %d partitions, topic %q has %d",
					g, first, want, topic, n)
			}
		}
		if !missing {
			parts[g] = want
		}
	}
	return parts, nil
}

// newBalance reads the members of b: subscriptions, local tasks.
func (tb *taskBalancer) newBalance(b *kgo.ConsumerBalancer, parts []int32) *taskBalance {
	bal := &taskBalance{tb: tb, parts: parts, owner: make(map[TaskID]*taskMember)}
	b.EachMember(func(join *kmsg.JoinGroupResponseMember, meta *kmsg.ConsumerMemberMetadata) {
		m := &taskMember{
			join:       join,
			meta:       meta,
			eligible:   make([]bool, len(tb.groups)),
			local:      make(map[TaskID]bool),
			groupCount: make([]int, len(tb.groups)),
			freeCount:  make([]int, len(tb.groups)),
		}
		subscribed := make(map[string]bool, len(meta.Topics))
		for _, topic := range meta.Topics {
			subscribed[topic] = true
		}
		for g, gtopics := range tb.groups {
			m.eligible[g] = len(gtopics) > 0
			for _, topic := range gtopics {
				m.eligible[g] = m.eligible[g] && subscribed[topic]
			}
		}
		bal.members = append(bal.members, m)
	})
	slices.SortFunc(bal.members, func(a, b *taskMember) int { return strings.Compare(a.join.MemberID, b.join.MemberID) })

	eligibleCount := make([]int, len(tb.groups))
	for i, m := range bal.members {
		m.index = i
		for g := range tb.groups {
			if m.eligible[g] {
				eligibleCount[g]++
			}
		}
		// Local tasks are a hint: a member whose UserData we cannot
		// read is balanced as if it had no local state.
		local, _ := decodeLocalTasks(m.meta.UserData)
		for _, t := range local {
			if bal.exists(m, t) {
				m.local[t] = true
			}
		}
	}
	for g := range tb.groups {
		if parts[g] > 0 && eligibleCount[g] > 0 {
			bal.order = append(bal.order, g)
		}
	}
	slices.SortStableFunc(bal.order, func(a, b int) int { return eligibleCount[a] - eligibleCount[b] })
	return bal
}

// exists reports whether t is a task of this balance that m may hold.
func (bal *taskBalance) exists(m *taskMember, t TaskID) bool {
	return t.Group >= 0 && t.Group < len(bal.parts) && m.eligible[t.Group] &&
		t.Partition >= 0 && t.Partition < bal.parts[t.Group]
}

// claim settles who owns each task, from the members' OwnedPartitions: a
// partition of a task claims the whole task; of two claims the higher
// generation wins, then the lower member id. Each member keeps everything
// it owns for now; even takes away what balance requires.
func (bal *taskBalance) claim() {
	type taskClaim struct {
		member     *taskMember
		generation int32
	}
	claims := make(map[TaskID]taskClaim)
	for _, m := range bal.members {
		for _, owned := range m.meta.OwnedPartitions {
			g, ok := bal.tb.groupOf[owned.Topic]
			if !ok {
				continue
			}
			for _, p := range owned.Partitions {
				t := TaskID{Group: g, Partition: p}
				if !bal.exists(m, t) {
					continue
				}
				// Members come in member-id order, so on equal
				// generations the first claim is the lower id.
				if c, seen := claims[t]; !seen || m.meta.Generation > c.generation {
					claims[t] = taskClaim{member: m, generation: m.meta.Generation}
				}
			}
		}
	}
	for t, c := range claims {
		bal.owner[t] = c.member
		c.member.owned = append(c.member.owned, t)
	}
	for _, m := range bal.members {
		slices.SortFunc(m.owned, TaskID.compare)
		for _, t := range m.owned {
			bal.place(m, t)
		}
	}
}

// setQuotas sets each member's quota from a least-loaded placement of all
// tasks that breaks ties by most owned, then member id. With uniform
// subscriptions this gives ceil(T/M) to the T%M members owning the most and
// floor(T/M) to the rest, so the members that keep an extra task are the
// ones that have it already.
func (bal *taskBalance) setQuotas() {
	rank := slices.Clone(bal.members)
	slices.SortStableFunc(rank, func(a, b *taskMember) int { return len(b.owned) - len(a.owned) })
	for _, g := range bal.order {
		for range bal.parts[g] {
			var best *taskMember
			for _, m := range rank {
				if m.eligible[g] && (best == nil || m.quota < best.quota) {
					best = m
				}
			}
			best.quota++
		}
	}
}

// place assigns t to m.
func (bal *taskBalance) place(m *taskMember, t TaskID) {
	m.assigned = append(m.assigned, t)
	m.groupCount[t.Group]++
	if bal.owner[t] != m {
		m.freeCount[t.Group]++
	}
}

// placeFree places every task nobody owns: first on a member under quota
// that has state for it (a restore saved), then on the least loaded
// eligible member (fewest tasks, then fewest of the task's group, then
// member id).
func (bal *taskBalance) placeFree() {
	var free []TaskID
	for _, g := range bal.order {
		for p := range bal.parts[g] {
			if t := (TaskID{Group: g, Partition: p}); bal.owner[t] == nil {
				free = append(free, t)
			}
		}
	}
	// All local-state placements come first, before other tasks fill
	// the member up to its quota.
	left := free[:0]
	for _, t := range free {
		var best *taskMember
		for _, m := range bal.members {
			if m.local[t] && len(m.assigned) < m.quota && (best == nil || bal.lessLoaded(m, best, t.Group)) {
				best = m
			}
		}
		if best != nil {
			bal.place(best, t)
		} else {
			left = append(left, t)
		}
	}
	for _, t := range left {
		var best *taskMember
		for _, m := range bal.members {
			if m.eligible[t.Group] && (best == nil || bal.lessLoaded(m, best, t.Group)) {
				best = m
			}
		}
		bal.place(best, t) // order holds only groups with an eligible member
	}
}

// lessLoaded reports whether a should take a task of group g before b:
// fewer tasks, then fewer of group g. Ties keep member-id order because
// callers scan members in that order and replace only on less.
func (*taskBalance) lessLoaded(a, b *taskMember, g int) bool {
	if len(a.assigned) != len(b.assigned) {
		return len(a.assigned) < len(b.assigned)
	}
	return a.groupCount[g] < b.groupCount[g]
}

// even moves tasks until no member can pass a task, directly or along a
// chain of members each passing one task to the next, to an eligible member
// with two or more tasks fewer. Chains matter only with uneven
// subscriptions: A may be unable to give to C directly, yet give to B while
// B gives to C. Chains of tasks that revoke nothing (placed by placeFree,
// or already moved) are tried before any chain that revokes an owned task.
//
// Each chain lowers the sum of squared task counts by at least two, so this
// ends. With uniform subscriptions it ends with counts within one of each
// other.
//
// INVARIANT (after): no chain as above exists. A plan that nobody had to
// revoke for is therefore a fixed point: balancing the same members again
// changes nothing.
func (bal *taskBalance) even() {
	byLoad := slices.Clone(bal.members)
	for {
		slices.SortStableFunc(byLoad, func(a, b *taskMember) int { return len(b.assigned) - len(a.assigned) })
		path := bal.findChain(byLoad, true)
		if path == nil {
			path = bal.findChain(byLoad, false)
		}
		if path == nil {
			return
		}
		// Back to front: each member gives before it receives, so
		// every hop moves a task the search saw it hold.
		for i := len(path) - 1; i >= 0; i-- {
			bal.move(path[i])
		}
	}
}

// findChain returns the shortest chain of hops from the most loaded member
// that has one to the least loaded member it can reach with two or more
// tasks fewer, or nil. With freeOnly, hops may move only tasks that revoke
// nothing. byLoad lists the members, most loaded first.
func (bal *taskBalance) findChain(byLoad []*taskMember, freeOnly bool) []taskHop {
	// floor is the lowest load of a member that can take any task; no
	// chain can end lower.
	floor := -1
	for _, m := range bal.members {
		takes := slices.ContainsFunc(bal.order, func(g int) bool { return m.eligible[g] })
		if takes && (floor < 0 || len(m.assigned) < floor) {
			floor = len(m.assigned)
		}
	}
	parent := make([]taskHop, len(bal.members))
	seen := make([]bool, len(bal.members))
	for _, x := range byLoad {
		if len(x.assigned) < floor+2 {
			return nil // byLoad is sorted: nobody further can give
		}
		clear(seen)
		seen[x.index] = true
		queue := []*taskMember{x}
		var best *taskMember
		// Breadth first, so the first member found at a load is the
		// nearest; stop early at the lowest load there is.
		for len(queue) > 0 && (best == nil || len(best.assigned) > floor) {
			u := queue[0]
			queue = queue[1:]
			for _, v := range bal.members {
				if seen[v.index] {
					continue
				}
				g, ok := bal.hopGroup(u, v, freeOnly)
				if !ok {
					continue
				}
				seen[v.index] = true
				parent[v.index] = taskHop{from: u, to: v, group: g}
				queue = append(queue, v)
				if len(x.assigned)-len(v.assigned) >= 2 && (best == nil || len(v.assigned) < len(best.assigned)) {
					best = v
				}
			}
		}
		if best != nil {
			var path []taskHop
			for v := best; v != x; v = parent[v.index].from {
				path = append(path, parent[v.index])
			}
			slices.Reverse(path)
			return path
		}
	}
	return nil
}

// hopGroup returns the group of which u can pass a task to v: v eligible,
// u holding one (one that revokes nothing, with freeOnly). Of several, the
// one u holds most of compared with v, to spread each group; then the
// lowest.
func (*taskBalance) hopGroup(u, v *taskMember, freeOnly bool) (int, bool) {
	best, found := 0, false
	for g, n := range u.groupCount {
		if freeOnly {
			n = u.freeCount[g]
		}
		if n == 0 || !v.eligible[g] {
			continue
		}
		if !found || u.groupCount[g]-v.groupCount[g] > u.groupCount[best]-v.groupCount[best] {
			best, found = g, true
		}
	}
	return best, found
}

// move passes one task of h.group from h.from to h.to: preferably one that
// revokes nothing, then one h.to has state for, then the last placed.
func (bal *taskBalance) move(h taskHop) {
	score := func(t TaskID) int {
		s := 0
		if bal.owner[t] != h.from {
			s += 2
		}
		if h.to.local[t] {
			s++
		}
		return s
	}
	best := -1
	for i, t := range h.from.assigned {
		if t.Group == h.group && (best < 0 || score(t) >= score(h.from.assigned[best])) {
			best = i
		}
	}
	t := h.from.assigned[best]
	h.from.assigned = slices.Delete(h.from.assigned, best, best+1)
	h.from.groupCount[t.Group]--
	if bal.owner[t] != h.from {
		h.from.freeCount[t.Group]--
	}
	bal.place(h.to, t)
}

// dropPartialTasks withholds every task of which AdjustCooperative withheld
// only some partitions. That happens when ownership was split before this
// balance (another balancer, or a stale claim): the member keeps a partition
// it owned while the partition of another topic waits for its owner's revoke.
// Starting a task without one of its inputs would process it wrongly, so the
// member gives up the rest too and gets the whole task next generation.
//
// INVARIANT (after): every member's assignment is a union of whole tasks.
func (tb *taskBalancer) dropPartialTasks(plan *kgo.BalancePlan) {
	for _, assigned := range plan.AsMemberIDMap() {
		count := make(map[TaskID]int)
		for topic, partitions := range assigned {
			g, ok := tb.groupOf[topic]
			if !ok {
				continue // not a task topic; the plan never holds one
			}
			for _, p := range partitions {
				count[TaskID{Group: g, Partition: p}]++
			}
		}
		for topic, partitions := range assigned {
			g, ok := tb.groupOf[topic]
			if !ok {
				continue
			}
			kept := partitions[:0]
			for _, p := range partitions {
				if count[TaskID{Group: g, Partition: p}] == len(tb.groups[g]) {
					kept = append(kept, p)
				}
			}
			if len(kept) == 0 {
				delete(assigned, topic)
			} else {
				assigned[topic] = kept
			}
		}
	}
}

// encodeLocalTasks encodes tasks in the localTasksVersion layout; it returns
// nil for no tasks. Tasks with a negative group or partition cannot exist
// and are skipped.
func encodeLocalTasks(tasks []TaskID) []byte {
	tasks = slices.DeleteFunc(slices.Clone(tasks), func(t TaskID) bool { return t.Group < 0 || t.Partition < 0 })
	if len(tasks) == 0 {
		return nil
	}
	slices.SortFunc(tasks, TaskID.compare)
	tasks = slices.Compact(tasks)
	buf := make([]byte, 0, 2+4*len(tasks))
	buf = append(buf, localTasksVersion)
	buf = binary.AppendUvarint(buf, uint64(len(tasks)))
	for _, t := range tasks {
		buf = binary.AppendUvarint(buf, uint64(t.Group))
		buf = binary.AppendUvarint(buf, uint64(t.Partition))
	}
	return buf
}

// encodeMemberInfo is encodeLocalTasks followed, when there is one, by the
// member's endpoint: a later field, which readers of the task list alone
// ignore (see localTasksVersion).
func encodeMemberInfo(tasks []TaskID, endpoint string) []byte {
	b := encodeLocalTasks(tasks)
	if endpoint == "" {
		return b
	}
	if b == nil {
		b = []byte{localTasksVersion, 0}
	}
	b = binary.AppendUvarint(b, uint64(len(endpoint)))
	return append(b, endpoint...)
}

// decodeEndpoint returns the endpoint encodeMemberInfo wrote, or "".
func decodeEndpoint(data []byte) string {
	if len(data) < 2 {
		return ""
	}
	data = data[1:]
	n, k := binary.Uvarint(data)
	if k <= 0 {
		return ""
	}
	data = data[k:]
	for i := uint64(0); i < 2*n; i++ {
		_, k := binary.Uvarint(data)
		if k <= 0 {
			return ""
		}
		data = data[k:]
	}
	l, k := binary.Uvarint(data)
	if k <= 0 || uint64(len(data)-k) < l {
		return ""
	}
	return string(data[k : k+int(l)])
}

// decodeLocalTasks decodes what encodeLocalTasks wrote, or what a later
// version wrote (see localTasksVersion). Empty input means no tasks.
func decodeLocalTasks(data []byte) ([]TaskID, error) {
	if len(data) == 0 {
		return nil, nil
	}
	if data[0] < 1 {
		return nil, fmt.Errorf("topology: decoding local tasks: unknown version %d", data[0])
	}
	data = data[1:]
	next := func(limit uint64) (uint64, error) {
		v, n := binary.Uvarint(data)
		if n <= 0 {
			return 0, errors.New("topology: decoding local tasks: truncated or overlong varint")
		}
		if v > limit {
			return 0, fmt.Errorf("topology: decoding local tasks: value %d out of range", v)
		}
		data = data[n:]
		return v, nil
	}
	// Each task takes at least two bytes, which bounds the allocation by
	// the input whatever the count claims.
	n, err := next(uint64(len(data)) / 2)
	if err != nil {
		return nil, err
	}
	tasks := make([]TaskID, 0, n)
	for range n {
		g, err := next(1<<31 - 1)
		if err != nil {
			return nil, err
		}
		p, err := next(1<<31 - 1)
		if err != nil {
			return nil, err
		}
		tasks = append(tasks, TaskID{Group: int(g), Partition: int32(p)})
	}
	return tasks, nil
}
