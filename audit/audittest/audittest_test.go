package audittest_test

import (
	"testing"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/audit/audittest"
)

// TestMemoryStore holds the reference implementation to the contract.
func TestMemoryStore(t *testing.T) {
	audittest.Run(t, func(t *testing.T) audit.Store { return audit.NewMemoryStore() })
}
