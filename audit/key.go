package audit

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// pemPrivateKey is the PEM block type of a PKCS #8 private key.
const pemPrivateKey = "PRIVATE KEY"

// ErrBadKey: the bytes are not an Ed25519 private key in PEM PKCS #8 form.
var ErrBadKey = errors.New("audit: not an Ed25519 private key in PEM (PKCS #8)")

// FormatPrivateKey encodes a checkpoint signing key as PEM "PRIVATE KEY"
// (PKCS #8), the form ParsePrivateKey reads and OpenSSL writes with
// "openssl genpkey -algorithm ed25519".
func FormatPrivateKey(key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrBadKey, len(key), ed25519.PrivateKeySize)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

// ParsePrivateKey reads a checkpoint signing key in FormatPrivateKey's
// form. The error never quotes the input.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != pemPrivateKey {
		return nil, fmt.Errorf("%w: no %q PEM block", ErrBadKey, pemPrivateKey)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: a %T", ErrBadKey, k)
	}
	return key, nil
}
