package audit_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind (a Writer that
// was not closed, a retry loop that outlived Close).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
