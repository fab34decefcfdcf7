package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// SmallFilesystem mounts a tmpfs of size (as mount takes it: "64k", "1m")
// for the test and returns its directory, to fill up in disk-full tests;
// it is unmounted when the test ends. Mounting needs root: elsewhere it
// skips the test saying so (fails it when CI=true).
func SmallFilesystem(t testing.TB, size string) string {
	t.Helper()
	cannot := func(format string, args ...any) {
		t.Helper()
		if inCI() {
			t.Fatalf("a size-limited tmpfs is required when CI=true: "+format, args...)
		}
		t.Skipf(format+" (run the test as root; CI=true makes this a failure)", args...)
	}
	if os.Geteuid() != 0 {
		cannot("mounting a size-limited tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		cannot("cannot mount a tmpfs: %v: %s", err, out)
	}
	// Registered after TempDir, so it runs before TempDir's removal.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}
