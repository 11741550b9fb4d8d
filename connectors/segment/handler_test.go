package segment

import (
	"bytes"
	"encoding/base64"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/schemas"
)

// sized returns prefix + padding + suffix, exactly n bytes long.
func sized(t *testing.T, prefix, suffix string, n int) []byte {
	t.Helper()
	pad := n - len(prefix) - len(suffix)
	if pad < 0 {
		t.Fatalf("cannot size %q…%q to %d bytes", prefix, suffix, n)
	}
	return []byte(prefix + strings.Repeat("x", pad) + suffix)
}

// trackOfSize is a valid track event of exactly n bytes of compact JSON.
func trackOfSize(t *testing.T, n int) []byte {
	return sized(t, `{"type":"track","userId":"big","event":"Padded","properties":{"pad":"`, `"}}`, n)
}

// batchOf is a batch body of the given events, with extra top-level members.
func batchOf(extra string, events ...string) []byte {
	b := `{"batch":[` + strings.Join(events, ",") + `]`
	if extra != "" {
		b += "," + extra
	}
	return []byte(b + "}")
}

func repeatEvents(n int, ev string) []string {
	evs := make([]string, n)
	for i := range evs {
		evs[i] = ev
	}
	return evs
}

// invalidWant is one record expected on tessera.events.invalid.
type invalidWant struct {
	source string
	reason string // a substring of the reason
}

// TestRequests answers every bad input of the ingest issue as specified,
// and the good ones too: the status, the JSON answer, and exactly what
// reached tessera.events and tessera.events.invalid.
func TestRequests(t *testing.T) {
	e := newEnv(t)
	auth := basic(testKey)
	track := `{"type":"track","userId":"u1","event":"Signed Up"}`
	bigBatch := func(n int) []byte {
		return batchOf("", repeatEvents(n, `{"type":"track","userId":"u1","event":"E"}`)...)
	}
	cases := []struct {
		name    string
		req     request
		status  int
		json    map[string]any // members the answer must have
		errHas  string         // a substring of the answer's error
		events  int            // records written to tessera.events
		invalid []invalidWant  // records written to tessera.events.invalid
	}{
		// Authentication.
		{name: "no auth at all", req: request{path: "/v1/track", body: []byte(track)},
			status: 401, errHas: "missing write key"},
		{name: "wrong key in the header", req: request{path: "/v1/track", body: []byte(track), auth: basic("nope")},
			status: 401, errHas: "invalid write key"},
		{name: "bearer instead of basic", req: request{path: "/v1/track", body: []byte(track), auth: "Bearer " + testKey},
			status: 401, errHas: "HTTP Basic"},
		{name: "header not base64", req: request{path: "/v1/track", body: []byte(track), auth: "Basic %%%"},
			status: 401, errHas: "base64"},
		{name: "basic without the colon, as Segment still takes",
			req:    request{path: "/v1/track", body: []byte(track), auth: "Basic " + b64(testKey)},
			status: 200, events: 1},
		{name: "writeKey in a single-event body",
			req:    request{path: "/v1/identify", body: []byte(`{"userId":"u1","traits":{"a":1},"writeKey":"` + testKey + `"}`)},
			status: 200, events: 1},
		{name: "wrong writeKey in the body",
			req:    request{path: "/v1/identify", body: []byte(`{"userId":"u1","writeKey":"nope"}`)},
			status: 401, errHas: "invalid write key"},
		{name: "writeKey in a batch body",
			req:    request{path: "/v1/batch", body: batchOf(`"writeKey":"`+testKey+`"`, track, track)},
			status: 200, events: 2},
		{name: "a header decides alone: good header, wrong body key",
			req:    request{path: "/v1/track", auth: auth, body: []byte(`{"userId":"u1","event":"E","writeKey":"nope"}`)},
			status: 200, events: 1},
		{name: "a header decides alone: wrong header, good body key",
			req:    request{path: "/v1/track", auth: basic("nope"), body: []byte(`{"userId":"u1","event":"E","writeKey":"` + testKey + `"}`)},
			status: 401},
		{name: "an invalid event without a key writes nothing",
			req:    request{path: "/v1/track", body: []byte(`{"userId":"u1"}`)},
			status: 401},

		// Methods, content type and encoding.
		{name: "GET is not allowed", req: request{method: "GET", path: "/v1/track", auth: auth},
			status: 405, errHas: "allowed: POST"},
		{name: "PUT on batch is not allowed", req: request{method: "PUT", path: "/v1/batch", auth: auth, body: batchOf("", track)},
			status: 405},
		{name: "text/plain is tolerated, as analytics.js sends it",
			req:    request{path: "/v1/track", auth: auth, body: []byte(track), ctype: "text/plain"},
			status: 200, events: 1},
		{name: "gzip single event", req: request{path: "/v1/track", auth: auth, body: []byte(track), gzip: true},
			status: 200, events: 1},
		{name: "gzip batch", req: request{path: "/v1/batch", auth: auth, body: batchOf("", track, track, track), gzip: true},
			status: 200, events: 3},
		{name: "says gzip but is not", req: request{path: "/v1/track", auth: auth, body: []byte(track), encoding: "gzip"},
			status: 400, errHas: "not gzip"},
		{name: "truncated gzip", req: request{path: "/v1/batch", auth: auth, body: truncatedGzip(t, batchOf("", track)), encoding: "gzip"},
			status: 400, errHas: "gzip"},
		{name: "unsupported encoding", req: request{path: "/v1/track", auth: auth, body: []byte(track), encoding: "br"},
			status: 415, errHas: "br"},

		// Malformed JSON names the position.
		{name: "malformed: missing comma", req: request{path: "/v1/track", auth: auth, body: []byte(`{"userId":"u1" "event":"E"}`)},
			status: 400, json: map[string]any{"position": 15.0}, errHas: "at byte 15 (line 1, column 16)"},
		{name: "malformed: truncated", req: request{path: "/v1/batch", auth: auth, body: []byte(`{"batch":[{"type":"track"`)},
			status: 400, json: map[string]any{"position": 25.0}},
		{name: "malformed: empty body", req: request{path: "/v1/track", auth: auth},
			status: 400, json: map[string]any{"position": 0.0}},
		{name: "malformed: unknown escape (fastjson alone would take it)",
			req:    request{path: "/v1/track", auth: auth, body: []byte(`{"userId":"u\q","event":"E"}`)},
			status: 400, json: map[string]any{"position": 13.0}, errHas: "string escape"},
		{name: "malformed: control character in a string",
			req:    request{path: "/v1/track", auth: auth, body: []byte("{\"userId\":\"u\x01\",\"event\":\"E\"}")},
			status: 400, errHas: "malformed JSON"},
		{name: "malformed gzip content", req: request{path: "/v1/batch", auth: auth, body: []byte(`{"batch":[}`), gzip: true},
			status: 400, json: map[string]any{"position": 10.0}},

		// Limits: exactly at, and one over.
		{name: "single event of exactly 32 KB",
			req:    request{path: "/v1/track", auth: auth, body: trackOfSize(t, schemas.MaxEventBytes)},
			status: 200, events: 1},
		{name: "single event of 32 KB + 1",
			req:    request{path: "/v1/track", auth: auth, body: trackOfSize(t, schemas.MaxEventBytes+1)},
			status: 413, json: map[string]any{"limit": "event_bytes", "max": float64(schemas.MaxEventBytes)}},
		{name: "single event of 32 KB + 1, gzipped: the limit is on the decompressed size",
			req:    request{path: "/v1/track", auth: auth, body: trackOfSize(t, schemas.MaxEventBytes+1), gzip: true},
			status: 413, json: map[string]any{"limit": "event_bytes"}},
		{name: "batch of exactly 500 KB",
			req:    request{path: "/v1/batch", auth: auth, body: sized(t, `{"batch":[`+track+`],"pad":"`, `"}`, schemas.MaxBatchBytes)},
			status: 200, events: 1},
		{name: "batch of 500 KB + 1",
			req:    request{path: "/v1/batch", auth: auth, body: sized(t, `{"batch":[`+track+`],"pad":"`, `"}`, schemas.MaxBatchBytes+1)},
			status: 413, json: map[string]any{"limit": "batch_bytes", "max": float64(schemas.MaxBatchBytes)},
			errHas: "512000 bytes"},
		{name: "gzip bomb: 500 KB + 1 decompressed from a few hundred bytes",
			req:    request{path: "/v1/batch", auth: auth, body: sized(t, `{"batch":[`+track+`],"pad":"`, `"}`, schemas.MaxBatchBytes+1), gzip: true},
			status: 413, json: map[string]any{"limit": "batch_bytes"}},
		{name: "gzip bomb: 50 MB of zeros", req: request{path: "/v1/batch", auth: auth, body: make([]byte, 50<<20), gzip: true},
			status: 413, json: map[string]any{"limit": "batch_bytes"}},
		{name: "batch of 2500 events", req: request{path: "/v1/batch", auth: auth, body: bigBatch(schemas.MaxBatchEvents)},
			status: 200, events: schemas.MaxBatchEvents},
		{name: "batch of 2501 events", req: request{path: "/v1/batch", auth: auth, body: bigBatch(schemas.MaxBatchEvents + 1)},
			status: 400, json: map[string]any{
				"error": "batch has 2501 events, the limit is 2500", "limit": "events_per_batch", "max": 2500.0}},
		{name: "event of exactly 32 KB in a batch",
			req:    request{path: "/v1/batch", auth: auth, body: batchOf("", track, string(trackOfSize(t, schemas.MaxEventBytes)))},
			status: 200, events: 2},
		{name: "event of 32 KB + 1 in a batch is rejected, the rest accepted",
			req:    request{path: "/v1/batch", auth: auth, body: batchOf("", track, string(trackOfSize(t, schemas.MaxEventBytes+1)))},
			status: 200, events: 1,
			json:    map[string]any{"rejected": []any{map[string]any{"index": 1.0, "error": "event is 32769 bytes, the limit is 32768 (32 KB)"}}},
			invalid: []invalidWant{{"http:/v1/batch[1]", "event is 32769 bytes, the limit is 32768"}}},
		{name: "batch context and integrations of exactly 8 KB",
			req: request{path: "/v1/batch", auth: auth, body: batchOf(
				string(sized(t, `"integrations":{"All":true},"context":{"pad":"`, `"}`, MaxBatchContextBytes+len(`"integrations":,"context":`))), track)},
			status: 200, events: 1},
		{name: "batch context and integrations of 8 KB + 1",
			req: request{path: "/v1/batch", auth: auth, body: batchOf(
				string(sized(t, `"integrations":{"All":true},"context":{"pad":"`, `"}`, MaxBatchContextBytes+1+len(`"integrations":,"context":`))), track)},
			status: 400, json: map[string]any{"limit": "batch_context_bytes", "max": float64(MaxBatchContextBytes)}},

		// An invalid single event: 400 with the field, and the raw event on the invalid topic.
		{name: "track without event", req: request{path: "/v1/track", auth: auth, body: []byte(`{"userId":"u1"}`)},
			status: 400, json: map[string]any{"field": "event", "reason": "is required for track and must be a non-empty string"},
			invalid: []invalidWant{{"http:/v1/track", "event: is required for track"}}},
		{name: "identify without any id", req: request{path: "/v1/identify", auth: auth, body: []byte(`{"traits":{"a":1}}`)},
			status: 400, json: map[string]any{"field": "userId"},
			invalid: []invalidWant{{"http:/v1/identify", "userId or anonymousId is required"}}},
		{name: "page with properties not an object", req: request{path: "/v1/page", auth: auth, body: []byte(`{"anonymousId":"a1","properties":[1]}`)},
			status: 400, json: map[string]any{"field": "properties"},
			invalid: []invalidWant{{"http:/v1/page", "properties: must be an object, got array"}}},
		{name: "screen with a bad timestamp", req: request{path: "/v1/screen", auth: auth, body: []byte(`{"userId":"u1","timestamp":"yesterday"}`)},
			status: 400, json: map[string]any{"field": "timestamp"},
			invalid: []invalidWant{{"http:/v1/screen", "not an ISO-8601 timestamp"}}},
		{name: "group without groupId", req: request{path: "/v1/group", auth: auth, body: []byte(`{"userId":"u1"}`)},
			status: 400, json: map[string]any{"field": "groupId"},
			invalid: []invalidWant{{"http:/v1/group", "groupId: is required for group"}}},
		{name: "alias without previousId", req: request{path: "/v1/alias", auth: auth, body: []byte(`{"userId":"u1"}`)},
			status: 400, json: map[string]any{"field": "previousId"},
			invalid: []invalidWant{{"http:/v1/alias", "previousId: is required for alias"}}},
		{name: "messageId of 101 characters",
			req:    request{path: "/v1/track", auth: auth, body: []byte(`{"userId":"u1","event":"E","messageId":"` + strings.Repeat("m", 101) + `"}`)},
			status: 400, json: map[string]any{"field": "messageId"},
			invalid: []invalidWant{{"http:/v1/track", "messageId: is 101 characters, at most 100"}}},
		{name: "type that the endpoint does not take",
			req:    request{path: "/v1/track", auth: auth, body: []byte(`{"type":"identify","userId":"u1","event":"E"}`)},
			status: 400, json: map[string]any{"field": "type"},
			invalid: []invalidWant{{"http:/v1/track", `is "identify" but the endpoint takes "track"`}}},
		{name: "a JSON array to a single-event endpoint",
			req:    request{path: "/v1/track", auth: auth, body: []byte(`[1,2]`)},
			status: 400, invalid: []invalidWant{{"http:/v1/track", "event must be a JSON object, got array"}}},

		// Batches: wrong as a whole, or partly invalid.
		{name: "batch that is not an object", req: request{path: "/v1/batch", auth: auth, body: []byte(`[` + track + `]`)},
			status: 400, errHas: "must be a JSON object"},
		{name: "batch without a batch array", req: request{path: "/v1/batch", auth: auth, body: []byte(`{"events":[]}`)},
			status: 400, json: map[string]any{"field": "batch"}},
		{name: "batch with a bad sentAt", req: request{path: "/v1/batch", auth: auth, body: batchOf(`"sentAt":"noon"`, track)},
			status: 400, json: map[string]any{"field": "sentAt"}},
		{name: "batch with context not an object", req: request{path: "/v1/batch", auth: auth, body: batchOf(`"context":"x"`, track)},
			status: 400, json: map[string]any{"field": "context"}},
		{name: "empty batch", req: request{path: "/v1/batch", auth: auth, body: batchOf("")},
			status: 200, json: map[string]any{"success": true}},
		{name: "partial batch: the valid events are accepted, each invalid one answered and kept",
			req: request{path: "/v1/batch", auth: auth, body: batchOf("",
				track,
				`{"type":"track","userId":"u1"}`,
				`{"type":"identify","anonymousId":"a1"}`,
				`{"type":"teleport","userId":"u1"}`,
				`{"type":"alias","userId":"u2","previousId":"a1"}`,
				`42`,
			)},
			status: 200, events: 3,
			json: map[string]any{"success": true, "rejected": []any{
				map[string]any{"index": 1.0, "error": "event: is required for track and must be a non-empty string"},
				map[string]any{"index": 3.0, "error": `type: "teleport" is not one of identify, track, page, screen, group, alias`},
				map[string]any{"index": 5.0, "error": "event must be a JSON object, got number"},
			}},
			invalid: []invalidWant{
				{"http:/v1/batch[1]", "event: is required for track"},
				{"http:/v1/batch[3]", `"teleport" is not one of`},
				{"http:/v1/batch[5]", "must be a JSON object"},
			}},
		{name: "import is batch", req: request{path: "/v1/import", auth: auth, body: batchOf("", track, `{"type":"group","userId":"u1"}`)},
			status: 200, events: 1,
			json:    map[string]any{"rejected": []any{map[string]any{"index": 1.0, "error": "groupId: is required for group"}}},
			invalid: []invalidWant{{"http:/v1/import[1]", "groupId: is required for group"}}},
		{name: "unknown path", req: request{path: "/v1/teleport", auth: auth, body: []byte(track)},
			status: 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			before := e.snapshot()
			resp := e.do(c.req)
			if resp.status != c.status {
				t.Fatalf("status %d, want %d; answer %s", resp.status, c.status, resp.raw)
			}
			if c.status == 200 {
				if resp.json["success"] != true {
					t.Errorf("answer %s lacks success:true", resp.raw)
				}
				if _, ok := c.json["rejected"]; !ok {
					if _, has := resp.json["rejected"]; has {
						t.Errorf("answer %s has a rejected list, want none", resp.raw)
					}
				}
			} else if msg, _ := resp.json["error"].(string); msg == "" {
				t.Errorf("answer %s has no error message", resp.raw)
			}
			if c.status == 401 && resp.header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
			if c.status == 405 && resp.header.Get("Allow") != "POST" {
				t.Errorf("405 with Allow %q, want POST", resp.header.Get("Allow"))
			}
			for k, want := range c.json {
				if got := resp.json[k]; !reflect.DeepEqual(got, want) {
					t.Errorf("answer's %s = %#v, want %#v (answer %s)", k, got, want, resp.raw)
				}
			}
			if msg, _ := resp.json["error"].(string); !strings.Contains(msg, c.errHas) {
				t.Errorf("error %q does not say %q", msg, c.errHas)
			}
			evs := e.eventsSince(before)
			if len(evs) != c.events {
				t.Errorf("%d events written to %s, want %d", len(evs), eventsTopic, c.events)
			}
			for _, ev := range evs {
				checkCompleted(t, ev)
			}
			inv := e.invalidSince(before)
			if len(inv) != len(c.invalid) {
				t.Fatalf("%d records written to %s, want %d: %+v", len(inv), invalidTopic, len(c.invalid), inv)
			}
			bySource := map[string]schemas.InvalidEvent{}
			for _, iv := range inv {
				bySource[iv.Source] = iv
			}
			for _, want := range c.invalid {
				iv, ok := bySource[want.source]
				if !ok {
					t.Errorf("no record from %s on %s (have %+v)", want.source, invalidTopic, inv)
					continue
				}
				if !strings.Contains(iv.Reason, want.reason) {
					t.Errorf("%s: reason %q does not say %q", want.source, iv.Reason, want.reason)
				}
				if len(iv.Raw) == 0 || !iv.ReceivedAt.After(time.Time{}) {
					t.Errorf("%s: record lacks the raw input or the time: %+v", want.source, iv)
				}
			}
			if c.req.path != "/v1/batch" && c.req.path != "/v1/import" && len(inv) == 1 && !c.req.gzip {
				if !bytes.Equal(inv[0].Raw, c.req.body) {
					t.Errorf("raw input on %s is %q, want the body as received %q", invalidTopic, inv[0].Raw, c.req.body)
				}
			}
		})
	}
}

// b64 is s in base64, for a Basic header without the colon.
func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func truncatedGzip(t *testing.T, b []byte) []byte {
	z := gzipped(t, b)
	return z[:len(z)-6]
}

// checkCompleted checks what every event on tessera.events must have:
// keyed by userId, else anonymousId; type, messageId, timestamp and
// receivedAt set; no write key.
func checkCompleted(t *testing.T, ev event) {
	t.Helper()
	v := ev.value
	want, _ := v["userId"].(string)
	if want == "" {
		want, _ = v["anonymousId"].(string)
	}
	if ev.key == "" || ev.key != want {
		t.Errorf("event keyed %q, want userId else anonymousId %q: %s", ev.key, want, ev.raw)
	}
	for _, f := range []string{"type", "messageId", "timestamp", "receivedAt"} {
		if s, _ := v[f].(string); s == "" {
			t.Errorf("event lacks %s: %s", f, ev.raw)
		}
	}
	if v["receivedAt"] != "2026-03-04T05:06:07.000Z" {
		t.Errorf("receivedAt %v, want the handler's clock 2026-03-04T05:06:07.000Z", v["receivedAt"])
	}
	if _, ok := v["writeKey"]; ok {
		t.Errorf("event carries the write key: %s", ev.raw)
	}
}
