package topology

import (
	"fmt"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// balanceStandbys runs one balance with n standby replicas the way the
// leader does, and returns each member's active tasks and the standbys its
// own balancer parsed from its sync assignment.
func balanceStandbys(t *testing.T, groups [][]string, counts map[string]int32, members []balMember, n int) (active, standby map[string][]TaskID) {
	t.Helper()
	var join []kmsg.JoinGroupResponseMember
	for _, m := range members {
		local := m.local
		own := NewTaskBalancer(groups, func() []TaskID { return local })
		join = append(join, kmsg.JoinGroupResponseMember{
			MemberID:         m.id,
			ProtocolMetadata: own.JoinGroupMetadata(slices.Sorted(slices.Values(m.topics)), m.owned, m.gen),
		})
	}
	leader := NewTaskBalancer(groups, nil).(*taskBalancer)
	leader.standbyReplicas = n
	mb, _, err := leader.MemberBalancer(join)
	if err != nil {
		t.Fatal(err)
	}
	into, err := mb.(kgo.GroupMemberBalancerOrError).BalanceOrError(counts)
	if err != nil {
		t.Fatal(err)
	}
	active, standby = make(map[string][]TaskID), make(map[string][]TaskID)
	for _, a := range into.IntoSyncAssignment() {
		member := NewTaskBalancer(groups, nil).(*taskBalancer)
		member.synced = &syncedTasks{}
		parts, err := member.ParseSyncAssignment(a.MemberAssignment)
		if err != nil {
			t.Fatalf("member %s: %v", a.MemberID, err)
		}
		tasks, err := balTasksOf(groups, parts)
		if err != nil {
			t.Fatal(err)
		}
		active[a.MemberID] = tasks
		standby[a.MemberID], _ = member.synced.standbyTasks()
	}
	return active, standby
}

func TestStandbyPlacement(t *testing.T) {
	ab := [][]string{{"a", "b"}}
	abc := [][]string{{"a", "b"}, {"c"}}
	all := func(ids ...string) []balMember {
		var out []balMember
		for _, id := range ids {
			out = append(out, balMember{id: id, topics: []string{"a", "b", "c"}, gen: -1})
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		groups  [][]string
		counts  map[string]int32
		members []balMember
		n       int
		// perTask is how many standbys every task must get; sizes, if
		// set, the standby count of each member in member order.
		perTask int
		sizes   []int
		// want, if set, are exact standbys of some members.
		want map[string][]TaskID
	}{
		{name: "none asked, none placed", groups: ab, counts: map[string]int32{"a": 6, "b": 6}, members: all("m1", "m2"), n: 0, perTask: 0, sizes: []int{0, 0}},
		{name: "one member has nobody to copy to", groups: ab, counts: map[string]int32{"a": 6, "b": 6}, members: all("m1"), n: 1, perTask: 0, sizes: []int{0}},
		{name: "two members copy each other", groups: ab, counts: map[string]int32{"a": 6, "b": 6}, members: all("m1", "m2"), n: 1, perTask: 1, sizes: []int{3, 3}},
		{name: "three members spread the copies", groups: abc, counts: map[string]int32{"a": 6, "b": 6, "c": 6}, members: all("m1", "m2", "m3"), n: 1, perTask: 1, sizes: []int{4, 4, 4}},
		{name: "two replicas on three members", groups: ab, counts: map[string]int32{"a": 6, "b": 6}, members: all("m1", "m2", "m3"), n: 2, perTask: 2, sizes: []int{4, 4, 4}},
		{name: "more replicas than other members", groups: ab, counts: map[string]int32{"a": 4, "b": 4}, members: all("m1", "m2"), n: 3, perTask: 1, sizes: []int{2, 2}},
		{
			name:   "a member with local state gets the copy",
			groups: ab, counts: map[string]int32{"a": 6, "b": 6}, n: 1, perTask: 1,
			members: []balMember{
				{id: "m1", topics: []string{"a", "b"}, gen: 3, owned: map[string][]int32{"a": {0, 1, 2}, "b": {0, 1, 2}}},
				{id: "m2", topics: []string{"a", "b"}, gen: 3, owned: map[string][]int32{"a": {3, 4, 5}, "b": {3, 4, 5}}},
				{id: "m3", topics: []string{"a", "b"}, gen: -1, local: []TaskID{{0, 0}, {0, 1}}},
			},
			want: map[string][]TaskID{"m3": {{0, 0}, {0, 1}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			active, standby := balanceStandbys(t, tc.groups, tc.counts, tc.members, tc.n)
			owner := make(map[TaskID]string)
			for m, tasks := range active {
				for _, task := range tasks {
					owner[task] = m
				}
			}
			copies := make(map[TaskID]int)
			for m, tasks := range standby {
				for _, task := range tasks {
					copies[task]++
					if owner[task] == m {
						t.Errorf("task %s: member %s is both active and standby", task, m)
					}
				}
			}
			for task := range owner {
				if copies[task] != tc.perTask {
					t.Errorf("task %s has %d standbys, want %d", task, copies[task], tc.perTask)
				}
			}
			if tc.sizes != nil {
				var got []int
				for _, m := range tc.members {
					got = append(got, len(standby[m.id]))
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.sizes) {
					t.Errorf("standbys per member %v, want %v (standbys %v)", got, tc.sizes, standby)
				}
			}
			for m, want := range tc.want {
				got := standby[m]
				for _, task := range want {
					if !slices.Contains(got, task) {
						t.Errorf("member %s standbys %v, want them to include %v", m, got, want)
					}
				}
			}
		})
	}
}
