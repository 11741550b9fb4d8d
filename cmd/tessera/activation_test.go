package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestWebhookActivationsEndToEnd: events through the HTTP API make a
// profile enter an audience and the webhook receives the signed
// activation; other customers' later events move stream time on, and the
// exit arrives with no new event from that customer.
func TestWebhookActivationsEndToEnd(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	var bad []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte("hook-secret"))
		mac.Write(body)
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("X-Tessera-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) || r.Header.Get("Idempotency-Key") == "" {
			bad = append(bad, fmt.Sprintf("signature %q, key %q", r.Header.Get("X-Tessera-Signature"), r.Header.Get("Idempotency-Key")))
		}
		var a map[string]any
		if err := json.Unmarshal(body, &a); err != nil {
			bad = append(bad, "body: "+err.Error())
		}
		got = append(got, a)
	}))
	defer recv.Close()

	cfg := filepath.Join(t.TempDir(), "tessera.yaml")
	if err := os.WriteFile(cfg, []byte(`
features:
  - {name: orders_1h, event: Order Completed, agg: count, window: 1h}
audiences:
  - {name: hot_buyers, rule: "features.orders_1h >= 2", destinations: [hook]}
destinations:
  - name: hook
    type: webhook
    url: `+recv.URL+`
    secret_env: HOOK_SECRET
    delivery: {backoff_min: 10ms, backoff_max: 100ms}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := buildTessera(t)
	p := startProc(t, bin, []string{"TESSERA_ADMIN_TOKEN=tok", "TESSERA_WRITE_KEYS=wk", "HOOK_SECRET=hook-secret"}, "run", "-c", cfg,
		"--data", t.TempDir(), "--http", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0")
	p.await(t, "embedded broker listening on ")
	base := "http://" + p.await(t, "http listening on ")
	go drain(p)
	awaitStatus(t, base+"/readyz", 200)

	send := func(user, ts string, i int) {
		ev := fmt.Sprintf(`{"userId":%q,"event":"Order Completed","messageId":"m%d","timestamp":%q}`, user, i, ts)
		sendSegment(t, base, "/v1/track", ev)
	}
	await := func(what string, ok func([]map[string]any) bool) {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for {
			mu.Lock()
			done := ok(got)
			mu.Unlock()
			if done {
				return
			}
			if time.Now().After(deadline) {
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("%s never arrived; got %v", what, got)
			}
			time.Sleep(50 * time.Millisecond) // polling a condition
		}
	}
	has := func(typ string) func([]map[string]any) bool {
		return func(as []map[string]any) bool {
			for _, a := range as {
				if a["type"] == typ && a["name"] == "hot_buyers" {
					return true
				}
			}
			return false
		}
	}
	send("hb-1", "2026-05-01T10:00:00Z", 1)
	send("hb-1", "2026-05-01T10:05:00Z", 2)
	await("the entry", has("audience_entered"))
	// Other customers, two hours later, on every partition.
	for i := 0; i < 40; i++ {
		send(fmt.Sprintf("other-%d", i), "2026-05-01T12:30:00Z", 100+i)
	}
	await("the exit", has("audience_exited"))
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Errorf("bad deliveries: %v", bad)
	}
	code, body := getAuth(t, base+"/v1/destinations/hook/deliveries", "tok")
	if code != 200 || !strings.Contains(body, "delivered") {
		t.Errorf("delivery log: %d %s", code, body)
	}
	code, body = getAuth(t, base+"/v1/destinations", "tok")
	if code != 200 || !strings.Contains(body, `"name":"hook"`) || !strings.Contains(body, `"type":"webhook"`) {
		t.Errorf("destinations: %d %s", code, body)
	}
}
