package sqliteaudit_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/tenantmcp/tenantmcp/audit/audittest"
)

// BenchmarkAppend measures batched appends to one file: batches of 1, 100
// and 1,000 events over 10 chains, and batches of the writer's default
// size (256) spread over 100 and 10,000 chains, as a server's writer
// stores them (one chain per tenant, a batch per flush across tenants).
// Target: ≥ 50,000 events/s in batches.
func BenchmarkAppend(b *testing.B) {
	for _, c := range audittest.AppendCases {
		b.Run(fmt.Sprintf("batch=%d/chains=%d", c.Batch, c.Chains), func(b *testing.B) {
			s := open(b, filepath.Join(b.TempDir(), "audit.db"), nil)
			audittest.BenchAppend(b, s, c.Batch, c.Chains)
		})
	}
}
