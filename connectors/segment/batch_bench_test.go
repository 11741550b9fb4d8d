package segment

import (
	"strings"
	"testing"
	"time"
)

// BenchmarkParseBatch measures the per-request work before Kafka: parse,
// validate and complete a batch of 100 ~400-byte events, as an SDK sends.
func BenchmarkParseBatch(b *testing.B) {
	ev := `{"type":"track","event":"Order Completed","userId":"u1","anonymousId":"a1","messageId":"node-next-1700000000000-abc",` +
		`"timestamp":"2026-01-01T00:00:00.000Z","properties":{"revenue":10.5,"currency":"EUR","items":[{"sku":"x","q":2}]},` +
		`"context":{"library":{"name":"@segment/analytics-node","version":"3.1.0"},"ip":"1.2.3.4"},"_metadata":{"jsRuntime":"node"}}`
	body := batchOf(`"sentAt":"2026-01-01T00:00:01.000Z","writeKey":"k"`, strings.Split(strings.Repeat(ev+"\n", 100), "\n")[:100]...)
	st := new(state)
	received := time.Now()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		v, err := st.n.Parse(body)
		if err != nil {
			b.Fatal(err)
		}
		if aerr := st.parseBatch(v, received, "/v1/batch"); aerr != nil || len(st.evs) != 100 {
			b.Fatal(aerr)
		}
		st.reset()
	}
}
