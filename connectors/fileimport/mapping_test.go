package fileimport

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestBadMappings pairs each testdata/mappings/*.bad.yaml with the exact
// error it gives.
func TestBadMappings(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"alias", `alias.bad.yaml:5:7: name: aliases (*name) are not supported in mapping files`},
		{"bad_constant", `bad_constant.bad.yaml:6:21: properties.quantity.value: "lots" is not an integer`},
		{"bad_format", `bad_format.bad.yaml:1:9: format: must be csv, tsv, whitespace or jsonl, got "xlsx"`},
		{"bad_layout", `bad_layout.bad.yaml:5:35: timestamp.layout: "YYYY-MM-DD" is not a Go time layout: write how the reference time Mon Jan 2 15:04:05 MST 2006 looks in the file, such as 20060102 or 2006-01-02 15:04:05, or use rfc3339, unix, unix_ms, unix_us or unix_ns`},
		{"bad_position", `bad_position.bad.yaml:5:10: user_id: $0 is not a column position: positions are written $1, $2, …`},
		{"bad_timezone", `bad_timezone.bad.yaml:5:59: timestamp.timezone: "Mars/Olympus" is not an IANA time zone, such as UTC or Europe/Paris`},
		{"bad_type", `bad_type.bad.yaml:2:7: type: must be one of track, identify, page, screen, group, alias, got "purchase"`},
		{"bad_value_type", `bad_value_type.bad.yaml:6:35: properties.revenue.type: must be one of string, int, float, bool, time, json, got "decimal"`},
		{"column_and_value", `column_and_value.bad.yaml:6:27: properties.currency.value: give column or value, not both`},
		{"columns_too_few", `columns_too_few.bad.yaml:2:10: columns: is 3, but properties.revenue refers to column $5`},
		{"context_conflict", `context_conflict.bad.yaml:7:3: context.device.id: conflicts with another context key`},
		{"delimiter", `delimiter.bad.yaml:2:12: delimiter: must be one character other than a quote or a line break, got "::"`},
		{"delimiter_on_whitespace", `delimiter_on_whitespace.bad.yaml:2:1: delimiter: only csv and tsv have a delimiter; whitespace splits on spaces and tabs`},
		{"duplicate_key", `duplicate_key.bad.yaml:5:1: duplicate key "user_id" (first at line 4)`},
		{"empty", `empty.bad.yaml: the mapping is empty: format and type are required`},
		{"event_on_identify", `event_on_identify.bad.yaml:3:1: event: only track events have an event name`},
		{"event_required", `event_required.bad.yaml:2:7: event: required for type track`},
		{"filter_bad_date", `filter_bad_date.bad.yaml:7:42: filters[0].to: "Q3 1997" is not a date (2006-01-02) or an RFC 3339 time (2006-01-02T15:04:05Z)`},
		{"filter_kind", strings.Join([]string{
			`filter_kind.bad.yaml:6:5: filters[0]: give equals, in, or a time range with from and to`,
			`filter_kind.bad.yaml:7:5: filters[1]: give only one of equals, in, or from and to`,
		}, "\n")},
		{"filter_reversed", `filter_reversed.bad.yaml:6:42: filters[0].to: is before from`},
		{"group_id_required", `group_id_required.bad.yaml:2:7: group_id: required for type group`},
		{"header_on_jsonl", `header_on_jsonl.bad.yaml:2:1: header: jsonl files have no header`},
		{"header_wrong_type", `header_wrong_type.bad.yaml:2:9: header: expected true or false, got "yes"`},
		{"identifier_type", `identifier_type.bad.yaml:4:10: user_id: identifiers are strings, got type int`},
		{"jsonl_position", `jsonl_position.bad.yaml:4:10: user_id: $2: jsonl columns are dotted paths into each line's object, such as user.id, not positions`},
		{"layout_not_time", `layout_not_time.bad.yaml:6:42: properties.revenue.layout: only for type time`},
		{"many", strings.Join([]string{
			`many.bad.yaml:2:7: event: required for type track`,
			`many.bad.yaml:3:1: unknown key "evnt" (did you mean "event"?)`,
			`many.bad.yaml:5:35: timestamp.layout: "%Y-%m-%d" is not a Go time layout: write how the reference time Mon Jan 2 15:04:05 MST 2006 looks in the file, such as 20060102 or 2006-01-02 15:04:05, or use rfc3339, unix, unix_ms, unix_us or unix_ns`,
			`many.bad.yaml:7:35: properties.revenue.type: must be one of string, int, float, bool, time, json, got "money"`,
		}, "\n")},
		{"name_without_header", `name_without_header.bad.yaml:4:10: user_id: column "customer" is a name, but the file has no header (header: false): refer to columns by position, such as $2`},
		{"no_identifier", `no_identifier.bad.yaml:2:7: user_id: a track event needs user_id or anonymous_id (or both)`},
		{"not_a_mapping", `not_a_mapping.bad.yaml:1:1: expected a mapping, got a list`},
		{"previous_id_on_track", `previous_id_on_track.bad.yaml:5:1: previous_id: only alias events have a previousId`},
		{"properties_on_identify", `properties_on_identify.bad.yaml:4:1: properties: identify events carry no properties; use traits`},
		{"required", strings.Join([]string{
			`required.bad.yaml:1:1: format: required: csv, tsv, whitespace or jsonl`,
			`required.bad.yaml:1:1: type: required: track, identify, page, screen, group, alias`,
		}, "\n")},
		{"syntax", `syntax.bad.yaml:2:7: sequence end token ']' not found`},
		{"two_documents", `two_documents.bad.yaml:3:1: more than one YAML document`},
		{"unknown_key", `unknown_key.bad.yaml:6:29: unknown key "properties.revenue.tpye" (did you mean "properties.revenue.type"?)`},
		{"unknown_top_key", `unknown_top_key.bad.yaml:5:1: unknown key "propertes" (did you mean "properties"?)`},
	}
	files, err := filepath.Glob("testdata/mappings/*.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(tests) {
		t.Errorf("testdata has %d bad mappings, the table %d: pair every file with its message", len(files), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := LoadMapping(filepath.Join("testdata", "mappings", tt.file+".bad.yaml"))
			if err == nil {
				t.Fatal("no error")
			}
			want := "testdata/mappings/" + strings.ReplaceAll(tt.want, "\n", "\ntestdata/mappings/")
			if got := err.Error(); got != want {
				t.Errorf("error:\ngot  %s\nwant %s", got, want)
			}
		})
	}
}

// TestMappingDefaults checks what a mapping that says little means.
func TestMappingDefaults(t *testing.T) {
	tests := []struct {
		name, yaml string
		check      func(t *testing.T, m *Mapping)
	}{
		{"csv", "format: csv\ntype: track\nevent: E\nuser_id: id\nproperties: {a: a}\ntimestamp: ts", func(t *testing.T, m *Mapping) {
			if !m.header || m.delimiter != ',' || m.comment != "" {
				t.Errorf("header %v delimiter %q comment %q, want true ',' none", m.header, m.delimiter, m.comment)
			}
			if f := m.properties.members[0].f; f.typ != typeString {
				t.Errorf("property type %s, want string", f.typ)
			}
			if l := m.timestamp.layout; l.name != "rfc3339" || l.loc.String() != "UTC" {
				t.Errorf("timestamp layout %s in %s, want rfc3339 in UTC", l.name, l.loc)
			}
		}},
		{"tsv", "format: tsv\ntype: track\nevent: E\nuser_id: id", func(t *testing.T, m *Mapping) {
			if !m.header || m.delimiter != '\t' {
				t.Errorf("header %v delimiter %q, want true tab", m.header, m.delimiter)
			}
		}},
		{"whitespace", "format: whitespace\ntype: track\nevent: E\nuser_id: $1", func(t *testing.T, m *Mapping) {
			if m.header {
				t.Error("whitespace files have a header by default, want none")
			}
		}},
		{"jsonl copies values as they are", "format: jsonl\ntype: track\nevent: E\nuser_id: user.id\nproperties: {items: order.items, currency: {value: EUR}}", func(t *testing.T, m *Mapping) {
			if f := m.properties.members[0].f; f.typ != typeJSON {
				t.Errorf("jsonl property type %s, want json", f.typ)
			}
			if f := m.properties.members[1].f; f.typ != typeString || string(f.konst) != `"EUR"` {
				t.Errorf("constant type %s value %s, want string \"EUR\"", f.typ, f.konst)
			}
			if f := m.ids[0]; f.typ != typeString || strings.Join(f.col.path, "/") != "user/id" {
				t.Errorf("user_id type %s path %v, want string user/id", f.typ, f.col.path)
			}
		}},
		{"a range filter reads the timestamp's layout", "format: csv\ntype: track\nevent: E\nuser_id: id\ntimestamp: {column: d, layout: '20060102', timezone: Europe/Paris}\nfilters: [{column: d, from: 1997-01-01}]", func(t *testing.T, m *Mapping) {
			if l := m.filters[0].layout; l.name != "20060102" || l.loc.String() != "Europe/Paris" {
				t.Errorf("filter layout %s in %s, want 20060102 in Europe/Paris", l.name, l.loc)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ParseMapping([]byte(tt.yaml), "m.yaml")
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, m)
		})
	}
}

// TestExampleMappings parses every mapping the repository ships.
func TestExampleMappings(t *testing.T) {
	files, err := filepath.Glob("../../examples/*/mapping*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example mappings: %v", err)
	}
	for _, f := range files {
		if _, err := LoadMapping(f); err != nil {
			t.Error(err)
		}
	}
}
