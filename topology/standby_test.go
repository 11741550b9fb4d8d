package topology_test

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/topology"
)

// startWith starts an instance with standby replicas.
func (h *harness) startWith(dir string, standbys int) *instance {
	h.t.Helper()
	cfg := childConfig(h.brokers, dir)
	cfg.StandbyReplicas = standbys
	if os.Getenv("TESSERA_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	rt, err := topology.NewRuntime(counting(inTopic, outTopic, partitions), cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{rt: rt, cancel: cancel, done: make(chan error, 1), dir: dir}
	go func() { in.done <- rt.Run(ctx) }()
	h.t.Cleanup(func() { in.stop(h.t) })
	return in
}

// TestStandbyFailover runs two instances with one standby replica each.
// Each keeps a warm copy of the other's tasks; when one leaves, the other
// takes its tasks over restoring nothing (the copies are at the end of the
// changelogs), and the result is still exact. Without standbys the same
// failover restores every record of the moved tasks.
func TestStandbyFailover(t *testing.T) {
	for _, tc := range []struct {
		name     string
		standbys int
	}{
		{"with a standby", 1},
		{"without", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, false)
			a, b := h.startWith(t.TempDir(), tc.standbys), h.startWith(t.TempDir(), tc.standbys)
			awaitTasks(t, a, b)
			const n = total / 4
			h.produce(0, n)
			h.awaitOutput(n)
			processed := time.Now()

			moved := 0
			for _, running := range a.rt.Tasks() {
				if running {
					moved++
				}
			}
			if tc.standbys > 0 {
				awaitStandbys(t, b, moved, processed)
			} else if got := len(b.rt.Standbys()); got != 0 {
				t.Fatalf("%d standbys without standby_replicas", got)
			}
			before := sum(b.rt.RestoredRecords())
			a.stop(t)
			awaitTasks(t, b)
			restored := sum(b.rt.RestoredRecords()) - before
			t.Logf("%d tasks moved, %d records restored", moved, restored)
			if tc.standbys > 0 && restored != 0 {
				t.Errorf("failover onto a caught-up standby restored %d records, want 0", restored)
			}
			if tc.standbys == 0 && restored == 0 {
				t.Errorf("failover without a standby restored nothing: the moved tasks had state to restore")
			}
			if got := len(b.rt.Standbys()); got != 0 {
				t.Errorf("the last instance keeps %d standbys; it has nobody to copy", got)
			}
			h.produce(n, 2*n)
			h.awaitOutput(2 * n)
			b.stop(t)
			checkStores(t, b.dir, 2*n)
		})
	}
}

// awaitStandbys waits until in keeps want standbys, each caught up by a
// pass that started after since.
func awaitStandbys(t *testing.T, in *instance, want int, since time.Time) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := in.rt.Standbys()
		caught := 0
		for _, s := range st {
			if s.CaughtUp.After(since) {
				caught++
			}
		}
		if len(st) == want && caught == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("standbys %v after 60s, want %d caught up", st, want)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
}
