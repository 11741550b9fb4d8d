package kafkasource

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/linkedin/goavro/v2"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/valyala/fastjson"
)

// registry fetches Avro schemas by id and caches them. Ids are immutable
// in a schema registry, so a schema, or the reason it is unusable, is
// cached for good; a missing id is asked again after missTTL, since it may
// be registered later.
type registry struct {
	cl *sr.Client

	mu     sync.RWMutex
	byID   map[int]*avroSchema // REQUIRES: mu is held.
	bad    map[int]error       // unusable schemas. REQUIRES: mu is held.
	misses map[int]time.Time   // ids the registry did not know, and when. REQUIRES: mu is held.
}

const missTTL = time.Minute

func newRegistry(cl *sr.Client) *registry {
	return &registry{cl: cl, byID: map[int]*avroSchema{}, bad: map[int]error{}, misses: map[int]time.Time{}}
}

// schema returns the schema of id. Errors that rejecting the record is
// the answer to (unknown id, not Avro, an invalid schema) are
// *permanentError; others (the registry unreachable) are worth a retry.
func (r *registry) schema(ctx context.Context, id int) (*avroSchema, error) {
	r.mu.RLock()
	s, err := r.byID[id], r.bad[id]
	missed, isMiss := r.misses[id]
	r.mu.RUnlock()
	switch {
	case s != nil:
		return s, nil
	case err != nil:
		return nil, err
	case isMiss && time.Since(missed) < missTTL:
		return nil, unknownSchema(id)
	}

	got, err := r.cl.SchemaByID(ctx, id)
	if err != nil {
		var re *sr.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
			r.mu.Lock()
			r.misses[id] = time.Now()
			r.mu.Unlock()
			return nil, unknownSchema(id)
		}
		return nil, fmt.Errorf("fetching schema id %d from the schema registry: %w", id, err)
	}
	s, err = compileSchema(id, got)
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.misses, id)
	if err != nil {
		err = &permanentError{err}
		r.bad[id] = err
		return nil, err
	}
	r.byID[id] = s
	return s, nil
}

func unknownSchema(id int) error {
	return &permanentError{fmt.Errorf("schema id %d is not in the schema registry", id)}
}

// avroSchema is a registry schema ready to decode: the goavro codec and
// the type tree that guides the conversion to JSON.
type avroSchema struct {
	id    int
	codec *goavro.Codec
	root  *avroType
}

func compileSchema(id int, s sr.Schema) (*avroSchema, error) {
	if s.Type != sr.TypeAvro {
		return nil, fmt.Errorf("schema id %d is %s, not Avro", id, s.Type)
	}
	if len(s.References) > 0 {
		return nil, fmt.Errorf("schema id %d has references, which tessera does not resolve", id)
	}
	codec, err := goavro.NewCodec(s.Schema)
	if err != nil {
		return nil, fmt.Errorf("parsing Avro schema id %d: %w", id, err)
	}
	root, err := parseAvroType(s.Schema)
	if err != nil {
		return nil, fmt.Errorf("parsing Avro schema id %d: %w", id, err)
	}
	return &avroSchema{id: id, codec: codec, root: root}, nil
}

// decode decodes one Avro binary value into a JSON value built in a.
func (s *avroSchema) decode(a *fastjson.Arena, payload []byte) (*fastjson.Value, error) {
	native, rest, err := s.codec.NativeFromBinary(payload)
	if err != nil {
		return nil, fmt.Errorf("decoding Avro record with schema id %d: %w", s.id, err)
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("decoding Avro record with schema id %d: %d bytes left over", s.id, len(rest))
	}
	v, err := toJSON(a, s.root, native)
	if err != nil {
		return nil, fmt.Errorf("converting Avro record with schema id %d to JSON: %w", s.id, err)
	}
	return v, nil
}

// avroType is the part of an Avro schema the JSON conversion needs: the
// shape of records, maps, arrays and unions, and logical types.
type avroType struct {
	kind    string // null, boolean, int, long, float, double, bytes, string, record, enum, array, map, fixed, union
	logical string // date, timestamp-millis, decimal, …
	scale   int    // of a decimal
	// name is how goavro names the type in a union: the full name of a
	// named type, type.logicalType for logical types, else the kind.
	name     string
	fields   []avroField // record
	items    *avroType   // array items, map values
	branches []*avroType // union
}

type avroField struct {
	name string
	typ  *avroType
}

var avroPrimitives = map[string]bool{
	"null": true, "boolean": true, "int": true, "long": true, "float": true,
	"double": true, "bytes": true, "string": true,
}

// parseAvroType reads a schema that goavro has accepted.
func parseAvroType(schema string) (*avroType, error) {
	var doc any
	if err := json.Unmarshal([]byte(schema), &doc); err != nil {
		return nil, err
	}
	p := avroParser{named: map[string]*avroType{}}
	return p.parse(doc, "")
}

type avroParser struct {
	named map[string]*avroType // by full name
}

func (p *avroParser) parse(s any, ns string) (*avroType, error) {
	switch s := s.(type) {
	case string:
		if avroPrimitives[s] {
			return &avroType{kind: s, name: s}, nil
		}
		if t := p.named[fullName(s, "", ns)]; t != nil {
			return t, nil
		}
		if t := p.named[s]; t != nil {
			return t, nil
		}
		return nil, fmt.Errorf("unknown type %q", s)
	case []any:
		u := &avroType{kind: "union", name: "union"}
		for _, b := range s {
			t, err := p.parse(b, ns)
			if err != nil {
				return nil, err
			}
			u.branches = append(u.branches, t)
		}
		return u, nil
	case map[string]any:
		return p.parseObject(s, ns)
	}
	return nil, fmt.Errorf("unexpected schema %v", s)
}

func (p *avroParser) parseObject(s map[string]any, ns string) (*avroType, error) {
	typ, ok := s["type"].(string)
	if !ok {
		// {"type": {...}} or {"type": [...]}: a wrapped schema.
		return p.parse(s["type"], ns)
	}
	str := func(k string) string { v, _ := s[k].(string); return v }
	switch typ {
	case "record", "error", "enum", "fixed":
		name := fullName(str("name"), str("namespace"), ns)
		kind := typ
		if kind == "error" {
			kind = "record"
		}
		t := &avroType{kind: kind, name: name, logical: str("logicalType")}
		p.named[name] = t
		if typ == "fixed" && t.logical == "decimal" {
			t.scale = intOf(s["scale"])
		}
		if kind != "record" {
			return t, nil
		}
		inner := name[:max(strings.LastIndexByte(name, '.'), 0)]
		fields, _ := s["fields"].([]any)
		for _, f := range fields {
			fm, _ := f.(map[string]any)
			fname, _ := fm["name"].(string)
			ft, err := p.parse(fm["type"], inner)
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", fname, err)
			}
			t.fields = append(t.fields, avroField{name: fname, typ: ft})
		}
		return t, nil
	case "array", "map":
		key := "items"
		if typ == "map" {
			key = "values"
		}
		items, err := p.parse(s[key], ns)
		if err != nil {
			return nil, err
		}
		return &avroType{kind: typ, name: typ, items: items}, nil
	}
	t, err := p.parse(typ, ns)
	if err != nil {
		return nil, err
	}
	if lt := str("logicalType"); lt != "" && avroPrimitives[typ] {
		c := *t
		c.logical, c.name = lt, typ+"."+lt
		if lt == "decimal" {
			c.scale = intOf(s["scale"])
		}
		return &c, nil
	}
	return t, nil
}

func intOf(v any) int {
	f, _ := v.(float64)
	return int(f)
}

// fullName applies Avro's namespace rules: a dotted name is full;
// otherwise the explicit namespace, else the enclosing one, qualifies it.
func fullName(name, namespace, enclosing string) string {
	if strings.Contains(name, ".") {
		return name
	}
	if namespace == "" {
		namespace = enclosing
	}
	if namespace == "" {
		return name
	}
	return namespace + "." + name
}

// toJSON converts a goavro native value of type t to JSON: unions
// unwrapped (goavro wraps a non-null branch as {name: value}), records in
// field order, map keys sorted (the same record always gives the same
// bytes), timestamps as ISO-8601 UTC, dates as YYYY-MM-DD, decimals as
// exact numbers, bytes and fixed as base64. A nil t converts by Go type.
func toJSON(a *fastjson.Arena, t *avroType, v any) (*fastjson.Value, error) {
	if t != nil && t.kind == "union" {
		if v == nil {
			return a.NewNull(), nil
		}
		m, ok := v.(map[string]any)
		if !ok || len(m) != 1 {
			return nil, fmt.Errorf("union value %T is not a single-entry map", v)
		}
		for name, inner := range m {
			return toJSON(a, t.branch(name, inner), inner)
		}
	}
	switch v := v.(type) {
	case nil:
		return a.NewNull(), nil
	case bool:
		if v {
			return a.NewTrue(), nil
		}
		return a.NewFalse(), nil
	case int32:
		return a.NewNumberString(strconv.FormatInt(int64(v), 10)), nil
	case int64:
		return a.NewNumberString(strconv.FormatInt(v, 10)), nil
	case int:
		return a.NewNumberString(strconv.Itoa(v)), nil
	case float32:
		return float(a, float64(v), 32)
	case float64:
		return float(a, v, 64)
	case string:
		return a.NewString(v), nil
	case []byte:
		return a.NewString(base64.StdEncoding.EncodeToString(v)), nil
	case time.Time:
		v = v.UTC()
		switch {
		case t != nil && t.logical == "date":
			return a.NewString(v.Format(time.DateOnly)), nil
		case t != nil && strings.HasSuffix(t.logical, "-micros"):
			return a.NewString(v.Format("2006-01-02T15:04:05.000000Z")), nil
		}
		return a.NewString(v.Format("2006-01-02T15:04:05.000Z")), nil
	case time.Duration: // time-millis, time-micros: a time of day
		d := time.Time{}.Add(v)
		if t != nil && t.logical == "time-micros" {
			return a.NewString(d.Format("15:04:05.000000")), nil
		}
		return a.NewString(d.Format("15:04:05.000")), nil
	case *big.Rat:
		scale := 0
		if t != nil {
			scale = t.scale
		}
		return a.NewNumberString(v.FloatString(scale)), nil
	case []any:
		var items *avroType
		if t != nil {
			items = t.items
		}
		arr := a.NewArray()
		for i, x := range v {
			j, err := toJSON(a, items, x)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			arr.SetArrayItem(i, j)
		}
		return arr, nil
	case map[string]any:
		obj := a.NewObject()
		if t != nil && t.kind == "record" {
			for _, f := range t.fields {
				j, err := toJSON(a, f.typ, v[f.name])
				if err != nil {
					return nil, fmt.Errorf("%s: %w", f.name, err)
				}
				obj.Set(f.name, j)
			}
			return obj, nil
		}
		var values *avroType
		if t != nil {
			values = t.items
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			j, err := toJSON(a, values, v[k])
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			obj.Set(k, j)
		}
		return obj, nil
	}
	return nil, fmt.Errorf("unsupported Avro value %T", v)
}

func float(a *fastjson.Arena, f float64, bits int) (*fastjson.Value, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("%v has no JSON form", f)
	}
	return a.NewNumberString(strconv.FormatFloat(f, 'g', -1, bits)), nil
}

// branch picks the union branch goavro named name, or failing that the
// first whose kind can hold v; nil (convert by Go type) if none.
func (t *avroType) branch(name string, v any) *avroType {
	for _, b := range t.branches {
		if b.name == name {
			return b
		}
	}
	for _, b := range t.branches {
		if holds(b, v) {
			return b
		}
	}
	return nil
}

func holds(t *avroType, v any) bool {
	switch v.(type) {
	case map[string]any:
		return t.kind == "record" || t.kind == "map"
	case []any:
		return t.kind == "array"
	case string:
		return t.kind == "string" || t.kind == "enum"
	case []byte:
		return t.kind == "bytes" || t.kind == "fixed"
	case *big.Rat:
		return t.logical == "decimal"
	}
	return false
}
