package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestScaledGroup runs `tessera broker` and three `tessera run --brokers`
// processes as one consumer group. It sends a batch of events and checks
// every instance answers every customer's profile exactly as the reference
// says; then stops one instance with SIGTERM, sends a second batch, and
// checks the two survivors; then kills another with SIGKILL mid-stream and
// checks the last survivor, which must take over every task and answer
// exactly (nothing lost, nothing counted twice).
func TestScaledGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four processes")
	}
	bin := buildTessera(t)
	brk := startProc(t, bin, nil, "broker", "--listen", "127.0.0.1:0", "--data", t.TempDir())
	brokers := brk.await(t, "broker listening on ")
	go drain(brk)

	cfg := filepath.Join(t.TempDir(), "tessera.yaml")
	// A short session timeout so that the killed member is noticed
	// quickly; 6 partitions give each of three members two tasks per
	// sub-topology.
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(workloadConfig, "scaled", 6, "3s")), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"TESSERA_ADMIN_TOKEN=tok"}
	var procs []*proc
	var bases []string
	for range 3 {
		p := startProc(t, bin, env, "run", "-c", cfg, "--brokers", brokers, "--data", t.TempDir(), "--http", "127.0.0.1:0")
		bases = append(bases, "http://"+p.await(t, "http listening on "))
		go drain(p)
		procs = append(procs, p)
	}
	for _, b := range bases {
		awaitStatus(t, b+"/readyz", 200)
	}

	w := newWorkload(11, 60)
	produceEvents(t, brokers, "scaled.events", w.batch(0), time.Time{})
	for _, b := range bases {
		awaitReference(t, w, b, "tok", 60*time.Second)
	}

	// SIGTERM: a clean leave; the survivors take its tasks over.
	procs[0].stop(t)
	produceEvents(t, brokers, "scaled.events", w.batch(1), time.Time{})
	for _, b := range bases[1:] {
		awaitStatus(t, b+"/readyz", 200)
		awaitReference(t, w, b, "tok", 60*time.Second)
	}

	// SIGKILL while a batch is in flight: the open transaction is aborted
	// by the broker, the last survivor restores the tasks from their
	// changelogs and processes the batch from the committed offsets.
	produceEvents(t, brokers, "scaled.events", w.batch(2), time.Time{})
	if err := procs[1].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	procs[1].cmd.Wait()
	awaitReference(t, w, bases[2], "tok", 60*time.Second)
	awaitStatus(t, bases[2]+"/readyz", 200)
}
