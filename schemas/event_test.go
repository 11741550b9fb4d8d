package schemas

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fastjson"
)

// received is the receivedAt of every case below.
var received = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

const receivedJSON = "2026-03-04T05:06:07.000Z"

// padded returns a track event of exactly n bytes of compact JSON.
func padded(n int) string {
	prefix, suffix := `{"type":"track","userId":"u","event":"E","properties":{"pad":"`, `"}}`
	return prefix + strings.Repeat("x", n-len(prefix)-len(suffix)) + suffix
}

// TestNormalize pins every validation rule of the Segment spec and every
// completion: type from the endpoint, identifiers as strings, messageId,
// receivedAt, the clock correction, a batch's shared fields, writeKey and
// duplicate keys dropped.
func TestNormalize(t *testing.T) {
	cases := []struct {
		name  string
		event string
		in    Input
		// ctx and ints are a batch's context and integrations.
		ctx, ints string
		// errField and errHas describe the expected error; "" errHas means
		// the event is accepted.
		errField, errHas string
		// want holds output members (nil: absent), key the routing key.
		want map[string]any
		key  string
	}{
		// Shape and type.
		{name: "not an object", event: `[1]`, errField: "", errHas: "event must be a JSON object, got array"},
		{name: "a string", event: `"track"`, errHas: "event must be a JSON object, got string"},
		{name: "type missing in a batch", event: `{"userId":"u"}`, errField: "type", errHas: "is required"},
		{name: "type from the endpoint", event: `{"userId":"u","event":"E"}`, in: Input{Type: TypeTrack},
			want: map[string]any{"type": "track"}, key: "u"},
		{name: "null type takes the endpoint's", event: `{"type":null,"userId":"u"}`, in: Input{Type: TypeIdentify},
			want: map[string]any{"type": "identify"}, key: "u"},
		{name: "type the endpoint does not take", event: `{"type":"page","userId":"u"}`, in: Input{Type: TypeTrack},
			errField: "type", errHas: `is "page" but the endpoint takes "track"`},
		{name: "unknown type", event: `{"type":"Track","userId":"u"}`, errField: "type", errHas: `"Track" is not one of`},
		{name: "type not a string", event: `{"type":1,"userId":"u"}`, errField: "type", errHas: "must be a string, got number"},

		// Identifiers.
		{name: "no userId nor anonymousId", event: `{"type":"identify","traits":{}}`, errField: "userId", errHas: "userId or anonymousId is required"},
		{name: "both empty", event: `{"type":"identify","userId":"","anonymousId":null}`, errField: "userId", errHas: "required"},
		{name: "anonymousId alone keys the event", event: `{"type":"page","anonymousId":"a1"}`,
			want: map[string]any{"anonymousId": "a1", "userId": nil}, key: "a1"},
		{name: "userId wins the key", event: `{"type":"page","anonymousId":"a1","userId":"u1"}`, key: "u1"},
		{name: "numeric userId as written", event: `{"type":"identify","userId":42}`,
			want: map[string]any{"userId": "42"}, key: "42"},
		{name: "big numeric userId keeps every digit", event: `{"type":"identify","userId":12345678901234567890123}`,
			want: map[string]any{"userId": "12345678901234567890123"}, key: "12345678901234567890123"},
		{name: "fractional and exponent userIds as written", event: `{"type":"identify","userId":1.5e3,"anonymousId":-0.25}`,
			want: map[string]any{"userId": "1.5e3", "anonymousId": "-0.25"}, key: "1.5e3"},
		{name: "userId a boolean", event: `{"type":"identify","userId":true}`, errField: "userId", errHas: "must be a string or a number, got true"},
		{name: "anonymousId an object", event: `{"type":"identify","anonymousId":{}}`, errField: "anonymousId", errHas: "got object"},
		{name: "userId of 1024 characters", event: `{"type":"identify","userId":"` + strings.Repeat("é", 1024) + `"}`,
			key: strings.Repeat("é", 1024)},
		{name: "userId of 1025 characters", event: `{"type":"identify","userId":"` + strings.Repeat("u", 1025) + `"}`,
			errField: "userId", errHas: "is 1025 characters, at most 1024"},

		// Type-specific requirements.
		{name: "track without event", event: `{"type":"track","userId":"u"}`, errField: "event", errHas: "is required for track"},
		{name: "track with empty event", event: `{"type":"track","userId":"u","event":""}`, errField: "event"},
		{name: "track with numeric event", event: `{"type":"track","userId":"u","event":7}`, errField: "event"},
		{name: "group without groupId", event: `{"type":"group","userId":"u"}`, errField: "groupId", errHas: "is required for group"},
		{name: "group with null groupId", event: `{"type":"group","userId":"u","groupId":null}`, errField: "groupId"},
		{name: "group with numeric groupId", event: `{"type":"group","userId":"u","groupId":5}`,
			want: map[string]any{"groupId": "5"}, key: "u"},
		{name: "group with an array groupId", event: `{"type":"group","userId":"u","groupId":[5]}`, errField: "groupId", errHas: "got array"},
		{name: "alias without userId", event: `{"type":"alias","anonymousId":"a","previousId":"p"}`, errField: "userId", errHas: "is required for alias"},
		{name: "alias without previousId", event: `{"type":"alias","userId":"u"}`, errField: "previousId", errHas: "is required for alias"},
		{name: "alias with neither anonymousId nor previousId", event: `{"type":"alias"}`, errField: "userId"},
		{name: "alias with numeric previousId", event: `{"type":"alias","userId":"u","previousId":9}`,
			want: map[string]any{"previousId": "9"}, key: "u"},
		{name: "page, screen and identify need no more", event: `{"type":"screen","userId":"u"}`, key: "u"},

		// Object fields.
		{name: "properties an array", event: `{"type":"track","userId":"u","event":"E","properties":[]}`, errField: "properties", errHas: "must be an object, got array"},
		{name: "traits a string", event: `{"type":"identify","userId":"u","traits":"vip"}`, errField: "traits", errHas: "got string"},
		{name: "context a number", event: `{"type":"identify","userId":"u","context":1}`, errField: "context"},
		{name: "integrations true", event: `{"type":"identify","userId":"u","integrations":true}`, errField: "integrations"},
		{name: "null objects are fine", event: `{"type":"identify","userId":"u","traits":null,"context":null,"properties":null,"integrations":null}`,
			key: "u"},

		// messageId.
		{name: "messageId kept", event: `{"type":"identify","userId":"u","messageId":"m-1"}`, want: map[string]any{"messageId": "m-1"}, key: "u"},
		{name: "messageId generated when missing", event: `{"type":"identify","userId":"u"}`, want: map[string]any{"messageId": "generated-1"}, key: "u"},
		{name: "messageId generated when empty", event: `{"type":"identify","userId":"u","messageId":""}`, want: map[string]any{"messageId": "generated-1"}, key: "u"},
		{name: "messageId generated when null", event: `{"type":"identify","userId":"u","messageId":null}`, want: map[string]any{"messageId": "generated-1"}, key: "u"},
		{name: "messageId from the input (import) when missing", event: `{"type":"identify","userId":"u"}`, in: Input{MessageID: "import-7"},
			want: map[string]any{"messageId": "import-7"}, key: "u"},
		{name: "the event's messageId beats the input's", event: `{"type":"identify","userId":"u","messageId":"own"}`, in: Input{MessageID: "import-7"},
			want: map[string]any{"messageId": "own"}, key: "u"},
		{name: "messageId of 100 characters", event: `{"type":"identify","userId":"u","messageId":"` + strings.Repeat("ü", 100) + `"}`,
			want: map[string]any{"messageId": strings.Repeat("ü", 100)}, key: "u"},
		{name: "messageId of 101 characters", event: `{"type":"identify","userId":"u","messageId":"` + strings.Repeat("m", 101) + `"}`,
			errField: "messageId", errHas: "is 101 characters, at most 100 are allowed"},
		{name: "messageId a number", event: `{"type":"identify","userId":"u","messageId":1}`, errField: "messageId", errHas: "must be a string"},

		// Timestamps and the clock correction.
		{name: "no times: timestamp is receivedAt", event: `{"type":"identify","userId":"u"}`,
			want: map[string]any{"timestamp": receivedJSON, "receivedAt": receivedJSON, "originalTimestamp": nil, "sentAt": nil}, key: "u"},
		{name: "timestamp without sentAt stands", event: `{"type":"identify","userId":"u","timestamp":"2026-01-02T03:04:05.678Z"}`,
			want: map[string]any{"timestamp": "2026-01-02T03:04:05.678Z", "originalTimestamp": "2026-01-02T03:04:05.678Z"}, key: "u"},
		{name: "corrected with the event's sentAt: receivedAt − (sentAt − timestamp)",
			event: `{"type":"identify","userId":"u","timestamp":"2020-01-01T00:00:00Z","sentAt":"2020-01-01T00:01:00Z"}`,
			want:  map[string]any{"timestamp": "2026-03-04T05:05:07.000Z", "originalTimestamp": "2020-01-01T00:00:00.000Z", "sentAt": "2020-01-01T00:01:00.000Z"}, key: "u"},
		{name: "corrected with the batch's sentAt",
			event: `{"type":"identify","userId":"u","timestamp":"2020-01-01T00:00:00Z"}`, in: Input{SentAt: "2020-01-01T00:00:02.5Z"},
			want: map[string]any{"timestamp": "2026-03-04T05:06:04.500Z", "sentAt": "2020-01-01T00:00:02.500Z"}, key: "u"},
		{name: "the event's sentAt beats the batch's",
			event: `{"type":"identify","userId":"u","timestamp":"2020-01-01T00:00:00Z","sentAt":"2020-01-01T00:00:01Z"}`, in: Input{SentAt: "2020-01-01T00:00:09Z"},
			want: map[string]any{"timestamp": "2026-03-04T05:06:06.000Z"}, key: "u"},
		{name: "originalTimestamp beats timestamp",
			event: `{"type":"identify","userId":"u","originalTimestamp":"2020-01-01T00:00:00Z","timestamp":"2021-01-01T00:00:00Z","sentAt":"2020-01-01T00:00:03Z"}`,
			want:  map[string]any{"timestamp": "2026-03-04T05:06:04.000Z", "originalTimestamp": "2020-01-01T00:00:00.000Z"}, key: "u"},
		{name: "a client clock ahead is corrected the same way",
			event: `{"type":"identify","userId":"u","timestamp":"2030-01-01T00:00:00Z","sentAt":"2030-01-01T00:00:05Z"}`,
			want:  map[string]any{"timestamp": "2026-03-04T05:06:02.000Z"}, key: "u"},
		{name: "sentAt without a timestamp: receivedAt",
			event: `{"type":"identify","userId":"u","sentAt":"2020-01-01T00:00:05Z"}`,
			want:  map[string]any{"timestamp": receivedJSON}, key: "u"},
		{name: "zone offsets", event: `{"type":"identify","userId":"u","timestamp":"2026-01-02T03:04:05+0130"}`,
			want: map[string]any{"timestamp": "2026-01-02T01:34:05.000Z"}, key: "u"},
		{name: "a date alone is midnight UTC", event: `{"type":"identify","userId":"u","timestamp":"2026-01-02"}`,
			want: map[string]any{"timestamp": "2026-01-02T00:00:00.000Z"}, key: "u"},
		{name: "client receivedAt is replaced", event: `{"type":"identify","userId":"u","receivedAt":"1999-01-01T00:00:00Z"}`,
			want: map[string]any{"receivedAt": receivedJSON}, key: "u"},
		{name: "timestamp not ISO-8601", event: `{"type":"identify","userId":"u","timestamp":"01/02/2026"}`, errField: "timestamp", errHas: "not an ISO-8601 timestamp"},
		{name: "timestamp without a zone", event: `{"type":"identify","userId":"u","timestamp":"2026-01-02T03:04:05"}`, errField: "timestamp"},
		{name: "timestamp a number", event: `{"type":"identify","userId":"u","timestamp":1767322800}`, errField: "timestamp", errHas: "must be an ISO-8601 string"},
		{name: "bad sentAt", event: `{"type":"identify","userId":"u","sentAt":"later"}`, errField: "sentAt"},
		{name: "bad originalTimestamp", event: `{"type":"identify","userId":"u","originalTimestamp":"x"}`, errField: "originalTimestamp"},
		{name: "bad batch sentAt", event: `{"type":"identify","userId":"u"}`, in: Input{SentAt: "x"}, errField: "sentAt"},

		// Size, as received.
		{name: "event of exactly 32 KB", event: padded(MaxEventBytes), key: "u"},
		{name: "event of 32 KB + 1", event: padded(MaxEventBytes + 1), errField: "", errHas: "event is 32769 bytes, the limit is 32768 (32 KB)"},
		{name: "whitespace does not count", event: " \n" + padded(MaxEventBytes) + "\n ", key: "u"},

		// What is dropped and merged.
		{name: "writeKey is dropped", event: `{"type":"identify","userId":"u","writeKey":"secret"}`, want: map[string]any{"writeKey": nil}, key: "u"},
		{name: "duplicate keys: the first wins, everywhere",
			event: `{"type":"identify","userId":"first","traits":{"a":1},"userId":"second","traits":"x"}`,
			want:  map[string]any{"userId": "first", "traits": map[string]any{"a": 1.0}}, key: "first"},
		{name: "batch context merged under the event's",
			event: `{"type":"identify","userId":"u","context":{"ip":"own","library":{"version":"2"},"locale":"fr"}}`,
			ctx:   `{"ip":"batch","library":{"name":"lib","version":"1"},"timezone":"UTC"}`,
			want: map[string]any{"context": map[string]any{"ip": "own", "locale": "fr", "timezone": "UTC",
				"library": map[string]any{"name": "lib", "version": "2"}}}, key: "u"},
		{name: "batch context where the event has none or null",
			event: `{"type":"identify","userId":"u","context":null}`, ctx: `{"ip":"batch"}`,
			want: map[string]any{"context": map[string]any{"ip": "batch"}}, key: "u"},
		{name: "batch integrations merged", event: `{"type":"identify","userId":"u","integrations":{"A":true}}`, ints: `{"All":false,"A":false}`,
			want: map[string]any{"integrations": map[string]any{"A": true, "All": false}}, key: "u"},
		{name: "a batch context that is not an object is ignored", event: `{"type":"identify","userId":"u"}`, ctx: `[1]`,
			want: map[string]any{"context": nil}, key: "u"},
		{name: "other fields kept as they are", event: `{"type":"track","userId":"u","event":"E","properties":{"n":1.50,"s":"é\n","a":[true,null]},"extra":{"k":"v"}}`,
			want: map[string]any{"properties": map[string]any{"n": 1.5, "s": "é\n", "a": []any{true, nil}}, "extra": map[string]any{"k": "v"}, "event": "E"}, key: "u"},
		{name: "escapes and control characters come out as JSON", event: `{"type":"identify","userId":"u\u0001\"","\u0007k\\":"\u001f\ud83d\ude00"}`,
			want: map[string]any{"userId": "u\x01\"", "\x07k\\": "\x1f😀"}, key: "u\x01\""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			n := Normalizer{NewID: func() string { return "generated-1" }}
			in := c.in
			in.ReceivedAt = received
			var side Normalizer
			if c.ctx != "" {
				in.Context = mustParse(t, &side, c.ctx)
			}
			var side2 Normalizer
			if c.ints != "" {
				in.Integrations = mustParse(t, &side2, c.ints)
			}
			v := mustParse(t, &n, c.event)
			before := AppendJSON(nil, v)
			ev, err := n.Normalize(v, in)
			if after := AppendJSON(nil, v); string(after) != string(before) {
				t.Errorf("Normalize changed its input:\n%s\n%s", before, after)
			}
			if c.errHas != "" || c.errField != "" {
				var ve *ValidationError
				if !errors.As(err, &ve) {
					t.Fatalf("Normalize = %v, want a ValidationError on %q saying %q", err, c.errField, c.errHas)
				}
				if ve.Field != c.errField || !strings.Contains(ve.Reason, c.errHas) {
					t.Fatalf("error %q (field %q), want field %q saying %q", err, ve.Field, c.errField, c.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			var out map[string]any
			if err := json.Unmarshal(ev.Value, &out); err != nil {
				t.Fatalf("output is not JSON: %v: %q", err, ev.Value)
			}
			if string(ev.Key) != c.key {
				t.Errorf("key %q, want %q", ev.Key, c.key)
			}
			if out["type"] != ev.Type || out["messageId"] != ev.MessageID {
				t.Errorf("Normalized.Type %q / MessageID %q disagree with the value %s", ev.Type, ev.MessageID, ev.Value)
			}
			if got := ev.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z"); got != out["timestamp"] {
				t.Errorf("Normalized.Timestamp %s, the value says %v", got, out["timestamp"])
			}
			for _, f := range []string{"type", "messageId", "timestamp", "receivedAt"} {
				if s, _ := out[f].(string); s == "" {
					t.Errorf("output lacks %s: %s", f, ev.Value)
				}
			}
			for k, w := range c.want {
				got, has := out[k]
				if w == nil {
					if has {
						t.Errorf("output has %s = %#v, want none", k, got)
					}
					continue
				}
				if !reflect.DeepEqual(got, w) {
					t.Errorf("%s = %#v, want %#v\n(output %s)", k, got, w, ev.Value)
				}
			}
		})
	}
}

func mustParse(t *testing.T, n *Normalizer, s string) *fastjson.Value {
	t.Helper()
	v, err := n.Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse(%.80q): %v", s, err)
	}
	return v
}

// TestNormalizeGeneratesIDs checks the default messageId: a random UUID,
// different for each event.
func TestNormalizeGeneratesIDs(t *testing.T) {
	var n Normalizer
	seen := map[string]bool{}
	for range 100 {
		ev, err := n.Normalize(mustParse(t, &n, `{"type":"identify","userId":"u"}`), Input{})
		if err != nil {
			t.Fatal(err)
		}
		id := ev.MessageID
		if len(id) != 36 || id[8] != '-' || id[14] != '4' || seen[id] {
			t.Fatalf("messageId %q is not a fresh UUIDv4", id)
		}
		seen[id] = true
	}
}

// TestNormalizeTo checks that events normalised one after another into one
// buffer each equal what Normalize makes of them, never overlap, and stay
// intact as the buffer grows; and that an invalid event leaves the buffer
// as it was.
func TestNormalizeTo(t *testing.T) {
	events := []string{
		`{"type":"identify","userId":"u1","messageId":"m1","traits":{"name":"Jane"}}`,
		`{"type":"track","anonymousId":"a2","messageId":"m2","event":"E"}`,
		`{"type":"track","userId":"u3"}`, // invalid: no event
		`{"type":"page","userId":"u4","messageId":"m4","name":"` + strings.Repeat("p", 3000) + `"}`,
		`{"type":"alias","userId":"u5","previousId":"a2","messageId":"m5"}`,
	}
	n := Normalizer{Now: func() time.Time { return received }}
	var ref Normalizer
	var buf []byte
	var got, want []Normalized
	for i, e := range events {
		before := len(buf)
		ev, next, err := n.NormalizeTo(buf, mustParse(t, &n, e), Input{})
		wev, werr := ref.Normalize(mustParse(t, &ref, e), Input{ReceivedAt: received})
		if (err == nil) != (werr == nil) {
			t.Fatalf("event %d: NormalizeTo error %v, Normalize error %v", i, err, werr)
		}
		if err != nil {
			if len(next) != before {
				t.Errorf("event %d: the buffer went from %d to %d bytes on an error", i, before, len(next))
			}
			buf = next
			continue
		}
		if cap(ev.Key) != len(ev.Key) || cap(ev.Value) != len(ev.Value) {
			t.Errorf("event %d: Key or Value has room to append into the buffer", i)
		}
		buf = next
		got, want = append(got, ev), append(want, wev)
		// Writing over the free end of the buffer must not touch any
		// event handed out so far.
		for j := len(buf); j < cap(buf); j++ {
			buf[:cap(buf)][j] = '#'
		}
	}
	for i := range got {
		if string(got[i].Key) != string(want[i].Key) || string(got[i].Value) != string(want[i].Value) ||
			got[i].Type != want[i].Type || got[i].MessageID != want[i].MessageID || !got[i].Timestamp.Equal(want[i].Timestamp) {
			t.Errorf("event %d: NormalizeTo gave %q %s, Normalize %q %s", i, got[i].Key, got[i].Value, want[i].Key, want[i].Value)
		}
	}
}

// TestNormalizeClock checks that receivedAt comes from Input, else Now.
func TestNormalizeClock(t *testing.T) {
	n := Normalizer{Now: func() time.Time { return received }}
	ev, err := n.Normalize(mustParse(t, &n, `{"type":"identify","userId":"u"}`), Input{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ev.Value), `"receivedAt":"`+receivedJSON+`"`) || !ev.Timestamp.Equal(received) {
		t.Errorf("Now not used: %s", ev.Value)
	}
}

// TestParseSyntaxErrors pins where malformed JSON is reported: the 0-based
// offset of the first bad byte (the length when input ends early), with
// line and column; and the strictness fastjson alone lacks.
func TestParseSyntaxErrors(t *testing.T) {
	cases := []struct {
		in           string
		offset       int64
		line, column int
	}{
		{``, 0, 1, 1},
		{`{"a":1`, 6, 1, 7},
		{`{"a" 1}`, 5, 1, 6},
		{"{\n  \"a\": 1,\n  \"b\" 2\n}", 18, 3, 7},
		{`{"a":"\q"}`, 7, 1, 8},
		{"{\"a\":\"\x01\"}", 6, 1, 7},
		{`{"a":NaN}`, 5, 1, 6},
		{`{"a":01}`, 6, 1, 7},
		{`{"a":1}x`, 7, 1, 8},
		{`{"a":1} {}`, 8, 1, 9},
		{`{"a":"\u12"}`, 10, 1, 11},
	}
	for _, c := range cases {
		var n Normalizer
		_, err := n.Parse([]byte(c.in))
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) = %v, want a SyntaxError", c.in, err)
			continue
		}
		if se.Offset != c.offset || se.Line != c.line || se.Column != c.column {
			t.Errorf("Parse(%q): at %d (line %d, column %d), want %d (line %d, column %d): %v",
				c.in, se.Offset, se.Line, se.Column, c.offset, c.line, c.column, err)
		}
	}
}

// TestAppendJSON pins the encoding fastjson's MarshalTo gets wrong: Go
// escapes (\x01, \a, \U0001…) and invalid UTF-8 passed through.
func TestAppendJSON(t *testing.T) {
	var n Normalizer
	v := mustParse(t, &n, `{"\u0001\u0007":"\u000b\ud83d\ude00\"\\\/","n":[1.0e2,-0,true,null],"e":{}}`)
	v.Get("n") // unescapes keys, as Normalize's lookups do
	got := string(AppendJSON(nil, v))
	want := `{"\u0001\u0007":"\u000b😀\"\\/","n":[1.0e2,-0,true,null],"e":{}}`
	if got != want {
		t.Errorf("AppendJSON = %s\nwant          %s", got, want)
	}
	s := string(AppendJSON(nil, mustParse(t, &n, "\"bad\xffutf8\\u0000\"")))
	if s != `"bad`+"\ufffd"+`utf8\u0000"` || !json.Valid([]byte(s)) {
		t.Errorf("AppendJSON of invalid UTF-8 = %q", s)
	}
}

// TestNormalizeInvalidUTF8ID pins a FuzzBatch finding: a userId with
// invalid UTF-8 was written to the value with U+FFFD but used raw as the
// key, so key and userId named different identifiers.
func TestNormalizeInvalidUTF8ID(t *testing.T) {
	var n Normalizer
	ev, err := n.Normalize(mustParse(t, &n, "{\"type\":\"identify\",\"userId\":\"0\xfc\"}"), Input{})
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(ev.Value, &out); err != nil {
		t.Fatal(err)
	}
	if out["userId"] != string(ev.Key) || string(ev.Key) != "0\ufffd" {
		t.Errorf("key %q, userId %q", ev.Key, out["userId"])
	}
}

func BenchmarkNormalize(b *testing.B) {
	body := []byte(`{"type":"track","event":"Order Completed","userId":"u1","anonymousId":"a1","timestamp":"2026-01-01T00:00:00Z",` +
		`"properties":{"revenue":10.5,"items":[{"sku":"x","q":2}],"currency":"EUR"},` +
		`"context":{"ip":"1.2.3.4","library":{"name":"analytics-node","version":"3.1.0"}},"messageId":"m-1"}`)
	var n Normalizer
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		v, err := n.Parse(body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := n.Normalize(v, Input{ReceivedAt: received}); err != nil {
			b.Fatal(err)
		}
	}
}
