package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tessera-cdp/tessera/broker"
)

const (
	cdnowFile    = "../../../shared/data/cdnow/CDNOW_sample.txt"
	cdnowMapping = "../../examples/cdnow/mapping.yaml"
)

// tessera runs the import command with args and returns its output.
func tesseraImport(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	t.Setenv("TESSERA_BROKERS", "")
	cmd := newImportCmd()
	var out, errOut bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// startBroker starts an in-memory embedded broker on a free port.
func startBroker(t *testing.T) string {
	t.Helper()
	b, err := broker.Start(broker.Options{Listen: "127.0.0.1:0", DataDir: ""})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addr()
}

// endOffsets returns the number of records of each topic.
func endOffsets(t *testing.T, addr string, topics ...string) map[string]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topics...)
	if err != nil {
		t.Fatal(err)
	}
	n := make(map[string]int64)
	ends.Each(func(o kadm.ListedOffset) { n[o.Topic] += o.Offset })
	return n
}

// wantLines fails unless out contains each line.
func wantLines(t *testing.T, out string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(out, l+"\n") {
			t.Errorf("output lacks %q:\n%s", l, out)
		}
	}
}

// TestImportCDNOW imports the CDNOW sample twice with the shipped mapping
// into a broker named by --brokers: the summary counts 6,919 events each
// time, and the second import writes the same events again (profiles
// dedupe them on their messageIds, which the fileimport tests compare).
func TestImportCDNOW(t *testing.T) {
	addr := startBroker(t)
	for run := 1; run <= 2; run++ {
		out, errOut, err := tesseraImport(t, "--file", cdnowFile, "--mapping", cdnowMapping, "--brokers", addr)
		if err != nil {
			t.Fatalf("import %d: %v\n%s%s", run, err, out, errOut)
		}
		if !strings.HasPrefix(out, "imported "+cdnowFile+" into tessera.events in ") {
			t.Errorf("output:\n%s", out)
		}
		wantLines(t, out,
			"  lines     6919",
			"  imported  6919",
			"  skipped   0 (filtered out)",
			"  invalid   0 (sent to tessera.events.invalid)",
		)
		if errOut != "" {
			t.Errorf("stderr, not a terminal, holds %q", errOut)
		}
		t.Logf("import %d:\n%s", run, out)
		if n := endOffsets(t, addr, "tessera.events")["tessera.events"]; n != int64(6919*run) {
			t.Errorf("tessera.events holds %d events after import %d", n, run)
		}
	}
}

// TestImportEmbedded checks that with no brokers configured the import
// connects to kafka.broker_listen, where `tessera run` serves its embedded
// broker, with the configuration's app id and partitions, and reports its
// bad lines without failing.
func TestImportEmbedded(t *testing.T) {
	addr := startBroker(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "tessera.yaml")
	data := filepath.Join(dir, "orders.csv")
	mapping := filepath.Join(dir, "orders.yaml")
	for path, text := range map[string]string{
		conf:    "app: shop\nkafka:\n  broker_listen: " + addr + "\n  partitions: 3\n",
		data:    "customer,day,amount\nu1,2026-01-01,1.5\nu2,2026-01-02,lots\nu3,2026-01-03\nu4,2025-12-31,2\n",
		mapping: "format: csv\ntype: track\nevent: Order Completed\nuser_id: customer\ntimestamp: {column: day, layout: '2006-01-02'}\nproperties: {revenue: {column: amount, type: float}}\nfilters: [{column: day, from: 2026-01-01}]\n",
	} {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, err := tesseraImport(t, "-c", conf, "-f", data, "-m", mapping)
	if err != nil {
		t.Fatalf("%v\n%s%s", err, out, errOut)
	}
	if want := "no brokers configured: importing into the embedded broker of 'tessera run' at " + addr + "\n"; errOut != want {
		t.Errorf("stderr %q, want %q", errOut, want)
	}
	wantLines(t, out,
		"  lines     4",
		"  imported  1",
		"  skipped   1 (filtered out)",
		"  invalid   2 (sent to shop.events.invalid)",
		"bad lines:",
		`  line 3, column "amount" ($3) (properties.revenue): "lots" is not a number`,
		"  line 4: has 2 columns, expected 3 (as in the header on line 1)",
	)
	n := endOffsets(t, addr, "shop.events", "shop.events.invalid")
	if n["shop.events"] != 1 || n["shop.events.invalid"] != 2 {
		t.Errorf("topics hold %v, want 1 event and 2 invalid", n)
	}
}

// TestImportErrors checks the command's failures: usage, a bad mapping, no
// broker; and that a dry run needs none.
func TestImportErrors(t *testing.T) {
	old := connectTimeout
	connectTimeout = 300 * time.Millisecond
	defer func() { connectTimeout = old }()
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("format: csv\ntype: track\nevnt: X\nuser_id: id\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		want  string
		usage bool
	}{
		{"no mapping", []string{"--file", cdnowFile}, "both --file and --mapping are required", true},
		{"bad mapping", []string{"--file", cdnowFile, "--mapping", bad}, bad + `:2:7: event: required for type track` + "\n" + bad + `:3:1: unknown key "evnt" (did you mean "event"?)`, false},
		{"no such file", []string{"--file", "nope.csv", "--mapping", cdnowMapping, "--dry-run"}, "opening the file to import: open nope.csv: no such file or directory", false},
		{"no broker", []string{"--file", cdnowFile, "--mapping", cdnowMapping, "--brokers", "127.0.0.1:1"}, "connecting to Kafka at [127.0.0.1:1]: ", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := tesseraImport(t, tt.args...)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error %v, want %s", err, tt.want)
			}
			var uerr usageError
			if errors.As(err, &uerr) != tt.usage {
				t.Errorf("usage error: %v, want %v", !tt.usage, tt.usage)
			}
		})
	}
	t.Run("dry run", func(t *testing.T) {
		out, _, err := tesseraImport(t, "--file", cdnowFile, "--mapping", cdnowMapping, "--dry-run")
		if err != nil {
			t.Fatal(err)
		}
		wantLines(t, out, "  lines     6919", "  valid     6919", "  invalid   0")
		if !strings.HasPrefix(out, "checked "+cdnowFile+" (dry run: nothing written) in ") {
			t.Errorf("output:\n%s", out)
		}
	})
}
