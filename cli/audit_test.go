package cli_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/cli"
	"github.com/tenantmcp/tenantmcp/config"
)

// TODO(lead): once app opens the audit store (a.Audit()), seed the
// deployment's own store here instead of cli.SetAuditStore, and tamper
// with it through audit/audittest's Tamperer.

// auditDeployment is a deployment with tenant acme, its signing key and
// an audit store holding 12 events of acme (checkpoints at 5, 10 and 12)
// and 3 of the system chain (checkpoint at 3).
type auditDeployment struct {
	config string
	chain  string // acme's internal id
	pub    ed25519.PublicKey
	store  *tamperStore
}

func setupAudit(t *testing.T) *auditDeployment {
	t.Helper()
	d := &auditDeployment{config: tenantConfig(t)}
	if code, _, errOut := run(t, nil, "tenant", "add", "--config", d.config, "--external-id", "acme"); code != 0 {
		t.Fatalf("tenant add: %s", errOut)
	}
	_, out, _ := run(t, nil, "tenant", "show", "acme", "--config", d.config, "--json")
	var rec struct{ ID string }
	if err := json.Unmarshal([]byte(out), &rec); err != nil || rec.ID == "" {
		t.Fatalf("tenant show --json: %v\n%s", err, out)
	}
	d.chain = rec.ID
	cfg, err := config.Load(d.config, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := app.AuditKey(cfg) // as the server does on first start
	if err != nil {
		t.Fatal(err)
	}
	d.pub = key.Public().(ed25519.PublicKey)
	d.store = &tamperStore{MemoryStore: audit.NewMemoryStore()}
	appendEvents(t, d.store, key, d.chain, 12, 5)
	appendEvents(t, d.store, key, audit.SystemChain, 3, 5)
	cli.SetAuditStore(t, d.store)
	return d
}

var auditT0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// appendEvents appends n events to chain, event i at auditT0 + i
// minutes, with a checkpoint every `every` and one at the end.
func appendEvents(t *testing.T, s audit.Store, key ed25519.PrivateKey, chain string, n, every int) {
	t.Helper()
	ctx := context.Background()
	var h audit.Head
	for i := 1; i <= n; i++ {
		e := audit.Event{Time: auditT0.Add(time.Duration(i) * time.Minute), Tenant: chain, User: "alice",
			Kind: audit.KindToolCall, Tool: "get_document", Outcome: audit.OutcomeOK}
		body, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		var r audit.Record
		r, h = h.Next(chain, body)
		if err := s.Append(ctx, []audit.Record{r}); err != nil {
			t.Fatal(err)
		}
		if i%every == 0 || i == n {
			cp := &audit.Checkpoint{Chain: chain, Count: h.Seq, Head: h.Hash, Time: e.Time.Add(time.Second)}
			cp.Sign(key)
			if err := s.PutCheckpoint(ctx, cp); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// tamperStore changes the body of one record as it is read, as someone
// who edited the database would have.
type tamperStore struct {
	*audit.MemoryStore
	chain string
	seq   uint64
}

func (s *tamperStore) Scan(ctx context.Context, chain string, from uint64, fn func(*audit.Record) error) error {
	return s.MemoryStore.Scan(ctx, chain, from, func(r *audit.Record) error {
		if s.seq != 0 && chain == s.chain && r.Seq == s.seq {
			r.Body = bytes.Replace(r.Body, []byte("alice"), []byte("mallory"), 1)
		}
		return fn(r)
	})
}

// squeeze puts single spaces between the words of each line, so table
// rows compare whatever the column widths.
func squeeze(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

// TestAuditKey: "audit key" prints the public key and its key id, and
// says where the key will be before the server made one.
func TestAuditKey(t *testing.T) {
	path := tenantConfig(t)
	code, _, errOut := run(t, nil, "audit", "key", "--config", path)
	if code != 1 || !strings.Contains(errOut, "no audit signing key yet") || !strings.Contains(errOut, app.AuditKeyFile) {
		t.Fatalf("audit key before the first start: exit %d\n%s", code, errOut)
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := app.AuditKey(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public().(ed25519.PublicKey)
	code, out, errOut := run(t, nil, "audit", "key", "--config", path)
	if want := audit.FormatPublicKey(pub) + "\nkey id: " + audit.KeyID(pub) + "\n"; code != 0 || out != want {
		t.Fatalf("audit key: exit %d\n%s%s\nwant\n%s", code, out, errOut, want)
	}
}

// TestAuditVerify: "audit verify" checks every chain and prints a row per
// chain; a changed event makes it name the first broken link and exit 1.
func TestAuditVerify(t *testing.T) {
	d := setupAudit(t)
	code, out, errOut := run(t, nil, "audit", "verify", "--config", d.config)
	if code != 0 {
		t.Fatalf("audit verify: exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		"CHAIN TENANT EVENTS CHECKPOINTS STATUS",
		"system (system) 3 1 OK",
		d.chain + " acme 12 3 OK",
	} {
		if !strings.Contains(squeeze(out), want) {
			t.Errorf("audit verify output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "2 audit chains verified with key "+audit.KeyID(d.pub)) {
		t.Errorf("stderr: %s", errOut)
	}

	d.store.chain, d.store.seq = d.chain, 7
	code, out, errOut = run(t, nil, "audit", "verify", "--config", d.config)
	if want := d.chain + " acme 6 1 BROKEN at event 7: hash does not match its content (changed)"; code != 1 || !strings.Contains(squeeze(out), want) {
		t.Fatalf("audit verify of a changed event: exit %d\n%s%s\nwant a row %s", code, out, errOut, want)
	}
	if !strings.Contains(errOut, "1 of 2 audit chains broken") {
		t.Errorf("stderr: %s", errOut)
	}
	// One tenant, by external or internal id.
	for _, ref := range []string{"acme", d.chain} {
		code, out, _ = run(t, nil, "audit", "verify", "--config", d.config, "--tenant", ref)
		if code != 1 || !strings.Contains(out, "BROKEN at event 7") || strings.Contains(out, "system") {
			t.Errorf("audit verify --tenant %s: exit %d\n%s", ref, code, out)
		}
	}
	code, out, _ = run(t, nil, "audit", "verify", "--config", d.config, "--system")
	if code != 0 || !strings.Contains(out, "(system)") || strings.Contains(out, "acme") {
		t.Errorf("audit verify --system: exit %d\n%s", code, out)
	}
	// Against another key (say, the published one when the key file was
	// replaced), every checkpoint is refused.
	other, _, _ := ed25519.GenerateKey(nil)
	code, out, _ = run(t, nil, "audit", "verify", "--config", d.config, "--system", "--key", audit.FormatPublicKey(other))
	if code != 1 || !strings.Contains(out, "BROKEN at event 3: checkpoint is signed by key "+audit.KeyID(d.pub)+", not by the key given") {
		t.Errorf("audit verify --key OTHER: exit %d\n%s", code, out)
	}
	code, _, errOut = run(t, nil, "audit", "verify", "--config", d.config, "--tenant", "initech")
	if code != 1 || !strings.Contains(errOut, `no tenant "initech": list them with`) {
		t.Errorf("audit verify --tenant unknown: exit %d\n%s", code, errOut)
	}
}

// TestAuditExportVerifyRoundTrip: what an operator exports, an auditor
// verifies offline with the file and the public key alone; a changed
// line in the file, or another key, fails.
func TestAuditExportVerifyRoundTrip(t *testing.T) {
	d := setupAudit(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "acme-audit.jsonl")
	code, _, errOut := run(t, nil, "audit", "export", "--config", d.config, "--tenant", "acme", "-o", file)
	if code != 0 {
		t.Fatalf("audit export: exit %d\n%s", code, errOut)
	}
	verifyCmd := fmt.Sprintf("audit verify --file %s --key %s", file, audit.FormatPublicKey(d.pub))
	if !strings.Contains(errOut, "wrote the audit trail of acme ("+d.chain+") to "+file) || !strings.Contains(errOut, verifyCmd) {
		t.Errorf("audit export says:\n%s\nwant the command %s", errOut, verifyCmd)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("export file: %v %v, want mode 0600", st, err)
	}
	// The auditor has no configuration, only the file and the key.
	code, out, errOut := run(t, nil, "audit", "verify", "--file", file, "--key", audit.FormatPublicKey(d.pub))
	if code != 0 || !strings.Contains(out, "events:       12 (event 1 to 12)") || !strings.Contains(out, "checkpoints:  3 verified") || !strings.Contains(out, "status:       OK") {
		t.Fatalf("audit verify --file: exit %d\n%s%s", code, out, errOut)
	}
	// The key as 'audit key' printed it, saved to a file.
	_, keyOut, _ := run(t, nil, "audit", "key", "--config", d.config)
	keyFile := filepath.Join(dir, "audit-public-key.txt")
	if err := os.WriteFile(keyFile, []byte(keyOut), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := run(t, nil, "audit", "verify", "--file", file, "--key", keyFile); code != 0 {
		t.Fatalf("audit verify --key FILE: exit %d\n%s%s", code, out, errOut)
	}

	// A changed line.
	b, _ := os.ReadFile(file)
	lines := strings.Split(string(b), "\n")
	lines[4] = strings.Replace(lines[4], "alice", "mallory", 1) // event 4
	tampered := filepath.Join(dir, "tampered.jsonl")
	os.WriteFile(tampered, []byte(strings.Join(lines, "\n")), 0o600)
	code, out, errOut = run(t, nil, "audit", "verify", "--file", tampered, "--key", audit.FormatPublicKey(d.pub))
	if code != 1 || !strings.Contains(out, "status:       BROKEN at event 4: hash does not match its content (changed)") {
		t.Fatalf("audit verify of a changed export: exit %d\n%s%s", code, out, errOut)
	}
	// Another key.
	other, _, _ := ed25519.GenerateKey(nil)
	code, out, _ = run(t, nil, "audit", "verify", "--file", file, "--key", audit.FormatPublicKey(other))
	if code != 1 || !strings.Contains(out, "BROKEN at event 5: checkpoint is signed by key") {
		t.Fatalf("audit verify with another key: exit %d\n%s", code, out)
	}
	// Cut short.
	os.WriteFile(tampered, []byte(strings.Join(strings.Split(string(b), "\n")[:6], "\n")), 0o600)
	code, _, errOut = run(t, nil, "audit", "verify", "--file", tampered, "--key", audit.FormatPublicKey(d.pub))
	if code != 1 || !strings.Contains(errOut, "without its end line (cut short)") {
		t.Fatalf("audit verify of a cut export: exit %d\n%s", code, errOut)
	}

	// A time range: events 6 to 9 (at minutes 6 to 9), to standard output.
	code, out, errOut = run(t, nil, "audit", "export", "--config", d.config, "--tenant", "acme",
		"--since", auditT0.Add(6*time.Minute).Format(time.RFC3339), "--until", auditT0.Add(10*time.Minute).Format(time.RFC3339))
	if code != 0 {
		t.Fatalf("audit export --since --until: exit %d\n%s", code, errOut)
	}
	rep, err := audit.VerifyExport(strings.NewReader(out), d.pub)
	if err != nil || rep.Status() != "OK, starts at event 6 (the export's time range starts here)" || rep.Head.Seq != 9 || rep.Checkpoints != 1 {
		t.Fatalf("ranged export: %+v, %v\n%s", rep, err, out)
	}
	// A range without a checkpoint in it proves nothing: refused.
	ranged := filepath.Join(dir, "ranged.jsonl")
	code, _, errOut = run(t, nil, "audit", "export", "--config", d.config, "--tenant", "acme", "-o", ranged,
		"--since", auditT0.Add(6*time.Minute).Format(time.RFC3339), "--until", auditT0.Add(9*time.Minute).Format(time.RFC3339))
	if code != 0 {
		t.Fatalf("audit export: exit %d\n%s", code, errOut)
	}
	code, out, errOut = run(t, nil, "audit", "verify", "--file", ranged, "--key", audit.FormatPublicKey(d.pub))
	if code != 1 || !strings.Contains(errOut, "no signed checkpoint covers its events") {
		t.Fatalf("audit verify of an unsigned range: exit %d\n%s%s", code, out, errOut)
	}
}

// TestAuditUsage: wrong combinations are usage errors (exit 2) that say
// what to give.
func TestAuditUsage(t *testing.T) {
	path := tenantConfig(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"verify", "--file", "x.jsonl"}, "--file needs --key PUBKEY"},
		{[]string{"verify", "--file", "x.jsonl", "--key", "ed25519:AAAA", "--config", path}, "give only --file and --key"},
		{[]string{"verify", "--file", "x.jsonl", "--key", "nonsense"}, "--key: audit: public key"},
		{[]string{"verify", "--config", path, "--tenant", "acme", "--all"}, "give one of --tenant, --system and --all"},
		{[]string{"export", "--config", path}, "give --tenant ID (or --system"},
		{[]string{"export", "--config", path, "--tenant", "acme", "--system"}, "give --tenant ID (or --system"},
		{[]string{"export", "--config", path, "--tenant", "acme", "--since", "yesterday"}, `--since: "yesterday" is not RFC 3339`},
		{[]string{"export", "--config", path, "--tenant", "acme", "--since", "1h", "--until", "2h"}, "--since must be before --until"},
	} {
		code, _, errOut := run(t, nil, append([]string{"audit"}, tt.args...)...)
		if code != 2 || !strings.Contains(errOut, tt.want) {
			t.Errorf("audit %v: exit %d\n%s\nwant …%s…", tt.args, code, errOut, tt.want)
		}
	}
}
