package schemas

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzNormalize feeds arbitrary events (and batch fields) to Parse and
// Normalize. They must never panic; Normalize must not change its input;
// an error is a SyntaxError positioned in the input or a ValidationError;
// an accepted event is a JSON object with type, messageId, timestamp and
// receivedAt set, keyed by userId else anonymousId, without writeKey.
//
// go test runs the seeds; run it longer with
// go test -fuzz FuzzNormalize -fuzztime 30s ./schemas/.
func FuzzNormalize(f *testing.F) {
	seeds := []struct {
		event, ctx string
		typ        uint8
		sentAt     string
	}{
		{`{"type":"track","userId":"u","event":"E","properties":{"a":1}}`, "", 0, ""},
		{`{"userId":1,"event":"E","timestamp":"2026-01-01T00:00:00Z","sentAt":"2026-01-01T00:00:01Z"}`, "", 2, ""},
		{`{"type":"alias","userId":"u","previousId":2}`, `{"ip":"x"}`, 0, "2026-01-01T00:00:00Z"},
		{`{"type":"group","anonymousId":"a","groupId":"g","context":{"library":{"v":1}}}`, `{"library":{"name":"n"}}`, 0, "bad"},
		{`{"type":"page","anonymousId":"\u0000","messageId":"\ud800","writeKey":"k","writeKey":"k2"}`, "", 0, ""},
		{`{"type":"identify","userId":"u","traits":null,"userId":"v","\u0001":"\u007f"}`, `[]`, 1, ""},
		{`{"type":"track","userId":"u","event":"E","timestamp":"0001-01-01T00:00:00Z","sentAt":"9999-12-31T23:59:59.999Z"}`, "", 0, ""},
		{`[]`, "", 0, ""},
		{`{"a":"\q"}`, "", 0, ""},
	}
	for _, s := range seeds {
		f.Add([]byte(s.event), []byte(s.ctx), s.typ, s.sentAt)
	}
	types := []string{"", TypeIdentify, TypeTrack, TypePage, TypeScreen, TypeGroup, TypeAlias}
	received := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	f.Fuzz(func(t *testing.T, event, ctx []byte, typ uint8, sentAt string) {
		var n, side Normalizer
		in := Input{Type: types[int(typ)%len(types)], ReceivedAt: received, SentAt: sentAt}
		if c, err := side.Parse(ctx); err == nil {
			in.Context = c
		}
		v, err := n.Parse(event)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) || se.Offset < 0 || se.Offset > int64(len(event)) || se.Line < 1 || se.Column < 1 {
				t.Fatalf("Parse = %v, want a SyntaxError positioned in the input", err)
			}
			return
		}
		before := string(AppendJSON(nil, v))
		if !json.Valid([]byte(before)) {
			t.Fatalf("AppendJSON of a parsed value is not JSON: %q", before)
		}
		ev, err := n.Normalize(v, in)
		if after := string(AppendJSON(nil, v)); after != before {
			t.Fatalf("Normalize changed its input")
		}
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Reason == "" {
				t.Fatalf("Normalize = %v, want a ValidationError with a reason", err)
			}
			return
		}
		var out map[string]any
		if err := json.Unmarshal(ev.Value, &out); err != nil {
			t.Fatalf("accepted event is not a JSON object: %v: %q", err, ev.Value)
		}
		for _, f := range []string{"type", "messageId", "timestamp", "receivedAt"} {
			if s, _ := out[f].(string); s == "" {
				t.Fatalf("accepted event lacks %s: %s", f, ev.Value)
			}
		}
		if out["receivedAt"] != "2026-03-04T05:06:07.000Z" {
			t.Fatalf("receivedAt %v", out["receivedAt"])
		}
		if _, ok := out["writeKey"]; ok {
			t.Fatalf("accepted event carries writeKey: %s", ev.Value)
		}
		if out["type"] != ev.Type || out["messageId"] != ev.MessageID {
			t.Fatalf("Normalized says %q/%q, the value %s", ev.Type, ev.MessageID, ev.Value)
		}
		key, _ := out["userId"].(string)
		if key == "" {
			key, _ = out["anonymousId"].(string)
		}
		if string(ev.Key) != key || key == "" {
			t.Fatalf("key %q, want userId else anonymousId %q", ev.Key, key)
		}
	})
}
