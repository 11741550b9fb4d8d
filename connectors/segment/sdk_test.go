package segment

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/internal/segmentsdk"
)

// needTool returns the path of a command, skipping the test when it is
// missing outside CI and failing it in CI, which installs it.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not on PATH; CI must install it (Debian: nodejs, npm)", name)
		}
		t.Skipf("%s is not on PATH (CI installs it)", name)
	}
	return p
}

// TestOfficialNodeSDK sends identify, track, page, screen, group, alias and
// a burst that the SDK flushes in batches, with Segment's own Node SDK
// (@segment/analytics-node, pinned in testdata/sdk/package-lock.json), to
// the handler on the embedded broker, and finds every event on
// tessera.events as the SDK sent it.
func TestOfficialNodeSDK(t *testing.T) {
	node := needTool(t, "node")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	needTool(t, "npm")
	sdkDir, err := segmentsdk.Install(ctx)
	if err != nil {
		t.Fatal(err)
	}

	e := newEnv(t)
	before := e.snapshot()
	cmd := exec.CommandContext(ctx, node, "send.mjs")
	cmd.Dir = sdkDir
	cmd.Env = append(os.Environ(), "TESSERA_SEGMENT_HOST="+e.url, "TESSERA_WRITE_KEY="+testKey)
	out, err := cmd.CombinedOutput()
	t.Logf("node send.mjs: %s", out)
	if err != nil {
		t.Fatalf("node send.mjs: %v", err)
	}

	type want struct{ typ, key, name string }
	wants := []want{
		{"identify", "sdk-user-1", ""},
		{"track", "sdk-user-1", "Order Completed"},
		{"page", "sdk-anon-1", "Pricing"},
		{"screen", "sdk-user-1", "Settings"},
		{"group", "sdk-user-1", ""},
		{"alias", "sdk-user-1", ""},
	}
	for i := range 40 {
		wants = append(wants, want{"track", fmt.Sprintf("sdk-burst-%d", i), "Burst"})
	}
	evs := e.eventsSince(before)
	if len(evs) != len(wants) {
		t.Errorf("%d events on %s, want %d", len(evs), eventsTopic, len(wants))
	}
	got := map[want]event{}
	for _, ev := range evs {
		checkCompleted(t, ev)
		name, _ := ev.value["event"].(string)
		if ev.value["type"] == "page" || ev.value["type"] == "screen" {
			name, _ = ev.value["name"].(string)
		}
		w := want{ev.value["type"].(string), ev.key, name}
		if _, dup := got[w]; dup {
			t.Errorf("event %v arrived twice", w)
		}
		got[w] = ev
		lib, _ := ev.value["context"].(map[string]any)["library"].(map[string]any)
		if lib["name"] != "@segment/analytics-node" {
			t.Errorf("event %v lacks the SDK's context.library: %s", w, ev.raw)
		}
		if id, _ := ev.value["messageId"].(string); len(id) < 10 || id[:5] != "node-" {
			t.Errorf("event %v: messageId %q is not the SDK's", w, id)
		}
	}
	for _, w := range wants {
		if _, ok := got[w]; !ok {
			t.Errorf("missing %+v", w)
		}
	}
	check := func(w want, field string, value any) {
		t.Helper()
		ev, ok := got[w]
		if !ok {
			return
		}
		b, _ := json.Marshal(ev.value[field])
		v, _ := json.Marshal(value)
		if string(b) != string(v) {
			t.Errorf("%v: %s = %s, want %s", w, field, b, v)
		}
	}
	check(wants[0], "anonymousId", "sdk-anon-1")
	check(wants[0], "traits", map[string]any{"email": "jane@example.com", "name": "Jane Doe"})
	check(wants[1], "properties", map[string]any{"order_id": "o-1", "revenue": 42.5, "currency": "EUR"})
	check(wants[2], "category", "Docs")
	check(wants[4], "groupId", "sdk-group-1")
	check(wants[5], "previousId", "sdk-anon-1")
	if inv := e.invalidSince(before); len(inv) != 0 {
		t.Errorf("the SDK's events were rejected: %+v", inv)
	}
}
