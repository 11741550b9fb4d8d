package segment

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tessera-cdp/tessera/schemas"
)

// FuzzBatch feeds arbitrary bodies to the batch parser as the handler
// does (Parse, then parseBatch). It must never panic, and:
//   - malformed JSON is a SyntaxError whose position lies in the body;
//   - a batch refused as a whole is a 400 that fills nothing;
//   - otherwise every event is accounted for exactly once, accepted or
//     rejected, in order; accepted ones are valid JSON with type,
//     messageId, timestamp and receivedAt set, keyed by userId else
//     anonymousId, without a write key; rejected ones carry a reason, a
//     source naming their index and their raw JSON.
//
// go test runs the seeds below; CI and developers run it longer with
// go test -fuzz FuzzBatch -fuzztime 30s ./connectors/segment/.
func FuzzBatch(f *testing.F) {
	for _, seed := range []string{
		`{"batch":[{"type":"track","userId":"u1","event":"E"}]}`,
		`{"batch":[{"type":"identify","anonymousId":"a","traits":{"email":"x@y"}},{"type":"track"}],"sentAt":"2026-01-01T00:00:00Z"}`,
		`{"batch":[{"type":"alias","userId":1,"previousId":2.5e3},{"type":"group","userId":"u","groupId":null}],"context":{"ip":"1"},"integrations":{"All":false}}`,
		`{"batch":[{"type":"page","userId":"u","context":{"library":{"name":"n"}},"timestamp":"2026-01-01T00:00:00.123+02:00"}],"context":{"library":{"version":"1"}}}`,
		`{"batch":[{"type":"screen","userId":"\u0000\ud800","messageId":"\u00e9","writeKey":"k"},42,null,"x",[]],"writeKey":"k"}`,
		`{"batch":[{"type":"track","userId":"u","event":"E","userId":"dup","\u0001":"\u007f"}]}`,
		`{"batch":[],"sentAt":"noon"}`,
		`{"batch":{}}`,
		`{"batch":[{"type":"track","userId":"u","event":"E","timestamp":"0001-01-01T00:00:00Z","sentAt":"9999-12-31T23:59:59Z"}]}`,
		`[1,2,3]`,
		`{"batch":[{"type":"track"`,
		`{"a":"\q"}`,
		``,
	} {
		f.Add([]byte(seed))
	}
	received := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		st := new(state)
		v, err := st.n.Parse(body)
		if err != nil {
			var se *schemas.SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > int64(len(body)) {
				t.Fatalf("Parse(%q) = %v, want a SyntaxError positioned in the body", body, err)
			}
			return
		}
		aerr := st.parseBatch(v, received, "/v1/batch")
		if aerr != nil {
			if aerr.status != http.StatusBadRequest || aerr.body.Error == "" {
				t.Fatalf("batch refused with %d %q, want 400 with a message", aerr.status, aerr.body.Error)
			}
			if len(st.evs)+len(st.rejected)+len(st.rejections) != 0 {
				t.Fatalf("batch refused as a whole but events were kept")
			}
			return
		}
		items := v.GetArray("batch")
		if len(st.evs)+len(st.rejected) != len(items) || len(st.index) != len(st.evs) || len(st.rejections) != len(st.rejected) {
			t.Fatalf("%d events: %d accepted (%d indexes), %d rejected (%d rejections)",
				len(items), len(st.evs), len(st.index), len(st.rejected), len(st.rejections))
		}
		seen := make([]bool, len(items))
		for i, idx := range st.index {
			if i > 0 && idx <= st.index[i-1] {
				t.Fatalf("accepted indexes out of order: %v", st.index)
			}
			seen[idx] = true
		}
		for i, r := range st.rejected {
			if seen[r.Index] {
				t.Fatalf("event %d both accepted and rejected", r.Index)
			}
			seen[r.Index] = true
			rj := st.rejections[i]
			if r.Error == "" || rj.Reason != r.Error || rj.Source != "http:/v1/batch["+itoa(r.Index)+"]" {
				t.Fatalf("rejection %d: %+v for %+v", i, rj, r)
			}
			if !json.Valid(rj.Raw) {
				t.Fatalf("rejected event's raw input is not JSON: %q", rj.Raw)
			}
		}
		for _, ev := range st.evs {
			checkNormalized(t, ev)
		}
	})
}

// checkNormalized checks an accepted event as it goes to tessera.events.
func checkNormalized(t *testing.T, ev schemas.Normalized) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(ev.Value, &m); err != nil {
		t.Fatalf("accepted event is not a JSON object: %v: %q", err, ev.Value)
	}
	for _, f := range []string{"type", "messageId", "timestamp", "receivedAt"} {
		if s, _ := m[f].(string); s == "" {
			t.Fatalf("accepted event lacks %s: %s", f, ev.Value)
		}
	}
	if m["type"] != ev.Type || m["messageId"] != ev.MessageID {
		t.Fatalf("Normalized says type %q, messageId %q; the value %s", ev.Type, ev.MessageID, ev.Value)
	}
	if _, ok := m["writeKey"]; ok {
		t.Fatalf("accepted event carries writeKey: %s", ev.Value)
	}
	want, _ := m["userId"].(string)
	if want == "" {
		want, _ = m["anonymousId"].(string)
	}
	if string(ev.Key) != want || (want == "" && ev.Type != schemas.TypeAlias) {
		t.Fatalf("key %q, want userId else anonymousId %q: %s", ev.Key, want, ev.Value)
	}
	if strings.Count(string(ev.Value), `"receivedAt":`) != 1 {
		t.Fatalf("receivedAt written %d times: %s", strings.Count(string(ev.Value), `"receivedAt":`), ev.Value)
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
