package pgaudit_test

import (
	"fmt"
	"testing"

	"github.com/tenantmcp/tenantmcp/audit/audittest"
	"github.com/tenantmcp/tenantmcp/audit/pgaudit"
	"github.com/tenantmcp/tenantmcp/internal/testenv"
)

// BenchmarkAppend measures batched appends as the application role: the
// cases of audittest.AppendCases (batches over 10 chains, and of the
// writer's default size over 100 and 10,000 chains) and batches of 5,000
// over 10 chains. Target: ≥ 20,000 events/s in batches.
func BenchmarkAppend(b *testing.B) {
	e := setup(b)
	cases := append(audittest.AppendCases, struct{ Batch, Chains int }{5000, 10})
	for _, c := range cases {
		b.Run(fmt.Sprintf("batch=%d/chains=%d", c.Batch, c.Chains), func(b *testing.B) {
			schema := fmt.Sprintf("bench_%d_%d_%s", c.Batch, c.Chains, testenv.Suffix())
			e.migrate(b, schema)
			audittest.BenchAppend(b, pgaudit.New(e.appPool, &pgaudit.Options{Schema: schema}), c.Batch, c.Chains)
		})
	}
}
