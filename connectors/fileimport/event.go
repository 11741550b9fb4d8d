package fileimport

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/schemas"
	"github.com/valyala/fastjson"
)

// plan is a mapping bound to one file: its column references resolved
// against the file's header.
type plan struct {
	m *Mapping
	// index and label are by colRef.id: the 0-based column (text formats)
	// and how errors name it.
	index []int
	label []string
	// want is the column count every row must have (0: any); why says
	// where it comes from. minCols is the highest column referenced.
	want    int
	why     string
	minCols int

	h   hash.Hash
	sum []byte
	num []byte // scratch: a number's text, a jsonl value's text
}

// bind resolves m's column references against header (nil without one),
// read from line headerLine of file.
func bind(m *Mapping, header []string, file string, headerLine int) (*plan, error) {
	p := &plan{m: m, index: make([]int, len(m.refs)), label: make([]string, len(m.refs)), h: sha1.New()}
	switch {
	case header != nil:
		p.want, p.why = len(header), fmt.Sprintf("as in the header on line %d", headerLine)
	case m.columns > 0:
		p.want, p.why = m.columns, "as the mapping's columns says"
	}
	var errs []error
	for _, r := range m.refs {
		switch {
		case m.format == JSONL:
			p.index[r.id], p.label[r.id] = -1, strconv.Quote(r.text)
		case r.pos1 > 0:
			p.index[r.id], p.label[r.id] = r.pos1-1, r.text
		default:
			i := slices.Index(header, r.text)
			if i < 0 {
				msg := fmt.Sprintf("%s: %s: no column %q in the header of %s (line %d)", r.pos, r.key, r.text, file, headerLine)
				if near := config.Suggest(r.text, header); near != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", near)
				}
				errs = append(errs, errors.New(msg))
				continue
			}
			if j := slices.Index(header[i+1:], r.text); j >= 0 {
				errs = append(errs, fmt.Errorf("%s: %s: column %q appears twice in the header of %s, as $%d and $%d: refer to it by position", r.pos, r.key, r.text, file, i+1, i+j+2))
				continue
			}
			p.index[r.id], p.label[r.id] = i, fmt.Sprintf("%q ($%d)", r.text, i+1)
		}
		p.minCols = max(p.minCols, p.index[r.id]+1)
	}
	return p, errors.Join(errs...)
}

// cell returns the text of the column r in rec, and for jsonl its JSON
// value. ok is false for an empty cell or a missing or null JSON value.
func (p *plan) cell(rec *record, r *colRef) (text []byte, v *fastjson.Value, ok bool) {
	if rec.obj == nil {
		i := p.index[r.id]
		if i >= len(rec.fields) {
			return nil, nil, false
		}
		text = rec.fields[i]
		return text, nil, len(bytes.TrimSpace(text)) > 0
	}
	v = rec.obj.Get(r.path...)
	switch {
	case v == nil || v.Type() == fastjson.TypeNull:
		return nil, nil, false
	case v.Type() == fastjson.TypeString:
		text = v.GetStringBytes()
	default:
		p.num = v.MarshalTo(p.num[:0])
		text = p.num
	}
	return text, v, len(bytes.TrimSpace(text)) > 0
}

// errAt is a LineError about the value of field key read from column r.
func (p *plan) errAt(rec *record, r *colRef, key string, err error) *LineError {
	e := &LineError{Line: rec.line, Key: key, Err: err}
	if r != nil {
		e.Column = p.label[r.id]
	}
	return e
}

// event appends the JSON of rec's event to dst. skip reports a record that
// a filter leaves out.
func (p *plan) event(dst []byte, rec *record) (out []byte, skip bool, lerr *LineError) {
	m := p.m
	if rec.obj == nil {
		switch n := len(rec.fields); {
		case p.want > 0 && n != p.want:
			return dst, false, &LineError{Line: rec.line, Err: fmt.Errorf("has %d columns, expected %d (%s)", n, p.want, p.why)}
		case n < p.minCols:
			return dst, false, &LineError{Line: rec.line, Err: fmt.Errorf("has %d columns, but the mapping reads column $%d", n, p.minCols)}
		}
	}
	for _, f := range m.filters {
		keep, err := p.keep(rec, f)
		if err != nil {
			return dst, false, err
		}
		if !keep {
			return dst, true, nil
		}
	}

	dst = append(dst, `{"type":`...)
	dst = schemas.AppendJSONString(dst, []byte(m.typ))
	var err *LineError
	for _, f := range []*field{m.event, m.pageName} {
		if dst, err = p.value(dst, rec, f, false); err != nil {
			return dst, false, err
		}
	}
	for _, f := range m.ids {
		if dst, err = p.value(dst, rec, f, false); err != nil {
			return dst, false, err
		}
	}
	if dst, err = p.value(dst, rec, m.timestamp, true); err != nil {
		return dst, false, err
	}
	for _, o := range []*object{m.properties, m.traits, m.context} {
		if !o.empty() {
			if dst, err = p.object(dst, rec, o); err != nil {
				return dst, false, err
			}
		}
	}
	return append(dst, '}'), false, nil
}

// object appends `,"name":{…}` with the members of o that rec has, or
// nothing if it has none.
func (p *plan) object(dst []byte, rec *record, o *object) ([]byte, *LineError) {
	mark := len(dst)
	dst = appendKey(dst, o.name)
	dst = append(dst, '{')
	var err *LineError
	for _, mb := range o.members {
		if mb.obj != nil {
			dst, err = p.object(dst, rec, mb.obj)
		} else {
			dst, err = p.value(dst, rec, mb.f, false)
		}
		if err != nil {
			return dst, err
		}
	}
	if dst[len(dst)-1] == '{' {
		return dst[:mark], nil
	}
	return append(dst, '}'), nil
}

// value appends `,"name":value` for field f, or nothing when its cell is
// empty, unless required.
func (p *plan) value(dst []byte, rec *record, f *field, required bool) ([]byte, *LineError) {
	if f == nil {
		return dst, nil
	}
	if f.col == nil {
		return append(appendKey(dst, f.name), f.konst...), nil
	}
	text, v, ok := p.cell(rec, f.col)
	if !ok {
		if required {
			return dst, p.errAt(rec, f.col, f.key, errors.New("is empty"))
		}
		return dst, nil
	}
	mark := len(dst)
	dst = appendKey(dst, f.name)
	out, err := convert(dst, f, text, v)
	if err != nil {
		return dst[:mark], p.errAt(rec, f.col, f.key, err)
	}
	return out, nil
}

// appendKey appends `"name":`, after a comma unless it opens an object.
func appendKey(dst []byte, name string) []byte {
	if len(dst) > 0 && dst[len(dst)-1] != '{' {
		dst = append(dst, ',')
	}
	dst = schemas.AppendJSONString(dst, []byte(name))
	return append(dst, ':')
}

// keep reports whether rec passes filter f.
func (p *plan) keep(rec *record, f *filter) (bool, *LineError) {
	text, _, ok := p.cell(rec, f.col)
	if f.layout == nil {
		return slices.Contains(f.equals, string(text)), nil
	}
	if !ok {
		return false, p.errAt(rec, f.col, f.key, errors.New("is empty, so the time range cannot be checked"))
	}
	t, err := f.layout.parse(string(bytes.TrimSpace(text)))
	if err != nil {
		return false, p.errAt(rec, f.col, f.key, err)
	}
	return (f.from.IsZero() || !t.Before(f.from)) && (f.to.IsZero() || t.Before(f.to)), nil
}

// convert appends the JSON of text (or of v, a jsonl value) as f's type.
func convert(dst []byte, f *field, text []byte, v *fastjson.Value) ([]byte, error) {
	s := string(bytes.TrimSpace(text))
	switch f.typ {
	case typeString:
		return schemas.AppendJSONString(dst, text), nil
	case typeInt:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return dst, fmt.Errorf("%s is out of range for an integer", short(s))
			}
			return dst, fmt.Errorf("%s is not an integer", short(s))
		}
		return strconv.AppendInt(dst, n, 10), nil
	case typeFloat:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) || strings.ContainsAny(s, "xX_") {
			return dst, fmt.Errorf("%s is not a number", short(s))
		}
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return dst, fmt.Errorf("%s is not a finite number", short(s))
		}
		return strconv.AppendFloat(dst, x, 'g', -1, 64), nil
	case typeBool:
		switch strings.ToLower(s) {
		case "true", "t", "yes", "y", "1":
			return append(dst, "true"...), nil
		case "false", "f", "no", "n", "0":
			return append(dst, "false"...), nil
		}
		return dst, fmt.Errorf("%s is not a boolean (true, false, yes, no, 1, 0)", short(s))
	case typeTime:
		t, err := f.layout.parse(s)
		if err != nil {
			return dst, err
		}
		if y := t.UTC().Year(); y < 0 || y > 9999 {
			return dst, fmt.Errorf("%s is out of range: years 0 to 9999", short(s))
		}
		dst = append(dst, '"')
		dst = t.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z")
		return append(dst, '"'), nil
	}
	// typeJSON
	if v != nil {
		return v.MarshalTo(dst), nil
	}
	if err := fastjson.Validate(s); err != nil {
		return dst, fmt.Errorf("%s is not JSON", short(s))
	}
	return append(dst, s...), nil
}

// short quotes s for an error message, cut to 64 bytes.
func short(s string) string {
	if len(s) > 64 {
		cut := 64
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "…"
	}
	return strconv.Quote(s)
}

// uuidNamespace is the namespace of imported events' messageIds (a random
// UUID, fixed forever: changing it would change every id).
var uuidNamespace = [16]byte{0x6b, 0x1e, 0x0c, 0x53, 0x2f, 0x8d, 0x4a, 0x7e, 0x9c, 0x31, 0x5d, 0x0b, 0xe4, 0x72, 0xa9, 0x16}

// messageID returns rec's deterministic messageId (see the package doc): a
// version 5 UUID of the mapping's identity and either the message_id
// columns, or the line number and the record's content.
func (p *plan) messageID(rec *record) (string, *LineError) {
	m := p.m
	p.h.Reset()
	p.h.Write(uuidNamespace[:])
	p.h.Write(m.identity)
	writeField := func(b []byte) {
		p.num = strconv.AppendInt(p.num[:0], int64(len(b)), 10)
		p.num = append(p.num, ':')
		p.h.Write(p.num)
		p.h.Write(b)
	}
	switch {
	case len(m.messageID) > 0:
		for _, r := range m.messageID {
			text, _, ok := p.cell(rec, r)
			if !ok {
				return "", p.errAt(rec, r, r.key, errors.New("is empty, and message_id needs it to identify the row"))
			}
			writeField(text)
		}
	case rec.obj != nil:
		writeField(strconv.AppendInt(nil, int64(rec.line), 10))
		writeField(bytes.TrimSpace(rec.raw))
	default:
		writeField(strconv.AppendInt(nil, int64(rec.line), 10))
		for _, f := range rec.fields {
			writeField(f)
		}
	}
	p.sum = p.h.Sum(p.sum[:0])
	u := p.sum[:16]
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], u[10:16])
	return string(b[:]), nil
}

// keyOf maps the fields the Segment spec checks to the mapping keys that set
// them, so a Normalizer error can name the column.
var keyOf = map[string]string{
	"userId": "user_id", "anonymousId": "anonymous_id", "groupId": "group_id",
	"previousId": "previous_id", "event": "event", "timestamp": "timestamp",
}

// fieldOf returns the field of the mapping that sets the event's JSON field
// name, if it is read from a column.
func (m *Mapping) fieldOf(name string) *field {
	key := keyOf[name]
	for _, f := range append([]*field{m.event, m.timestamp}, m.ids...) {
		if f != nil && f.key == key && f.col != nil {
			return f
		}
	}
	return nil
}
