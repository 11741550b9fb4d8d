package topology

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/tessera-cdp/tessera/state"
)

// ErrNotLocal is returned by Get for a task that does not run on this
// instance; Owner says which instance runs it.
var ErrNotLocal = errors.New("topology: task not running here")

// ErrNotReady is returned while the runtime does not know its topics yet.
var ErrNotReady = errors.New("topology: not ready")

// TaskFor returns the task of sub-topology group that key partitions to.
func (r *Runtime) TaskFor(group int, key []byte) (TaskID, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if group >= len(r.partitions) || r.partitions[group] == 0 {
		return TaskID{}, ErrNotReady
	}
	return TaskID{Group: group, Partition: PartitionFor(key, int(r.partitions[group]))}, nil
}

// Get reads key from store of a task running here, as last committed:
// interactive queries see only what the changelog also has.
func (r *Runtime) Get(task TaskID, store string, key []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.tasks[task]
	if a == nil || a.t == nil {
		return nil, ErrNotLocal
	}
	return a.db.GetCommitted(store, key)
}

// Scan calls fn, one task after another, with the DB of each task of
// group running here, for a scan of store's committed entries. It does
// not hold the runtime's lock while fn runs (a scan of many profiles
// would stall processing): it keeps each DB open with state.DB.Acquire
// instead, and skips a task revoked meanwhile. fn must not call the
// Runtime's methods: closing a revoked task waits for fn with the
// runtime's lock held.
func (r *Runtime) Scan(group int, store string, fn func(task TaskID, db *state.DB) error) error {
	for _, t := range r.scanTasks(group) {
		if err := scanTask(t, fn); err != nil {
			return err
		}
	}
	return nil
}

// ScanParallel is Scan with fn called for several tasks at once, on up to
// GOMAXPROCS goroutines: fn must be safe for concurrent use. It returns
// the first error, after every started call has returned.
func (r *Runtime) ScanParallel(group int, store string, fn func(task TaskID, db *state.DB) error) error {
	tasks := r.scanTasks(group)
	work := make(chan scanned)
	errs := make(chan error, len(tasks))
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(tasks)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range work {
				errs <- scanTask(t, fn)
			}
		}()
	}
	for _, t := range tasks {
		work <- t
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// scanned is a task's DB as Scan found it.
type scanned struct {
	id TaskID
	db *state.DB
}

// scanTasks lists the tasks of group running here, in task order.
func (r *Runtime) scanTasks(group int) []scanned {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []scanned
	for id, a := range r.tasks {
		if id.Group == group && a.t != nil {
			out = append(out, scanned{id, a.db})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id.Partition < out[j].id.Partition })
	return out
}

func scanTask(t scanned, fn func(task TaskID, db *state.DB) error) error {
	release, ok := t.db.Acquire()
	if !ok {
		return nil // revoked and closed since it was listed
	}
	defer release()
	return fn(t.id, t.db)
}

// ownersTTL bounds how stale the task → instance map may be; a miss
// refreshes it at once.
const ownersTTL = 2 * time.Second

// Owner returns the endpoint of the instance running task, from the
// consumer group's description (each member publishes its endpoint in its
// join metadata).
func (r *Runtime) Owner(ctx context.Context, task TaskID) (string, error) {
	r.ownersMu.Lock()
	defer r.ownersMu.Unlock()
	if ep, ok := r.owners[task]; ok && time.Since(r.ownersAt) < ownersTTL {
		return ep, nil
	}
	adm := r.queryAdmin.Load()
	if adm == nil {
		return "", ErrNotReady // Run has not connected yet
	}
	groups, err := adm.DescribeGroups(ctx, r.cfg.App)
	if err != nil {
		return "", fmt.Errorf("describing group %s: %w", r.cfg.App, err)
	}
	g, ok := groups[r.cfg.App]
	if !ok || g.Err != nil {
		return "", fmt.Errorf("describing group %s: %v", r.cfg.App, g.Err)
	}
	owners := make(map[TaskID]string)
	for _, m := range g.Members {
		meta, ok := m.Join.AsConsumer()
		if !ok {
			continue
		}
		ep := decodeEndpoint(meta.UserData)
		asg, ok := m.Assigned.AsConsumer()
		if !ok || ep == "" {
			continue
		}
		for _, t := range asg.Topics {
			gi, ok := r.topicGroup[t.Topic]
			if !ok {
				continue
			}
			for _, p := range t.Partitions {
				owners[TaskID{Group: gi, Partition: p}] = ep
			}
		}
	}
	r.owners, r.ownersAt = owners, time.Now()
	ep, ok := owners[task]
	if !ok {
		return "", fmt.Errorf("task %s has no owner in group %s (rebalancing?)", task, r.cfg.App)
	}
	return ep, nil
}

// Endpoints returns the endpoint of every member of the group, this
// instance's included, sorted: the instances a fan-out query must ask.
func (r *Runtime) Endpoints(ctx context.Context) ([]string, error) {
	adm := r.queryAdmin.Load()
	if adm == nil {
		return nil, ErrNotReady // Run has not connected yet
	}
	groups, err := adm.DescribeGroups(ctx, r.cfg.App)
	if err != nil {
		return nil, fmt.Errorf("describing group %s: %w", r.cfg.App, err)
	}
	g, ok := groups[r.cfg.App]
	if !ok || g.Err != nil {
		return nil, fmt.Errorf("describing group %s: %v", r.cfg.App, g.Err)
	}
	seen := map[string]bool{}
	var out []string
	for _, m := range g.Members {
		if meta, ok := m.Join.AsConsumer(); ok {
			if ep := decodeEndpoint(meta.UserData); ep != "" && !seen[ep] {
				seen[ep] = true
				out = append(out, ep)
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// Endpoint returns this instance's published endpoint.
func (r *Runtime) Endpoint() string { return r.cfg.Endpoint }

// Runs reports whether task runs here.
func (r *Runtime) Runs(task TaskID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.tasks[task]
	return a != nil && a.t != nil
}

// WithDB calls fn with the store of a task running here, holding the
// runtime's lock so the task cannot close meanwhile: fn must be quick and
// must read only committed data (state.DB's Committed views).
func (r *Runtime) WithDB(task TaskID, fn func(db *state.DB) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.tasks[task]
	if a == nil || a.t == nil {
		return ErrNotLocal
	}
	return fn(a.db)
}
