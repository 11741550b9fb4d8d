package fileimport

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/tessera-cdp/tessera/connectors/ingest"
	"github.com/tessera-cdp/tessera/schemas"
)

// nopPublisher discards what it is given.
type nopPublisher struct{}

func (nopPublisher) PublishFrom(context.Context, []schemas.Normalized, func(int) string) (ingest.Result, error) {
	return ingest.Result{}, nil
}

func (nopPublisher) Reject(context.Context, ...ingest.Rejection) error { return nil }

// BenchmarkImportCDNOW measures reading, mapping and normalizing the CDNOW
// sample, without Kafka; it reports events/s.
func BenchmarkImportCDNOW(b *testing.B) {
	data, err := os.ReadFile(cdnowFile)
	if err != nil {
		b.Skip(err)
	}
	m, err := LoadMapping("../../examples/cdnow/mapping.yaml")
	if err != nil {
		b.Fatal(err)
	}
	im := NewImporter(m, nopPublisher{}, Options{})
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var events int64
	for b.Loop() {
		rep, err := im.Import(context.Background(), bytes.NewReader(data), "cdnow", int64(len(data)))
		if err != nil {
			b.Fatal(err)
		}
		events += rep.Imported
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}
