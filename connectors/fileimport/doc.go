// Package fileimport imports offline files — CRM and point-of-sale exports,
// transaction logs, event dumps — into <app>.events as Segment-spec events,
// the same way the HTTP API and the Kafka source do: each event is validated
// and completed by [schemas.Normalizer] and written through a [Publisher]
// (the ingest.Writer), acks=all.
//
// # Files
//
//   - mapping.go: [Mapping], its defaults (defaults, the one place they are
//     set) and the checks that need more than one key.
//   - parse.go: the strict YAML decoder of mapping files.
//   - rows.go: reading a file as records — CSV, TSV, whitespace-separated
//     text and JSON Lines — each with the line it starts on.
//   - event.go: turning one record into an event: column look-up, typed
//     values, filters and the deterministic messageId.
//   - importer.go: [Importer], which streams a file through all of the above
//     in batches and returns a [Report].
//
// # Mapping files
//
// A mapping file says how the rows of one kind of file become events. It is
// YAML, parsed strictly: an unknown key, a value of the wrong kind or a
// combination that cannot work (properties on an identify event, a column
// name without a header) is an error naming the file, line, column and key,
// all of them at once:
//
//	mapping.yaml:7:3: unknown key "properties.revenu" (did you mean "properties.revenue"?)
//
// The keys, with their defaults:
//
//	format: csv | tsv | whitespace | jsonl   # required
//	header: true          # csv, tsv: the first record names the columns (default true; whitespace: false)
//	delimiter: ","        # csv, tsv: one character (default "," for csv, tab for tsv)
//	comment: "#"          # lines starting with this are skipped (default: none)
//	columns: 5            # without a header: every row must have this many columns
//	type: track           # required: track, identify, page, screen, group or alias
//	event: Order Completed            # track: the event name, or {column: …}
//	name: Home                        # page, screen: the page name, or {column: …}
//	user_id: $2                       # identifiers, each a column reference
//	anonymous_id: cookie
//	group_id: account                 # group: required
//	previous_id: old_id               # alias: required
//	timestamp: {column: date, layout: "20060102", timezone: Europe/Paris}
//	properties:                       # track, page, screen
//	  revenue: {column: $5, type: float}
//	  quantity: {column: $4, type: int}
//	  currency: {value: USD}
//	traits:                           # identify, group; context.traits on other types
//	  email: email
//	context:                          # dotted paths into the event's context
//	  device.id: device
//	filters:                          # rows that fail a filter are skipped, not rejected
//	  - {column: date, from: 1997-01-01, to: 1997-09-30}
//	  - {column: country, in: [FR, DE]}
//	message_id: [order_id]            # columns that identify a row (see below)
//	namespace: crm-2024               # keeps the messageIds of two mappings apart
//
// A column reference is a header name ("amount"), a 1-based position ("$5")
// or, for jsonl, a dotted path into the row's object ("user.id",
// "items.0.sku"). A value is written as a column reference alone, or as a
// mapping with column (or value, a constant), type (string, int, float,
// bool, time or json; default string, and json — the JSON value as it is —
// for jsonl), and for times layout and timezone. Identifiers are always
// strings, so "0001" stays "0001". An empty cell (or a missing or null JSON
// value) leaves its property out; an empty timestamp is an error, since
// defaulting it to the import time would misdate the event.
//
// A layout is a Go time layout written with the reference time ("20060102",
// "2006-01-02 15:04:05", "02/01/2006") or one of rfc3339 (the default),
// unix (seconds, possibly fractional), unix_ms, unix_us and unix_ns. A
// timezone is an IANA name (default UTC); it applies to values that do not
// carry their own offset. A filter's layout and timezone default to those
// of timestamp. A filter range is inclusive at both ends, and a to written
// as a date covers that whole day: {from: 1997-01-01, to: 1997-09-30} is
// the first 39 weeks of 1997.
//
// # Records and lines
//
// Lines are counted from 1 as a text editor counts them, header and comment
// lines included; a record's line is the line it starts on (a quoted CSV
// field may span lines). Blank lines, comment lines and the header are not
// records. Every record is counted once in [Report]: Lines = Imported +
// Skipped + Invalid. A record that cannot become a valid event — wrong
// column count, a value that does not parse, an event the Segment spec
// refuses — is sent to <app>.events.invalid with the source
// "import:<file>:<line>" and a reason naming the line and the column, and
// the import goes on. Only a failure to read the file or to write to Kafka,
// or a mapping that does not fit the file (a column name missing from the
// header), stops it.
//
// CSV follows RFC 4180: fields may be quoted with ", a quote inside a quoted
// field is written "", a quoted field may contain delimiters and newlines,
// and a quote inside an unquoted field is an ordinary character. TSV is the
// same with a tab (what spreadsheets export). Whitespace-separated text
// splits on runs of spaces and tabs and has no quoting. A UTF-8 byte order
// mark at the start of the file and carriage returns at line ends are
// ignored. A gzip-compressed file is read as it is ([Importer.ImportFile]
// recognises it by its magic number).
//
// # Deterministic messageIds
//
// Profiles deduplicate events by messageId, so re-importing a file must
// yield the same ids and two different rows must yield different ones. An
// event's messageId is a name-based UUID (version 5, SHA-1, in a namespace
// of tessera's) of:
//
//   - the mapping's identity: its type, its event or page name and its
//     namespace key — not the file's name or path, so that a moved, renamed
//     or piped-in file re-imports to the same ids, and not the rest of the
//     mapping, so that fixing a property's type and re-importing does not
//     double-count; two mappings that make different events from one file
//     get different ids;
//   - the record's content: its fields (for jsonl, the line without
//     surrounding spaces), so that line endings or column alignment do not
//     matter;
//   - its line number, so that two identical rows on different lines (two
//     identical purchases on one day) stay two events.
//
// The line number makes the ids depend on the rows above: an export that
// gains a row at the top renumbers those below. A file whose rows carry
// their own identity should name those columns in message_id; the id is then
// made of the mapping's identity and those columns' values alone, and the
// line number is left out, so re-exports and overlapping exports dedupe.
package fileimport
