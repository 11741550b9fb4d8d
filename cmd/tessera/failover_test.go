package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/bench"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The failover and footprint measurements of docs/operations.md. They are
// benchmarks (run only with -bench) because they measure; each iteration
// starts its own broker and instances. Sizes come from the environment so
// that the documented figures can be reproduced and extrapolated:
//
//	TESSERA_FAILOVER_CUSTOMERS  customers loaded before the failover (default 50000)
//	TESSERA_FOOTPRINT_CUSTOMERS customers loaded for the footprint  (default 200000)
//
//	go test ./cmd/tessera -run '^$' -bench 'Failover|Footprint' -benchtime 1x -timeout 30m

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// loadCustomers produces two events per customer to topic: an identify
// with a user id, an email and traits, and an order with a revenue.
func loadCustomers(b testing.TB, brokers, topic string, n int) int {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ProducerBatchMaxBytes(1<<20))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	ts := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339)
	errc := make(chan error, 1)
	for i := range n {
		user := fmt.Sprintf("u-%d", i)
		for _, v := range []string{
			fmt.Sprintf(`{"type":"identify","userId":%q,"traits":{"email":"c%d@example.test","plan":"pro","name":"Customer %d","city":"Lyon"},"messageId":"i-%d","timestamp":%q}`, user, i, i, i, ts),
			fmt.Sprintf(`{"type":"track","userId":%q,"event":"Order Completed","properties":{"revenue":%d,"currency":"EUR"},"messageId":"o-%d","timestamp":%q}`, user, 10+i%90, i, ts),
		} {
			cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(user), Value: []byte(v)}, func(_ *kgo.Record, err error) {
				if err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			})
		}
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	select {
	case err := <-errc:
		b.Fatal(err)
	default:
	}
	return 2 * n
}

// awaitDrained waits until group has processed everything on topics:
// nothing but transaction markers and aborted records lies between its
// committed offsets and the last stable offsets.
func awaitDrained(b testing.TB, brokers, group string, topics []string, timeout time.Duration) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(timeout)
	for {
		pending, err := groupPending(adm, brokers, group, topics)
		if err == nil && pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("group %s still has %d records to process after %s (%v)", group, pending, timeout, err)
		}
		time.Sleep(200 * time.Millisecond) // polling a condition
	}
}

func groupPending(adm *kadm.Client, brokers, group string, topics []string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	committed, err := fetchCommitted(ctx, adm, group, topics...)
	if err != nil {
		return -1, err
	}
	lso, err := adm.ListCommittedOffsets(ctx, topics...)
	if err != nil {
		return -1, err
	}
	ranges := make(map[string]map[int32][2]int64)
	lso.Each(func(o kadm.ListedOffset) {
		var at int64
		if c, ok := committed.Lookup(o.Topic, o.Partition); ok && c.At > 0 {
			at = c.At
		}
		if o.Err == nil && at < o.Offset {
			if ranges[o.Topic] == nil {
				ranges[o.Topic] = make(map[int32][2]int64)
			}
			ranges[o.Topic][o.Partition] = [2]int64{at, o.Offset}
		}
	})
	return pendingRecords(ctx, []kgo.Opt{kgo.SeedBrokers(brokers)}, ranges)
}

// metricSum sums the samples of a metric (any labels) on base's /metrics.
func metricSum(b testing.TB, base, name string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? ([0-9.e+-]+)$`)
	var sum float64
	_, body := getAuth(b, base+"/metrics", "")
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		sum += v
	}
	return sum
}

// writeBenchConfig writes the workload configuration for app with 12
// partitions and the given standby replicas.
func writeBenchConfig(b testing.TB, app string, standbys int) string {
	cfg := filepath.Join(b.TempDir(), "tessera.yaml")
	conf := strings.Replace(fmt.Sprintf(workloadConfig, app, 12, "10s"),
		"processing:\n", fmt.Sprintf("processing:\n  standby_replicas: %d\n", standbys), 1)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	return cfg
}

// BenchmarkFailover loads customers into two instances, stops one (SIGTERM,
// a planned stop; SIGKILL, a crash) and measures the time until the
// survivor answers /readyz 200 and a profile of every partition again,
// with and without a standby replica.
func BenchmarkFailover(b *testing.B) {
	customers := envInt("TESSERA_FAILOVER_CUSTOMERS", 50_000)
	bin := buildBench(b)
	for _, standbys := range []int{0, 1} {
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
			b.Run(fmt.Sprintf("standby=%d/%s", standbys, strings.ToLower(sig.String()[:4])), func(b *testing.B) {
				for range b.N {
					secs, restored := failoverOnce(b, bin, customers, standbys, sig)
					b.ReportMetric(secs, "failover-s")
					b.ReportMetric(restored, "restored-records")
				}
			})
		}
	}
}

func failoverOnce(b *testing.B, bin string, customers, standbys int, sig syscall.Signal) (float64, float64) {
	brk := startBenchProc(b, bin, nil, "broker", "--listen", "127.0.0.1:0", "--data", b.TempDir())
	brokers := brk.await(b, "broker listening on ")
	cfg := writeBenchConfig(b, "fo", standbys)
	env := []string{"TESSERA_ADMIN_TOKEN=tok"}
	var procs []*benchProc
	var bases []string
	for range 2 {
		p := startBenchProc(b, bin, env, "run", "-c", cfg, "--brokers", brokers, "--data", b.TempDir(), "--http", "127.0.0.1:0")
		bases = append(bases, "http://"+p.await(b, "http listening on "))
		procs = append(procs, p)
	}
	for _, base := range bases {
		awaitHTTP(b, base+"/readyz", 200)
	}
	loadCustomers(b, brokers, "fo.events", customers)
	awaitDrained(b, brokers, "fo", []string{"fo.events", "fo.identity-links", "fo.profile-ops"}, 10*time.Minute)
	survivor := bases[1]
	if standbys > 0 {
		// The standby copies are warm when the survivor's standby
		// counter stops moving.
		prev := -1.0
		for {
			cur := metricSum(b, survivor, "tessera_standby_records_total")
			if cur == prev && cur > 0 {
				break
			}
			prev = cur
			time.Sleep(time.Second) // polling a condition
		}
	}
	restoredBefore := metricSum(b, survivor, "tessera_restore_records_total")
	// One customer per partition at least: 200 spread over 12 partitions.
	var idents []string
	for i := 0; i < customers; i += max(customers/200, 1) {
		idents = append(idents, fmt.Sprintf("user_id:u-%d", i))
	}
	start := time.Now()
	if err := procs[0].cmd.Process.Signal(sig); err != nil {
		b.Fatal(err)
	}
	procs[0].cmd.Wait()
	for {
		if code, _ := getAuth(b, survivor+"/readyz", ""); code == 200 {
			all := true
			for _, id := range idents {
				if code, _ := getAuth(b, survivor+"/v1/profiles/"+id, "tok"); code != 200 {
					all = false
					break
				}
			}
			if all {
				break
			}
		}
		if time.Since(start) > 5*time.Minute {
			b.Fatal("the survivor never answered every profile")
		}
		time.Sleep(20 * time.Millisecond) // polling a condition
	}
	secs := time.Since(start).Seconds()
	restored := metricSum(b, survivor, "tessera_restore_records_total") - restoredBefore
	b.Logf("standby_replicas=%d %s: %d customers, failover %.2fs, %0.f records restored", standbys, sig, customers, secs, restored)
	for _, p := range procs[1:] {
		p.cmd.Process.Signal(syscall.SIGTERM)
		p.cmd.Wait()
	}
	return secs, restored
}

// changelogOffsets returns bench.ChangelogOffsets of application app.
func changelogOffsets(b testing.TB, brokers, app string) int64 {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := bench.ChangelogOffsets(ctx, kadm.NewClient(cl), app)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkFootprint loads customers into one instance and reports the
// disk its stores take, the changelogs' share of the broker's log, and the
// instance's resident memory, per profile.
func BenchmarkFootprint(b *testing.B) {
	customers := envInt("TESSERA_FOOTPRINT_CUSTOMERS", 200_000)
	bin := buildBench(b)
	for range b.N {
		brokerDir, dataDir := b.TempDir(), b.TempDir()
		brk := startBenchProc(b, bin, nil, "broker", "--listen", "127.0.0.1:0", "--data", brokerDir)
		brokers := brk.await(b, "broker listening on ")
		cfg := writeBenchConfig(b, "fp", 0)
		p := startBenchProc(b, bin, []string{"TESSERA_ADMIN_TOKEN=tok"}, "run", "-c", cfg, "--brokers", brokers, "--data", dataDir, "--http", "127.0.0.1:0")
		base := "http://" + p.await(b, "http listening on ")
		awaitHTTP(b, base+"/readyz", 200)
		start := time.Now()
		events := loadCustomers(b, brokers, "fp.events", customers)
		awaitDrained(b, brokers, "fp", []string{"fp.events", "fp.identity-links", "fp.profile-ops"}, 20*time.Minute)
		secs := time.Since(start).Seconds()
		logged := changelogOffsets(b, brokers, "fp")
		rss := metricSum(b, base, "process_resident_memory_bytes")
		heap := metricSum(b, base, "go_memstats_heap_inuse_bytes")
		p.cmd.Process.Signal(syscall.SIGTERM)
		p.cmd.Wait()
		stores := dirSize(b, filepath.Join(dataDir, "fp"))
		brk.cmd.Process.Signal(syscall.SIGTERM)
		brk.cmd.Wait()
		changelogs := dirSizeMatching(b, brokerDir, "-changelog")
		brokerTotal := dirSize(b, brokerDir)
		n := float64(customers)
		b.ReportMetric(stores/n, "store-B/profile")
		b.ReportMetric(changelogs/n, "changelog-B/profile")
		b.ReportMetric(float64(logged)/n, "changelog-offsets/profile")
		b.ReportMetric(brokerTotal/n, "broker-B/profile")
		b.ReportMetric(rss, "rss-B")
		b.ReportMetric(heap, "heap-B")
		b.ReportMetric(float64(events)/secs, "events/s")
		b.Logf("%d customers, %d events in %.1fs: stores %.0f MB, changelogs %.0f MB, broker log %.0f MB, RSS %.0f MB, heap in use %.0f MB",
			customers, events, secs, stores/1e6, changelogs/1e6, brokerTotal/1e6, rss/1e6, heap/1e6)
	}
}

// benchProc is a tessera process of a measurement.
type benchProc struct {
	cmd   *exec.Cmd
	lines chan string
}

func startBenchProc(b testing.TB, bin string, env []string, args ...string) *benchProc {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	p := &benchProc{cmd: cmd, lines: make(chan string, 16)}
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			select {
			case p.lines <- s.Text():
			default: // nobody waits for it
			}
		}
		close(p.lines)
	}()
	return p
}

// await returns what follows prefix on the first stdout line that has it.
func (p *benchProc) await(b testing.TB, prefix string) string {
	for l := range p.lines {
		if a, ok := strings.CutPrefix(l, prefix); ok {
			return a
		}
	}
	b.Fatalf("process never printed %q", prefix)
	return ""
}

// buildBench builds the binary for a measurement.
func buildBench(b testing.TB) string {
	bin := filepath.Join(b.TempDir(), "tessera")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("building tessera: %v", err)
	}
	return bin
}

func awaitHTTP(b testing.TB, url string, want int) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, body := getAuth(b, url, "")
		if code == want {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s never answered %d (last: %d %s)", url, want, code, body)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
}

func dirSize(b testing.TB, dir string) float64 {
	return dirSizeMatching(b, dir, "")
}

// dirSizeMatching sums the sizes of the files under dir whose path
// contains sub.
func dirSizeMatching(b testing.TB, dir, sub string) float64 {
	var n int64
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !info.IsDir() && strings.Contains(path, sub) {
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return float64(n)
}
