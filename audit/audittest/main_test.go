package audittest_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is still running
// after they end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
