package server_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is still running
// after they end. The server never starts a ratelimit.Memory itself (the
// caller passes Options.Limiter and closes it); the sweepers of the
// limiters tests create and leave open are theirs, not the server's.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/tenantmcp/tenantmcp/ratelimit.(*Memory).sweeper"))
}
