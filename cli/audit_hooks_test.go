package cli

import (
	"context"
	"testing"

	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/audit"
)

// SetAuditStore makes the audit commands use s until the test ends, for
// the tests in cli_test (which must not run in parallel with another
// test using it).
func SetAuditStore(t testing.TB, s audit.Store) {
	old := openAuditStore
	openAuditStore = func(context.Context, *app.App) (audit.Store, error) { return s, nil }
	t.Cleanup(func() { openAuditStore = old })
}
