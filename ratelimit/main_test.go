package ratelimit

import (
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClock is a manual clock shared by limiters under test.
type fakeClock = testenv.Clock

func newFakeClock() *fakeClock {
	// A real-looking instant, so Redis keys written with it look sane.
	return testenv.NewClock(time.Now().Truncate(time.Second))
}

func atomicAdd(p *uint64, d uint64) uint64 { return atomic.AddUint64(p, d) }

// reportCPU adds a "cpu-ns/op" metric: process CPU time (all threads,
// including GC) per operation.
func reportCPU(b *testing.B, cpu time.Duration) {
	if cpu > 0 && b.N > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}
