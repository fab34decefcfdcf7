package audittest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"testing"

	"github.com/tenantmcp/tenantmcp/audit"
)

// AppendCases are the batch sizes and chain counts the stores' append
// benchmarks run: over 10 chains at several batch sizes, and in batches of
// audit.DefaultBatchSize over 100 and 10,000 chains, which is what a
// server's writer stores (a batch spans the tenants that made requests
// during one flush).
var AppendCases = []struct{ Batch, Chains int }{
	{1, 10}, {100, 10}, {1000, 10},
	{audit.DefaultBatchSize, 100}, {audit.DefaultBatchSize, 10000},
	{1024, 100}, {1024, 10000},
}

// BenchAppend measures s.Append of batches of size records spread over
// chains chains, and reports events/s and the process's CPU time per
// event. Bodies are encoded beforehand; the chaining (one SHA-256 per
// record) is measured with the store.
func BenchAppend(b *testing.B, s audit.Store, size, chains int) {
	ctx := context.Background()
	names := make([]string, chains)
	heads := make([]audit.Head, chains)
	for i := range names {
		// Scattered like tenants' internal ids, so that consecutive
		// chains are not neighbours in the stores' indexes.
		sum := sha256.Sum256([]byte(strconv.Itoa(i)))
		names[i] = "t" + hex.EncodeToString(sum[:10])
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
	appendNext := func() {
		for i := range batch {
			c := (n + i) % chains
			batch[i], heads[c] = heads[c].Next(names[c], bodies[(n+i)%len(bodies)])
		}
		if err := s.Append(ctx, batch); err != nil {
			b.Fatal(err)
		}
		n += size
	}
	// Every chain has records before the timer starts: a store that keeps
	// what it knows of each chain is measured as it runs, not as it
	// starts.
	for n < chains {
		appendNext()
	}
	n = 0
	cpu0, cpuOK := cpuSeconds()
	b.ResetTimer()
	for b.Loop() {
		appendNext()
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	// CPU time per event (the whole process's: the store's goroutines,
	// and for SQLite the database itself) is what a shared machine's
	// other load disturbs least.
	if cpu1, ok := cpuSeconds(); ok && cpuOK && n > 0 {
		b.ReportMetric((cpu1-cpu0)*1e6/float64(n), "cpu-µs/event")
	}
}
