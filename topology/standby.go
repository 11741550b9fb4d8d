package topology

// Standby replicas: warm copies of a task's stores on other instances.
//
// Moving a task costs its restore: the new owner reads the task's
// changelogs from its checkpoint (from the start, on an instance that never
// had the task). With Config.StandbyReplicas = N the group leader also
// names, for every task, N members other than the task's active owner that
// keep a standby of it, and sends each member its standbys in the UserData
// of its member assignment (the encodeLocalTasks layout). A member keeps
// each standby's stores in its own Pebble instance under
// data/<app>/<task>/, exactly where the task's stores would live if it ran
// there, by restoring from the changelogs in a loop (state.Restore, which
// commits a checkpoint with every fetch). When the task fails over to that
// member, its restore opens the same directory and reads only the tail
// after the checkpoint.
//
// Placement (taskBalance.placeStandbys, deterministic like the rest of the
// balance): for every task, in group order, the N eligible members that are
// not its active owner in this generation's plan, preferring a member that reports local
// state for the task (its standby is already warm there), then the one with
// the fewest standbys so far, then member-id order. Fewer than N other
// eligible members means fewer standbys.
//
// Actives prefer warm members without a change here: a standby's directory
// is local state, which every member reports in its join metadata, and the
// balancer already places a free task (its owner left) on a member under
// quota that reports local state for it.
//
// A member that is active for a task it is also named standby for (the
// plan holds a task back for one generation while its old owner revokes
// it) keeps only the active task. Standbys of a sub-topology without stores
// are ignored: there is nothing to keep warm.

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/tessera-cdp/tessera/state"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// standbyPoll is how long a standby waits between two passes over its
// changelogs. Each pass that finds records opens a consumer (state.Restore),
// so the wait bounds that cost to one consumer per standby task per
// standbyPoll; a standby is at most about this far behind its active task.
const standbyPoll = time.Second

// standbyPlan is a balance plan whose member assignments also carry each
// member's standby tasks in their UserData.
type standbyPlan struct {
	*kgo.BalancePlan
	// standbys holds the standby tasks by member id.
	standbys map[string][]TaskID
}

// IntoSyncAssignment implements kgo.IntoSyncAssignment.
func (p *standbyPlan) IntoSyncAssignment() []kmsg.SyncGroupRequestGroupAssignment {
	out := p.BalancePlan.IntoSyncAssignment()
	for i := range out {
		tasks := p.standbys[out[i].MemberID]
		if len(tasks) == 0 {
			continue
		}
		var ca kmsg.ConsumerMemberAssignment
		if err := ca.ReadFrom(out[i].MemberAssignment); err != nil {
			continue // cannot happen: BalancePlan wrote it just now
		}
		ca.UserData = encodeLocalTasks(tasks)
		out[i].MemberAssignment = ca.AppendTo(nil)
	}
	return out
}

// placeStandbys names up to n standby members for every task, as the
// package comment of standby.go describes, and returns the standby tasks by
// member id. The active owner of a task is the member plan gives it to in
// this generation: a task held back while its old owner revokes it may get
// a standby on the member that will run it next, which warms it meanwhile.
func (bal *taskBalance) placeStandbys(n int, plan *kgo.BalancePlan) map[string][]TaskID {
	active := make(map[TaskID]string)
	for member, topics := range plan.AsMemberIDMap() {
		for topic, partitions := range topics {
			if g, ok := bal.tb.groupOf[topic]; ok {
				for _, p := range partitions {
					active[TaskID{Group: g, Partition: p}] = member
				}
			}
		}
	}
	count := make([]int, len(bal.members))
	out := make(map[string][]TaskID)
	for _, g := range bal.order {
		for p := range bal.parts[g] {
			t := TaskID{Group: g, Partition: p}
			var cands []*taskMember
			for _, m := range bal.members {
				if m.eligible[g] && active[t] != m.join.MemberID {
					cands = append(cands, m)
				}
			}
			slices.SortStableFunc(cands, func(a, b *taskMember) int {
				if a.local[t] != b.local[t] {
					if a.local[t] {
						return -1
					}
					return 1
				}
				return count[a.index] - count[b.index]
			})
			for _, m := range cands[:min(n, len(cands))] {
				count[m.index]++
				out[m.join.MemberID] = append(out[m.join.MemberID], t)
			}
		}
	}
	return out
}

// syncedTasks holds the tasks of this member's last sync: the active ones
// (the whole assignment, where onAssigned gets only what the sync added)
// and the standbys its UserData names. The group goroutine writes it
// (ParseSyncAssignment); onAssigned and the loop read it.
type syncedTasks struct {
	mu sync.Mutex
	// active is nil until an assignment could be read; standbys, and gen
	// (bumped on every sync). REQUIRES: mu.
	active   []TaskID
	standbys []TaskID
	gen      uint64
}

// parse records a member assignment; groupOf maps each source topic to its
// group. An assignment without UserData names no standbys; one we cannot
// read names none and leaves the active tasks as they were.
func (s *syncedTasks) parse(assignment []byte, groupOf map[string]int) {
	var ca kmsg.ConsumerMemberAssignment
	err := ca.ReadFrom(assignment)
	var active, standbys []TaskID
	if err == nil {
		standbys, _ = decodeLocalTasks(ca.UserData)
		active = []TaskID{}
		for _, t := range ca.Topics {
			if gi, ok := groupOf[t.Topic]; ok {
				for _, p := range t.Partitions {
					active = append(active, TaskID{Group: gi, Partition: p})
				}
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.standbys, s.gen = standbys, s.gen+1
	if active != nil {
		s.active = active
	}
}

// standbyTasks returns the last sync's standbys and its generation.
func (s *syncedTasks) standbyTasks() ([]TaskID, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.standbys), s.gen
}

// activeTasks returns the last sync's active tasks (a task appears once
// per topic of its group), and false before any sync. The slice is shared:
// parse replaces it rather than changing it, and the caller must not
// change it either.
func (s *syncedTasks) activeTasks() ([]TaskID, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active, s.active != nil
}

// standbyTask is a standby kept warm by its own goroutine.
type standbyTask struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the goroutine has closed the store

	mu sync.Mutex
	// caughtUp is when the last pass that found the stores at the end of
	// their changelogs started (zero: the last pass found work);
	// applied counts the records applied. REQUIRES: mu.
	caughtUp time.Time
	applied  int64
}

// StandbyStatus is the state of one standby replica on this instance.
type StandbyStatus struct {
	// Applied counts the changelog records applied since it started.
	Applied int64
	// CaughtUp is when its last pass started, if that pass found the
	// stores at the end of their changelogs; zero otherwise. Everything
	// committed to the changelogs before CaughtUp is in the copy.
	CaughtUp time.Time
}

// Standbys returns the standby replicas this instance keeps.
func (r *Runtime) Standbys() map[TaskID]StandbyStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[TaskID]StandbyStatus, len(r.standbys))
	for id, s := range r.standbys {
		s.mu.Lock()
		out[id] = StandbyStatus{Applied: s.applied, CaughtUp: s.caughtUp}
		s.mu.Unlock()
	}
	return out
}

// syncStandbys starts and stops standbys to match the last assignment. It
// runs on the loop, outside rebalance callbacks.
func (r *Runtime) syncStandbys() {
	want, gen := r.synced.standbyTasks()
	if gen == r.standbyGen {
		return
	}
	r.standbyGen = gen
	r.mu.Lock()
	defer r.mu.Unlock()
	keep := make(map[TaskID]bool, len(want))
	for _, id := range want {
		if id.Group >= len(r.topo.groups) || len(r.topo.groups[id.Group].stores) == 0 || r.tasks[id] != nil {
			continue
		}
		keep[id] = true
		if r.standbys[id] == nil {
			r.standbys[id] = r.startStandbyLocked(id)
		}
	}
	for id := range r.standbys {
		if !keep[id] {
			r.stopStandbyLocked(id)
		}
	}
	r.updateTaskGaugesLocked()
}

// startStandbyLocked starts keeping task id warm. REQUIRES: r.mu.
func (r *Runtime) startStandbyLocked(id TaskID) *standbyTask {
	ctx, cancel := context.WithCancel(context.Background())
	s := &standbyTask{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		r.keepWarm(ctx, id, s)
	}()
	r.log.Info("standby started", "task", id)
	return s
}

// stopStandbyLocked stops the standby of id, if any, and waits until its
// store is closed, so that the task's restore may open the directory.
// REQUIRES: r.mu. The standby goroutine never takes r.mu.
func (r *Runtime) stopStandbyLocked(id TaskID) {
	s := r.standbys[id]
	if s == nil {
		return
	}
	delete(r.standbys, id)
	s.cancel()
	<-s.done
	r.log.Info("standby stopped", "task", id)
}

// keepWarm restores task id's stores from their changelogs in a loop until
// ctx is done. Each pass commits its checkpoint with the records, so the
// store is consistent whenever the loop stops.
func (r *Runtime) keepWarm(ctx context.Context, id TaskID, s *standbyTask) {
	db, err := state.Open(filepath.Join(r.cfg.StateDir, id.String()), state.Options{})
	if err != nil {
		r.log.Error("opening the store of a standby", "task", id, "err", err)
		return
	}
	defer func() {
		if err := db.Close(); err != nil {
			r.log.Error("closing the store of a standby", "task", id, "err", err)
		}
	}()
	var logs []state.Changelog
	for _, st := range r.topo.groups[id.Group].stores {
		logs = append(logs, state.Changelog{Store: st, Topic: ChangelogTopic(r.cfg.App, st), Partition: id.Partition})
	}
	opts := state.RestoreOptions{Client: r.baseOpts(), Admin: r.admin}
	backoff := standbyPoll
	for {
		start := time.Now()
		n, err := state.Restore(ctx, db, logs, opts)
		var total int64
		for st, c := range n {
			total += c.Records
			r.metrics.standbyRecords(st, c.Records)
		}
		s.mu.Lock()
		s.applied += total
		s.caughtUp = time.Time{}
		if err == nil && total == 0 {
			s.caughtUp = start
		}
		s.mu.Unlock()
		wait := standbyPoll
		if err != nil && ctx.Err() == nil {
			r.log.Warn("standby pass failed; retrying", "task", id, "err", err, "backoff", backoff)
			wait, backoff = backoff, min(backoff*2, 10*time.Second)
		} else {
			backoff = standbyPoll
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
