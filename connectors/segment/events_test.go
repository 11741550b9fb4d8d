package segment

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/ingest"
	"github.com/tessera-cdp/tessera/schemas"
)

// TestEventsLanded checks what accepted events look like on tessera.events:
// the key, the completed fields, the clock correction, the batch's shared
// fields, identifiers as strings, no write key.
func TestEventsLanded(t *testing.T) {
	e := newEnv(t)
	auth := basic(testKey)
	cases := []struct {
		name string
		req  request
		// want holds, per event in order of the batch (or the one event),
		// the members it must have (nil: must be absent).
		want []map[string]any
		keys []string
	}{
		{
			name: "track keyed by userId, messageId kept",
			req:  request{path: "/v1/track", auth: auth, body: []byte(`{"userId":"u1","anonymousId":"a1","event":"Signed Up","messageId":"m-1","properties":{"plan":"pro"}}`)},
			want: []map[string]any{{"type": "track", "userId": "u1", "anonymousId": "a1", "event": "Signed Up",
				"messageId": "m-1", "properties": map[string]any{"plan": "pro"},
				"timestamp": "2026-03-04T05:06:07.000Z"}},
			keys: []string{"u1"},
		},
		{
			name: "page keyed by anonymousId without userId",
			req:  request{path: "/v1/page", auth: auth, body: []byte(`{"anonymousId":"a9","name":"Home"}`)},
			want: []map[string]any{{"type": "page", "anonymousId": "a9", "name": "Home", "userId": nil}},
			keys: []string{"a9"},
		},
		{
			name: "numeric userId becomes a string, as written",
			req:  request{path: "/v1/identify", auth: auth, body: []byte(`{"userId":12345678901234567890,"traits":{"email":"jane@example.com"}}`)},
			want: []map[string]any{{"type": "identify", "userId": "12345678901234567890"}},
			keys: []string{"12345678901234567890"},
		},
		{
			name: "single call's own sentAt corrects the clock",
			req: request{path: "/v1/track", auth: auth, body: []byte(`{"userId":"u1","event":"E",` +
				`"timestamp":"2026-03-04T04:00:00.000Z","sentAt":"2026-03-04T04:00:30.000Z"}`)},
			// receivedAt 05:06:07 − (sentAt − timestamp = 30 s)
			want: []map[string]any{{"timestamp": "2026-03-04T05:05:37.000Z", "originalTimestamp": "2026-03-04T04:00:00.000Z",
				"sentAt": "2026-03-04T04:00:30.000Z"}},
			keys: []string{"u1"},
		},
		{
			name: "without sentAt the client's timestamp stands",
			req:  request{path: "/v1/track", auth: auth, body: []byte(`{"userId":"u1","event":"E","timestamp":"2025-12-31T23:59:59+01:00"}`)},
			want: []map[string]any{{"timestamp": "2025-12-31T22:59:59.000Z"}},
			keys: []string{"u1"},
		},
		{
			name: "batch sentAt, context and integrations apply to its events, theirs winning",
			req: request{path: "/v1/batch", auth: auth, body: batchOf(
				`"sentAt":"2026-03-04T04:00:10.000Z","context":{"library":{"name":"analytics-go","version":"3"},"ip":"10.0.0.1"},"integrations":{"All":false}`,
				`{"type":"track","userId":"u1","event":"A","timestamp":"2026-03-04T04:00:00.000Z","context":{"ip":"10.0.0.2","library":{"version":"4"}}}`,
				`{"type":"track","anonymousId":"a1","event":"B","timestamp":"2026-03-04T04:00:00.000Z","sentAt":"2026-03-04T04:00:01.000Z","integrations":{"Mixpanel":true}}`,
			)},
			want: []map[string]any{
				{
					"timestamp":    "2026-03-04T05:05:57.000Z", // 10 s before receivedAt
					"sentAt":       "2026-03-04T04:00:10.000Z",
					"context":      map[string]any{"ip": "10.0.0.2", "library": map[string]any{"name": "analytics-go", "version": "4"}},
					"integrations": map[string]any{"All": false},
				},
				{
					"timestamp":    "2026-03-04T05:06:06.000Z", // its own sentAt: 1 s
					"context":      map[string]any{"library": map[string]any{"name": "analytics-go", "version": "3"}, "ip": "10.0.0.1"},
					"integrations": map[string]any{"Mixpanel": true, "All": false},
				},
			},
			keys: []string{"u1", "a1"},
		},
		{
			name: "alias keyed by userId, numeric previousId as a string; group with numeric groupId",
			req: request{path: "/v1/batch", auth: auth, body: batchOf("",
				`{"type":"alias","userId":"u7","previousId":77}`,
				`{"type":"group","userId":"u7","groupId":5,"traits":{"name":"Initech"}}`,
			)},
			want: []map[string]any{
				{"type": "alias", "previousId": "77"},
				{"type": "group", "groupId": "5"},
			},
			keys: []string{"u7", "u7"},
		},
		{
			name: "writeKey in the body is not stored",
			req:  request{path: "/v1/screen", body: []byte(`{"userId":"u1","name":"Settings","writeKey":"` + testKey + `"}`)},
			want: []map[string]any{{"type": "screen", "writeKey": nil}},
			keys: []string{"u1"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			before := e.snapshot()
			if resp := e.do(c.req); resp.status != 200 {
				t.Fatalf("status %d: %s", resp.status, resp.raw)
			}
			evs := e.eventsSince(before)
			if len(evs) != len(c.want) {
				t.Fatalf("%d events, want %d", len(evs), len(c.want))
			}
			// Events of one batch may land on different partitions: match
			// them by key and type, in batch order within a key.
			for i, want := range c.want {
				ev := findEvent(t, evs, c.keys[i], want)
				checkCompleted(t, ev)
				for k, w := range want {
					got, has := ev.value[k]
					if w == nil {
						if has {
							t.Errorf("event %d has %s = %v, want none", i, k, got)
						}
						continue
					}
					if !reflect.DeepEqual(got, w) {
						t.Errorf("event %d: %s = %#v, want %#v (event %s)", i, k, got, w, ev.raw)
					}
				}
			}
		})
	}
}

// findEvent returns the event keyed key that has want's type and event
// name (when want names them), failing the test if there is none.
func findEvent(t *testing.T, evs []event, key string, want map[string]any) event {
	t.Helper()
	for _, ev := range evs {
		if ev.key != key {
			continue
		}
		if typ, ok := want["type"]; ok && ev.value["type"] != typ {
			continue
		}
		if name, ok := want["event"]; ok && ev.value["event"] != name {
			continue
		}
		if ts, ok := want["timestamp"]; ok && ev.value["timestamp"] != ts {
			continue
		}
		return ev
	}
	t.Fatalf("no event keyed %q like %v among %d", key, want, len(evs))
	return event{}
}

// TestMessageIDGenerated checks that events without a messageId get a
// distinct one each.
func TestMessageIDGenerated(t *testing.T) {
	e := newEnv(t)
	before := e.snapshot()
	ev := `{"type":"track","userId":"u1","event":"E"}`
	if resp := e.do(request{path: "/v1/batch", auth: basic(testKey), body: batchOf("", ev, ev, ev)}); resp.status != 200 {
		t.Fatalf("status %d: %s", resp.status, resp.raw)
	}
	seen := map[string]bool{}
	for _, ev := range e.eventsSince(before) {
		id, _ := ev.value["messageId"].(string)
		if id == "" || seen[id] {
			t.Errorf("messageId %q missing or repeated", id)
		}
		seen[id] = true
	}
	if len(seen) != 3 {
		t.Errorf("%d distinct messageIds, want 3", len(seen))
	}
}

// TestTrackingPlanBlocked runs a real tracking plan with policy block in
// the Writer: blocked events are listed as rejected (a single call gets
// 400), are not on tessera.events, and are on the invalid topic with the
// source of their request.
func TestTrackingPlanBlocked(t *testing.T) {
	dir := t.TempDir()
	schema := `{"type":"object","required":["revenue"],"properties":{"revenue":{"type":"number"}}}`
	if err := os.WriteFile(filepath.Join(dir, "order.json"), []byte(schema), 0o600); err != nil {
		t.Fatal(err)
	}
	plans, err := schemas.LoadTrackingPlans([]config.TrackingPlan{{Event: "Order Completed", Schema: "order.json", Policy: "block"}}, dir)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *envConfig) { c.writerOpts = append(c.writerOpts, ingest.TrackingPlans(plans)) })
	auth := basic(testKey)

	before := e.snapshot()
	resp := e.do(request{path: "/v1/batch", auth: auth, body: batchOf("",
		`{"type":"track","userId":"u1","event":"Order Completed","properties":{"revenue":10}}`,
		`{"type":"track","userId":"u1","event":"Order Completed","properties":{"revenue":"ten"}}`,
		`{"type":"track","userId":"u1"}`,
		`{"type":"track","userId":"u1","event":"Viewed"}`,
	)})
	if resp.status != 200 {
		t.Fatalf("status %d: %s", resp.status, resp.raw)
	}
	rejected, _ := resp.json["rejected"].([]any)
	if len(rejected) != 2 {
		t.Fatalf("rejected %v, want indexes 1 (blocked) and 2 (invalid)", resp.json["rejected"])
	}
	for i, want := range []struct {
		index float64
		error string
	}{{1, `tracking plan "Order Completed"`}, {2, "event: is required"}} {
		r := rejected[i].(map[string]any)
		if r["index"] != want.index || !strings.Contains(r["error"].(string), want.error) {
			t.Errorf("rejected[%d] = %v, want index %v saying %q", i, r, want.index, want.error)
		}
	}
	if evs := e.eventsSince(before); len(evs) != 2 {
		t.Errorf("%d events on %s, want 2", len(evs), eventsTopic)
	}
	sources := map[string]string{}
	for _, iv := range e.invalidSince(before) {
		sources[iv.Source] = iv.Reason
	}
	if !strings.Contains(sources["http:/v1/batch[1]"], `tracking plan "Order Completed"`) ||
		!strings.Contains(sources["http:/v1/batch[2]"], "event: is required") || len(sources) != 2 {
		t.Errorf("invalid topic holds %v, want batch[1] blocked and batch[2] invalid", sources)
	}

	before = e.snapshot()
	resp = e.do(request{path: "/v1/track", auth: auth, body: []byte(`{"userId":"u1","event":"Order Completed","properties":{}}`)})
	if resp.status != 400 || !strings.Contains(resp.json["error"].(string), "tracking plan") {
		t.Errorf("blocked single call answered %d %s, want 400 naming the plan", resp.status, resp.raw)
	}
	if evs := e.eventsSince(before); len(evs) != 0 {
		t.Errorf("blocked event reached %s", eventsTopic)
	}
	if inv := e.invalidSince(before); len(inv) != 1 || inv[0].Source != "http:/v1/track" {
		t.Errorf("invalid topic holds %+v, want the blocked call from http:/v1/track", inv)
	}
}

// failingPublisher is a real Writer whose Publish or Reject fails as a
// broker outage would make them.
type failingPublisher struct {
	*ingest.Writer
	publishErr, rejectErr error
}

func (p failingPublisher) Publish(ctx context.Context, evs []schemas.Normalized) (ingest.Result, error) {
	if p.publishErr != nil {
		return ingest.Result{}, p.publishErr
	}
	return p.Writer.Publish(ctx, evs)
}

// PublishFrom overrides the Writer's, which the handler prefers.
func (p failingPublisher) PublishFrom(ctx context.Context, evs []schemas.Normalized, source func(int) string) (ingest.Result, error) {
	if p.publishErr != nil {
		return ingest.Result{}, p.publishErr
	}
	return p.Writer.PublishFrom(ctx, evs, source)
}

func (p failingPublisher) Reject(ctx context.Context, rs ...ingest.Rejection) error {
	if p.rejectErr != nil {
		return p.rejectErr
	}
	return p.Writer.Reject(ctx, rs...)
}

// TestUnavailable answers 503, so that SDKs retry, when the events or the
// rejected ones cannot be written: with a closed producer (the real
// failure), and with each of the two writes failing alone.
func TestUnavailable(t *testing.T) {
	auth := basic(testKey)
	good := `{"type":"track","userId":"u1","event":"E"}`
	bad := `{"type":"track","userId":"u1"}`
	outage := errors.New("broker unreachable")
	cases := []struct {
		name string
		pub  func(w *ingest.Writer) Publisher
		req  request
	}{
		{"closed producer, single call", func(w *ingest.Writer) Publisher { w.Close(); return w },
			request{path: "/v1/track", auth: auth, body: []byte(good)}},
		{"closed producer, batch", func(w *ingest.Writer) Publisher { w.Close(); return w },
			request{path: "/v1/batch", auth: auth, body: batchOf("", good, bad)}},
		{"invalid single call cannot be recorded", func(w *ingest.Writer) Publisher { return failingPublisher{Writer: w, rejectErr: outage} },
			request{path: "/v1/track", auth: auth, body: []byte(bad)}},
		{"batch's rejected events cannot be recorded", func(w *ingest.Writer) Publisher { return failingPublisher{Writer: w, rejectErr: outage} },
			request{path: "/v1/batch", auth: auth, body: batchOf("", good, bad)}},
		{"batch's events cannot be published", func(w *ingest.Writer) Publisher { return failingPublisher{Writer: w, publishErr: outage} },
			request{path: "/v1/batch", auth: auth, body: batchOf("", good, bad)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, func(cfg *envConfig) { cfg.publisher = c.pub; cfg.timeout = 5 * time.Second })
			resp := e.do(c.req)
			if resp.status != 503 || !strings.Contains(resp.json["error"].(string), "retry") {
				t.Errorf("answered %d %s, want 503 asking to retry", resp.status, resp.raw)
			}
		})
	}
}

// TestBrokerDown answers 503 within Options.Timeout when the broker is
// gone, rather than holding the request until the client gives up.
func TestBrokerDown(t *testing.T) {
	const timeout = time.Second
	e := newEnv(t, func(c *envConfig) { c.timeout = timeout })
	e.cluster.Close()
	for _, req := range []request{
		{path: "/v1/track", auth: basic(testKey), body: []byte(`{"userId":"u1","event":"E"}`)},
		{path: "/v1/batch", auth: basic(testKey), body: batchOf("", `{"type":"track","userId":"u1","event":"E"}`, `{"type":"track"}`)},
	} {
		start := time.Now()
		resp := e.do(req)
		if resp.status != 503 {
			t.Errorf("%s with the broker down: %d %s, want 503", req.path, resp.status, resp.raw)
		}
		if took := time.Since(start); took > timeout+5*time.Second {
			t.Errorf("%s took %v to answer, want about the timeout %v", req.path, took, timeout)
		}
	}
}

// TestMetricsAndConcurrency sends requests from many goroutines (the
// pooled state must not leak between them: run with -race) and checks that
// every event landed as its request sent it, and that the metrics count
// them exactly. Each request's events are normalised into its pooled
// state's buffer, which the next request overwrites: an event whose bytes
// a later request reused would show here under another user's key.
func TestMetricsAndConcurrency(t *testing.T) {
	e := newEnv(t)
	auth := basic(testKey)
	const workers, rounds = 8, 10
	before := e.snapshot()
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds*3)
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				id := fmt.Sprintf("w%d-r%d", w, r)
				for _, req := range []request{
					{path: "/v1/batch", auth: auth, body: batchOf("",
						`{"type":"track","userId":"`+id+`","event":"A"}`,
						`{"type":"track","userId":"`+id+`"}`,
						`{"type":"identify","userId":"`+id+`"}`), gzip: r%2 == 0},
					{path: "/v1/track", auth: auth, body: []byte(`{"userId":"` + id + `","event":"B"}`)},
					{path: "/v1/track", auth: basic("wrong"), body: []byte(`{"userId":"` + id + `","event":"B"}`)},
				} {
					resp, err := e.send(req)
					if err != nil {
						errs <- err
						continue
					}
					want := 200
					if req.auth != auth {
						want = 401
					}
					if resp.status != want {
						errs <- fmt.Errorf("%s %s: %d, want %d: %s", id, req.path, resp.status, want, resp.raw)
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	n := workers * rounds
	evs := e.eventsSince(before)
	if len(evs) != 3*n {
		t.Errorf("%d events, want %d", len(evs), 3*n)
	}
	perKey := map[string][]string{}
	for _, ev := range evs {
		if ev.value["userId"] != ev.key {
			t.Errorf("event under key %s is %s", ev.key, ev.raw)
		}
		name, _ := ev.value["event"].(string)
		perKey[ev.key] = append(perKey[ev.key], ev.value["type"].(string)+":"+name)
	}
	for k, got := range perKey {
		slices.Sort(got)
		if want := []string{"identify:", "track:A", "track:B"}; !slices.Equal(got, want) {
			t.Errorf("key %s has events %v, want %v", k, got, want)
		}
	}
	if inv := e.invalidSince(before); len(inv) != n {
		t.Errorf("%d invalid, want %d", len(inv), n)
	}
	for _, m := range []struct {
		name string
		got  float64
		want float64
	}{
		{"events batch accepted", testutil.ToFloat64(metric(t, e, "tessera_ingest_events_total", "/v1/batch", "accepted")), float64(2 * n)},
		{"events batch rejected", testutil.ToFloat64(metric(t, e, "tessera_ingest_events_total", "/v1/batch", "rejected")), float64(n)},
		{"events track accepted", testutil.ToFloat64(metric(t, e, "tessera_ingest_events_total", "/v1/track", "accepted")), float64(n)},
		{"requests batch 200", testutil.ToFloat64(metric(t, e, "tessera_ingest_requests_total", "/v1/batch", "200")), float64(n)},
		{"requests track 200", testutil.ToFloat64(metric(t, e, "tessera_ingest_requests_total", "/v1/track", "200")), float64(n)},
		{"requests track 401", testutil.ToFloat64(metric(t, e, "tessera_ingest_requests_total", "/v1/track", "401")), float64(n)},
	} {
		if m.got != m.want {
			t.Errorf("%s = %v, want %v", m.name, m.got, m.want)
		}
	}
	if c, err := testutil.GatherAndCount(e.reg, "tessera_ingest_request_seconds"); err != nil || c != len(routes) {
		t.Errorf("tessera_ingest_request_seconds has %d series (%v), want one per endpoint, %d", c, err, len(routes))
	}
	// /metrics on the api.Server shows them.
	resp, err := e.get("/metrics")
	if err != nil || !strings.Contains(resp, `tessera_ingest_requests_total{code="401",endpoint="/v1/track"} 80`) {
		t.Errorf("/metrics lacks the request counts (%v)", err)
	}
}
