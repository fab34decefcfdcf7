package audit

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// docBlock is the fenced block after the marker <!-- name --> in
// docs/audit.md.
func docBlock(t *testing.T, doc, name string) string {
	t.Helper()
	re := regexp.MustCompile("(?s)<!-- " + regexp.QuoteMeta(name) + " -->\n```[a-z]*\n(.*?)```")
	m := re.FindStringSubmatch(doc)
	if m == nil {
		t.Fatalf("docs/audit.md has no block %q", name)
	}
	return m[1]
}

// TestDocsWorkedExample: the worked example in docs/audit.md is what the
// code computes — the example key, the export verifies, event 1's hash,
// the checkpoint's signed bytes and signature — so the page an auditor
// follows cannot drift from the format.
func TestDocsWorkedExample(t *testing.T) {
	b, err := os.ReadFile("../docs/audit.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	seed, _ := hex.DecodeString("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	key := ed25519.NewKeyFromSeed(seed)
	pub := key.Public().(ed25519.PublicKey)
	if got, want := strings.TrimSpace(docBlock(t, doc, "example-public-key")), FormatPublicKey(pub); got != want {
		t.Errorf("example public key %s, want %s", got, want)
	}
	if !strings.Contains(doc, "key id `"+KeyID(pub)+"`") {
		t.Errorf("docs do not give the key id %s", KeyID(pub))
	}

	file := docBlock(t, doc, "example-export")
	rep, err := VerifyExport(strings.NewReader(file), pub)
	if err != nil || !rep.OK() || rep.Events != 2 || rep.Checkpoints != 1 {
		t.Fatalf("the example export: %+v, %v", rep, err)
	}
	rep, err = VerifyExport(strings.NewReader(strings.Replace(file, "alice", "mallory", 1)), pub)
	if err != nil || rep.Status() != "BROKEN at event 1: hash does not match its content (changed)" {
		t.Errorf("the example with mallory: %v, %v", rep, err)
	}

	lines := strings.Split(file, "\n")
	var ev struct {
		Event json.RawMessage `json:"event"`
	}
	if err := json.Unmarshal([]byte(lines[1]), &ev); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(doc, fmt.Sprintf("the body is the %d bytes from", len(ev.Event))) {
		t.Errorf("docs miscount event 1's body (%d bytes)", len(ev.Event))
	}
	if got, want := strings.TrimSpace(docBlock(t, doc, "example-hash-1")), Link(Hash{}, ev.Event).String(); got != want {
		t.Errorf("example hash of event 1 %s, want %s", got, want)
	}

	var cp Checkpoint
	if err := json.Unmarshal([]byte(lines[3]), &cp); err != nil {
		t.Fatal(err)
	}
	signed := cp.SignedBytes()
	if got, want := strings.TrimSpace(docBlock(t, doc, "example-signed-bytes")), strings.ReplaceAll(string(signed), "\n", `\n`); got != want {
		t.Errorf("example signed bytes\n%s\nwant\n%s", got, want)
	}
	if !strings.Contains(doc, fmt.Sprintf("signs these %d bytes", len(signed))) {
		t.Errorf("docs miscount the signed bytes (%d)", len(signed))
	}
	if sig := ed25519.Sign(key, signed); !bytes.Equal(sig, cp.Signature) || !strings.Contains(doc, hex.EncodeToString(sig)) {
		t.Errorf("docs do not give the signature %x", sig)
	}
}
