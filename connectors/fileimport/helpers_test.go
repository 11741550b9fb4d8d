package fileimport

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // the time zones of the tests, wherever they run

	"github.com/tessera-cdp/tessera/connectors/ingest"
	"github.com/tessera-cdp/tessera/schemas"
)

// memPublisher keeps what it is given; block, if set, names the events a
// tracking plan would block, which it reports, as ingest.Writer does, and
// keeps as rejects with their source.
type memPublisher struct {
	mu      sync.Mutex
	events  []schemas.Normalized
	rejects []ingest.Rejection
	block   func(schemas.Normalized) string
	err     error
}

func (p *memPublisher) PublishFrom(_ context.Context, evs []schemas.Normalized, source func(int) string) (ingest.Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var res ingest.Result
	if p.err != nil {
		return res, p.err
	}
	for i, e := range evs {
		if p.block != nil {
			if why := p.block(e); why != "" {
				res.Blocked = append(res.Blocked, ingest.Blocked{Index: i, Reason: why})
				p.rejects = append(p.rejects, ingest.Rejection{Raw: e.Value, Reason: why, Source: source(i)})
				continue
			}
		}
		p.events = append(p.events, e)
	}
	return res, nil
}

func (p *memPublisher) Reject(_ context.Context, rs ...ingest.Rejection) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rejects = append(p.rejects, rs...)
	return nil
}

// importTime is the receivedAt of every test import.
var importTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// importString imports input with the mapping text into a memPublisher.
func importString(t *testing.T, mapping, input string, opts Options) (Report, *memPublisher, error) {
	t.Helper()
	m, err := ParseMapping([]byte(mapping), "mapping.yaml")
	if err != nil {
		t.Fatalf("parsing mapping: %v", err)
	}
	pub := &memPublisher{}
	if opts.Now == nil {
		opts.Now = func() time.Time { return importTime }
	}
	rep, err := NewImporter(m, pub, opts).Import(context.Background(), strings.NewReader(input), "data", int64(len(input)))
	return rep, pub, err
}
