package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConsoleEndToEnd drives the web console in headless Chromium
// (playwright-core, console/e2e/console.mjs) against a running tessera
// with customers seeded through the Segment API: sign-in, customer
// lookup, the audience builder and its preview, saving an audience that
// feeds a webhook and seeing the delivery, and a viewer who cannot save.
// It needs node and Chromium ($TESSERA_TEST_CHROMIUM, else
// /usr/bin/chromium); under CI=true their absence fails the test.
//
// Screenshots of every page go to $TESSERA_SCREENSHOTS (default a temporary
// directory), also to console/e2e/artifacts/ when $TESSERA_ARTIFACTS is
// set; TESSERA_README_IMAGES=1 also writes the README's two into docs/img/.
func TestConsoleEndToEnd(t *testing.T) {
	ci := os.Getenv("CI") == "true"
	need := func(what string) {
		t.Helper()
		if ci {
			t.Fatalf("%s is required in CI (.ci/run installs it)", what)
		}
		t.Skipf("%s not installed", what)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		need("node")
	}
	chromium := os.Getenv("TESSERA_TEST_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		need("chromium (" + chromium + ")")
	}
	e2e, _ := filepath.Abs("../../console/e2e")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := os.Stat(filepath.Join(e2e, "node_modules", "playwright-core")); err != nil {
		npm := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
		npm.Dir = e2e
		if out, err := npm.CombinedOutput(); err != nil {
			t.Fatalf("npm ci: %v\n%s", err, out)
		}
	}

	// The webhook receiver: every activation it gets.
	var mu sync.Mutex
	var received []map[string]any
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var a map[string]any
		if json.Unmarshal(body, &a) == nil {
			mu.Lock()
			received = append(received, a)
			mu.Unlock()
		}
	}))
	defer recv.Close()

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "signed_up.json"), []byte(`{"type":"object","required":["plan"],"properties":{"plan":{"type":"string"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "tessera.yaml")
	if err := os.WriteFile(cfgFile, []byte(`
kafka: {partitions: 2}
features:
  - {name: orders_lifetime, event: Order Completed, agg: count, window: lifetime}
  - {name: spend_lifetime, event: Order Completed, agg: sum, property: revenue, window: lifetime}
tracking_plans:
  - {event: Signed Up, schema: signed_up.json, policy: block}
destinations:
  - name: hook
    type: webhook
    url: `+recv.URL+`
    secret_env: CONSOLE_HOOK_SECRET
    delivery: {backoff_min: 10ms, backoff_max: 100ms}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	const admin, viewer, writeKey = "console-admin", "console-viewer", "wk"
	bin := buildTessera(t)
	p := startProc(t, bin, []string{"TESSERA_ADMIN_TOKEN=" + admin, "TESSERA_VIEWER_TOKEN=" + viewer, "TESSERA_WRITE_KEYS=" + writeKey, "CONSOLE_HOOK_SECRET=hook-secret"},
		"run", "-c", cfgFile, "--data", filepath.Join(dir, "data"), "--http", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0")
	p.await(t, "embedded broker listening on ")
	base := "http://" + p.await(t, "http listening on ")
	go drain(p)
	awaitStatus(t, base+"/readyz", 200)

	seedCustomers(t, base, writeKey, admin)
	// Jane's anonymous visit and her account are two profiles until an
	// event names both: then they merge.
	awaitJSON(t, base+"/v1/profiles/email:jane@example.com", admin, "Jane's merged profile", func(v map[string]any) bool {
		merged, _ := v["merged_from"].([]any)
		return len(merged) > 0 && v["events"].(float64) >= 11
	})
	if code, body := postAuth(t, base+"/v1/models/fit", admin, `{}`); code != 200 {
		t.Fatalf("fitting the models: %d %s", code, body)
	}
	jane := awaitJSON(t, base+"/v1/profiles/email:jane@example.com", admin, "Jane's predictions", func(v map[string]any) bool {
		preds, _ := v["predictions"].(map[string]any)
		return len(preds) > 0
	})
	pAlive := jane["predictions"].(map[string]any)["30d"].(map[string]any)["p_alive"].(float64)

	// The builder's menu: the traits seen, the features, the horizons.
	var cat struct {
		Traits []struct {
			Key, Type string
			Count     int
			Examples  []string
		}
		Events   []string
		Features []struct{ Name string }
		Horizons []string
		Fitted   bool
		Sampled  int
	}
	// The catalog is a sample kept for a minute: it may predate the
	// last customers.
	raw, _ := json.Marshal(awaitJSON(t, base+"/v1/catalog", viewer, "the catalog of all 121 profiles", func(v map[string]any) bool {
		return v["sampled"] == 121.0
	}))
	if err := json.Unmarshal(raw, &cat); err != nil {
		t.Fatal(err)
	}
	traits := map[string]string{}
	for _, tr := range cat.Traits {
		traits[tr.Key] = fmt.Sprintf("%s/%d/%v", tr.Type, tr.Count, tr.Examples)
	}
	if traits["plan"] != "string/121/[free pro team]" || traits["country"] != "string/121/[DE FR GB US]" || cat.Sampled != 121 ||
		!slices.Contains(cat.Events, "Order Completed") || len(cat.Features) != 2 || cat.Features[0].Name != "orders_lifetime" ||
		fmt.Sprint(cat.Horizons) != "[30d 90d 365d]" || !cat.Fitted {
		t.Errorf("catalog: traits %v, %+v", traits, cat)
	}

	shots := os.Getenv("TESSERA_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	env := []string{
		"TESSERA_URL=" + base, "TESSERA_ADMIN_TOKEN=" + admin, "TESSERA_VIEWER_TOKEN=" + viewer,
		"TESSERA_WRITE_KEY=" + writeKey, "TESSERA_CHROMIUM=" + chromium, "TESSERA_SCREENSHOTS=" + shots,
		"EXPECT_EMAIL=jane@example.com", "EXPECT_IDENTITIES=anonymous_id:anon-jane,user_id:u-jane",
		"EXPECT_FEATURE=orders_lifetime", "EXPECT_P_ALIVE=" + fmt.Sprintf("%d%%", int(pAlive*100+0.5)),
		"EXPECT_DESTINATION=hook",
	}
	if os.Getenv("TESSERA_ARTIFACTS") != "" {
		art, _ := filepath.Abs("../../console/e2e/artifacts")
		env = append(env, "TESSERA_ARTIFACTS="+art)
	}
	if os.Getenv("TESSERA_README_IMAGES") == "1" {
		img, _ := filepath.Abs("../../docs/img")
		env = append(env, "TESSERA_README_IMAGES="+img)
	}
	cmd := exec.CommandContext(ctx, node, "console.mjs")
	cmd.Dir = e2e
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	t.Logf("console.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("node console.mjs: %v", err)
	}

	// The audience's members are counted, as the audiences page shows.
	awaitJSON(t, base+"/v1/audience-sizes", viewer, "loyal_customers' members", func(v map[string]any) bool {
		auds, _ := v["audiences"].([]any)
		return v["profiles"] == 121.0 && len(auds) == 1 && auds[0].(map[string]any)["members"].(float64) > 0
	})
	// The audience the script saved reached the webhook.
	mu.Lock()
	defer mu.Unlock()
	found := false
	for _, a := range received {
		if a["name"] == "loyal_customers" && a["type"] == "audience_entered" {
			found = true
		}
	}
	if !found {
		t.Errorf("the webhook never received loyal_customers' entries; got %d activations", len(received))
	}
	for _, name := range []string{"signin", "overview", "customer", "audience-builder", "audiences", "destinations", "destination", "quality", "insights", "viewer-builder"} {
		if _, err := os.Stat(filepath.Join(shots, name+".png")); err != nil {
			t.Errorf("screenshot %s: %v", name, err)
		}
	}
}

// seedCustomers sends, through the Segment batch API, 120 customers with
// purchase histories (so the models fit), Jane in two parts that merge,
// and an event a tracking plan blocks.
func seedCustomers(t *testing.T, base, writeKey, token string) {
	t.Helper()
	var batch []map[string]any
	// Day 0 is 335 days ago: the histories end in the last week, where
	// the feature windows count them (older events are later than
	// predictions.allowed_lateness behind the stream time, and only the
	// models use them).
	start := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -335)
	day := func(d int) string {
		return start.AddDate(0, 0, d).Add(12 * time.Hour).Format(time.RFC3339)
	}
	msg := 0
	add := func(ev map[string]any) {
		msg++
		ev["messageId"] = fmt.Sprintf("seed-%d", msg)
		batch = append(batch, ev)
	}
	// Purchases as customers make them: a first one, then more at random
	// gaps until the customer drifts away (a fixed seed: the same every run).
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 120 {
		user := fmt.Sprintf("u-%03d", i)
		first := rng.IntN(200)
		add(map[string]any{"type": "identify", "userId": user, "timestamp": day(first),
			"traits": map[string]any{"email": fmt.Sprintf("customer%03d@example.com", i), "plan": []string{"free", "pro", "team"}[i%3], "country": []string{"FR", "DE", "GB", "US"}[i%4]}})
		if i%5 == 0 {
			continue // never bought
		}
		rate := 10 + rng.Float64()*60 // days between purchases
		for d := first; d < 330; d += 1 + int(rng.ExpFloat64()*rate) {
			add(map[string]any{"type": "track", "userId": user, "event": "Order Completed", "timestamp": day(d),
				"properties": map[string]any{"revenue": math.Round(10 + rng.ExpFloat64()*40)}})
			if rng.Float64() < 0.25 {
				break // drifted away
			}
		}
	}
	// Jane: an anonymous visit, then her account, then both together.
	add(map[string]any{"type": "page", "anonymousId": "anon-jane", "name": "Pricing", "timestamp": day(1)})
	add(map[string]any{"type": "track", "anonymousId": "anon-jane", "event": "Product Viewed", "timestamp": day(2), "properties": map[string]any{"sku": "TS-1"}})
	add(map[string]any{"type": "identify", "userId": "u-jane", "timestamp": day(3), "traits": map[string]any{"email": "jane@example.com", "name": "Jane Doe", "plan": "pro", "country": "GB"}})
	for k, d := range []int{10, 60, 120, 200, 290, 328, 332} {
		add(map[string]any{"type": "track", "userId": "u-jane", "event": "Order Completed", "timestamp": day(d), "properties": map[string]any{"revenue": 40 + 10*k}})
	}
	add(map[string]any{"type": "track", "userId": "u-jane", "anonymousId": "anon-jane", "event": "Cart Viewed", "timestamp": day(333)})
	// Blocked by the tracking plan: plan must be a string.
	add(map[string]any{"type": "track", "userId": "u-000", "event": "Signed Up", "timestamp": day(334), "properties": map[string]any{"plan": 3}})

	// In time order, as they happened: the feature windows drop events
	// that arrive later than predictions.allowed_lateness behind the
	// newest one. Jane's merge (her last event) and the blocked event go
	// afterwards, once both of her profiles exist.
	tail := batch[len(batch)-2:]
	batch = batch[:len(batch)-2]
	sort.SliceStable(batch, func(i, j int) bool { return batch[i]["timestamp"].(string) < batch[j]["timestamp"].(string) })
	post := func(evs []map[string]any) {
		body, _ := json.Marshal(map[string]any{"batch": evs})
		req, _ := http.NewRequest("POST", base+"/v1/batch", strings.NewReader(string(body)))
		req.SetBasicAuth(writeKey, "")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("seeding: %d %s", resp.StatusCode, b)
		}
	}
	for i := 0; i < len(batch); i += 100 {
		post(batch[i:min(i+100, len(batch))])
	}
	awaitJSON(t, base+"/v1/profiles/anonymous_id:anon-jane", token, "Jane's anonymous profile", nil)
	awaitJSON(t, base+"/v1/profiles/user_id:u-jane", token, "Jane's account", nil)
	post(tail)
}

// awaitJSON polls url until it answers 200 with JSON that ok (if not nil)
// accepts, and returns it.
func awaitJSON(t *testing.T, url, token, what string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		code, body := getAuth(t, url, token)
		var v map[string]any
		if code == 200 && json.Unmarshal([]byte(body), &v) == nil && (ok == nil || ok(v)) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never showed: %d %s", what, code, body)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition
	}
}
