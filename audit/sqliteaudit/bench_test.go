package sqliteaudit_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/tenantmcp/tenantmcp/audit/audittest"
)

// BenchmarkAppend measures batched appends to one file: batches of 1, 100
// and 1,000 events over 10 chains (the writer batches per flush, across
// tenants). Target: ≥ 50,000 events/s in batches.
func BenchmarkAppend(b *testing.B) {
	for _, size := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := open(b, filepath.Join(b.TempDir(), "audit.db"), nil)
			audittest.BenchAppend(b, s, size, 10)
		})
	}
}
