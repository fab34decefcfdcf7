package testenv

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// ProcessCPU is the CPU time (user + system) process pid of this machine
// has used so far, from /proc/<pid>/stat (in ticks of 1/100 s), if its
// command is command (e.g. "postgres" for a PostgreSQL backend). ok is
// false where /proc cannot tell, or the process is not command (a pid of
// a server on another machine may name any local process).
func ProcessCPU(pid int, command string) (d time.Duration, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// pid (comm) state ppid …: the command may hold spaces and
	// parentheses, so it ends at the last ')'; utime and stime are the
	// 14th and 15th fields, the 12th and 13th after it.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open || string(b[open+1:end]) != command {
		return 0, false
	}
	f := bytes.Fields(b[end+1:])
	if len(f) < 13 {
		return 0, false
	}
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return 0, false
		}
		d += time.Duration(n) * 10 * time.Millisecond
	}
	return d, true
}
