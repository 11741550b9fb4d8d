package profile

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestTraitDecodeMatchesEncodingJSON: the fast paths give what
// encoding/json gives, or fall back to it.
func TestTraitDecodeMatchesEncodingJSON(t *testing.T) {
	for _, raw := range []string{
		`"vip"`, `""`, `"a\"b"`, `"\u00e9t\u00e9"`, `"tab\there"`, `true`, `false`, `null`,
		`0`, `-1.5`, `42`, `1e3`, `-0`, `01`, `1.`, `[1,"a"]`, `{"a":{"b":2}}`, `nul`, `"open`, `+1`,
		`0x10`, `Infinity`, `NaN`,
	} {
		got, ok := Trait{Value: []byte(raw)}.Decode()
		var want any
		wantOK := json.Unmarshal([]byte(raw), &want) == nil
		if ok != wantOK || (ok && !reflect.DeepEqual(got, want)) {
			t.Errorf("Decode(%s) = %#v, %v; encoding/json: %#v, %v", raw, got, ok, want, wantOK)
		}
	}
	if _, ok := (Trait{}).Decode(); ok {
		t.Error("an absent value decoded")
	}
}

func BenchmarkTraitDecode(b *testing.B) {
	for _, raw := range []string{`"vip@example.com"`, `42.5`, `{"city":"Paris"}`} {
		b.Run(raw, func(b *testing.B) {
			tr := Trait{Value: []byte(raw)}
			for b.Loop() {
				tr.Decode()
			}
		})
		b.Run(raw+"/encoding-json", func(b *testing.B) {
			for b.Loop() {
				var v any
				_ = json.Unmarshal([]byte(raw), &v)
			}
		})
	}
}
