package app_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/config"
)

func auditKeyConfig(t *testing.T, dataDir string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte("[server]\ndata_dir = "+strconv.Quote(dataDir)+"\n[auth]\nenabled = false\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestAuditKeyCreatedOnce: the signing key is generated on first use in
// the data directory, readable by its owner only, and the same key is
// returned from then on — also to processes starting at once.
func TestAuditKeyCreatedOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data") // not there yet
	cfg := auditKeyConfig(t, dir)
	if _, err := app.AuditPublicKey(cfg); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("AuditPublicKey before any key: %v, want ErrNotExist", err)
	}
	var wg sync.WaitGroup
	keys := make([][]byte, 8)
	for i := range keys {
		wg.Go(func() {
			k, err := app.AuditKey(cfg)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if string(k) != string(keys[0]) {
			t.Fatal("concurrent first uses made different keys")
		}
	}
	path, configured := app.AuditKeyPath(cfg)
	if path != filepath.Join(dir, app.AuditKeyFile) || configured {
		t.Errorf("AuditKeyPath = %s, %v", path, configured)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", st, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("data dir holds %d files, want only the key (no temporary files left)", len(entries))
	}
	pub, err := app.AuditPublicKey(cfg)
	if err != nil || string(pub) != string(keys[0][32:]) {
		t.Errorf("AuditPublicKey: %x, %v", pub, err)
	}
}

// TestAuditKeyDamaged: a key file that is not a key is an error, never
// silently replaced (checkpoints signed by it would stop verifying).
func TestAuditKeyDamaged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, app.AuditKeyFile)
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := app.AuditKey(auditKeyConfig(t, dir)); err == nil {
		t.Fatal("a damaged key file was accepted")
	}
	if b, _ := os.ReadFile(path); string(b) != "not a key" {
		t.Error("the damaged key file was replaced")
	}
}
