package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkConsolePages measures the API calls behind each console page on
// a store of $TESSERA_BENCH_PROFILES profiles (default 100,000; a fifth of
// them with purchases, the models fitted). Seeding takes minutes, so it
// runs only when asked:
//
//	go test -run '^$' -bench ConsolePages -benchtime 20x ./cmd/tessera/
//
// Each page's first, uncached call is logged as "cold"; the benchmark's
// ns/op is the call a page load makes while the caches are warm.
func BenchmarkConsolePages(b *testing.B) {
	n := 100_000
	if s := os.Getenv("TESSERA_BENCH_PROFILES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			b.Fatalf("TESSERA_BENCH_PROFILES must be a positive number, got %q", s)
		}
	}
	const admin, writeKey = "bench-admin", "wk"
	dir := b.TempDir()
	cfgFile := filepath.Join(dir, "tessera.yaml")
	if err := os.WriteFile(cfgFile, []byte(`
log: {level: warn}
features:
  - {name: orders_lifetime, event: Order Completed, agg: count, window: lifetime}
  - {name: spend_30d, event: Order Completed, agg: sum, property: revenue, window: 30d}
audiences:
  - {name: buyers, rule: "events[\"Order Completed\"] >= 1"}
  - {name: big_spenders, rule: "features.spend_30d > 100"}
`), 0o644); err != nil {
		b.Fatal(err)
	}
	bin, err := os.MkdirTemp("", "tessera-bench-bin")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(bin)
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "tessera"), ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "tessera"), "run", "-c", cfgFile, "--data", filepath.Join(dir, "data"),
		"--http", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "TESSERA_ADMIN_TOKEN="+admin, "TESSERA_WRITE_KEYS="+writeKey)
	cmd.Stderr = os.Stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	lines := bufio.NewScanner(out)
	var base string
	for lines.Scan() {
		if a, ok := strings.CutPrefix(lines.Text(), "http listening on "); ok {
			base = "http://" + a
			break
		}
	}
	go io.Copy(io.Discard, out)
	call := func(method, path, body string) (int, []byte) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+admin)
		if method == "POST" && strings.HasPrefix(path, "/v1/batch") {
			req.Header.Del("Authorization")
			req.SetBasicAuth(writeKey, "")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, []byte(err.Error())
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, data
	}
	await := func(what string, limit time.Duration, ok func() bool) {
		deadline := time.Now().Add(limit)
		for !ok() {
			if time.Now().After(deadline) {
				b.Fatalf("%s did not happen within %v", what, limit)
			}
			time.Sleep(500 * time.Millisecond) // polling a condition
		}
	}
	await("readiness", time.Minute, func() bool { c, _ := call("GET", "/readyz", ""); return c == 200 })

	start := time.Now()
	now := time.Now().UTC()
	var batch []string
	rng := rand.New(rand.NewPCG(3, 4))
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if c, body := call("POST", "/v1/batch", `{"batch":[`+strings.Join(batch, ",")+`]}`); c != 200 {
			b.Fatalf("seeding: %d %s", c, body)
		}
		batch = batch[:0]
	}
	for i := range n {
		batch = append(batch, fmt.Sprintf(`{"type":"identify","userId":"b-%d","messageId":"i-%d","timestamp":%q,"traits":{"email":"b%d@example.com","plan":%q,"country":%q}}`,
			i, i, now.Add(-time.Duration(i%300)*24*time.Hour).Format(time.RFC3339), i, []string{"free", "pro", "team"}[i%3], []string{"FR", "DE", "GB", "US"}[i%4]))
		if i%5 == 0 { // a buyer: purchases at random gaps until drifting away
			rate := 10 + rng.Float64()*60
			for d, k := 335-rng.IntN(200), 0; d > 5; d, k = d-1-int(rng.ExpFloat64()*rate), k+1 {
				batch = append(batch, fmt.Sprintf(`{"type":"track","userId":"b-%d","messageId":"o-%d-%d","event":"Order Completed","timestamp":%q,"properties":{"revenue":%d}}`,
					i, i, k, now.Add(-time.Duration(d)*24*time.Hour).Format(time.RFC3339), 10+rng.IntN(120)))
				if rng.Float64() < 0.25 {
					break
				}
			}
		}
		if len(batch) >= 400 {
			flush()
		}
	}
	flush()
	b.Logf("sent %d profiles' events in %v", n, time.Since(start).Round(time.Millisecond))
	await(fmt.Sprintf("%d profiles", n), 30*time.Minute, func() bool {
		c, body := call("GET", "/v1/audience-sizes", "")
		var v struct{ Profiles int }
		return c == 200 && json.Unmarshal(body, &v) == nil && v.Profiles >= n
	})
	b.Logf("%d profiles processed %v after the first event was sent", n, time.Since(start).Round(time.Second))
	fit := time.Now()
	if c, body := call("POST", "/v1/models/fit", "{}"); c != 200 {
		// The pages still load; the insights then have no predictions.
		b.Logf("fitting the models: %d %.300s", c, body)
	} else {
		b.Logf("fitted the models in %v", time.Since(fit).Round(time.Millisecond))
	}

	for _, page := range []struct{ name, method, path, body string }{
		{"index", "GET", "/", ""},
		{"insights_cached", "GET", "/v1/insights?max_age=60s", ""}, // what the console asks
		{"insights_uncached", "GET", "/v1/insights", ""},
		{"overview", "GET", "/v1/overview", ""},
		{"customer", "GET", "/v1/profiles/email:b777@example.com", ""},
		{"customer_events", "GET", "/v1/profiles/email:b777@example.com/events?limit=50", ""},
		{"audience_sizes", "GET", "/v1/audience-sizes", ""},
		{"audience_sizes_scan", "GET", "/internal/v1/audience-sizes", ""}, // the sampler's scan, uncached
		{"catalog", "GET", "/v1/catalog", ""},
		{"preview", "POST", "/v1/audiences/preview", `{"rule":"features.orders_lifetime >= 2"}`},
		{"destinations", "GET", "/v1/destinations", ""},
		{"quality", "GET", "/v1/quality", ""},
	} {
		b.Run(page.name, func(b *testing.B) {
			t0 := time.Now()
			if c, body := call(page.method, page.path, page.body); c != 200 {
				b.Fatalf("%s %s: %d %.300s", page.method, page.path, c, body)
			}
			b.Logf("cold: %v", time.Since(t0).Round(time.Microsecond))
			b.ResetTimer()
			for b.Loop() {
				if c, body := call(page.method, page.path, page.body); c != 200 {
					b.Fatalf("%s %s: %d %.300s", page.method, page.path, c, body)
				}
			}
		})
	}
}
