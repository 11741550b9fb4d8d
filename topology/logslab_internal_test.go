package topology

import (
	"bytes"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestLogSlab checks that what alloc hands out between resets never
// overlaps, that records too large for a chunk share none, and that a
// reset lets the next allocations reuse the chunks, up to the bound.
func TestLogSlab(t *testing.T) {
	tests := []struct {
		name       string
		sizes      []int
		wantChunks int // chunks in use after the allocations
	}{
		{"empty", nil, 0},
		{"one small", []int{10}, 1},
		{"fills a chunk exactly", []int{logChunkBytes / 4, logChunkBytes / 4, logChunkBytes / 4, logChunkBytes / 4}, 1},
		{"spills into a second", []int{logChunkBytes / 4, logChunkBytes / 4, logChunkBytes / 4, logChunkBytes / 4, 1}, 2},
		{"large ones apart", []int{logChunkBytes/4 + 1, 5, logChunkBytes}, 1},
		{"zero bytes", []int{0, 0, 3}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s logSlab
			for round := range 3 {
				var got [][]byte
				for i, n := range tt.sizes {
					b := s.alloc(n)
					if len(b) != n || cap(b) != n {
						t.Fatalf("round %d: alloc(%d) has len %d, cap %d", round, n, len(b), cap(b))
					}
					for j := range b {
						b[j] = byte(i + 1)
					}
					got = append(got, b)
				}
				// Filling each allocation with its own byte shows
				// any overlap: a later one would overwrite it.
				for i, b := range got {
					if !bytes.Equal(b, bytes.Repeat([]byte{byte(i + 1)}, len(b))) {
						t.Fatalf("round %d: allocation %d (%d bytes) was overwritten", round, i, len(b))
					}
				}
				if len(s.chunks) != tt.wantChunks {
					t.Errorf("round %d: %d chunks in use, want %d", round, len(s.chunks), tt.wantChunks)
				}
				s.reset()
				if len(s.chunks) != 0 || len(s.free) != tt.wantChunks {
					t.Errorf("round %d: after reset %d in use and %d free, want 0 and %d", round, len(s.chunks), len(s.free), tt.wantChunks)
				}
			}
		})
	}
}

// TestLogSlabKeepsAtMost checks the bound on the chunks kept across a
// reset.
func TestLogSlabKeepsAtMost(t *testing.T) {
	var s logSlab
	for range (logSlabKeep + 5) * 4 {
		s.alloc(logChunkBytes / 4)
	}
	if len(s.chunks) != logSlabKeep+5 {
		t.Fatalf("%d chunks in use, want %d", len(s.chunks), logSlabKeep+5)
	}
	s.reset()
	if len(s.free) != logSlabKeep {
		t.Errorf("%d chunks kept, want %d", len(s.free), logSlabKeep)
	}
}

// TestLogSlabRecords checks that records are distinct until a reset, come
// back zeroed after it, and that at most logRecordKeep chunks are kept.
func TestLogSlabRecords(t *testing.T) {
	tests := []struct {
		name       string
		n          int
		wantChunks int
	}{
		{"none", 0, 0},
		{"one", 1, 1},
		{"a full chunk", logRecordChunk, 1},
		{"one more", logRecordChunk + 1, 2},
		{"past the bound", (logRecordKeep + 2) * logRecordChunk, logRecordKeep + 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s logSlab
			ctx := &changelog{topic: "c"}
			for round := range 3 {
				seen := make(map[*kgo.Record]bool, tt.n)
				for i := range tt.n {
					r := s.record()
					if r.Topic != "" || r.Key != nil || r.Value != nil || r.Context != nil || !r.Timestamp.IsZero() || r.Offset != 0 {
						t.Fatalf("round %d: record %d is not zeroed: %+v", round, i, r)
					}
					if seen[r] {
						t.Fatalf("round %d: record %d handed out twice before a reset", round, i)
					}
					seen[r] = true
					r.Topic, r.Key, r.Value, r.Context, r.Offset = "t", []byte{1}, []byte{2}, ctx, int64(i+1)
					r.Timestamp = time.Unix(int64(i), 0)
				}
				if len(s.recs) != tt.wantChunks {
					t.Errorf("round %d: %d record chunks in use, want %d", round, len(s.recs), tt.wantChunks)
				}
				s.reset()
				if want := min(tt.wantChunks, logRecordKeep); len(s.recs) != 0 || len(s.freeRecs) != want {
					t.Errorf("round %d: after reset %d in use and %d free, want 0 and %d", round, len(s.recs), len(s.freeRecs), want)
				}
			}
		})
	}
}
