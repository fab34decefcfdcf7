//go:build unix

package audittest

import "syscall"

// cpuSeconds is the user and system CPU time of the process so far, or
// false where it cannot be read.
func cpuSeconds() (float64, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9, true
}
