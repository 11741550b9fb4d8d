package identity

import (
	"encoding/binary"
	"reflect"
	"strings"
	"testing"

	"github.com/tessera-cdp/tessera/processor/profile"
)

func sampleRecord() *record {
	return &record{
		P: profile.Profile{
			ID: "p1", Created: 1700000000000,
			Identifiers: []profile.Ident{{Type: "user_id", Value: "u1"}, {Type: "email", Value: "a@x"}},
			Traits:      map[string]profile.Trait{"plan": {Value: []byte(`"pro"`), At: 5}},
			Counts:      map[string]int64{"Order Completed": 3},
		},
		Computed:  map[string]bool{"f1": true},
		Audiences: map[string]bool{"big_spenders": true, "pro_plan": true},
		Evaluated: map[string]bool{"k1": true, "k2": true, "k3": true, "k4": true, "k5": true},
		Timeline:  7,
		QueueHead: 12,
		Queued:    3,
		TileFloor: 1699990000000,

		TimelineExact:  true,
		TimelineNewest: 1700000005000,
	}
}

// TestRecordRoundTrip: a record decodes to what was encoded, with and
// without an interner, and the interner hands out one string per name.
func TestRecordRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   interner
	}{{"allocating", nil}, {"interning", interner{}}} {
		t.Run(tc.name, func(t *testing.T) {
			want := sampleRecord()
			b := want.encode()
			for range 2 {
				got, err := decodeRecord(b, tc.in)
				if err != nil {
					t.Fatal(err)
				}
				// Empty and nil collections encode alike: compare the
				// encodings, and the sets the interner fills.
				if string(got.encode()) != string(b) {
					t.Fatalf("decoded %+v, want %+v", got, want)
				}
				sets := []map[string]bool{got.Computed, got.Audiences, got.Evaluated}
				if !reflect.DeepEqual(sets, []map[string]bool{want.Computed, want.Audiences, want.Evaluated}) {
					t.Fatalf("decoded sets %v", sets)
				}
			}
			if tc.in != nil && len(tc.in) != 8 {
				t.Errorf("interned %d names, want the 8 of the sets: %v", len(tc.in), tc.in)
			}
		})
	}
	full := interner{}
	for i := range maxInterned + 10 {
		full.str([]byte{byte(i), byte(i >> 8)})
	}
	if len(full) != maxInterned {
		t.Errorf("an interner holds %d names, want at most %d", len(full), maxInterned)
	}
}

// oldRecord writes r in the layout of version 5, 6 or 7, with ops inline.
// Version 5's layout is version 6's without the queue's head and count,
// and version 6's is version 7's without the tile floor.
func oldRecord(version byte, r *record, ops [][]byte) []byte {
	b := []byte{version}
	for _, s := range []string{r.MergedInto, r.Offering, r.Absorbing} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendVarint(b, r.MergedCreated)
	b = binary.AppendVarint(b, r.Erased)
	b = binary.AppendUvarint(b, uint64(r.Timeline))
	if version >= 6 {
		b = binary.AppendUvarint(b, r.QueueHead)
		b = binary.AppendUvarint(b, uint64(r.Queued))
	}
	if version >= 7 {
		b = binary.AppendVarint(b, r.TileFloor)
	}
	for _, set := range []map[string]bool{r.Computed, r.Audiences, r.Evaluated} {
		b = appendSet(b, set)
	}
	b = binary.AppendUvarint(b, uint64(len(ops)))
	for _, q := range ops {
		b = binary.AppendUvarint(b, uint64(len(q)))
		b = append(b, q...)
	}
	return r.P.AppendBinary(b)
}

// TestRecordOfVersion5KeepsItsQueue: a record written before the queue
// store (version 5) decodes with its ops inline, in order, counted by
// queued; encoded again, it keeps them until a step moves them to the
// store (step.migrateQueue).
func TestRecordOfVersion5KeepsItsQueue(t *testing.T) {
	r := sampleRecord()
	ops := [][]byte{[]byte("op-1"), []byte("op-2"), []byte("op-3")}
	got, err := decodeRecord(oldRecord(5, r, ops), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Queue, ops) || got.Queued != 0 || got.queued() != 3 {
		t.Fatalf("decoded queue %q, %d stored, %d in all; want %q inline", got.Queue, got.Queued, got.queued(), ops)
	}
	if got.P.ID != r.P.ID || got.Timeline != r.Timeline || !reflect.DeepEqual(got.Audiences, r.Audiences) {
		t.Fatalf("decoded %+v, want %+v", got, r)
	}
	again, err := decodeRecord(got.encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.Queue, ops) {
		t.Errorf("encoded again, the queue is %q, want %q", again.Queue, ops)
	}
}

// TestRecordOfVersion6HasNoTileFloor: a record written before tile floors
// (version 6) decodes with the floor 0, which bounds nothing, so the next
// expiring sweep scans all its features; the rest of it is kept.
func TestRecordOfVersion6HasNoTileFloor(t *testing.T) {
	r := sampleRecord()
	got, err := decodeRecord(oldRecord(6, r, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := *r
	want.TileFloor = 0
	want.TimelineExact, want.TimelineNewest = false, 0
	if string(got.encode()) != string(want.encode()) {
		t.Fatalf("decoded %+v, want %+v", got, &want)
	}
}

// TestRecordOfVersion7HasNoExactTimeline: a record written before exact
// timeline counts (version 7) decodes with its count as an upper bound,
// so its next trim reads the whole timeline and counts (timeline.go); the
// rest of it, the tile floor too, is kept, and an inexact count encodes
// and decodes as such.
func TestRecordOfVersion7HasNoExactTimeline(t *testing.T) {
	r := sampleRecord()
	got, err := decodeRecord(oldRecord(7, r, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := *r
	want.TimelineExact, want.TimelineNewest = false, 0
	if string(got.encode()) != string(want.encode()) {
		t.Fatalf("decoded %+v, want %+v", got, &want)
	}
	again, err := decodeRecord(got.encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.TimelineExact || again.Timeline != r.Timeline || again.TileFloor != r.TileFloor {
		t.Errorf("encoded again: count %d, exact %v, floor %d; want %d, false, %d", again.Timeline, again.TimelineExact, again.TileFloor, r.Timeline, r.TileFloor)
	}
}

// TestRecordDecodingRefusesABadTimelineFlag: the flag is a 0 or a 1.
func TestRecordDecodingRefusesABadTimelineFlag(t *testing.T) {
	// An empty record: the version, three empty strings and six
	// one-byte numbers, then the flag.
	const flagAt = 1 + 3 + 6
	b := (&record{}).encode()
	if b[flagAt] != 0 {
		t.Fatalf("byte %d of an empty record is %d, want the flag 0: % x", flagAt, b[flagAt], b)
	}
	b[flagAt] = 2
	if _, err := decodeRecord(b, nil); err == nil || !strings.Contains(err.Error(), "bad timeline flag") {
		t.Fatalf("decoding a flag of 2: %v, want a bad timeline flag", err)
	}
}

// BenchmarkRecord is the profile stage's decode and encode of a profile
// record, once per op, with the stage's interner and without one. Like
// the stage, it encodes into a buffer it reuses.
func BenchmarkRecord(b *testing.B) {
	for _, bc := range []struct {
		name string
		in   interner
	}{{"interning", interner{}}, {"allocating", nil}} {
		b.Run(bc.name, func(b *testing.B) {
			enc := sampleRecord().encode()
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				r, err := decodeRecord(enc, bc.in)
				if err != nil {
					b.Fatal(err)
				}
				buf = r.appendTo(buf[:0])
				enc, buf = buf, enc
			}
		})
	}
}
