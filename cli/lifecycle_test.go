package cli_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/lifecycle/archive"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/registry/registrytest"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
	"github.com/tenantmcp/tenantmcp/tenanttest"
)

// The lifecycle verbs as an operator types them: tenant archive, purge,
// export, restore and delete, against a running dev server and against a
// deployment file.

// mustRun runs the CLI and fails the test unless it exits 0; it returns
// standard output.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := run(t, nil, args...)
	if code != 0 {
		t.Fatalf("%s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// runRecord runs a tenant command with --json and decodes the record.
func runRecord(t *testing.T, args ...string) registry.Tenant {
	t.Helper()
	out := mustRun(t, append(args, "--json")...)
	var rec registry.Tenant
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		t.Fatalf("%s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
	return rec
}

// flipByte changes one byte of a .tar.gz where marker first appears in
// its uncompressed content (inside a part), keeping gzip and tar valid.
func flipByte(t *testing.T, raw []byte, marker string) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(plain, []byte(marker))
	if i < 0 {
		t.Fatalf("%q is not in the archive", marker)
	}
	plain[i] ^= 0x20
	return gzipped(t, plain, gzip.DefaultCompression)
}

func gzipped(t *testing.T, plain []byte, level int) []byte {
	t.Helper()
	var out bytes.Buffer
	zw, err := gzip.NewWriterLevel(&out, level)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(plain)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Stat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// TestLifecycleThroughDev: against a running dev server, an archived
// tenant is refused (403 "archived") as soon as the server sees the
// change, other tenants are still served; a corrupt archive — a file or
// the copy in the archive store — is refused by restore naming what
// failed, changing nothing; the intact archive restores the purged
// tenant, served again with its document. tenant list --trial-ending
// lists only the trials that end soon, and converting a trial is one
// update.
func TestLifecycleThroughDev(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	data, addr := t.TempDir(), freeAddr(t)
	// The server caches records for an hour: only its change watch can
	// make it notice in time.
	env := []string{"TENANTMCP_REGISTRY_CACHE_TTL=1h", "TENANTMCP_REGISTRY_NEGATIVE_CACHE_TTL=1h"}
	srv := start(t, env, "Stop with Ctrl-C", "dev", "--addr", addr, "--data", data)
	url := "http://" + addr + "/mcp"
	toks := devTokens(t, srv.out.String())
	acme, globex := connect(t, url, toks["acme"]), connect(t, url, toks["globex"])
	for _, c := range []struct {
		name   string
		client *tenanttest.Client
	}{{"acme", acme}, {"globex", globex}} {
		if out, isErr := callTool(t, c.client, "put_document", map[string]any{"key": "plan.md", "content": c.name + " plan"}); isErr {
			t.Fatalf("%s put: %s", c.name, out)
		}
	}
	ctx := context.Background()

	// Trials ending within 7 days, and converting one.
	mustRun(t, "tenant", "create", "--data", data, "--external-id", "soon", "--trial-days", "3")
	mustRun(t, "tenant", "create", "--data", data, "--external-id", "later", "--trial-days", "30")
	trials := func() []string {
		t.Helper()
		var recs []registry.Tenant
		out := mustRun(t, "tenant", "list", "--data", data, "--trial-ending", "7d", "--json")
		if err := json.Unmarshal([]byte(out), &recs); err != nil {
			t.Fatalf("tenant list --json: %v\n%s", err, out)
		}
		var ids []string
		for _, r := range recs {
			ids = append(ids, r.ExternalID)
		}
		return ids
	}
	if got := trials(); !slices.Equal(got, []string{"soon"}) {
		t.Fatalf("tenant list --trial-ending 7d: %v, want [soon]", got)
	}
	if out := mustRun(t, "tenant", "list", "--data", data, "--trial-ending", "7d"); !strings.Contains(out, "trial until") || strings.Contains(out, "later") {
		t.Fatalf("tenant list --trial-ending 7d:\n%s", out)
	}
	if rec := runRecord(t, "tenant", "update", "soon", "--data", data, "--status", "active"); rec.Status != registry.StatusActive {
		t.Fatalf("converted trial: %s", rec.Status)
	}
	if got := trials(); len(got) != 0 {
		t.Fatalf("tenant list --trial-ending 7d after converting the trial: %v", got)
	}

	// Archive: refused at once; globex still served.
	arch := runRecord(t, "tenant", "archive", "acme", "--data", data)
	if arch.Status != registry.StatusArchived || arch.Lifecycle.Archive == "" {
		t.Fatalf("tenant archive: %+v", arch)
	}
	registrytest.Eventually(t, "the running server refuses the archived tenant", func() bool {
		_, err := acme.CallErr(ctx, "list_documents", nil)
		return err != nil && strings.Contains(err.Error(), "archived")
	})
	code, body := postToolsList(t, url, toks["acme"])
	if code != 403 || !strings.Contains(body, "archived") {
		t.Fatalf("an archived tenant's request: %d %s", code, body)
	}
	if out, _ := callTool(t, globex, "get_document", map[string]any{"key": "plan.md"}); !strings.Contains(out, "globex plan") {
		t.Fatalf("globex after acme was archived: %s", out)
	}
	archivePath := filepath.Join(data, "archives", filepath.FromSlash(arch.Lifecycle.Archive))
	intact, err := os.ReadFile(archivePath)
	if err != nil {
		t.Fatal(err)
	}

	if code, _, errOut := run(t, nil, "tenant", "purge", "acme", "--data", data); code != 2 || !strings.Contains(errOut, "--yes") {
		t.Fatalf("purge without --yes: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, nil, "tenant", "purge", "globex", "--data", data, "--yes"); code != 1 || !strings.Contains(errOut, "only an archived tenant") {
		t.Fatalf("purge of an active tenant: %d %s", code, errOut)
	}
	purged := runRecord(t, "tenant", "purge", "acme", "--data", data, "--yes")
	dbFile := filepath.Join(data, "tenants", string(arch.ID)+".db")
	if purged.Status != registry.StatusPurged || exists(t, dbFile) {
		t.Fatalf("after tenant purge: %s, file left: %v", purged.Status, exists(t, dbFile))
	}
	globexDB := filepath.Join(data, "tenants", string(runRecord(t, "tenant", "show", "globex", "--data", data).ID)+".db")
	if !exists(t, globexDB) {
		t.Fatal("globex's database went with acme's purge")
	}

	// Corrupt archives are refused, naming what failed; nothing changes.
	unchanged := func(what string) {
		t.Helper()
		if rec := runRecord(t, "tenant", "show", string(arch.ID), "--data", data); rec.Status != registry.StatusPurged || exists(t, dbFile) {
			t.Fatalf("the refused restore of %s changed the tenant: %s, file %v", what, rec.Status, exists(t, dbFile))
		}
	}
	dir := t.TempDir()
	for _, c := range []struct {
		name, want string
		raw        []byte
	}{
		{"a part changed", "part docs/sqlite/tenant.db: sha256 mismatch", flipByte(t, intact, "acme plan")},
		{"the archive cut short", "cut short", intact[:len(intact)/2]},
		{"not an archive", "not a gzip stream", []byte("hello")},
	} {
		file := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".tar.gz")
		if err := os.WriteFile(file, c.raw, 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := run(t, nil, "tenant", "restore", file, "--data", data)
		if code != 1 || !strings.Contains(errOut, c.want) || out != "" {
			t.Fatalf("restore of %s: exit %d, stdout %q, stderr %q; want exit 1 saying %q", c.name, code, out, errOut, c.want)
		}
		unchanged(c.name)
	}
	// The copy in the archive store is checked against the SHA-256 beside
	// it: even a valid archive put in its place is refused.
	zr, _ := gzip.NewReader(bytes.NewReader(intact))
	plain, _ := io.ReadAll(zr)
	if err := os.WriteFile(archivePath, gzipped(t, plain, gzip.BestSpeed), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run(t, nil, "tenant", "restore", "--from-store", arch.Lifecycle.Archive, "--data", data)
	if code != 1 || !strings.Contains(errOut, "changed after it was written") {
		t.Fatalf("restore of a replaced archive from the store: %d %s", code, errOut)
	}
	unchanged("a replaced archive")
	if code, _, errOut := run(t, nil, "tenant", "restore", archivePath+".sha256", "--data", data, "--from-store"); code != 1 || !strings.Contains(errOut, "not an archive") {
		t.Fatalf("restore of a checksum: %d %s", code, errOut)
	}

	// The intact archive: the tenant is back, served with its document.
	if err := os.WriteFile(archivePath, intact, 0o600); err != nil {
		t.Fatal(err)
	}
	if out := mustRun(t, "tenant", "restore", "--from-store", arch.Lifecycle.Archive, "--data", data); !strings.Contains(out, "restored tenant acme ("+string(arch.ID)+"), now active") {
		t.Fatalf("tenant restore: %s", out)
	}
	registrytest.Eventually(t, "the running server serves the restored tenant", func() bool {
		res, err := acme.CallErr(ctx, "get_document", map[string]any{"key": "plan.md"})
		return err == nil && strings.Contains(res.Text, "acme plan")
	})
	if out, _ := callTool(t, globex, "get_document", map[string]any{"key": "plan.md"}); !strings.Contains(out, "globex plan") {
		t.Fatalf("globex after acme's restore: %s", out)
	}
	if code := srv.stop(t); code != 0 {
		t.Fatalf("dev exit %d: %s", code, srv.err)
	}
}

// postToolsList sends a raw tools/list with token and returns the
// answer's status and body.
func postToolsList(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// lifecycleConfig is a deployment file on SQLite whose archived data is
// kept for retention.
func lifecycleConfig(t *testing.T, retention time.Duration) (path, dataDir string) {
	t.Helper()
	dataDir = t.TempDir()
	return writeConfig(t, fmt.Sprintf(`
[server]
listen = %q
data_dir = %q
[auth]
provider = "generic"
issuer = "https://idp.example.com/"
[auth.multi_tenant]
tenant_claim = "org_id"
[lifecycle]
retention = %q
`, freeAddr(t), dataDir, retention.String())), dataDir
}

// putDocument stores a document for tenant id through the deployment's
// own stores, as its server would.
func putDocument(t *testing.T, path string, id tenant.ID, key, value string) {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Stores.Docs.Put(ctx, id, key, []byte(value)); err != nil {
		t.Fatal(err)
	}
	if err := a.Stores.Blobs.Put(ctx, id, key, []byte(value)); err != nil {
		t.Fatal(err)
	}
}

// documents lists tenant id's documents and blobs.
func documents(t *testing.T, path string, id tenant.ID) []string {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var out []string
	for name, b := range map[string]store.Backend{"docs": a.Stores.Docs, "blobs": a.Stores.Blobs} {
		keys, err := b.List(ctx, id, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			out = append(out, name+":"+k)
		}
	}
	slices.Sort(out)
	return out
}

// TestTenantDeleteAndPurge: tenant delete --yes archives the tenant and
// keeps its external id taken until the purge; tenant purge --due, once
// lifecycle.retention has passed, purges it and removes its registration;
// the external id created again is a new tenant (a new internal id)
// without the old data. --purge-now does both at once, and the archive
// stays.
func TestTenantDeleteAndPurge(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	path, dataDir := lifecycleConfig(t, 2*time.Second)
	old := runRecord(t, "tenant", "create", "--config", path, "--external-id", "acme")
	keep := runRecord(t, "tenant", "create", "--config", path, "--external-id", "globex")
	putDocument(t, path, old.ID, "plan.md", "old acme data")
	putDocument(t, path, keep.ID, "plan.md", "globex data")

	if code, _, errOut := run(t, nil, "tenant", "delete", "acme", "--config", path); code != 2 || !strings.Contains(errOut, "--yes") {
		t.Fatalf("delete without --yes: %d %s", code, errOut)
	}
	if code, out, _ := run(t, nil, "tenant", "delete", "acme", "--config", path, "--yes"); code != 0 || !strings.Contains(out, "deleted tenant acme ("+string(old.ID)+"): archived to ") {
		t.Fatalf("tenant delete: %d %s", code, out)
	}
	del := runRecord(t, "tenant", "show", string(old.ID), "--config", path)
	if del.Status != registry.StatusArchived || !del.Lifecycle.Deleted || del.Lifecycle.PurgeAfter.Sub(del.Lifecycle.ArchivedAt) != 2*time.Second {
		t.Fatalf("deleted tenant: %s %+v", del.Status, del.Lifecycle)
	}
	// Until the purge, the external id stays taken: no new tenant can
	// inherit the data still on disk.
	if code, _, errOut := run(t, nil, "tenant", "create", "--config", path, "--external-id", "acme"); code != 1 || !strings.Contains(errOut, "already registered") {
		t.Fatalf("create over a deleted tenant before its purge: %d %s", code, errOut)
	}
	var due struct{ Purged int }
	out := mustRun(t, "tenant", "purge", "--due", "--config", path, "--json")
	if time.Now().Before(del.Lifecycle.PurgeAfter) { // the retention had not passed when it ran
		if err := json.Unmarshal([]byte(out), &due); err != nil || due.Purged != 0 {
			t.Fatalf("tenant purge --due before the retention passed: %v %s", err, out)
		}
	}
	for time.Now().Before(del.Lifecycle.PurgeAfter) { // wait for the clock, not a fixed time
		time.Sleep(10 * time.Millisecond)
	}
	out = mustRun(t, "tenant", "purge", "--due", "--config", path, "--json")
	if err := json.Unmarshal([]byte(out), &due); err != nil || due.Purged != 1 {
		t.Fatalf("tenant purge --due after the retention: %v %s", err, out)
	}
	if code, _, errOut := run(t, nil, "tenant", "show", string(old.ID), "--config", path); code != 1 || !strings.Contains(errOut, "no tenant") {
		t.Fatalf("a deleted tenant after its purge: %d %s", code, errOut)
	}
	for _, p := range []string{filepath.Join(dataDir, "tenants", string(old.ID)+".db"), filepath.Join(dataDir, "blobs", string(old.ID))} {
		if exists(t, p) {
			t.Fatalf("%s is left after the purge", p)
		}
	}
	if !exists(t, filepath.Join(dataDir, "archives", filepath.FromSlash(del.Lifecycle.Archive))) {
		t.Fatal("the purge removed the archive")
	}

	fresh := runRecord(t, "tenant", "create", "--config", path, "--external-id", "acme")
	if fresh.ID == old.ID {
		t.Fatal("the re-created tenant has its predecessor's internal id")
	}
	if docs := documents(t, path, fresh.ID); len(docs) != 0 {
		t.Fatalf("the re-created tenant sees %v", docs)
	}
	if docs := documents(t, path, keep.ID); !slices.Equal(docs, []string{"blobs:plan.md", "docs:plan.md"}) {
		t.Fatalf("globex's data after acme's delete and purge: %v", docs)
	}

	// --purge-now: data and registration gone at once, the archive kept.
	putDocument(t, path, fresh.ID, "plan.md", "new acme data")
	if code, out, _ := run(t, nil, "tenant", "delete", "acme", "--config", path, "--yes", "--purge-now"); code != 0 || !strings.Contains(out, "data purged, archive ") {
		t.Fatalf("tenant delete --purge-now: %d %s", code, out)
	}
	if code, _, _ := run(t, nil, "tenant", "show", string(fresh.ID), "--config", path); code != 1 {
		t.Fatal("a tenant deleted with --purge-now is still registered")
	}
	if exists(t, filepath.Join(dataDir, "tenants", string(fresh.ID)+".db")) {
		t.Fatal("delete --purge-now left the tenant's database")
	}
	archives, _ := filepath.Glob(filepath.Join(dataDir, "archives", string(fresh.ID), "*.tar.gz"))
	if len(archives) != 1 {
		t.Fatalf("archives of the tenant deleted with --purge-now: %v", archives)
	}
	if docs := documents(t, path, keep.ID); !slices.Equal(docs, []string{"blobs:plan.md", "docs:plan.md"}) {
		t.Fatalf("globex's data after --purge-now of acme: %v", docs)
	}

	// A tenant archived and purged (not deleted) keeps its external id
	// until it is deleted, which then only removes the registration.
	mustRun(t, "tenant", "archive", "globex", "--config", path)
	mustRun(t, "tenant", "purge", "globex", "--config", path, "--yes")
	if code, _, errOut := run(t, nil, "tenant", "create", "--config", path, "--external-id", "globex"); code != 1 || !strings.Contains(errOut, "already registered") {
		t.Fatalf("create over a purged tenant: %d %s", code, errOut)
	}
	if out := mustRun(t, "tenant", "delete", "globex", "--config", path, "--yes"); !strings.Contains(out, "deleted tenant globex ("+string(keep.ID)+"): data purged, archive ") {
		t.Fatalf("delete of a purged tenant: %s", out)
	}
	if again := runRecord(t, "tenant", "create", "--config", path, "--external-id", "globex"); again.ID == keep.ID || len(documents(t, path, again.ID)) != 0 {
		t.Fatalf("globex created again after its purge and delete: %s, documents %v", again.ID, documents(t, path, again.ID))
	}
}

// TestTenantExportRestoreElsewhere: tenant export writes the archive of a
// tenant that keeps being served (a data-export request); it refuses to
// restore over a live tenant, and another deployment of another isolation
// strategy refuses it altogether.
func TestTenantExportRestoreElsewhere(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	path, _ := lifecycleConfig(t, time.Hour)
	acme := runRecord(t, "tenant", "create", "--config", path, "--external-id", "acme")
	putDocument(t, path, acme.ID, "plan.md", "acme plan")
	file := filepath.Join(t.TempDir(), "acme.tar.gz")
	if out := mustRun(t, "tenant", "export", "acme", "--config", path, "-o", file); out != "" {
		t.Fatalf("tenant export -o FILE printed %q", out)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	a, err := archive.Open(f, t.TempDir(), nil)
	f.Close()
	if err != nil {
		t.Fatalf("the exported file: %v", err)
	}
	defer a.Close()
	if m := a.Manifest(); m.Strategy != config.IsolationDatabase || !slices.Contains(a.Section("docs").Names(), "sqlite/tenant.db") || !slices.Contains(a.Section("blobs").Names(), "blobs/plan.md") {
		t.Fatalf("exported archive: strategy %q, docs %v, blobs %v", m.Strategy, a.Section("docs").Names(), a.Section("blobs").Names())
	}
	if rec := runRecord(t, "tenant", "show", "acme", "--config", path); rec.Status != registry.StatusActive || rec.Lifecycle.Archive != "" {
		t.Fatalf("export changed the tenant: %s %+v", rec.Status, rec.Lifecycle)
	}
	if code, _, errOut := run(t, nil, "tenant", "restore", file, "--config", path); code != 1 || !strings.Contains(errOut, "only a purged, deleted or archived tenant is restored") {
		t.Fatalf("restore over the live tenant: %d %s", code, errOut)
	}
	// Deleted and purged, the tenant comes back from the export as it was
	// exported: active, with its data.
	mustRun(t, "tenant", "delete", "acme", "--config", path, "--yes", "--purge-now")
	if out := mustRun(t, "tenant", "restore", file, "--config", path); !strings.Contains(out, "restored tenant acme ("+string(acme.ID)+"), now active") {
		t.Fatalf("restore of the deleted tenant from its export: %s", out)
	}
	if docs := documents(t, path, acme.ID); !slices.Equal(docs, []string{"blobs:plan.md", "docs:plan.md"}) {
		t.Fatalf("restored from the export: %v", docs)
	}

	other := writeConfig(t, fmt.Sprintf(`
[server]
listen = %q
data_dir = %q
[auth]
provider = "generic"
issuer = "https://idp.example.com/"
[auth.multi_tenant]
tenant_claim = "org_id"
isolation = "prefix"
`, freeAddr(t), t.TempDir()))
	if code, _, errOut := run(t, nil, "tenant", "restore", file, "--config", other); code != 1 || !strings.Contains(errOut, `made with isolation strategy "database_per_tenant", this deployment uses "prefix"`) {
		t.Fatalf("restore into another strategy: %d %s", code, errOut)
	}
	if code, out, _ := run(t, nil, "tenant", "list", "--config", other, "--json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("the refused restore registered something: %s", out)
	}
}
