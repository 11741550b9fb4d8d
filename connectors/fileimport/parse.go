package fileimport

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/schemas"
)

// The keys a mapping file may use, in the order the docs list them.
var (
	topKeys = []string{
		"format", "header", "delimiter", "comment", "columns", "type", "event", "name",
		"user_id", "anonymous_id", "group_id", "previous_id", "timestamp",
		"properties", "traits", "context", "filters", "message_id", "namespace",
	}
	fieldKeys  = []string{"column", "value", "type", "layout", "timezone"}
	filterKeys = []string{"column", "equals", "in", "from", "to", "layout", "timezone"}
)

// ParseMapping decodes and checks a mapping file (see the package doc for
// its keys). name, usually the file's path, starts every error message.
//
// Parsing is strict: unknown and duplicate keys, values of the wrong kind and
// keys that do not fit the format or the event type are errors, all of them
// reported at once, one per line in document order, each as
// "name:line:column: key: problem". A key written with no value (or null)
// counts as absent.
func ParseMapping(data []byte, name string) (*Mapping, error) {
	file, err := parser.ParseBytes(data, 0, parser.AllowDuplicateMapKey())
	if err != nil {
		var yerr yaml.Error
		if errors.As(err, &yerr) && yerr.GetToken() != nil {
			p := yerr.GetToken().Position
			return nil, fmt.Errorf("%s:%d:%d: %s", name, p.Line, p.Column, yerr.GetMessage())
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var body ast.Node
	for _, doc := range file.Docs {
		if doc.Body == nil {
			continue
		}
		if body != nil {
			p := doc.Body.GetToken().Position
			if doc.Start != nil {
				p = doc.Start.Position
			}
			return nil, fmt.Errorf("%s:%d:%d: more than one YAML document", name, p.Line, p.Column)
		}
		body = doc.Body
	}
	if body == nil {
		return nil, fmt.Errorf("%s: the mapping is empty: format and type are required", name)
	}
	d := &decoder{name: name, m: &Mapping{name: name}}
	d.decode(body)
	if len(d.errs) > 0 {
		slices.SortStableFunc(d.errs, func(a, b posError) int {
			return cmp.Or(cmp.Compare(a.line, b.line), cmp.Compare(a.col, b.col))
		})
		errs := make([]error, len(d.errs))
		for i, e := range d.errs {
			errs[i] = errors.New(e.msg)
		}
		return nil, errors.Join(errs...)
	}
	return d.m, nil
}

// decoder walks a mapping file's YAML tree, building the Mapping and
// collecting every error with its position.
type decoder struct {
	name string
	m    *Mapping
	set  settings
	errs []posError
}

type posError struct {
	line, col int
	msg       string
}

// errorf records a problem with node n, the value of key (a key path; ""
// when the message names it).
func (d *decoder) errorf(n ast.Node, key, format string, args ...any) {
	p := n.GetToken().Position
	msg := fmt.Sprintf(format, args...)
	if key != "" {
		msg = key + ": " + msg
	}
	d.errs = append(d.errs, posError{p.Line, p.Column, fmt.Sprintf("%s:%d:%d: %s", d.name, p.Line, p.Column, msg)})
}

func (d *decoder) pos(n ast.Node) string {
	p := n.GetToken().Position
	return fmt.Sprintf("%s:%d:%d", d.name, p.Line, p.Column)
}

// kv is one key of a mapping with its value.
type kv struct {
	key  string
	node ast.Node // the key, for "required" and "not allowed" errors
	val  ast.Node
}

// unwrap looks through tags and anchors. Aliases are refused: a mapping is
// short, and refusing them rules out alias cycles.
func (d *decoder) unwrap(n ast.Node, key string) (ast.Node, bool) {
	for {
		switch v := n.(type) {
		case *ast.TagNode:
			n = v.Value
		case *ast.AnchorNode:
			n = v.Value
		case *ast.AliasNode:
			d.errorf(n, key, "aliases (*name) are not supported in mapping files")
			return nil, false
		default:
			return n, n != nil
		}
	}
}

// pairs returns the keys of the mapping n, found at path, reporting
// duplicates and, when known is not nil, keys not in known. Null values
// are left out, as if the key were absent.
func (d *decoder) pairs(n ast.Node, path string, known []string) ([]kv, bool) {
	var mvs []*ast.MappingValueNode
	switch m := n.(type) {
	case *ast.MappingNode:
		mvs = m.Values
	case *ast.MappingValueNode:
		mvs = []*ast.MappingValueNode{m}
	default:
		d.errorf(n, path, "expected a mapping, got %s", describe(n))
		return nil, false
	}
	var out []kv
	seen := make(map[string]int)
	for _, mv := range mvs {
		k, ok := scalar(mv.Key)
		if !ok || mv.Key.Type() == ast.MergeKeyType {
			d.errorf(mv.Key, path, "expected a key name, got %s", describe(mv.Key))
			continue
		}
		full := join(path, k)
		if line, dup := seen[k]; dup {
			d.errorf(mv.Key, "", "duplicate key %q (first at line %d)", full, line)
			continue
		}
		seen[k] = mv.Key.GetToken().Position.Line
		if known != nil && !slices.Contains(known, k) {
			msg := fmt.Sprintf("unknown key %q", full)
			if near := config.Suggest(k, known); near != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", join(path, near))
			}
			d.errorf(mv.Key, "", "%s", msg)
			continue
		}
		v, ok := d.unwrap(mv.Value, full)
		if !ok {
			continue
		}
		if _, null := v.(*ast.NullNode); null {
			continue
		}
		out = append(out, kv{key: k, node: mv.Key, val: v})
	}
	return out, true
}

// str returns the text of a scalar value.
func (d *decoder) str(n ast.Node, key string) (string, bool) {
	s, ok := scalar(n)
	if !ok {
		d.errorf(n, key, "expected a string, got %s", describe(n))
	}
	return s, ok
}

func (d *decoder) boolean(n ast.Node, key string) (bool, bool) {
	if b, ok := n.(*ast.BoolNode); ok {
		return b.Value, true
	}
	d.errorf(n, key, "expected true or false, got %s", describe(n))
	return false, false
}

func (d *decoder) integer(n ast.Node, key string) (int, bool) {
	if i, ok := n.(*ast.IntegerNode); ok {
		if v, err := strconv.Atoi(i.GetToken().Value); err == nil {
			return v, true
		}
	}
	d.errorf(n, key, "expected an integer, got %s", describe(n))
	return 0, false
}

// decode builds the mapping from the document's top-level mapping.
func (d *decoder) decode(body ast.Node) {
	m := d.m
	body, ok := d.unwrap(body, "")
	if !ok {
		return
	}
	pairs, ok := d.pairs(body, "", topKeys)
	if !ok {
		return
	}
	top := make(map[string]kv, len(pairs))
	for _, p := range pairs {
		top[p.key] = p
	}

	// format and type decide what the other keys may be.
	start := body
	if mn, ok := body.(*ast.MappingNode); ok && len(mn.Values) > 0 {
		start = mn.Values[0].Key // "required" errors point at the first key
	}
	if p, ok := top["format"]; !ok {
		d.errorf(start, "format", "required: csv, tsv, whitespace or jsonl")
	} else if s, ok := d.str(p.val, "format"); ok {
		switch f := Format(s); f {
		case CSV, TSV, Whitespace, JSONL:
			m.format = f
		default:
			d.errorf(p.val, "format", "must be csv, tsv, whitespace or jsonl, got %q", s)
		}
	}
	d.set = defaults(m.format)
	m.header, m.delimiter = d.set.header, d.set.delimiter
	typeNode := start
	if p, ok := top["type"]; !ok {
		d.errorf(start, "type", "required: %s", strings.Join(segmentTypes, ", "))
	} else if s, ok := d.str(p.val, "type"); ok {
		typeNode = p.val
		if slices.Contains(segmentTypes, s) {
			m.typ = s
		} else {
			d.errorf(p.val, "type", "must be one of %s, got %q", strings.Join(segmentTypes, ", "), s)
		}
	}

	text := m.format != JSONL
	if p, ok := top["header"]; ok {
		if m.format == JSONL {
			d.errorf(p.node, "header", "jsonl files have no header")
		} else if b, ok := d.boolean(p.val, "header"); ok {
			m.header = b
		}
	}
	if p, ok := top["delimiter"]; ok {
		if s, ok := d.str(p.val, "delimiter"); ok {
			switch {
			case m.format != CSV && m.format != TSV:
				d.errorf(p.node, "delimiter", "only csv and tsv have a delimiter; %s splits on spaces and tabs", cmp.Or(string(m.format), "this format"))
			case len(s) != 1 || s == `"` || s == "\r" || s == "\n":
				d.errorf(p.val, "delimiter", "must be one character other than a quote or a line break, got %q", s)
			default:
				m.delimiter = s[0]
			}
		}
	}
	if p, ok := top["comment"]; ok {
		if s, ok := d.str(p.val, "comment"); ok {
			if strings.TrimSpace(s) == "" {
				d.errorf(p.val, "comment", "must not be empty or blank")
			}
			m.comment = s
		}
	}
	if p, ok := top["columns"]; ok {
		if n, ok := d.integer(p.val, "columns"); ok {
			switch {
			case !text:
				d.errorf(p.node, "columns", "jsonl rows have no column count")
			case m.header:
				d.errorf(p.node, "columns", "not needed with header: true, which gives the column count")
			case n < 1:
				d.errorf(p.val, "columns", "must be at least 1, got %d", n)
			default:
				m.columns = n
			}
		}
	}
	if p, ok := top["namespace"]; ok {
		m.namespace, _ = d.str(p.val, "namespace")
	}

	d.decodeEvent(top, typeNode)

	if p, ok := top["filters"]; ok {
		if seq, ok := p.val.(*ast.SequenceNode); ok {
			for i, item := range seq.Values {
				if f := d.filter(item, fmt.Sprintf("filters[%d]", i)); f != nil {
					m.filters = append(m.filters, f)
				}
			}
		} else {
			d.errorf(p.val, "filters", "expected a list, got %s", describe(p.val))
		}
	}
	if p, ok := top["message_id"]; ok {
		items := []ast.Node{p.val}
		if seq, ok := p.val.(*ast.SequenceNode); ok {
			items = seq.Values
			if len(items) == 0 {
				d.errorf(p.val, "message_id", "lists no column")
			}
		}
		for i, item := range items {
			key := "message_id"
			if _, ok := p.val.(*ast.SequenceNode); ok {
				key = fmt.Sprintf("message_id[%d]", i)
			}
			if s, ok := d.str(item, key); ok {
				if r := d.ref(item, s, key); r != nil {
					m.messageID = append(m.messageID, r)
				}
			}
		}
	}

	for _, r := range m.refs {
		if m.columns > 0 && r.pos1 > m.columns {
			d.errorf(top["columns"].val, "columns", "is %d, but %s refers to column %s", m.columns, r.key, r.text)
		}
	}
	m.identity = identity(m)
}

// decodeEvent decodes the keys that build the event, which depend on its type.
func (d *decoder) decodeEvent(top map[string]kv, typeNode ast.Node) {
	m := d.m
	typ := m.typ
	// allowed reports whether key fits the type, reporting it if not.
	allowed := func(key string, ok bool, why string) (kv, bool) {
		p, present := top[key]
		if present && !ok && typ != "" {
			d.errorf(p.node, key, "%s", why)
			return p, false
		}
		return p, present
	}
	required := func(key string, ok bool) {
		if _, present := top[key]; !present && ok {
			d.errorf(typeNode, key, "required for type %s", typ)
		}
	}

	isTrack := typ == schemas.TypeTrack
	if p, ok := allowed("event", isTrack, "only track events have an event name"); ok {
		m.event = d.nameField(p.val, "event")
	}
	required("event", isTrack)
	isPage := typ == schemas.TypePage || typ == schemas.TypeScreen
	if p, ok := allowed("name", isPage, "only page and screen events have a name"); ok {
		m.pageName = d.nameField(p.val, "name")
	}
	for _, id := range identifierNames {
		ok := true
		switch id.key {
		case "group_id":
			ok = typ == schemas.TypeGroup
			required(id.key, ok)
		case "previous_id":
			ok = typ == schemas.TypeAlias
			required(id.key, ok)
		case "user_id":
			required(id.key, typ == schemas.TypeAlias)
		}
		p, present := allowed(id.key, ok, id.only)
		if !present {
			continue
		}
		if f := d.field(p.val, id.key, typeString); f != nil {
			if f.typ != typeString {
				d.errorf(p.val, id.key, "identifiers are strings, got type %s", f.typ)
			}
			f.typ, f.name = typeString, id.json
			m.ids = append(m.ids, f)
		}
	}
	_, user := top["user_id"]
	_, anon := top["anonymous_id"]
	if !user && !anon && typ != "" && typ != schemas.TypeAlias {
		d.errorf(typeNode, "user_id", "a %s event needs user_id or anonymous_id (or both)", typ)
	}
	if p, ok := top["timestamp"]; ok {
		if f := d.field(p.val, "timestamp", typeTime); f != nil {
			if f.typ != typeTime {
				d.errorf(p.val, "timestamp.type", "must be time, got %s", f.typ)
			}
			f.name = "timestamp"
			m.timestamp = f
		}
	}

	hasProps := isTrack || isPage
	if p, ok := allowed("properties", hasProps, fmt.Sprintf("%s events carry no properties; use traits", typ)); ok {
		m.properties = d.fields(p.val, "properties")
	}
	m.context = &object{name: "context"}
	if p, ok := top["context"]; ok {
		d.contextFields(p.val)
	}
	if p, ok := top["traits"]; ok {
		traits := d.fields(p.val, "traits")
		switch {
		case traits.empty():
		case typ == schemas.TypeIdentify || typ == schemas.TypeGroup:
			m.traits = traits
		default:
			// Segment keeps the traits of other calls in context.traits.
			if m.context.has("traits") {
				d.errorf(p.node, "traits", "a %s event keeps its traits in context.traits, which context sets too", typ)
			} else {
				traits.name = "traits"
				m.context.members = append(m.context.members, member{obj: traits})
			}
		}
	}
}

// nameField decodes an event or page name: a constant string, or a value
// mapping ({column: …}).
func (d *decoder) nameField(n ast.Node, key string) *field {
	if _, isMap := n.(*ast.MappingNode); !isMap {
		s, ok := d.str(n, key)
		if !ok {
			return nil
		}
		if strings.TrimSpace(s) == "" {
			d.errorf(n, key, "must not be empty")
			return nil
		}
		return &field{key: key, name: key, konst: schemas.AppendJSONString(nil, s), typ: typeString}
	}
	f := d.field(n, key, typeString)
	if f == nil {
		return nil
	}
	if f.typ != typeString {
		d.errorf(n, key+".type", "must be string, got %s", f.typ)
	}
	f.name = key
	return f
}

// fields decodes properties or traits: names mapped to values.
func (d *decoder) fields(n ast.Node, key string) *object {
	o := &object{name: key}
	pairs, _ := d.pairs(n, key, nil)
	for _, p := range pairs {
		if f := d.field(p.val, key+"."+p.key, d.set.valueType); f != nil {
			f.name = p.key
			o.members = append(o.members, member{f: f})
		}
	}
	return o
}

// contextFields decodes context: dotted paths mapped to values.
func (d *decoder) contextFields(n ast.Node) {
	pairs, _ := d.pairs(n, "context", nil)
	for _, p := range pairs {
		key := "context." + p.key
		parts := strings.Split(p.key, ".")
		if slices.Contains(parts, "") {
			d.errorf(p.node, key, "is not a dotted path such as device.id")
			continue
		}
		f := d.field(p.val, key, d.set.valueType)
		if f == nil {
			continue
		}
		f.name = parts[len(parts)-1]
		o := d.m.context
		for _, part := range parts[:len(parts)-1] {
			if o = o.child(part); o == nil {
				break
			}
		}
		if o == nil || o.has(f.name) {
			d.errorf(p.node, key, "conflicts with another context key")
			continue
		}
		o.members = append(o.members, member{f: f})
	}
}

// field decodes a value: a column reference, or a mapping with column or
// value, type, and for times layout and timezone. def is the type when none
// is given for a column (a constant is a string unless typed).
func (d *decoder) field(n ast.Node, key string, def valueType) *field {
	f := &field{key: key, typ: def}
	if _, isMap := n.(*ast.MappingNode); !isMap {
		if _, isMV := n.(*ast.MappingValueNode); !isMV {
			s, ok := d.str(n, key)
			if !ok {
				return nil
			}
			if f.col = d.ref(n, s, key); f.col == nil {
				return nil
			}
			if f.typ == typeTime {
				if f.layout = d.layout(n, key, "", "", nil, nil); f.layout == nil {
					return nil
				}
			}
			return f
		}
	}
	pairs, ok := d.pairs(n, key, fieldKeys)
	if !ok {
		return nil
	}
	var col, value, layoutKV, tzKV *kv
	good := true
	for i := range pairs {
		p := &pairs[i]
		switch p.key {
		case "column":
			col = p
		case "value":
			value = p
		case "layout":
			layoutKV = p
		case "timezone":
			tzKV = p
		case "type":
			s, ok := d.str(p.val, key+".type")
			if !ok {
				good = false
				break
			}
			ti := slices.Index(typeNames, s)
			if ti < 0 {
				d.errorf(p.val, key+".type", "must be one of %s, got %q", strings.Join(typeNames, ", "), s)
				good = false
				break
			}
			f.typ = valueType(ti)
		}
	}
	switch {
	case col == nil && value == nil:
		d.errorf(n, key, "give column (where the value is) or value (a constant)")
		return nil
	case col != nil && value != nil:
		d.errorf(value.node, key+".value", "give column or value, not both")
		return nil
	case value != nil && def != typeTime && !slices.ContainsFunc(pairs, func(p kv) bool { return p.key == "type" }):
		f.typ = typeString // a constant is a string unless typed
	}
	for _, p := range []*kv{layoutKV, tzKV} {
		if p != nil && f.typ != typeTime {
			d.errorf(p.node, key+"."+p.key, "only for type time")
			good = false
		}
	}
	if !good {
		return nil
	}
	if f.typ == typeTime {
		if f.layout = d.layout(n, key, "", "", layoutKV, tzKV); f.layout == nil {
			return nil
		}
	}
	if col != nil {
		s, ok := d.str(col.val, key+".column")
		if !ok {
			return nil
		}
		if f.col = d.ref(col.val, s, key); f.col == nil {
			return nil
		}
		return f
	}
	s, ok := d.str(value.val, key+".value")
	if !ok {
		return nil
	}
	out, err := convert(nil, f, []byte(s), nil)
	if err != nil {
		d.errorf(value.val, key+".value", "%v", err)
		return nil
	}
	f.konst = out
	return f
}

// layout decodes a layout and timezone, each from its key or else the
// given default, else the format's.
func (d *decoder) layout(n ast.Node, key, defLayout, defTZ string, layoutKV, tzKV *kv) *layout {
	name, tz := cmp.Or(defLayout, d.set.layout), cmp.Or(defTZ, d.set.timezone)
	errNode := n
	if layoutKV != nil {
		s, ok := d.str(layoutKV.val, key+".layout")
		if !ok {
			return nil
		}
		name, errNode = s, layoutKV.val
	}
	if tzKV != nil {
		s, ok := d.str(tzKV.val, key+".timezone")
		if !ok {
			return nil
		}
		tz = s
	}
	l, bad, err := newLayout(name, tz)
	if err != nil {
		if bad == "timezone" && tzKV != nil {
			errNode = tzKV.val
		}
		d.errorf(errNode, key+"."+bad, "%v", err)
		return nil
	}
	return l
}

// ref decodes a column reference: $N, a header name, or a jsonl path.
func (d *decoder) ref(n ast.Node, s, key string) *colRef {
	m := d.m
	r := &colRef{id: len(m.refs), text: s, pos: d.pos(n), key: key}
	switch {
	case strings.TrimSpace(s) == "":
		d.errorf(n, key, "empty column reference: write a header name or a position such as $2")
		return nil
	case m.format == JSONL:
		if strings.HasPrefix(s, "$") {
			d.errorf(n, key, "%s: jsonl columns are dotted paths into each line's object, such as user.id, not positions", s)
			return nil
		}
		r.path = strings.Split(s, ".")
		if slices.Contains(r.path, "") {
			d.errorf(n, key, "%q is not a dotted path such as user.id", s)
			return nil
		}
	case strings.HasPrefix(s, "$"):
		i, err := strconv.Atoi(s[1:])
		if err != nil || i < 1 || s[1] == '+' || s[1] == '0' {
			d.errorf(n, key, "%s is not a column position: positions are written $1, $2, …", s)
			return nil
		}
		r.pos1 = i
	case !m.header && m.format != "":
		d.errorf(n, key, "column %q is a name, but the file has no header (header: false): refer to columns by position, such as $2", s)
		return nil
	}
	m.refs = append(m.refs, r)
	return r
}

// filter decodes one entry of filters.
func (d *decoder) filter(n ast.Node, key string) *filter {
	n, ok := d.unwrap(n, key)
	if !ok {
		return nil
	}
	pairs, ok := d.pairs(n, key, filterKeys)
	if !ok {
		return nil
	}
	f := &filter{key: key}
	got := make(map[string]*kv)
	for i := range pairs {
		got[pairs[i].key] = &pairs[i]
	}
	if p := got["column"]; p == nil {
		d.errorf(n, key+".column", "required: the column the filter tests")
	} else if s, ok := d.str(p.val, key+".column"); ok {
		f.col = d.ref(p.val, s, key)
	}
	kinds := 0
	for _, k := range []string{"equals", "in"} {
		if got[k] != nil {
			kinds++
		}
	}
	if got["from"] != nil || got["to"] != nil {
		kinds++
	}
	switch {
	case kinds == 0:
		d.errorf(n, key, "give equals, in, or a time range with from and to")
		return nil
	case kinds > 1:
		d.errorf(n, key, "give only one of equals, in, or from and to")
		return nil
	}
	if p := got["equals"]; p != nil {
		if s, ok := d.str(p.val, key+".equals"); ok {
			f.equals = []string{s}
		}
	}
	if p := got["in"]; p != nil {
		seq, ok := p.val.(*ast.SequenceNode)
		if !ok || len(seq.Values) == 0 {
			d.errorf(p.val, key+".in", "expected a list of values, got %s", describe(p.val))
		} else {
			for i, item := range seq.Values {
				if s, ok := d.str(item, fmt.Sprintf("%s.in[%d]", key, i)); ok {
					f.equals = append(f.equals, s)
				}
			}
		}
	}
	if got["from"] == nil && got["to"] == nil {
		for _, k := range []string{"layout", "timezone"} {
			if p := got[k]; p != nil {
				d.errorf(p.node, key+"."+k, "only for a time range (from, to)")
			}
		}
		return f
	}
	// A range reads the column with the timestamp's layout unless told.
	var defLayout, defTZ string
	if ts := d.m.timestamp; ts != nil && ts.layout != nil {
		defLayout, defTZ = ts.layout.name, ts.layout.loc.String()
	}
	f.layout = d.layout(n, key, defLayout, defTZ, got["layout"], got["timezone"])
	if f.layout == nil {
		return nil
	}
	if p := got["from"]; p != nil {
		f.from, _ = d.bound(p.val, key+".from", f.layout.loc)
	}
	if p := got["to"]; p != nil {
		t, dateOnly := d.bound(p.val, key+".to", f.layout.loc)
		if dateOnly {
			f.to = t.AddDate(0, 0, 1) // the whole day
		} else if !t.IsZero() {
			f.to = t.Add(1) // inclusive
		}
		if !f.from.IsZero() && !f.to.IsZero() && !f.from.Before(f.to) {
			d.errorf(p.val, key+".to", "is before from")
		}
	}
	return f
}

// bound decodes a range bound: a date (2006-01-02) or an RFC 3339 time, in
// loc when it has no offset.
func (d *decoder) bound(n ast.Node, key string, loc *time.Location) (t time.Time, dateOnly bool) {
	s, ok := d.str(n, key)
	if !ok {
		return time.Time{}, false
	}
	if t, err := time.ParseInLocation("2006-01-02", s, loc); err == nil {
		return t, true
	}
	if t, err := time.ParseInLocation(time.RFC3339Nano, s, loc); err == nil {
		return t, false
	}
	d.errorf(n, key, "%q is not a date (2006-01-02) or an RFC 3339 time (2006-01-02T15:04:05Z)", s)
	return time.Time{}, false
}

// identity is what every messageId of the mapping starts from: its type,
// its event or page name and its namespace (see the package doc).
func identity(m *Mapping) []byte {
	name := func(f *field) string {
		if f == nil {
			return ""
		}
		if f.col != nil {
			return "column " + f.col.text
		}
		return string(f.konst)
	}
	return []byte(strings.Join([]string{"tessera import v1", m.typ, name(m.event), name(m.pageName), m.namespace}, "\x00") + "\x00")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// scalar returns the text of a scalar node as written (0001 stays 0001).
func scalar(n ast.Node) (string, bool) {
	switch n := n.(type) {
	case *ast.StringNode:
		return n.Value, true
	case *ast.LiteralNode:
		return n.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return n.GetToken().Value, true
	}
	return "", false
}

// describe names a node for an error message: "a mapping", "a list", a
// quoted string or the literal (3.5, true).
func describe(n ast.Node) string {
	switch n := n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode:
		return strconv.Quote(n.Value)
	case *ast.NullNode:
		return "null"
	}
	return n.GetToken().Value
}
