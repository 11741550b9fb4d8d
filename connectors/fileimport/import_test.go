package fileimport

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tessera-cdp/tessera/schemas"
)

const ordersMapping = `
format: csv
type: track
event: Order Completed
user_id: customer
timestamp: {column: date, layout: "2006-01-02"}
properties:
  revenue: {column: amount, type: float}
  quantity: {column: qty, type: int}
`

// TestBadLines checks that each bad record is reported with its line and
// column, sent to the invalid topic with its source and raw text, and that
// the rest imports.
func TestBadLines(t *testing.T) {
	tests := []struct {
		name, mapping, input string
		want                 []string // the reasons, in order
		lines                []int
		imported             int64
	}{
		{"csv", ordersMapping, strings.Join([]string{
			"customer,date,amount,qty",
			"u1,2026-01-01,10.5,1",
			"u2,2026-01-02,10.5",                    // line 3: too few columns
			"u3,2026-01-03,ten,1",                   // line 4: not a number
			"u4,2026-13-01,1,1",                     // line 5: no month 13
			"u5,2026-01-05,1,1.5",                   // line 6: not an integer
			"u6,,1,1",                               // line 7: no date
			`u7,2026-01-07,"1"x,1`,                  // line 8: text after a quote
			",2026-01-08,1,1",                       // line 9: no identifier
			"u10,2026-01-10,1,99999999999999999999", // line 10: out of range
			"u11,2026-01-11,NaN,1",                  // line 11
			"u12,2026-01-12,1,1,extra",              // line 12
			`u13,2026-01-13,"2`,                     // line 13: quote never closed
		}, "\n"), []string{
			"line 3: has 3 columns, expected 4 (as in the header on line 1)",
			`line 4, column "amount" ($3) (properties.revenue): "ten" is not a number`,
			`line 5, column "date" ($2) (timestamp): "2026-13-01" does not match layout 2006-01-02: month out of range`,
			`line 6, column "qty" ($4) (properties.quantity): "1.5" is not an integer`,
			`line 7, column "date" ($2) (timestamp): is empty`,
			"line 8, column $3: text after the closing quote of a quoted field",
			`line 9, column "customer" ($1) (user_id): userId: userId or anonymousId is required`,
			`line 10, column "qty" ($4) (properties.quantity): "99999999999999999999" is out of range for an integer`,
			`line 11, column "amount" ($3) (properties.revenue): "NaN" is not a finite number`,
			"line 12: has 5 columns, expected 4 (as in the header on line 1)",
			"line 13: a quoted field is not closed at the end of the file",
		}, []int{3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}, 1},
		{"whitespace", `
format: whitespace
type: track
event: Order Completed
user_id: $2
timestamp: {column: $3, layout: "20060102"}
properties:
  revenue: {column: $5, type: float}
`, " 00001 0001 19970101 1 9.99\n 00002 0002 19970101 1\n 00003 0003 1997010x 1 1.00\n", []string{
			"line 2: has 4 columns, but the mapping reads column $5",
			`line 3, column $3 (timestamp): "1997010x" does not match layout 20060102`,
		}, []int{2, 3}, 1},
		{"jsonl", `
format: jsonl
type: identify
user_id: id
timestamp: {column: at, layout: unix}
traits:
  age: {column: age, type: int}
`, "{\"id\":\"u1\",\"at\":1700000000,\"age\":30}\n{\"id\":\"u2\",\n[1,2]\n{\"id\":\"u3\",\"at\":\"soon\"}\n{\"id\":{\"x\":1},\"at\":1}\n{\"id\":\"u5\" x}\n", []string{
			"line 2: malformed JSON at byte 11: unexpected end of JSON input",
			"line 3: expected a JSON object, got array",
			`line 4, column "at" (timestamp): "soon" is not a unix time (seconds since 1970-01-01 UTC)`,
			"line 6: malformed JSON at byte 11: invalid character 'x' after object key:value pair",
		}, []int{2, 3, 4, 6}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, pub, err := importString(t, tt.mapping, tt.input, Options{MaxErrors: 100})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range rep.FirstErrors {
				got = append(got, e.Error())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("errors:\ngot  %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
			if rep.Imported != tt.imported || rep.Invalid != int64(len(tt.want)) || rep.Lines != rep.Imported+rep.Invalid {
				t.Errorf("report %+v, want %d imported and %d invalid", rep, tt.imported, len(tt.want))
			}
			if len(pub.rejects) != len(tt.want) {
				t.Fatalf("%d records on the invalid topic, want %d", len(pub.rejects), len(tt.want))
			}
			lines := strings.Split(tt.input, "\n")
			for i, r := range pub.rejects {
				if want := fmt.Sprintf("import:data:%d", tt.lines[i]); r.Source != want {
					t.Errorf("source %q, want %q", r.Source, want)
				}
				if r.Reason != tt.want[i] {
					t.Errorf("reason %q, want %q", r.Reason, tt.want[i])
				}
				if want := lines[tt.lines[i]-1]; string(r.Raw) != want {
					t.Errorf("raw %q, want line %d: %q", r.Raw, tt.lines[i], want)
				}
			}
		})
	}
}

// TestMaxErrors checks that the report lists the first bad lines only, but
// counts and rejects all of them.
func TestMaxErrors(t *testing.T) {
	input := "customer,date,amount,qty\n" + strings.Repeat("u,bad,1,1\n", 25)
	rep, pub, err := importString(t, ordersMapping, input, Options{MaxErrors: 3})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Invalid != 25 || len(pub.rejects) != 25 || len(rep.FirstErrors) != 3 || rep.FirstErrors[2].Line != 4 {
		t.Errorf("invalid %d, rejected %d, listed %v; want 25, 25, lines 2-4", rep.Invalid, len(pub.rejects), rep.FirstErrors)
	}
}

// TestFilters checks which rows each kind of filter keeps; the others count
// as skipped, not invalid.
func TestFilters(t *testing.T) {
	const input = "customer,date,country\n" +
		"u1,19961231,FR\n" +
		"u2,19970101,DE\n" +
		"u3,19970930,FR\n" +
		"u4,19971001,US\n"
	base := `
format: csv
type: track
event: E
user_id: customer
timestamp: {column: date, layout: "20060102"}
filters:
`
	tests := []struct {
		name, filters string
		keep          []string
	}{
		{"range, to a whole day", "  - {column: date, from: 1997-01-01, to: 1997-09-30}", []string{"u2", "u3"}},
		{"from only", "  - {column: date, from: 1997-09-30}", []string{"u3", "u4"}},
		{"to a time, inclusive", "  - {column: date, to: '1997-01-01T00:00:00Z'}", []string{"u1", "u2"}},
		{"in UTC", "  - {column: date, to: '1996-12-31T12:00:00Z'}", []string{"u1"}},
		{"in a time zone", "  - {column: date, to: '1996-12-31T12:00:00Z', timezone: Pacific/Kiritimati}", []string{"u1", "u2"}},
		{"equals", "  - {column: country, equals: FR}", []string{"u1", "u3"}},
		{"in", "  - {column: country, in: [DE, US]}", []string{"u2", "u4"}},
		{"all must pass", "  - {column: country, equals: FR}\n  - {column: date, from: 1997-01-01}", []string{"u3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, pub, err := importString(t, base+tt.filters, input, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range pub.events {
				got = append(got, string(e.Key))
			}
			if !slices.Equal(got, tt.keep) {
				t.Errorf("kept %v, want %v", got, tt.keep)
			}
			if rep.Skipped != int64(4-len(tt.keep)) || rep.Invalid != 0 {
				t.Errorf("report %+v, want %d skipped, none invalid", rep, 4-len(tt.keep))
			}
		})
	}
}

// TestFilterBadValue checks that a value a range filter cannot read makes
// the row invalid rather than silently skipped.
func TestFilterBadValue(t *testing.T) {
	m := `
format: csv
type: track
event: E
user_id: customer
filters: [{column: day, from: 1997-01-01, layout: "2006-01-02"}]
`
	rep, _, err := importString(t, m, "customer,day\nu1,someday\nu2,\n", Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`line 2, column "day" ($2) (filters[0]): "someday" does not match layout 2006-01-02`,
		`line 3, column "day" ($2) (filters[0]): is empty, so the time range cannot be checked`,
	}
	for i, e := range rep.FirstErrors {
		if e.Error() != want[i] {
			t.Errorf("error %d: %q, want %q", i, e.Error(), want[i])
		}
	}
	if rep.Invalid != 2 {
		t.Errorf("invalid %d, want 2", rep.Invalid)
	}
}

// messageIDs imports input and returns the messageIds in order.
func messageIDs(t *testing.T, mapping, input string) []string {
	t.Helper()
	rep, pub, err := importString(t, mapping, input, Options{})
	if err != nil || rep.Invalid > 0 {
		t.Fatalf("import: %v %+v", err, rep.FirstErrors)
	}
	var ids []string
	for _, e := range pub.events {
		ids = append(ids, e.MessageID)
	}
	return ids
}

// TestMessageIDs checks the properties the deterministic messageIds promise
// (see the package doc).
func TestMessageIDs(t *testing.T) {
	const ws = `
format: whitespace
type: track
event: Order Completed
user_id: $1
properties: {n: {column: $2, type: int}}
`
	input := "a 1\nb 2\na 1\n"
	first := messageIDs(t, ws, input)

	t.Run("re-importing gives the same ids", func(t *testing.T) {
		if again := messageIDs(t, ws, input); !slices.Equal(again, first) {
			t.Errorf("got %v, then %v", first, again)
		}
	})
	t.Run("identical rows on different lines differ", func(t *testing.T) {
		if first[0] == first[2] {
			t.Errorf("lines 1 and 3 share the id %s", first[0])
		}
	})
	t.Run("line endings and spacing do not matter", func(t *testing.T) {
		if got := messageIDs(t, ws, "a   1\r\n\tb\t2\r\na 1"); !slices.Equal(got, first) {
			t.Errorf("got %v, want %v", got, first)
		}
	})
	t.Run("a mapping change that keeps the event keeps the ids", func(t *testing.T) {
		m := strings.Replace(ws, "type: int", "type: float", 1)
		if got := messageIDs(t, m, input); !slices.Equal(got, first) {
			t.Errorf("got %v, want %v", got, first)
		}
	})
	t.Run("another event or namespace gets other ids", func(t *testing.T) {
		for _, m := range []string{
			strings.Replace(ws, "Order Completed", "Order Refunded", 1),
			ws + "namespace: second-source\n",
		} {
			if got := messageIDs(t, m, input); got[0] == first[0] {
				t.Errorf("same id %s for\n%s", got[0], m)
			}
		}
	})
	t.Run("ids are version 5 UUIDs", func(t *testing.T) {
		for _, id := range first {
			if len(id) != 36 || id[14] != '5' || !strings.Contains("89ab", id[19:20]) {
				t.Errorf("%s is not a version 5 UUID", id)
			}
		}
	})
	t.Run("message_id columns ignore the line", func(t *testing.T) {
		m := `
format: csv
comment: "#"
type: track
event: Order Completed
user_id: customer
message_id: [order]
`
		a := messageIDs(t, m, "customer,order\nu1,A-1\nu2,A-2\n")
		b := messageIDs(t, m, "customer,order\n# re-exported with a new row first\nu0,A-0\nu2,A-2\nu1,A-1\n")
		if a[0] != b[2] || a[1] != b[1] {
			t.Errorf("first export %v, second %v: A-1 and A-2 should keep their ids", a, b)
		}
		rep, _, _ := importString(t, m, "customer,order\nu1,\n", Options{})
		if want := `line 2, column "order" ($2) (message_id[0]): is empty, and message_id needs it to identify the row`; len(rep.FirstErrors) != 1 || rep.FirstErrors[0].Error() != want {
			t.Errorf("errors %v, want %s", rep.FirstErrors, want)
		}
	})
}

// TestHeaderErrors checks that a mapping that does not fit the file's
// header stops the import before anything is written.
func TestHeaderErrors(t *testing.T) {
	tests := []struct{ name, input, want string }{
		{"missing column", "custmer,date,amount,qty\nu1,2026-01-01,1,1\n",
			`importing data: mapping.yaml:5:10: user_id: no column "customer" in the header of data (line 1) (did you mean "custmer"?)`},
		{"duplicate column", "customer,date,amount,qty,amount\nu1,2026-01-01,1,1,2\n",
			`importing data: mapping.yaml:8:21: properties.revenue: column "amount" appears twice in the header of data, as $3 and $5: refer to it by position`},
		{"broken header", "\n\"customer,date\n",
			`importing data: reading the header: line 2: a quoted field is not closed at the end of the file`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, pub, err := importString(t, ordersMapping, tt.input, Options{})
			if err == nil || err.Error() != tt.want {
				t.Errorf("error:\ngot  %v\nwant %s", err, tt.want)
			}
			if len(pub.events)+len(pub.rejects) > 0 || rep.Lines != 0 {
				t.Errorf("wrote %d events and %d rejects, report %+v; want nothing", len(pub.events), len(pub.rejects), rep)
			}
		})
	}
}

// TestBlocked checks that events a tracking plan blocks (Publish reports
// them; it has sent them to the invalid topic) count as invalid.
func TestBlocked(t *testing.T) {
	m, err := ParseMapping([]byte(ordersMapping), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pub := &memPublisher{block: func(e schemas.Normalized) string {
		if bytes.Contains(e.Value, []byte(`"revenue":0`)) {
			return "properties.revenue: must be > 0"
		}
		return ""
	}}
	input := "customer,date,amount,qty\nu1,2026-01-01,0,1\nu2,2026-01-01,bad,1\nu3,2026-01-01,1,1\n"
	rep, err := NewImporter(m, pub, Options{BatchSize: 2}).Import(context.Background(), strings.NewReader(input), "f", -1)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range rep.FirstErrors {
		got = append(got, e.Error())
	}
	want := []string{
		"line 2: blocked by a tracking plan: properties.revenue: must be > 0",
		`line 3, column "amount" ($3) (properties.revenue): "bad" is not a number`,
	}
	if !slices.Equal(got, want) || rep.Imported != 1 || rep.Invalid != 2 {
		t.Errorf("report %+v\nerrors %q, want %q", rep, got, want)
	}
	var sources []string
	for _, r := range pub.rejects {
		sources = append(sources, r.Source)
	}
	if want := []string{"import:f:3", "import:f:2"}; !slices.Equal(sources, want) {
		t.Errorf("invalid sources %q, want %q (a bad line is sent before its batch's events)", sources, want)
	}
}

// TestPublishError checks that a failing publisher stops the import with
// its error.
func TestPublishError(t *testing.T) {
	m, err := ParseMapping([]byte(ordersMapping), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pub := &memPublisher{err: errors.New("broker unreachable")}
	input := "customer,date,amount,qty\n" + strings.Repeat("u1,2026-01-01,1,1\n", 5000)
	rep, err := NewImporter(m, pub, Options{BatchSize: 100}).Import(context.Background(), strings.NewReader(input), "f", -1)
	if err == nil || err.Error() != "publishing the events of lines 2 to 101: broker unreachable" {
		t.Errorf("error %v", err)
	}
	if rep.Imported != 0 || rep.Lines >= 5000 {
		t.Errorf("report %+v: want nothing imported and the import stopped early", rep)
	}
}

// TestCanceled checks that a canceled context stops the import.
func TestCanceled(t *testing.T) {
	m, err := ParseMapping([]byte(ordersMapping), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = NewImporter(m, &memPublisher{}, Options{}).Import(ctx, strings.NewReader("customer,date,amount,qty\n"), "f", -1)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

// TestLongRecord checks that a record over MaxRecordBytes is rejected, cut,
// and the import goes on.
func TestLongRecord(t *testing.T) {
	input := "customer,date,amount,qty\nu1,2026-01-01,1,1\nu2,2026-01-01," + strings.Repeat("9", 200_000) + ",1\nu3,2026-01-01,1,1\n"
	rep, pub, err := importString(t, ordersMapping, input, Options{MaxRecordBytes: 100})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Imported != 2 || rep.Invalid != 1 || rep.FirstErrors[0].Error() != "line 3: is longer than 100 bytes" || len(pub.rejects[0].Raw) != 100 {
		t.Errorf("report %+v", rep)
	}
}

// TestImportFile reads a plain and a gzip file from disk and reports
// progress up to the file's size.
func TestImportFile(t *testing.T) {
	m, err := ParseMapping([]byte(ordersMapping), "m.yaml")
	if err != nil {
		t.Fatal(err)
	}
	input := "customer,date,amount,qty\n" + strings.Repeat("u1,2026-01-01,1,1\n", 3000)
	dir := t.TempDir()
	plain := filepath.Join(dir, "orders.csv")
	if err := os.WriteFile(plain, []byte(input), 0o644); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(input))
	zw.Close()
	zipped := filepath.Join(dir, "orders.csv.gz")
	if err := os.WriteFile(zipped, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var ids [][]string
	for _, path := range []string{plain, zipped} {
		var calls int
		var last, total int64
		pub := &memPublisher{}
		rep, err := NewImporter(m, pub, Options{Progress: func(read, size int64) { calls++; last, total = read, size }}).ImportFile(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(path)
		if rep.Imported != 3000 || calls < 3 || last != fi.Size() || total != fi.Size() {
			t.Errorf("%s: report %+v, %d progress calls ending at %d/%d, want 3000 imported and %d bytes", path, rep, calls, last, total, fi.Size())
		}
		var batch []string
		for _, e := range pub.events {
			batch = append(batch, e.MessageID)
		}
		ids = append(ids, batch)
	}
	if !slices.Equal(ids[0], ids[1]) {
		t.Error("a gzip file and its content got different messageIds")
	}
	if _, err := NewImporter(m, &memPublisher{}, Options{}).ImportFile(context.Background(), filepath.Join(dir, "missing.csv")); err == nil || !strings.HasPrefix(err.Error(), "opening the file to import: open ") {
		t.Errorf("missing file: %v", err)
	}
}
