package kafkasource

import (
	"math"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/valyala/fastjson"
)

// TestAvroToJSON round-trips native values through goavro's binary form
// (so the converter sees exactly what a decoded record holds) and checks
// the JSON.
func TestAvroToJSON(t *testing.T) {
	tests := []struct {
		name    string
		schema  string
		native  any
		want    string
		wantErr string
	}{
		{
			name:   "record fields in schema order, primitives",
			schema: `{"type":"record","name":"E","fields":[{"name":"s","type":"string"},{"name":"b","type":"boolean"},{"name":"i","type":"int"},{"name":"l","type":"long"},{"name":"f","type":"float"},{"name":"d","type":"double"},{"name":"n","type":"null"}]}`,
			native: map[string]any{"n": nil, "d": 12.5, "f": float32(0.5), "l": int64(1) << 40, "i": int32(-3), "b": true, "s": "x\"y"},
			want:   `{"s":"x\"y","b":true,"i":-3,"l":1099511627776,"f":0.5,"d":12.5,"n":null}`,
		},
		{
			name:   "unions unwrapped, null and primitive branches",
			schema: `{"type":"record","name":"E","fields":[{"name":"a","type":["null","string"]},{"name":"b","type":["null","string","double"]},{"name":"c","type":["null","long"]}]}`,
			native: map[string]any{"a": goavro.Union("string", "hi"), "b": goavro.Union("double", 2.25), "c": nil},
			want:   `{"a":"hi","b":2.25,"c":null}`,
		},
		{
			name: "union of named records in a namespace",
			schema: `{"type":"record","name":"Event","namespace":"com.shop","fields":[
				{"name":"ctx","type":["null",{"type":"record","name":"Ctx","fields":[{"name":"ip","type":["null","string"]}]}]},
				{"name":"other","type":["null","Ctx"]}]}`,
			native: map[string]any{"ctx": goavro.Union("com.shop.Ctx", map[string]any{"ip": goavro.Union("string", "1.2.3.4")}), "other": nil},
			want:   `{"ctx":{"ip":"1.2.3.4"},"other":null}`,
		},
		{
			name:   "maps sorted, arrays, enums",
			schema: `{"type":"record","name":"E","fields":[{"name":"m","type":{"type":"map","values":["null","string","long"]}},{"name":"a","type":{"type":"array","items":"int"}},{"name":"e","type":{"type":"enum","name":"Color","symbols":["RED","BLUE"]}}]}`,
			native: map[string]any{"m": map[string]any{"z": goavro.Union("long", int64(1)), "a": goavro.Union("string", "x"), "k": nil}, "a": []any{int32(1), int32(2)}, "e": "BLUE"},
			want:   `{"m":{"a":"x","k":null,"z":1},"a":[1,2],"e":"BLUE"}`,
		},
		{
			name: "logical types",
			schema: `{"type":"record","name":"E","fields":[
				{"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
				{"name":"tsu","type":["null",{"type":"long","logicalType":"timestamp-micros"}]},
				{"name":"day","type":{"type":"int","logicalType":"date"}},
				{"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
				{"name":"at","type":{"type":"int","logicalType":"time-millis"}}]}`,
			native: map[string]any{
				"ts":    time.Date(2026, 3, 4, 5, 6, 7, 890e6, time.UTC),
				"tsu":   goavro.Union("long.timestamp-micros", time.Date(2026, 3, 4, 5, 6, 7, 123456e3, time.UTC)),
				"day":   time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC),
				"price": big.NewRat(1999, 100),
				"at":    13*time.Hour + 5*time.Minute + 500*time.Millisecond,
			},
			want: `{"ts":"2026-03-04T05:06:07.890Z","tsu":"2026-03-04T05:06:07.123456Z","day":"2026-03-04","price":19.99,"at":"13:05:00.500"}`,
		},
		{
			name:   "bytes and fixed as base64",
			schema: `{"type":"record","name":"E","fields":[{"name":"b","type":"bytes"},{"name":"f","type":{"type":"fixed","name":"F","size":2}}]}`,
			native: map[string]any{"b": []byte("hi"), "f": []byte{0xff, 0x00}},
			want:   `{"b":"aGk=","f":"/wA="}`,
		},
		{
			name:   "recursive record",
			schema: `{"type":"record","name":"LongList","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","LongList"]}]}`,
			native: map[string]any{"v": int64(1), "next": goavro.Union("LongList", map[string]any{"v": int64(2), "next": nil})},
			want:   `{"v":1,"next":{"v":2,"next":null}}`,
		},
		{
			name:    "NaN has no JSON form",
			schema:  `{"type":"record","name":"E","fields":[{"name":"p","type":{"type":"map","values":"double"}}]}`,
			native:  map[string]any{"p": map[string]any{"revenue": math.NaN()}},
			wantErr: "converting Avro record with schema id 7 to JSON: p: revenue: NaN has no JSON form",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := compileSchema(7, sr.Schema{Schema: tt.schema, Type: sr.TypeAvro})
			if err != nil {
				t.Fatal(err)
			}
			bin, err := s.codec.BinaryFromNative(nil, tt.native)
			if err != nil {
				t.Fatal(err)
			}
			var a fastjson.Arena
			v, err := s.decode(&a, bin)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := string(v.MarshalTo(nil)); got != tt.want {
				t.Fatalf("JSON\n  %s\nwant\n  %s", got, tt.want)
			}
		})
	}
}

func TestCompileSchemaErrors(t *testing.T) {
	tests := []struct {
		name   string
		schema sr.Schema
		want   string
	}{
		{"not Avro", sr.Schema{Schema: `{}`, Type: sr.TypeJSON}, "schema id 3 is JSON, not Avro"},
		{"references", sr.Schema{Schema: `"Other"`, References: []sr.SchemaReference{{Name: "Other", Subject: "o", Version: 1}}}, "schema id 3 has references, which tessera does not resolve"},
		{"invalid", sr.Schema{Schema: `{"type":"record","name":"E","fields":[{"name":"x","type":"nope"}]}`}, "parsing Avro schema id 3: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compileSchema(3, tt.schema)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestDecodeLeftoverBytes(t *testing.T) {
	s, err := compileSchema(5, sr.Schema{Schema: `"long"`})
	if err != nil {
		t.Fatal(err)
	}
	var a fastjson.Arena
	_, err = s.decode(&a, []byte{2, 2})
	if want := "decoding Avro record with schema id 5: 1 bytes left over"; err == nil || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
}

func TestMessageIDIsDeterministic(t *testing.T) {
	a := MessageID("orders", 2, 57)
	if b := MessageID("orders", 2, 57); a != b {
		t.Fatalf("MessageID differs between calls: %s, %s", a, b)
	}
	for _, other := range []string{MessageID("orders", 2, 58), MessageID("orders", 3, 57), MessageID("orders2", 2, 57)} {
		if other == a {
			t.Fatalf("MessageID collides: %s", a)
		}
	}
	if len(a) != 36 || a[14] != '8' || !strings.ContainsRune("89ab", rune(a[19])) {
		t.Fatalf("MessageID %s is not a version 8 UUID", a)
	}
}
