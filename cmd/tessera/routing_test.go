package main

import (
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

// TestDestinationsThroughTheAPI: a destination defined through
// /v1/destinations while tessera runs starts delivering without a
// restart; an audience that names it reaches it and not the destination
// that takes everything else; deleting the destination stops it.
func TestDestinationsThroughTheAPI(t *testing.T) {
	var mu sync.Mutex
	var hooked []string // bodies the webhook received
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		hooked = append(hooked, string(body))
		mu.Unlock()
	}))
	defer recv.Close()
	dir := t.TempDir()
	archive := filepath.Join(dir, "archive.jsonl")
	cfg := filepath.Join(dir, "tessera.yaml")
	if err := os.WriteFile(cfg, []byte(`
audiences:
  - {name: everyone, rule: "traits.plan != nil"}
destinations:
  - {name: archive, type: file, path: `+archive+`}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := buildTessera(t)
	p := startProc(t, bin, []string{"TESSERA_ADMIN_TOKEN=tok", "TESSERA_WRITE_KEYS=wk", "HOOK_SECRET=s"}, "run", "-c", cfg,
		"--data", filepath.Join(dir, "data"), "--http", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0")
	p.await(t, "embedded broker listening on ")
	base := "http://" + p.await(t, "http listening on ")
	go drain(p)
	awaitStatus(t, base+"/readyz", 200)

	for _, c := range []struct {
		path, body string
		code       int
	}{
		{"/v1/destinations", `{"name":"hook","type":"webhook","url":"` + recv.URL + `","secret_env":"HOOK_SECRET","delivery":{"backoff_min":"10ms","backoff_max":"100ms"}}`, 201},
		{"/v1/destinations", `{"name":"bad","type":"webhook","url":"` + recv.URL + `","secret_env":"NOT_SET_ANYWHERE"}`, 400},
		{"/v1/audiences", `{"name":"vip","rule":"traits.plan == \"vip\"","destinations":["hook"]}`, 201},
	} {
		if code, body := postAuth(t, base+c.path, "tok", c.body); code != c.code {
			t.Fatalf("POST %s %s: %d %s, want %d", c.path, c.body, code, body, c.code)
		}
	}
	for i, plan := range []string{"vip", "basic"} {
		ev := fmt.Sprintf(`{"userId":"u%d","traits":{"plan":%q},"messageId":"m%d"}`, i, plan, i)
		sendSegment(t, base, "/v1/identify", ev)
	}
	// Both profiles enter "everyone" (no destinations named: every
	// destination takes it); only u0 enters "vip", routed to hook alone.
	deadline := time.Now().Add(45 * time.Second)
	for {
		mu.Lock()
		h := strings.Join(hooked, "\n")
		mu.Unlock()
		a, _ := os.ReadFile(archive)
		// The archive's filter dropping one activation (vip) is what
		// tells it has decided on it.
		_, st := getAuth(t, base+"/v1/destinations/archive/status", "tok")
		done := strings.Count(h, `"name":"everyone"`) >= 2 && strings.Contains(h, `"name":"vip"`) &&
			strings.Count(string(a), `"name":"everyone"`) >= 2 && strings.Contains(st, `"filtered":1`)
		if done {
			if strings.Contains(string(a), `"name":"vip"`) {
				t.Errorf("the archive, which takes all, got the vip audience routed to hook only:\n%s", a)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries never completed; hook got:\n%s\narchive has:\n%s", h, a)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
	code, body := getAuth(t, base+"/v1/destinations/hook", "tok")
	if code != 200 || !strings.Contains(body, `"status":{`) || !strings.Contains(body, `"sent":`) {
		t.Errorf("GET /v1/destinations/hook: %d %s", code, body)
	}
	req, _ := http.NewRequest("DELETE", base+"/v1/destinations/hook", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("DELETE hook: %v %v", err, resp)
	}
	resp.Body.Close()
	deadline = time.Now().Add(30 * time.Second)
	for {
		code, _ := getAuth(t, base+"/v1/destinations/hook/status", "tok")
		if code == 404 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deleted destination's runner still answers %d", code)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
}

// TestConsentDecidesDestinations: a person who declined marketing is not
// delivered to a marketing destination, and is to an analytics one; the
// profile API shows their consent.
func TestConsentDecidesDestinations(t *testing.T) {
	dir := t.TempDir()
	mkt, ana := filepath.Join(dir, "marketing.jsonl"), filepath.Join(dir, "analytics.jsonl")
	cfg := filepath.Join(dir, "tessera.yaml")
	if err := os.WriteFile(cfg, []byte(`
audiences:
  - {name: everyone, rule: "traits.plan != nil"}
destinations:
  - {name: mkt, type: file, path: `+mkt+`, categories: [marketing]}
  - {name: ana, type: file, path: `+ana+`, categories: [analytics]}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := buildTessera(t)
	p := startProc(t, bin, []string{"TESSERA_ADMIN_TOKEN=tok", "TESSERA_WRITE_KEYS=wk"}, "run", "-c", cfg,
		"--data", filepath.Join(dir, "data"), "--http", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0")
	p.await(t, "embedded broker listening on ")
	base := "http://" + p.await(t, "http listening on ")
	go drain(p)
	awaitStatus(t, base+"/readyz", 200)
	for i, prefs := range []string{`{"marketing":false,"analytics":true}`, `{"marketing":true,"analytics":true}`} {
		ev := fmt.Sprintf(`{"userId":"c%d","traits":{"plan":"pro"},"messageId":"m%d","context":{"consent":{"categoryPreferences":%s}}}`, i, i, prefs)
		sendSegment(t, base, "/v1/identify", ev)
	}
	deadline := time.Now().Add(45 * time.Second)
	for {
		a, _ := os.ReadFile(ana)
		m, _ := os.ReadFile(mkt)
		_, st := getAuth(t, base+"/v1/destinations/mkt/status", "tok")
		// Both reach analytics; marketing takes c1 and filters c0 out.
		if strings.Count(string(a), `"name":"everyone"`) == 2 && strings.Count(string(m), `"name":"everyone"`) == 1 &&
			strings.Contains(st, `"filtered":1`) {
			if strings.Contains(string(m), `"value":"c0"`) {
				t.Errorf("the marketing destination got c0, who declined marketing:\n%s", m)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deliveries never settled; analytics:\n%s\nmarketing:\n%s\nmkt status: %s", a, m, st)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
	code, body := getAuth(t, base+"/v1/profiles/user_id:c0", "tok")
	if code != 200 || !strings.Contains(body, `"consent":{"analytics":true,"marketing":false}`) {
		t.Errorf("profile of c0: %d %s", code, body)
	}
}
