package pgaudit_test

import (
	"fmt"
	"testing"

	"github.com/tenantmcp/tenantmcp/audit/audittest"
	"github.com/tenantmcp/tenantmcp/audit/pgaudit"
	"github.com/tenantmcp/tenantmcp/internal/testenv"
)

// BenchmarkAppend measures batched appends as the application role:
// batches of 1, 100, 1,000 and 5,000 events over 10 chains (the writer
// batches per flush, across tenants). Target: ≥ 20,000 events/s in
// batches.
func BenchmarkAppend(b *testing.B) {
	e := setup(b)
	for _, size := range []int{1, 100, 1000, 5000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			schema := fmt.Sprintf("bench_%d_%s", size, testenv.Suffix())
			e.migrate(b, schema)
			audittest.BenchAppend(b, pgaudit.New(e.appPool, &pgaudit.Options{Schema: schema}), size, 10)
		})
	}
}
