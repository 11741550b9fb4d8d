package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tessera-cdp/tessera/connectors/sink"
)

// TestAudienceThroughTheAPI defines an audience through the API, sends
// events that make a profile enter it, previews it, and reads the
// activation from the activations topic.
func TestAudienceThroughTheAPI(t *testing.T) {
	bin := buildTessera(t)
	p := startProc(t, bin, []string{"TESSERA_ADMIN_TOKEN=tok", "TESSERA_WRITE_KEYS=wk"}, "run", "-c", "../../examples/quickstart/tessera.yaml",
		"--data", t.TempDir(), "--http", "127.0.0.1:0", "--broker-listen", "127.0.0.1:0")
	brokerAddr := p.await(t, "embedded broker listening on ")
	base := "http://" + p.await(t, "http listening on ")
	go drain(p)
	awaitStatus(t, base+"/readyz", 200)

	for _, c := range []struct{ path, body string }{
		{"/v1/features", `{"name":"orders_1d","event":"Order Completed","agg":"count","window":"1d"}`},
		{"/v1/audiences", `{"name":"repeat_buyers","rule":"features.orders_1d >= 2"}`},
	} {
		if code, body := postAuth(t, base+c.path, "tok", c.body); code != 201 {
			t.Fatalf("POST %s: %d %s", c.path, code, body)
		}
	}
	if code, body := postAuth(t, base+"/v1/audiences", "tok", `{"name":"bad","rule":"features.x >"}`); code != 400 || !strings.Contains(body, `"column":`) {
		t.Errorf("bad rule: %d %s", code, body)
	}
	now := time.Now().UTC()
	for i, user := range []string{"a-1", "a-1", "a-2"} {
		ev := fmt.Sprintf(`{"userId":%q,"event":"Order Completed","messageId":"m%d","timestamp":%q}`, user, i, now.Add(time.Duration(i-3)*time.Minute).Format(time.RFC3339))
		sendSegment(t, base, "/v1/track", ev)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := getAuth(t, base+"/v1/profiles/user_id:a-1", "tok")
		if code == 200 && strings.Contains(body, `"audiences":["repeat_buyers"]`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a-1 never entered: %d %s", code, body)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
	// a-2's event, sent last, may reach the hub in a later poll and so a
	// later commit cycle than a-1's: the preview below counts both.
	for {
		code, body := getAuth(t, base+"/v1/profiles/user_id:a-2", "tok")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a-2 never appeared: %d %s", code, body)
		}
		time.Sleep(50 * time.Millisecond) // polling a condition
	}
	code, body := postAuth(t, base+"/v1/audiences/preview", "tok", `{"rule":"features.orders_1d >= 1"}`)
	var pv struct {
		Count  int64
		Sample []string
	}
	if code != 200 || json.Unmarshal([]byte(body), &pv) != nil || pv.Count != 2 || len(pv.Sample) != 2 {
		t.Errorf("preview: %d %s", code, body)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokerAddr), kgo.ConsumeTopics("tessera.activations"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fs := cl.PollFetches(ctx)
	var got []sink.Activation
	fs.EachRecord(func(r *kgo.Record) {
		a, err := sink.Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a)
	})
	if len(got) != 1 || got[0].Type != sink.AudienceEntered || got[0].Name != "repeat_buyers" || !strings.Contains(string(got[0].Profile), `"orders_1d":2`) {
		t.Errorf("activations: %+v", got)
	}
}
