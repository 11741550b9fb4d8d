package sink_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
)

// TestSupervisor follows destinations through start, change and removal:
// a change restarts the runner where its group left off, with its
// delivery log; a removal stops it; a destination that does not build is
// reported and the rest still apply.
func TestSupervisor(t *testing.T) {
	e := newEnv(t, 1)
	reg := sink.NewRegistry()
	var mu sync.Mutex
	sinks := map[string][]*fake{} // every sink built, by destination
	latest := func(name string) *fake {
		mu.Lock()
		defer mu.Unlock()
		fs := sinks[name]
		return fs[len(fs)-1]
	}
	build := func(d config.Destination) (*sink.Runner, error) {
		if d.Type == "broken" {
			return nil, fmt.Errorf("type broken does not build")
		}
		f := &fake{}
		mu.Lock()
		sinks[d.Name] = append(sinks[d.Name], f)
		mu.Unlock()
		return sink.NewRunner(app, d, f, sink.Brokers(e.brokers...), sink.WithClock(e.clock), sink.Registerer(e.reg))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sup := sink.NewSupervisor(ctx, reg, build, slog.New(slog.DiscardHandler))
	defer sup.Close()

	a := config.Destination{Name: "a", Type: "webhook"}
	b := config.Destination{Name: "b", Type: "webhook", Audiences: []string{"vip"}}
	if err := sup.Apply([]config.Destination{a, b}); err != nil {
		t.Fatal(err)
	}
	e.produce(activation("p1", 1), activation("p2", 2))
	e.await("both deliver", func() (bool, string) {
		da, db := latest("a").delivered(), latest("b").delivered()
		return len(da) == 2 && len(db) == 2, fmt.Sprint(da, db)
	})
	e.await("a commits", func() (bool, string) { return e.committed("a") == 2, fmt.Sprint(e.committed("a")) })

	// a changes: a new runner, from the committed offset, with the log.
	a.Types = []string{sink.AudienceEntered}
	if err := sup.Apply([]config.Destination{a, b}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	builtA, builtB := len(sinks["a"]), len(sinks["b"])
	mu.Unlock()
	if builtA != 2 || builtB != 1 {
		t.Fatalf("after changing a: built a %d times, b %d times; want 2 and 1", builtA, builtB)
	}
	e.produce(activation("p3", 3))
	e.await("the new a delivers only the new activation", func() (bool, string) {
		d := latest("a").delivered()
		return slices.Equal(d, []string{"p3-3"}), fmt.Sprint(d)
	})
	r, ok := reg.Get("a")
	if !ok || len(r.Deliveries()) != 3 || r.Status().Sent != 3 {
		t.Errorf("a's log and counts did not carry over: %v %+v", ok, r.Status())
	}

	e.await("b delivers p3", func() (bool, string) {
		d := latest("b").delivered()
		return len(d) == 3, fmt.Sprint(d)
	})

	// b is removed; a broken c is reported and a keeps running.
	err := sup.Apply([]config.Destination{a, {Name: "c", Type: "broken"}})
	if err == nil {
		t.Error("a destination that does not build was not reported")
	}
	if _, ok := reg.Get("b"); ok {
		t.Error("b is still registered after its removal")
	}
	_, aRuns := reg.Get("a")
	_, cRuns := reg.Get("c")
	if !aRuns || cRuns {
		t.Errorf("running: a %v, c %v; want a only", aRuns, cRuns)
	}
	e.produce(activation("p4", 4))
	e.await("a still delivers", func() (bool, string) {
		d := latest("a").delivered()
		return slices.Equal(d, []string{"p3-3", "p4-4"}), fmt.Sprint(d)
	})
	if d := latest("b").delivered(); len(d) != 3 { // p4 came after it stopped
		t.Errorf("b delivered %v after its removal", d)
	}
}
