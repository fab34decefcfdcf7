package admin_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: the server
// tests start HTTP servers, MCP clients and audit writers.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
