package definitions_test

import (
	"context"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/definitions"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestDefinitionsReachEveryInstance(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	open := func() *definitions.Store {
		s, err := definitions.Open(ctx, "app", nil, kgo.SeedBrokers(c.ListenAddrs()...))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		return s
	}
	a := open()
	if err := a.Put(ctx, "feature", "orders_7d", []byte(`{"agg":"count"}`)); err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, "model", "bgnbd", []byte(`{"r":0.24}`)); err != nil {
		t.Fatal(err)
	}
	// Read-your-writes on the writer.
	if d, ok := a.Get("feature", "orders_7d"); !ok || string(d.Body) != `{"agg":"count"}` {
		t.Fatalf("writer does not see its write: %+v %v", d, ok)
	}
	// A later instance loads what exists before Open returns.
	b := open()
	if got := b.List("feature"); len(got) != 1 || got[0].Name != "orders_7d" {
		t.Fatalf("second instance lists %+v", got)
	}
	seen := make(chan string, 4)
	b.Watch(func(d definitions.Definition, deleted bool) {
		if deleted {
			seen <- "deleted " + d.Kind + "/" + d.Name
		} else {
			seen <- d.Kind + "/" + d.Name + " " + string(d.Body)
		}
	})
	if err := a.Put(ctx, "feature", "orders_7d", []byte(`{"agg":"sum"}`)); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete(ctx, "model", "bgnbd"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`feature/orders_7d {"agg":"sum"}`, "deleted model/bgnbd"} {
		select {
		case got := <-seen:
			if got != want {
				t.Errorf("watched %q, want %q", got, want)
			}
		case <-ctx.Done():
			t.Fatalf("never saw %q", want)
		}
	}
	if _, ok := b.Get("model", "bgnbd"); ok {
		t.Error("deleted definition still there")
	}
}
