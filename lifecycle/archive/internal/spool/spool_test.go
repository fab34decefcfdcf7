package spool_test

import (
	"io"
	"os"
	"runtime"
	"testing"

	"github.com/tenantmcp/tenantmcp/lifecycle/archive/internal/spool"
)

func TestCreate(t *testing.T) {
	dir := t.TempDir()
	f, err := spool.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("spooled"); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 7)
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF || string(b) != "spooled" {
		t.Fatalf("ReadAt = %q, %v", b, err)
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", fi.Mode(), err)
	}
	ents, _ := os.ReadDir(dir)
	if runtime.GOOS != "windows" && len(ents) != 0 {
		t.Fatalf("the spool's name is still in %s: %v", dir, ents)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("after Close %s holds %v", dir, ents)
	}
	if _, err := spool.Create(dir + "/missing"); err == nil {
		t.Fatal("Create in a missing directory succeeded")
	}
}
