package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestReplayMatchesTheLiveRun runs the hub over a generated workload
// (identity merges across devices, orders, an audience over two features),
// replays its events into a new application id, and checks that the replay
// answers every customer's profile exactly as the live run does. A second
// replay bounded by --to stops at the first batch, exits by itself, and
// leaves the destinations' groups past its activations.
func TestReplayMatchesTheLiveRun(t *testing.T) {
	bin := buildTessera(t)
	brk := startProc(t, bin, nil, "broker", "--listen", "127.0.0.1:0", "--data", t.TempDir())
	brokers := brk.await(t, "broker listening on ")
	go drain(brk)

	dir := t.TempDir()
	deliveries := filepath.Join(dir, "deliveries.jsonl")
	cfg := filepath.Join(dir, "tessera.yaml")
	conf := fmt.Sprintf(workloadConfig, "live", 4, "10s") + `
destinations:
  - {name: log, type: file, path: ` + deliveries + `}
`
	conf = strings.Replace(conf, `rule: "features.spend_7d >= 100"}`, `rule: "features.spend_7d >= 100", destinations: [log]}`, 1)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"TESSERA_ADMIN_TOKEN=tok"}
	live := startProc(t, bin, env, "run", "-c", cfg, "--brokers", brokers, "--data", t.TempDir(), "--http", "127.0.0.1:0")
	liveBase := "http://" + live.await(t, "http listening on ")
	go drain(live)
	awaitStatus(t, liveBase+"/readyz", 200)

	// Two batches with record timestamps an hour apart, so --to can cut
	// between them.
	w := newWorkload(7, 60)
	first := w.batch(0)
	t1 := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	produceEvents(t, brokers, "live.events", first, t1)
	second := w.batch(1)
	produceEvents(t, brokers, "live.events", second, t1.Add(time.Hour))
	want := awaitReference(t, w, liveBase, "tok", 60*time.Second)
	// Every big spender entered (a merge can make a profile enter again,
	// so there may be more entries than spenders).
	spenders := 0
	for _, c := range w.customers {
		if c.spend >= 100 {
			spenders++
		}
	}
	if spenders == 0 {
		t.Fatal("the workload puts nobody in big_spenders")
	}
	for deadline := time.Now().Add(30 * time.Second); lines(t, deliveries) < spenders; {
		if time.Now().After(deadline) {
			t.Fatalf("the live run delivered %d activations, want at least %d", lines(t, deliveries), spenders)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
	// The replay runs with the same configuration but for the file its
	// destination would write: any delivery of the replay would show there.
	replayDeliveries := filepath.Join(dir, "replay-deliveries.jsonl")
	replayCfg := filepath.Join(dir, "replay.yaml")
	if err := os.WriteFile(replayCfg, []byte(strings.Replace(conf, deliveries, replayDeliveries, 1)), 0o644); err != nil {
		t.Fatal(err)
	}

	// The full replay, following, so its API can be read once caught up.
	rp := startProc(t, bin, env, "replay", "-c", replayCfg, "--brokers", brokers, "--data", t.TempDir(),
		"--app", "live-v2", "--from", "earliest", "--follow", "--progress-interval", "200ms")
	rpBase := "http://" + rp.await(t, "http listening on ")
	caught := rp.await(t, "caught up: ")
	if !strings.HasPrefix(caught, fmt.Sprintf("%d events", len(first)+len(second))) {
		t.Errorf("caught up: %s, want %d events", caught, len(first)+len(second))
	}
	go drain(rp)
	awaitStatus(t, rpBase+"/readyz", 200)
	for ident, liveAnswer := range want {
		got, body, ok := readProfile(t, rpBase, "tok", ident)
		if !ok {
			t.Errorf("%s from the replay: %s", ident, body)
			continue
		}
		if got.String() != liveAnswer.String() {
			t.Errorf("%s:\nreplay %s\nlive   %s", ident, got, liveAnswer)
		}
	}
	rp.stop(t)
	if _, err := os.Stat(replayDeliveries); !os.IsNotExist(err) {
		t.Errorf("the replay's destination file exists (%v): a replay must not deliver", err)
	}

	// Bounded: --to between the batches replays the first batch only,
	// then exits.
	to := t1.Add(30 * time.Minute).UTC().Format(time.RFC3339)
	out, err := exec.Command(bin, "replay", "-c", replayCfg, "--brokers", brokers, "--data", t.TempDir(),
		"--app", "live-v3", "--from", "earliest", "--to", to, "--progress-interval", "200ms").CombinedOutput()
	if err != nil {
		t.Fatalf("replay --to: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), fmt.Sprintf("caught up: %d events", len(first))) {
		t.Errorf("replay --to %s: want %d events caught up:\n%s", to, len(first), out)
	}
	if !strings.Contains(string(out), "destination log: group live-v3.sink.log set past the replayed activations") {
		t.Errorf("replay --to did not fence the destination:\n%s", out)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	committed, err := adm.FetchOffsetsForTopics(ctx, "live-v3.sink.log", "live-v3.activations")
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, "live-v3.activations")
	if err != nil {
		t.Fatal(err)
	}
	var activations int64
	ends.Each(func(o kadm.ListedOffset) {
		activations += o.Offset
		c, ok := committed.Lookup(o.Topic, o.Partition)
		if !ok || c.At != o.Offset {
			t.Errorf("live-v3.sink.log on %s[%d]: committed %v, want the end %d", o.Topic, o.Partition, c.At, o.Offset)
		}
	})
	if activations == 0 {
		t.Error("the bounded replay wrote no activation to live-v3.activations")
	}

	// Bad invocations say what is wrong.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--from", "earliest"}, "--app is required"},
		{[]string{"--app", "live", "--from", "earliest"}, "is the live application's id"},
		{[]string{"--app", "x2", "--from", "yesterday"}, `--from "yesterday"`},
		{[]string{"--app", "x2", "--from", "2026-03-02T00:00:00Z", "--to", "2026-03-01T00:00:00Z"}, "is not after --from"},
		{[]string{"--app", "Bad App", "--from", "earliest"}, "must match"},
	} {
		out, err := exec.Command(bin, append([]string{"replay", "-c", cfg, "--brokers", brokers}, tt.args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tt.want) {
			t.Errorf("replay %v: %v\n%s\nwant an error containing %q", tt.args, err, out, tt.want)
		}
	}
}

// lines counts the lines of a file; a missing file has none.
func lines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for s := bufio.NewScanner(f); s.Scan(); {
		n++
	}
	return n
}
