package topology

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestNoCycleWhileRejoining pins the loop's side of a rejoin: a revoke or
// a loss makes the member rejoining and the next assignment ends it; while
// it lasts the loop's wait ends only on a done context, which leaves it
// rejoining, and never on time alone: it warns every rebalance timeout
// instead. (TestExactlyOnceUnderCrash covers a whole rejoin, under load.)
// No broker is reachable: the callbacks only pause partitions on the
// client, which needs none.
func TestNoCycleWhileRejoining(t *testing.T) {
	topo := nopTopology(t)
	// The rebalance timeout, the warnings' period, is short: the last
	// case waits for two warnings.
	warned := make(chan struct{}, 16)
	runtime := func(rebalance time.Duration) *Runtime {
		r, err := NewRuntime(topo, Config{
			App: "app", Brokers: []string{"127.0.0.1:1"}, StateDir: t.TempDir(),
			SessionTimeout: 300 * time.Millisecond, HeartbeatInterval: 100 * time.Millisecond,
			RebalanceTimeout: rebalance,
			Logger:           slog.New(warnSignal{warned}),
		})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := runtime(200 * time.Millisecond)
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

	// A done context ends the wait, and leaves the member rejoining.
	r.onRevoked(ctx, cl, nil)
	cctx, cancel := context.WithCancel(ctx)
	done := wait(cctx)
	cancel()
	ended(done, "a done context")
	if !r.isRejoining() {
		t.Fatal("a done context ended the rejoin itself")
	}

	// Time alone does not: two warnings, two rebalance timeouts (and
	// more than the rebalance and session timeouts), leave it waiting
	// until the assignment.
	for len(warned) > 0 {
		<-warned
	}
	done = wait(ctx)
	for range 2 {
		select {
		case <-warned:
		case <-done:
			t.Fatal("the wait ended with the member still rejoining")
		case <-time.After(30 * time.Second):
			t.Fatal("no warning that the wait goes on")
		}
	}
	select {
	case <-done:
		t.Fatal("the wait ended with the member still rejoining")
	default:
	}
	r.onAssigned(ctx, cl, nil)
	ended(done, "an assignment after two warnings")
}

// warnSignal is a slog.Handler that sends on its channel for each record
// at warning level or above, and drops the rest.
type warnSignal struct{ c chan struct{} }

func (w warnSignal) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (w warnSignal) Handle(context.Context, slog.Record) error {
	select {
	case w.c <- struct{}{}:
	default:
	}
	return nil
}

func (w warnSignal) WithAttrs([]slog.Attr) slog.Handler { return w }

func (w warnSignal) WithGroup(string) slog.Handler { return w }
