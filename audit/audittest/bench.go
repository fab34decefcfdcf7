package audittest

import (
	"context"
	"strconv"
	"testing"

	"github.com/tenantmcp/tenantmcp/audit"
)

// BenchAppend measures s.Append of batches of size records spread over
// chains chains, and reports events/s. Bodies are encoded beforehand; the
// chaining (one SHA-256 per record) is measured with the store.
func BenchAppend(b *testing.B, s audit.Store, size, chains int) {
	ctx := context.Background()
	names := make([]string, chains)
	heads := make([]audit.Head, chains)
	for i := range names {
		names[i] = "t" + strconv.Itoa(i)
	}
	bodies := make([][]byte, 1024)
	for i := range bodies {
		ev := Event(names[i%chains], i)
		body, err := ev.Encode()
		if err != nil {
			b.Fatal(err)
		}
		bodies[i] = body
	}
	batch := make([]audit.Record, size)
	n := 0
	b.ResetTimer()
	for b.Loop() {
		for i := range batch {
			c := (n + i) % chains
			batch[i], heads[c] = heads[c].Next(names[c], bodies[(n+i)%len(bodies)])
		}
		if err := s.Append(ctx, batch); err != nil {
			b.Fatal(err)
		}
		n += size
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
