package fileimport

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/valyala/fastjson"
)

// FuzzSplitCSV checks the CSV splitter against encoding/csv: on one line
// that encoding/csv reads without error, both give the same fields; on any
// input the splitter does not panic.
func FuzzSplitCSV(f *testing.F) {
	for _, s := range []string{`a,b,c`, `"a,b",c`, `"a""b",`, `,,`, `"x"y`, `a"b,c`, `"open`, `""`, `x,"",y`, "caf\xc3\xa9,\xff"} {
		f.Add(s, byte(','))
	}
	f.Add("a\tb", byte('\t'))
	f.Fuzz(func(t *testing.T, line string, delim byte) {
		if delim == '"' || delim == '\n' || delim == '\r' || delim >= 0x80 {
			delim = ','
		}
		var s csvSplitter
		fields, open, col := s.split([]byte(line), delim)
		if open && (col != 0 || fields != nil) || col < 0 {
			t.Fatalf("open %v col %d fields %q", open, col, fields)
		}
		if strings.ContainsAny(line, "\r\n") || line == "" || delim == ' ' {
			return
		}
		r := csv.NewReader(strings.NewReader(line))
		r.Comma = rune(delim)
		r.FieldsPerRecord = -1
		want, err := r.Read()
		if err != nil || !validComma(delim) {
			return
		}
		if open || col != 0 {
			t.Fatalf("%q: encoding/csv reads %q, the splitter says open %v, column %d", line, want, open, col)
		}
		got := make([]string, len(fields))
		for i, f := range fields {
			got[i] = string(f)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%q: got %q, encoding/csv %q", line, got, want)
		}
	})
}

// validComma is encoding/csv's rule for a delimiter.
func validComma(c byte) bool {
	return c != 0 && c != '"' && c != '\r' && c != '\n' && c < 0x80 && c != 0xEF
}

// FuzzSplitWhitespace checks the whitespace splitter against bytes.Fields
// on ASCII text.
func FuzzSplitWhitespace(f *testing.F) {
	for _, s := range []string{" 00004 0001 19970101  2   29.33\r", "a\tb", "", "   ", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		got := splitWhitespace(nil, []byte(line))
		for _, c := range []byte(line) {
			if c >= 0x80 || c == '\n' {
				return
			}
		}
		want := bytes.Fields([]byte(line))
		if len(got) != len(want) {
			t.Fatalf("%q: got %q, want %q", line, got, want)
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("%q: got %q, want %q", line, got, want)
			}
		}
	})
}

// fuzzMappings are mappings of every format, reading columns by position
// (or path) so that any input applies.
var fuzzMappings = map[Format]string{
	CSV: `
format: csv
header: false
comment: "#"
type: track
event: {column: $1}
user_id: $2
timestamp: {column: $3, layout: "2006-01-02"}
properties:
  n: {column: $4, type: int}
  x: {column: $5, type: float}
  b: {column: $6, type: bool}
  j: {column: $7, type: json}
  t: {column: $8, type: time, layout: unix_ms}
  s: $9
filters: [{column: $10, in: ["", keep]}]
`,
	TSV: `
format: tsv
type: identify
anonymous_id: a
traits: {name: name, age: {column: age, type: int}}
`,
	Whitespace: `
format: whitespace
type: track
event: Order Completed
user_id: $2
timestamp: {column: $3, layout: "20060102"}
properties:
  revenue: {column: $5, type: float}
  quantity: {column: $4, type: int}
filters: [{column: $3, from: 1997-01-01, to: 1997-09-30}]
`,
	JSONL: `
format: jsonl
type: page
name: {column: page}
user_id: user.id
anonymous_id: anon
timestamp: {column: at, layout: unix}
properties:
  all: props
  first: items.0
  n: {column: n, type: int}
context:
  device.id: device
message_id: [id]
`,
}

// FuzzImport runs arbitrary files through each format's mapping: reading,
// splitting, filtering, typing, building and normalizing the events. It
// never panics, every record is counted once, every error carries the line
// its record starts on, and every event published is valid JSON.
func FuzzImport(f *testing.F) {
	seeds := []string{
		"Order Completed,u1,2026-01-01,2,1.5,yes,{\"a\":1},1700000000000,hi,keep\n",
		"E,u\x01,2026-01-01\nE,\"u\n2\",2026-01-01,x\n# c\n\n\"unterminated",
		"a\tname\tage\nx\tJane\t30\n\t\t\ny\t\"Tab\tIn\"\t-1\n",
		" 00004 0001 19970101  2   29.33\r\n 00004 0001 1997010x 2 29.73\n 1 2 3\n",
		"{\"page\":\"Home\",\"user\":{\"id\":7},\"at\":1700000000.5,\"props\":{\"a\":[1]},\"items\":[\"x\"],\"n\":\"3\",\"device\":\"d\",\"id\":\"m1\"}\n[1]\n{\"anon\":\"a\",\"id\":{}}\n{bad\n",
		"\xef\xbb\xbf\xff\xfe,\"\\u0000\",\U0010FFFF\n",
	}
	for _, s := range seeds {
		for i := range len(fuzzMappings) {
			f.Add(s, uint8(i))
		}
	}
	formats := []Format{CSV, TSV, Whitespace, JSONL}
	mappings := make(map[Format]*Mapping)
	for fm, text := range fuzzMappings {
		m, err := ParseMapping([]byte(text), string(fm)+".yaml")
		if err != nil {
			f.Fatal(err)
		}
		mappings[fm] = m
	}
	f.Fuzz(func(t *testing.T, input string, which uint8) {
		m := mappings[formats[int(which)%len(formats)]]
		pub := &memPublisher{}
		rep, err := NewImporter(m, pub, Options{MaxErrors: 1 << 20, MaxRecordBytes: 512}).Import(context.Background(), strings.NewReader(input), "f", -1)
		if err != nil {
			if m.header && strings.Contains(err.Error(), "header") {
				return // a file whose header lacks the mapping's columns
			}
			t.Fatalf("import: %v", err)
		}
		if rep.Lines != rep.Imported+rep.Skipped+rep.Invalid || int(rep.Imported) != len(pub.events) || int(rep.Invalid) != len(pub.rejects) {
			t.Fatalf("report %+v, %d events, %d rejects", rep, len(pub.events), len(pub.rejects))
		}
		lines := strings.Count(input, "\n") + 1
		for i, e := range rep.FirstErrors {
			if e.Line < 1 || e.Line > lines || (i > 0 && e.Line <= rep.FirstErrors[i-1].Line) {
				t.Fatalf("error on line %d of %d, after line %d: %v", e.Line, lines, rep.FirstErrors[max(i-1, 0)].Line, &e)
			}
			if r := pub.rejects[i]; r.Source != fmt.Sprintf("import:f:%d", e.Line) || r.Reason != e.Error() || !strings.HasPrefix(r.Reason, fmt.Sprintf("line %d", e.Line)) {
				t.Fatalf("reject %+v for %v", r, &e)
			}
		}
		for _, e := range pub.events {
			if err := fastjson.ValidateBytes(e.Value); err != nil {
				t.Fatalf("event is not valid JSON: %v\n%s", err, e.Value)
			}
			if len(e.MessageID) != 36 || len(e.Key) == 0 {
				t.Fatalf("messageId %q, key %q", e.MessageID, e.Key)
			}
		}
	})
}

// FuzzReader checks that records come in order of their lines, within the
// file, for any input and format.
func FuzzReader(f *testing.F) {
	f.Add("a,\"b\nc\"\n\n#x\nd", uint8(0))
	f.Add("{\"a\":1}\n\n{", uint8(3))
	f.Fuzz(func(t *testing.T, input string, which uint8) {
		formats := []Format{CSV, TSV, Whitespace, JSONL}
		m := &Mapping{format: formats[int(which)%4], delimiter: ',', comment: "#"}
		r := newReader(strings.NewReader(input), m, 64)
		lines := strings.Count(input, "\n") + 1
		last := 0
		for {
			rec, err := r.next()
			if err == io.EOF {
				return
			}
			if _, ok := err.(*LineError); err != nil && !ok {
				t.Fatal(err)
			}
			if rec.line <= last || rec.line > lines || r.line < rec.line {
				t.Fatalf("record on line %d after line %d, %d lines in the file", rec.line, last, lines)
			}
			last = rec.line
		}
	})
}
