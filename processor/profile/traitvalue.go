package profile

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/valyala/fastjson"
)

// Decode returns the trait's value as encoding/json would decode it into
// an any (string, float64, bool, nil, []any, map[string]any), and false
// when it is absent or not JSON. Rules read traits on every event and
// previews read them for every profile, so the scalars, nearly every
// trait, are decoded without reflection.
func (t Trait) Decode() (any, bool) {
	v := t.Value
	if len(v) == 0 {
		return nil, false
	}
	switch c := v[0]; {
	case c == '"' && len(v) >= 2 && v[len(v)-1] == '"' && bytes.IndexByte(v[1:len(v)-1], '\\') < 0 && bytes.IndexByte(v[1:len(v)-1], '"') < 0:
		return string(v[1 : len(v)-1]), true
	case c == 't' && string(v) == "true":
		return true, true
	case c == 'f' && string(v) == "false":
		return false, true
	case c == 'n' && string(v) == "null":
		return nil, true
	case c == '-' || (c >= '0' && c <= '9'):
		if f, err := strconv.ParseFloat(string(v), 64); err == nil && json.Valid(v) {
			return f, true
		}
	}
	var out any
	if err := json.Unmarshal(v, &out); err != nil {
		return nil, false
	}
	return out, true
}

// ValueOf converts a parsed JSON value to the Go values encoding/json
// decodes into an any, which expr rules and the profile API use: nil,
// bool, float64, string, map[string]any, []any. It reads the value
// without reflection, for the hot path. A number beyond float64 stays
// its JSON text.
func ValueOf(v *fastjson.Value) any {
	if v == nil {
		return nil
	}
	switch v.Type() {
	case fastjson.TypeTrue:
		return true
	case fastjson.TypeFalse:
		return false
	case fastjson.TypeNumber:
		x, err := v.Float64()
		if err != nil {
			return string(v.MarshalTo(nil))
		}
		return x
	case fastjson.TypeString:
		return string(v.GetStringBytes())
	case fastjson.TypeArray:
		a, _ := v.Array()
		out := make([]any, len(a))
		for i, e := range a {
			out[i] = ValueOf(e)
		}
		return out
	case fastjson.TypeObject:
		o, _ := v.Object()
		out := make(map[string]any, o.Len())
		o.Visit(func(k []byte, e *fastjson.Value) { out[string(k)] = ValueOf(e) })
		return out
	}
	return nil
}
