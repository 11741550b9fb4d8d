package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/internal/segmentsdk"
)

// TestSegmentSDKToProfile drives `tessera run` with Segment's official Node
// SDK (identify, track, page, screen, group, alias and batched bursts) and
// reads the merged profile back through the profile API.
func TestSegmentSDKToProfile(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node is required in CI (.ci/run installs it)")
		}
		t.Skip("node not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sdk, err := segmentsdk.Install(ctx)
	if err != nil {
		t.Fatal(err)
	}

	bin := buildTessera(t)
	p := startProc(t, bin, []string{"TESSERA_WRITE_KEYS=wk-test", "TESSERA_ADMIN_TOKEN=admin-test"},
		"run", "-c", "../../examples/quickstart/tessera.yaml", "--data", t.TempDir(),
		"--http", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0")
	p.await(t, "embedded broker listening on ")
	base := "http://" + p.await(t, "http listening on ")
	go drain(p)
	awaitStatus(t, base+"/readyz", 200)

	cmd := exec.CommandContext(ctx, node, "send.mjs")
	cmd.Dir = sdk
	cmd.Env = append(os.Environ(), "TESSERA_SEGMENT_HOST="+base, "TESSERA_WRITE_KEY=wk-test")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("node send.mjs: %v\n%s", err, out)
	}

	want := "[anonymous_id:sdk-anon-1 email:jane@example.com user_id:sdk-user-1]"
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := getAuth(t, base+"/v1/profiles/email:jane@example.com", "admin-test")
		var prof struct {
			Identifiers []struct{ Type, Value string }
			Traits      map[string]any   `json:"traits"`
			EventCounts map[string]int64 `json:"event_counts"`
			Events      int64            `json:"events"`
		}
		if code == 200 {
			if err := json.Unmarshal([]byte(body), &prof); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, id := range prof.Identifiers {
				ids = append(ids, id.Type+":"+id.Value)
			}
			sort.Strings(ids)
			if fmt.Sprint(ids) == want && prof.Events == 6 {
				if prof.Traits["name"] != "Jane Doe" || prof.EventCounts["Order Completed"] != 1 || prof.EventCounts["page"] != 1 || prof.EventCounts["alias"] != 1 {
					t.Errorf("profile: traits %v, counts %v", prof.Traits, prof.EventCounts)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("profile never settled: %d %s; want identifiers %s and 6 events", code, body, want)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
	// The burst's anonymous visitors each have a profile of their own.
	if code, body := getAuth(t, base+"/v1/profiles/anonymous_id:sdk-burst-7", "admin-test"); code != 200 || !strings.Contains(body, `"Burst":1`) {
		t.Errorf("burst visitor: %d %s", code, body)
	}
}

func drain(p *proc) {
	for p.lines.Scan() {
	}
}
