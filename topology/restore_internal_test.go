package topology

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/state"
)

type nopProcessor struct{}

func (nopProcessor) Init(*Context) error            { return nil }
func (nopProcessor) Process(*Context, Record) error { return nil }

// nopTopology is one source of four partitions, a processor that does
// nothing, and its key-value store "s": a runtime with tasks to assign.
func nopTopology(t *testing.T) *Topology {
	t.Helper()
	topo, err := NewBuilder().
		AddSource("in", "in", 4).
		AddProcessor("p", func() Processor { return nopProcessor{} }, "in").
		AddStore("s", KeyValueStore, "p").
		Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// TestStoreOpensBeforeRestoreSlot pins that a task waiting for a restore
// slot has already opened its store, and that cancelling the wait closes
// it. No broker is reachable: a restore that got past the slot would fail,
// so the test also shows that the wait itself touches no Kafka.
func TestStoreOpensBeforeRestoreSlot(t *testing.T) {
	dir := t.TempDir()
	r, err := NewRuntime(nopTopology(t), Config{
		App: "app", Brokers: []string{"127.0.0.1:1"}, StateDir: dir, RestoreConcurrency: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	r.restoreSlots <- struct{}{} // the only slot, held by "another restore"
	id := TaskID{Group: 0, Partition: 3}
	r.mu.Lock()
	a := r.startRestoreLocked(id)
	r.mu.Unlock()

	// Pebble writes its LOCK file when it opens a store.
	lock := filepath.Join(dir, id.String(), "LOCK")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(lock); err == nil {
			break
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the store of a task waiting for a restore slot is not open")
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case <-a.done:
		t.Fatal("the restore ended while every slot was taken")
	default:
	}

	r.mu.Lock()
	delete(r.tasks, id)
	r.closeTaskLocked(a)
	r.mu.Unlock()
	if !errors.Is(a.res.err, context.Canceled) {
		t.Errorf("a cancelled wait ended with %v, want context.Canceled", a.res.err)
	}
	// The store was closed: it opens again.
	db, err := state.Open(filepath.Join(dir, id.String()), state.Options{})
	if err != nil {
		t.Fatalf("reopening the store after a cancelled wait: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
