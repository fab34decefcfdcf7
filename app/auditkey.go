package app

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/config"
)

// AuditKeyFile is the file in server.data_dir that keeps the key signing
// audit checkpoints, unless audit.signing_key_file names another.
const AuditKeyFile = "audit-signing-key.pem"

// AuditKeyPath is where cfg's audit signing key is kept, and whether the
// configuration names it (then it is never generated: a missing file is
// a mistake, such as a secret that was not mounted).
func AuditKeyPath(cfg *config.Config) (path string, configured bool) {
	if cfg.Audit.SigningKeyFile != "" {
		return cfg.Audit.SigningKeyFile, true
	}
	return filepath.Join(cfg.Server.DataDir, AuditKeyFile), false
}

// AuditKey returns the deployment's audit signing key (Ed25519, PEM
// PKCS #8): the file audit.signing_key_file names, else AuditKeyFile in
// server.data_dir, generated there (mode 0600) on first use.
func AuditKey(cfg *config.Config) (ed25519.PrivateKey, error) {
	path, configured := AuditKeyPath(cfg)
	key, err := readAuditKey(path)
	if err == nil || configured || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	if err := createAuditKey(path); err != nil {
		return nil, err
	}
	// Read back what is there: another process may have created it first.
	return readAuditKey(path)
}

// AuditPublicKey returns the public half of the deployment's audit
// signing key without creating one; its error matches fs.ErrNotExist if
// there is none yet.
func AuditPublicKey(cfg *config.Config) (ed25519.PublicKey, error) {
	path, _ := AuditKeyPath(cfg)
	key, err := readAuditKey(path)
	if err != nil {
		return nil, err
	}
	return key.Public().(ed25519.PublicKey), nil
}

func readAuditKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read audit signing key: %w", err)
	}
	key, err := audit.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("audit signing key %s: %w", path, err)
	}
	return key, nil
}

// createAuditKey writes a new key to path unless a file is there already:
// written to a temporary file, then linked into place, so no process ever
// reads a half-written key and two starting at once keep the same one.
func createAuditKey(path string) error {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	pemBytes, err := audit.FormatPrivateKey(key)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".audit-signing-key-*") // mode 0600
	if err != nil {
		return fmt.Errorf("create audit signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(pemBytes)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write audit signing key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create audit signing key %s: %w", path, err)
	}
	return nil
}
