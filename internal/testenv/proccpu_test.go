package testenv

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestProcessCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	comm := filepath.Base(exe)
	if len(comm) > 15 { // the kernel keeps the first 15 bytes
		comm = comm[:15]
	}
	start := time.Now()
	for time.Since(start) < 20*time.Millisecond { // burn a couple of ticks
	}
	d, ok := ProcessCPU(os.Getpid(), comm)
	if !ok || d <= 0 {
		t.Errorf("ProcessCPU(self, %q) = %v, %v; want this process's CPU time", comm, d, ok)
	}
	if _, ok := ProcessCPU(os.Getpid(), "postgres"); ok {
		t.Error("ProcessCPU(self, \"postgres\") = ok: the command was not checked")
	}
	if _, ok := ProcessCPU(1<<30, comm); ok {
		t.Error("ProcessCPU of a pid that does not exist = ok")
	}
}
