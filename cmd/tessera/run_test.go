package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// buildTessera builds the binary once per test run.
func buildTessera(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tessera-bin")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "tessera")
		cmd := exec.Command("go", "build", "-o", builtBin, ".")
		cmd.Stderr = os.Stderr
		buildErr = cmd.Run()
	})
	if buildErr != nil {
		t.Fatalf("building tessera: %v", buildErr)
	}
	return builtBin
}

// TestRunQuickstart runs `tessera run` with the example configuration on the
// embedded broker, as the README's quick start does, sends events to
// tessera.events over Kafka, watches them counted on /metrics, and stops it
// with SIGTERM.
func TestRunQuickstart(t *testing.T) {
	bin := buildTessera(t)
	data := t.TempDir()
	cmd := exec.Command(bin, "run", "-c", "../../examples/quickstart/tessera.yaml",
		"--data", data, "--http", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()

	lines := bufio.NewScanner(stdout)
	addr := func(prefix string) string {
		for lines.Scan() {
			if a, ok := strings.CutPrefix(lines.Text(), prefix); ok {
				return a
			}
		}
		t.Fatalf("tessera never printed %q", prefix)
		return ""
	}
	brokerAddr := addr("embedded broker listening on ")
	httpAddr := addr("http listening on ")
	go io.Copy(io.Discard, stdout)
	base := "http://" + httpAddr

	awaitStatus(t, base+"/healthz", 200)
	awaitStatus(t, base+"/readyz", 200)

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokerAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := 0; i < 10; i++ {
		r := &kgo.Record{Topic: "tessera.events", Key: []byte("user-1"), Value: []byte(`{"type":"track"}`)}
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	processed := regexp.MustCompile(`(?m)^tessera_records_processed_total\{topic="tessera.events"\} 10$`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		body := get(t, base+"/metrics")
		if processed.MatchString(body) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never counted 10 records:\n%s", grep(body, "tessera_"))
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
	// The collector's CPU and scan work are there beside the defaults
	// (gcRuntimeMetrics), and counted.
	body := get(t, base+"/metrics")
	for _, m := range []string{"go_cpu_classes_gc_total_cpu_seconds_total", "go_cpu_classes_gc_mark_assist_cpu_seconds_total", "go_gc_scan_heap_bytes"} {
		v := regexp.MustCompile(`(?m)^` + m + ` (\S+)$`).FindStringSubmatch(body)
		if v == nil {
			t.Errorf("/metrics has no %s", m)
			continue
		}
		if f, err := strconv.ParseFloat(v[1], 64); err != nil || (m != "go_cpu_classes_gc_mark_assist_cpu_seconds_total" && f <= 0) {
			t.Errorf("/metrics: %s %s, want a positive number", m, v[1])
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("tessera run after SIGTERM: %v, want exit 0", err)
	}
	// The store was closed cleanly with its checkpoint.
	if _, err := os.Stat(filepath.Join(data, "tessera", "instance-id")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(data, "broker")); err != nil {
		t.Errorf("embedded broker kept no data under <data>/broker: %v", err)
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	bin := buildTessera(t)
	tests := []struct {
		name string
		yaml string
		args []string
		want string
	}{
		{"unknown key", "app: x\nkafka:\n  partitons: 3\n", nil, `tessera.yaml:3:3: unknown key "kafka.partitons"`},
		{"bad value", "processing:\n  guarantee: twice\n", nil, `processing.guarantee`},
		{"bad flag", "", []string{"--brokers", "nohost"}, "kafka.brokers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "tessera.yaml")
			if err := os.WriteFile(f, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, append([]string{"run", "-c", f, "--data", t.TempDir()}, tt.args...)...).CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("exit %v, want 1; output:\n%s", err, out)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("output %q does not contain %q", out, tt.want)
			}
		})
	}
}

func TestHelpOnEveryCommand(t *testing.T) {
	bin := buildTessera(t)
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"broker", "--help"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("tessera %v: %v\n%s", args, err, out)
		}
		if !strings.Contains(string(out), "Usage:") {
			t.Errorf("tessera %v printed no usage:\n%s", args, out)
		}
	}
}

// sendSegment posts body to the Segment API route path (/v1/track, …) of
// the hub at base with the tests' write key "wk", and fails t unless it
// answers 200.
func sendSegment(t testing.TB, base, path, body string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
	req.SetBasicAuth("wk", "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s %s: %d %s", path, body, resp.StatusCode, b)
	}
}

// awaitStatus polls url until it answers want. The deadline is generous:
// under make test a dozen hubs, brokers and the race detector share the
// machine, and a consumer group's first join can take its time.
func awaitStatus(t *testing.T, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get(url)
		last := fmt.Sprint(err)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(body))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered %d (last: %s)", url, want, last)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
