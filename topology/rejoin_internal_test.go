package topology

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestNoCycleWhileRejoining pins the loop's side of a rejoin: a revoke or
// a loss makes the member rejoining and the next assignment ends it; while
// it lasts the loop's wait ends only on a done context, which leaves it
// rejoining, or on its bound, which is longer than a join can last.
// (TestExactlyOnceUnderCrash covers a whole rejoin, under load.) No broker is reachable: the callbacks only pause partitions on
// the client, which needs none.
func TestNoCycleWhileRejoining(t *testing.T) {
	topo := nopTopology(t)
	// The waits that must end on an event have a bound (over a minute)
	// longer than ended waits for them; the last has a short one.
	runtime := func(rebalance time.Duration) *Runtime {
		r, err := NewRuntime(topo, Config{
			App: "app", Brokers: []string{"127.0.0.1:1"}, StateDir: t.TempDir(),
			SessionTimeout: 300 * time.Millisecond, HeartbeatInterval: 100 * time.Millisecond,
			RebalanceTimeout: rebalance,
			Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := runtime(time.Minute)
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()

	wait := func(ctx context.Context) chan struct{} {
		done := make(chan struct{})
		r := r
		go func() {
			r.awaitAssignment(ctx)
			close(done)
		}()
		return done
	}
	ended := func(done chan struct{}, why string) {
		t.Helper()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("the wait did not end on %s", why)
		}
	}

	// Not rejoining: no wait at all.
	ended(wait(ctx), "nothing to wait for")

	for _, end := range []string{"revoke", "loss"} {
		if end == "revoke" {
			r.onRevoked(ctx, cl, nil)
		} else {
			r.onLost(ctx, cl, nil)
		}
		if !r.isRejoining() {
			t.Fatalf("after a %s the member is not rejoining", end)
		}
		r.onAssigned(ctx, cl, nil)
		ended(wait(ctx), "an assignment after a "+end)
		if r.isRejoining() {
			t.Fatalf("after the assignment that followed a %s the member is still rejoining", end)
		}
	}

	// A done context ends the wait, and so does the bound, which is
	// the rebalance and session timeouts plus rejoinWait.
	r.onRevoked(ctx, cl, nil)
	cctx, cancel := context.WithCancel(ctx)
	done := wait(cctx)
	cancel()
	ended(done, "a done context")
	if !r.isRejoining() {
		t.Fatal("a done context ended the rejoin itself")
	}
	r = runtime(300 * time.Millisecond)
	r.onRevoked(ctx, cl, nil)
	start := time.Now()
	ended(wait(ctx), "its bound")
	if took := time.Since(start); took < r.cfg.RebalanceTimeout+r.cfg.SessionTimeout {
		t.Errorf("the bounded wait ended after %v, before a join could have ended", took)
	}
}
