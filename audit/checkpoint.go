package audit

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Checkpoint is a signed statement of a chain's length and head hash at a
// time. Anyone with the public key can check it offline.
type Checkpoint struct {
	Chain string    `json:"chain"`
	Count uint64    `json:"count"`
	Head  Hash      `json:"head"`
	Time  time.Time `json:"time"`
	// KeyID names the signing key (KeyID of its public key).
	KeyID string `json:"key_id"`
	// Signature is Ed25519 over SignedBytes.
	Signature []byte `json:"signature"`
}

// checkpointDomain separates checkpoint signatures from anything else the
// key might ever sign.
const checkpointDomain = "tenantmcp audit checkpoint v1\n"

// SignedBytes is what a checkpoint's signature covers:
//
//	"tenantmcp audit checkpoint v1\n" chain "\n" count "\n" head-hex "\n" time-RFC3339Nano-UTC "\n"
func (c *Checkpoint) SignedBytes() []byte {
	var b strings.Builder
	b.WriteString(checkpointDomain)
	b.WriteString(c.Chain)
	b.WriteByte('\n')
	b.WriteString(strconv.FormatUint(c.Count, 10))
	b.WriteByte('\n')
	b.WriteString(c.Head.String())
	b.WriteByte('\n')
	b.WriteString(c.Time.UTC().Format(time.RFC3339Nano))
	b.WriteByte('\n')
	return []byte(b.String())
}

// Sign fills KeyID and Signature with key.
func (c *Checkpoint) Sign(key ed25519.PrivateKey) {
	c.Time = c.Time.UTC()
	c.KeyID = KeyID(key.Public().(ed25519.PublicKey))
	c.Signature = ed25519.Sign(key, c.SignedBytes())
}

// ErrBadSignature: a checkpoint's signature does not verify with the key.
var ErrBadSignature = errors.New("audit: checkpoint signature does not verify with this public key")

// VerifySignature checks the checkpoint's signature with pub.
func (c *Checkpoint) VerifySignature(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize || len(c.Signature) != ed25519.SignatureSize || !ed25519.Verify(pub, c.SignedBytes(), c.Signature) {
		return fmt.Errorf("%w (chain %q, count %d)", ErrBadSignature, c.Chain, c.Count)
	}
	return nil
}

// KeyID is a short, stable name of a public key: "ed25519:" and the first
// 8 bytes of its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ed25519:" + fmt.Sprintf("%x", sum[:8])
}

// publicKeyPrefix starts the text form of a public key.
const publicKeyPrefix = "ed25519:"

// FormatPublicKey is the text form of a public key, as "tenantmcp audit
// key" prints it and ParsePublicKey reads it: "ed25519:" + standard base64.
func FormatPublicKey(pub ed25519.PublicKey) string {
	return publicKeyPrefix + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey reads FormatPublicKey's form (the prefix is optional).
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), publicKeyPrefix)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("audit: public key %q: want \"ed25519:\" and %d bytes in base64", truncate(s), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

func truncate(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
