// Package discard is the discard sink: it acknowledges every activation
// and delivers it nowhere. It is the null channel of the benchmark
// harness (tessera bench), which measures the cost of the delivery
// runtime without the cost of a receiver, and a placeholder while a real
// destination is being set up.
//
// It counts what it took, so a test or the harness can see that
// activations arrived; the count lives only as long as the process.
package discard

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/tessera-cdp/tessera/config"
	"github.com/tessera-cdp/tessera/connectors/sink"
)

// Sink is the discard sink. Build it with New.
type Sink struct {
	name      string
	delivered atomic.Int64
}

// New returns the discard sink of dest. It takes only the fields every
// destination has (name, type, filters, delivery); getenv is unused.
func New(dest config.Destination, _ func(string) string) (*Sink, error) {
	if err := sink.CheckFields(dest); err != nil {
		return nil, fmt.Errorf("discard %s: %w", dest.Name, err)
	}
	return &Sink{name: dest.Name}, nil
}

// Connect has nothing to prepare.
func (s *Sink) Connect(context.Context) error { return nil }

// WriteBatch acknowledges the batch.
func (s *Sink) WriteBatch(_ context.Context, batch []sink.Activation) error {
	s.delivered.Add(int64(len(batch)))
	return nil
}

// Close is a no-op; it is idempotent.
func (s *Sink) Close(context.Context) error { return nil }

// Delivered returns how many activations the sink has acknowledged.
func (s *Sink) Delivered() int64 { return s.delivered.Load() }
