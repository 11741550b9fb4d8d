package fileimport

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/tessera-cdp/tessera/schemas"
)

// Format is how the rows of a file are written.
type Format string

// The formats a mapping's format key names.
const (
	// CSV is comma-separated values (RFC 4180), with a header by default.
	CSV Format = "csv"
	// TSV is tab-separated values, quoted as CSV, with a header by default.
	TSV Format = "tsv"
	// Whitespace is columns separated by runs of spaces or tabs, no quoting
	// and no header by default.
	Whitespace Format = "whitespace"
	// JSONL is JSON Lines: one JSON object per line, columns as dotted paths.
	JSONL Format = "jsonl"
)

// settings are what a mapping file may leave out.
type settings struct {
	header    bool
	delimiter byte
	valueType valueType
	layout    string
	timezone  string
}

// defaults returns the settings of a mapping of format f where the file is
// silent. It is the one place where the mapping's defaults are set.
func defaults(f Format) settings {
	s := settings{valueType: typeString, layout: "rfc3339", timezone: "UTC"}
	switch f {
	case CSV:
		s.header, s.delimiter = true, ','
	case TSV:
		s.header, s.delimiter = true, '\t'
	case JSONL:
		s.valueType = typeJSON // copy numbers, booleans and objects as they are
	}
	return s
}

// Mapping says how the rows of one kind of file become Segment-spec events:
// which columns give the identifiers, the timestamp, the properties and
// traits, which rows to skip, and what makes a row's messageId. Build it
// with LoadMapping or ParseMapping; it is immutable and safe for concurrent
// use.
type Mapping struct {
	name      string // the mapping file, for errors
	format    Format
	header    bool
	delimiter byte
	comment   string
	columns   int // rows must have this many columns; 0: no check
	typ       string
	namespace string

	event     *field // track
	pageName  *field // page, screen
	ids       []*field
	timestamp *field
	// properties and traits are flat; context is nested, and holds the
	// traits of the types whose traits live in context.traits.
	properties *object
	traits     *object
	context    *object
	filters    []*filter
	messageID  []*colRef

	// refs are all column references, indexed by colRef.id.
	refs []*colRef
	// identity starts every messageId's hash.
	identity []byte
}

// Format returns the format of the files the mapping reads.
func (m *Mapping) Format() Format { return m.format }

// Name returns the name of the mapping file, as given to ParseMapping.
func (m *Mapping) Name() string { return m.name }

// LoadMapping reads and parses the mapping file at path; see ParseMapping.
func LoadMapping(path string) (*Mapping, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading mapping: %w", err)
	}
	return ParseMapping(data, path)
}

// valueType is the JSON type a column's text becomes.
type valueType int

const (
	typeString valueType = iota
	typeInt
	typeFloat
	typeBool
	typeTime
	typeJSON
)

var typeNames = []string{"string", "int", "float", "bool", "time", "json"}

func (t valueType) String() string { return typeNames[t] }

// colRef is one reference to a column, as written in the mapping.
type colRef struct {
	id   int
	text string   // as written: "$2", "amount", "user.id"
	pos  string   // "mapping.yaml:7:14"
	key  string   // the mapping key it gives: "properties.revenue"
	pos1 int      // $N: N; 0 for a name
	path []string // jsonl: the dotted path, split
}

// field is one value of the event: a column's text converted to a type, or
// a constant.
type field struct {
	key    string // mapping key path, for errors: "properties.revenue"
	name   string // the JSON name it is written under: "revenue", "userId"
	col    *colRef
	konst  []byte // a constant's JSON text, when col is nil
	typ    valueType
	layout *layout // typeTime
}

// object is a JSON object of the event whose members are mapped fields or
// nested objects, in the order the mapping gives them.
type object struct {
	name    string
	members []member
}

// member is a field or a nested object.
type member struct {
	f   *field
	obj *object
}

// empty reports whether o has no members, so it can be left out.
func (o *object) empty() bool { return o == nil || len(o.members) == 0 }

// child returns the nested object called name, creating it; nil if name is
// a field already.
func (o *object) child(name string) *object {
	for _, m := range o.members {
		if m.obj != nil && m.obj.name == name {
			return m.obj
		}
		if m.f != nil && m.f.name == name {
			return nil
		}
	}
	c := &object{name: name}
	o.members = append(o.members, member{obj: c})
	return c
}

// has reports whether o has a member called name.
func (o *object) has(name string) bool {
	for _, m := range o.members {
		if (m.f != nil && m.f.name == name) || (m.obj != nil && m.obj.name == name) {
			return true
		}
	}
	return false
}

// filter keeps only the rows whose column passes it.
type filter struct {
	key    string // "filters[0]"
	col    *colRef
	equals []string // equals or in
	from   time.Time
	to     time.Time // exclusive
	layout *layout   // from/to
}

// layout parses a column's text as a time.
type layout struct {
	name string // as written, for errors
	unit time.Duration
	goL  string // a Go layout; "" for unix times
	loc  *time.Location
}

// layoutNames are the layouts with a name of their own; the unit is what
// one of the number's units is worth.
var layoutNames = map[string]time.Duration{
	"unix": time.Second, "unix_ms": time.Millisecond, "unix_us": time.Microsecond, "unix_ns": time.Nanosecond,
}

// newLayout checks a layout and a timezone name; on error it says which of
// the two ("layout" or "timezone") is wrong.
func newLayout(name, tz string) (*layout, string, error) {
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "" || tz == "Local" {
		return nil, "timezone", fmt.Errorf("%q is not an IANA time zone, such as UTC or Europe/Paris", tz)
	}
	l := &layout{name: name, loc: loc}
	switch {
	case name == "rfc3339":
		l.goL = time.RFC3339Nano
	case layoutNames[name] != 0:
		l.unit = layoutNames[name]
	default:
		// A layout without any element of the reference time formats two
		// different times the same way: "YYYY-MM-DD" or "%Y-%m-%d".
		t1 := time.Date(2001, 2, 3, 4, 5, 6, 7e6, time.UTC)
		t2 := time.Date(2012, 11, 13, 14, 15, 16, 17e6, time.FixedZone("X", 3600))
		if name == "" || t1.Format(name) == t2.Format(name) {
			return nil, "layout", fmt.Errorf("%q is not a Go time layout: write how the reference time Mon Jan 2 15:04:05 MST 2006 looks in the file, such as 20060102 or 2006-01-02 15:04:05, or use rfc3339, unix, unix_ms, unix_us or unix_ns", name)
		}
		l.goL = name
	}
	return l, "", nil
}

// parse reads s as a time.
func (l *layout) parse(s string) (time.Time, error) {
	if l.unit != 0 {
		return parseUnix(s, l.unit, l.name)
	}
	t, err := time.ParseInLocation(l.goL, s, l.loc)
	if err != nil {
		msg := fmt.Sprintf("%q does not match layout %s", s, l.name)
		if pe, ok := err.(*time.ParseError); ok && pe.Message != "" {
			msg += pe.Message // ": month out of range"
		}
		return time.Time{}, fmt.Errorf("%s", msg)
	}
	return t, nil
}

// parseUnix reads an integer (or for seconds, a decimal) count of units
// since 1970 UTC.
func parseUnix(s string, unit time.Duration, name string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if unit == time.Nanosecond {
			return time.Unix(0, n).UTC(), nil
		}
		per := int64(time.Second / unit)
		return time.Unix(n/per, (n%per)*int64(unit)).UTC(), nil
	}
	if unit == time.Second {
		if f, err := strconv.ParseFloat(s, 64); err == nil && f > -1e12 && f < 1e12 {
			sec := int64(f)
			return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC().Round(time.Microsecond), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a %s time (%s since 1970-01-01 UTC)", s, name, unitName(unit))
}

func unitName(d time.Duration) string {
	switch d {
	case time.Millisecond:
		return "milliseconds"
	case time.Microsecond:
		return "microseconds"
	case time.Nanosecond:
		return "nanoseconds"
	}
	return "seconds"
}

// identifierNames maps the identifier keys of a mapping to the fields of
// the event they set, in the order they are written.
var identifierNames = []struct{ key, json, only string }{
	{"user_id", "userId", ""},
	{"anonymous_id", "anonymousId", ""},
	{"group_id", "groupId", "only group events have a groupId"},
	{"previous_id", "previousId", "only alias events have a previousId"},
}

// segmentTypes are the event types a mapping may make.
var segmentTypes = []string{schemas.TypeTrack, schemas.TypeIdentify, schemas.TypePage, schemas.TypeScreen, schemas.TypeGroup, schemas.TypeAlias}
