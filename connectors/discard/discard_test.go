package discard

import (
	"context"
	"strings"
	"testing"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		dest    config.Destination
		wantErr string
	}{
		{name: "bare", dest: config.Destination{Name: "null", Type: "discard"}},
		{name: "filters and delivery", dest: config.Destination{Name: "null", Type: "discard",
			Types: []string{"event_triggered"}, Delivery: config.Delivery{BatchSize: 500}}},
		{name: "a url is refused", dest: config.Destination{Name: "null", Type: "discard", URL: "http://x"},
			wantErr: "discard null: url is not used by discard destinations"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.dest, nil)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New: got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestWriteBatchCounts(t *testing.T) {
	s, err := New(config.Destination{Name: "null", Type: "discard"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var _ sink.Sink = s
	ctx := context.Background()
	if err := s.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{3, 0, 7} {
		if err := s.WriteBatch(ctx, make([]sink.Activation, n)); err != nil {
			t.Fatalf("WriteBatch(%d): %v", n, err)
		}
	}
	if got := s.Delivered(); got != 10 {
		t.Fatalf("Delivered = %d, want 10", got)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
