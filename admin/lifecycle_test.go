package admin_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/examples/documents"
	"github.com/tenantmcp/tenantmcp/lifecycle"
	"github.com/tenantmcp/tenantmcp/lifecycle/archive"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/store"
	tenantdb "github.com/tenantmcp/tenantmcp/store/sqlitestore"
	"github.com/tenantmcp/tenantmcp/tenant"
	"github.com/tenantmcp/tenantmcp/tenanttest"
)

// These tests drive the tenant lifecycle through administration (issues
// 11 and 12): archive, purge, export, restore, purge of due tenants and
// delete, over the HTTP API and the MCP admin tools of the real server.
// Each operation is refused for tenant tokens, audited in the tenant's own
// chain (admin/<operation> and a lifecycle/<operation> event per step,
// with the admin in act), and leaves every other tenant's data byte for
// byte as it was.

// ops is the admin of the lifecycle tests.
const ops = "ops@example.com"

// faultyExport is a backend whose export of a tenant fails where faults
// say, after the backends before it have written theirs.
type faultyExport struct {
	store.Portable
	name   string
	faults *faults
}

func (b *faultyExport) Export(ctx context.Context, id tenant.ID, w store.PartWriter) error {
	if f, ok := b.faults.m.Load(id); ok && f == b.name {
		return errInjected
	}
	return b.Portable.Export(ctx, id, w)
}

// faults makes the backends' exports fail: tenant id → the backend that
// fails.
type faults struct{ m sync.Map }

var errInjected = errors.New("injected export failure")

// seed gives tenant i a document (through its own token and the
// documents tools) and a blob (in the blob store), both naming it.
func (f *fixture) seed(t *testing.T, i int) {
	t.Helper()
	ten := f.h.Tenant(i)
	if res := ten.Call(t, "put_document", map[string]any{"key": "notes/plan", "content": fmt.Sprintf("plan of tenant %d", i)}); res.IsError {
		t.Fatalf("put_document: %s", res.Text)
	}
	if err := f.stores.Blobs.Put(context.Background(), ten.Record.ID, "reports/q3.txt", fmt.Appendf(nil, "report of tenant %d", i)); err != nil {
		t.Fatal(err)
	}
}

// actOn seeds every tenant, and returns an admin token for sub, tenant 0
// (the one the tests act on) and the state of the others, which must not
// change.
func (f *fixture) actOn(t *testing.T, sub string) (string, *tenanttest.Tenant, *othersState) {
	t.Helper()
	for i := range f.tenants {
		f.seed(t, i)
	}
	ten := f.h.Tenant(0)
	return f.adminToken(t, sub), ten, f.others(t, ten.Record.ID)
}

// sums is all of a tenant's data as its backends export it: "<backend>/<part>"
// → the SHA-256 of the part's bytes. A tenant with no trace anywhere has
// none.
func (f *fixture) sums(t *testing.T, id tenant.ID) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, b := range []struct {
		name string
		be   store.Backend
	}{{"docs", f.stores.Docs}, {"blobs", f.stores.Blobs}} {
		if err := b.be.(store.Portable).Export(context.Background(), id, &hashParts{prefix: b.name + "/", sums: out}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// hashParts is a store.PartWriter that keeps only each part's SHA-256.
type hashParts struct {
	prefix string
	sums   map[string]string
}

func (h *hashParts) Create(name string) (io.WriteCloser, error) {
	return &hashPart{Hash: sha256.New(), done: func(sum string) { h.sums[h.prefix+name] = sum }}, nil
}

type hashPart struct {
	hash.Hash
	done func(string)
}

func (p *hashPart) Close() error {
	p.done(hex.EncodeToString(p.Sum(nil)))
	return nil
}

// content is a tenant's data as its tools see it: "<backend>/<key>" → the
// SHA-256 of the value.
func (f *fixture) content(t *testing.T, id tenant.ID) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for _, b := range []struct {
		name string
		be   store.Backend
	}{{"docs", f.stores.Docs}, {"blobs", f.stores.Blobs}} {
		keys, err := b.be.List(ctx, id, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			v, err := b.be.Get(ctx, id, k)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(v)
			out[b.name+"/"+k] = hex.EncodeToString(sum[:])
		}
	}
	return out
}

// wantRestored wants each backend's data byte for byte the archive's —
// the database file is the archived one (read before anything opens it),
// every blob the archived part — and the tenant's data as it was
// (content).
func (f *fixture) wantRestored(t *testing.T, id tenant.ID, content map[string]string, a *archive.Archive) {
	t.Helper()
	db, err := os.ReadFile(f.stores.Docs.(*tenantdb.Store).Path(id))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, p := range a.Manifest().Parts {
		if p.Section != lifecycle.AuditSection {
			want[p.Section+"/"+p.Name] = p.SHA256
		}
	}
	got := map[string]string{}
	for k, v := range f.sums(t, id) {
		if strings.HasPrefix(k, "blobs/") {
			got[k] = v
		}
	}
	sum := sha256.Sum256(db)
	got["docs/"+tenantdb.PartName] = hex.EncodeToString(sum[:])
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("restored data is not the archive's, byte for byte (-archive +restored):\n%s", diff)
	}
	if diff := cmp.Diff(content, f.content(t, id)); diff != "" {
		t.Fatalf("restored data differs (-before archiving +restored):\n%s", diff)
	}
}

// othersState is what an admin operation on one tenant must leave alone:
// every other tenant's record, data, and the admin and lifecycle events of
// its chain.
type othersState struct {
	records map[tenant.ID]*registry.Tenant
	sums    map[tenant.ID]map[string]string
	events  map[tenant.ID][]*audit.Event
}

// others records the state of the harness's tenants other than target;
// each must hold data, so that a change would show.
func (f *fixture) others(t *testing.T, target tenant.ID) *othersState {
	t.Helper()
	var ids []tenant.ID
	for i := range f.tenants {
		if id := f.h.Tenant(i).Record.ID; id != target {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		t.Fatal("no other tenant to compare")
	}
	return f.state(t, ids)
}

// state records the state of tenants ids.
func (f *fixture) state(t *testing.T, ids []tenant.ID) *othersState {
	t.Helper()
	s := &othersState{records: map[tenant.ID]*registry.Tenant{}, sums: map[tenant.ID]map[string]string{}, events: map[tenant.ID][]*audit.Event{}}
	for _, id := range ids {
		rec, err := f.reg.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		s.records[id] = rec
		s.sums[id] = f.sums(t, id)
		if len(s.sums[id]) == 0 {
			t.Fatalf("tenant %s holds no data: seed it first", id)
		}
		for _, e := range f.chain(t, string(id)) {
			if e.Kind == audit.KindAdmin || e.Kind == audit.KindLifecycle {
				s.events[id] = append(s.events[id], e)
			}
		}
	}
	return s
}

// wantOthersUnchanged fails the test if any tenant of before changed.
func (f *fixture) wantOthersUnchanged(t *testing.T, before *othersState, after string) {
	t.Helper()
	var ids []tenant.ID
	for id := range before.records {
		ids = append(ids, id)
	}
	now := f.state(t, ids)
	for _, id := range ids {
		if diff := cmp.Diff(before.records[id], now.records[id]); diff != "" {
			t.Errorf("after %s, tenant %s's record changed (-before +after):\n%s", after, id, diff)
		}
		if diff := cmp.Diff(before.sums[id], now.sums[id]); diff != "" {
			t.Errorf("after %s, tenant %s's data changed (-before +after):\n%s", after, id, diff)
		}
		if diff := cmp.Diff(before.events[id], now.events[id]); diff != "" {
			t.Errorf("after %s, tenant %s's chain has new admin or lifecycle events (-before +after):\n%s", after, id, diff)
		}
	}
}

// refusal is an admin operation's refusal: over HTTP its status and
// error code, over MCP none; and its message.
type refusal struct {
	status int
	code   string
	msg    string
}

func (r *refusal) String() string {
	if r == nil {
		return "success"
	}
	return fmt.Sprintf("%d %s %q", r.status, r.code, r.msg)
}

// lifecycleCall runs a lifecycle operation over via (admin.ViaHTTP: the
// admin API; admin.ViaMCP: the admin tools) with token. op is archive,
// purge, delete or delete_now (of tenant arg), or restore (of the archive
// named arg). It returns the record of a success, or the refusal: a
// refused request, a tool error, or (a tenant's token) an unknown tool.
func (f *fixture) lifecycleCall(t *testing.T, via, token, op, arg string) (*registry.Tenant, *refusal) {
	t.Helper()
	var (
		method, path, body string
		tool               string
		args               = map[string]any{"tenant": arg}
	)
	tp := "/admin/v1/tenants/" + arg
	switch op {
	case "archive":
		method, path, tool = "POST", tp+"/archive", "archive_tenant"
	case "purge":
		method, path, tool = "POST", tp+"/purge", "purge_tenant"
	case "delete":
		method, path, tool = "DELETE", tp, "delete_tenant"
	case "delete_now":
		method, path, tool = "DELETE", tp+"?purge_now=true", "delete_tenant"
		args["purge_now"] = true
	case "restore":
		b, _ := json.Marshal(map[string]string{"archive": arg})
		method, path, body, tool = "POST", "/admin/v1/restore", string(b), "restore_tenant"
		args = map[string]any{"archive": arg}
	default:
		t.Fatalf("no lifecycle operation %q", op)
	}
	var rec registry.Tenant
	if via == admin.ViaMCP {
		resp, r := f.rpc(t, token, "tools/call", map[string]any{"name": tool, "arguments": args})
		if resp.StatusCode != http.StatusOK || r.Error != nil {
			// Refused by the server (an archived tenant's token), or an
			// unknown tool.
			return nil, &refusal{status: resp.StatusCode, msg: r.Error.Message}
		}
		var res toolResult
		if err := json.Unmarshal(r.Result, &res); err != nil {
			t.Fatal(err)
		}
		if res.IsError {
			return nil, &refusal{msg: res.text()}
		}
		if err := json.Unmarshal(res.Structured, &rec); err != nil {
			t.Fatalf("%s: %v: %s", tool, err, res.Structured)
		}
		return &rec, nil
	}
	resp, b := f.do(t, method, path, token, body)
	if resp.StatusCode != http.StatusOK {
		var e apiError
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s %s: status %d, body is not an API error: %s", method, path, resp.StatusCode, b)
		}
		return nil, &refusal{status: resp.StatusCode, code: e.Error.Code, msg: e.Error.Message}
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatalf("%s %s: %v: %s", method, path, err, b)
	}
	return &rec, nil
}

// lifecycleOK runs a lifecycle operation that must succeed.
func (f *fixture) lifecycleOK(t *testing.T, via, token, op, arg string) *registry.Tenant {
	t.Helper()
	rec, r := f.lifecycleCall(t, via, token, op, arg)
	if r != nil {
		t.Fatalf("%s %s over %s: refused: %s", op, arg, via, r)
	}
	return rec
}

// wantLifecycleRefused runs a lifecycle operation that must be refused
// with status and code (over HTTP) and a message containing msg.
func (f *fixture) wantLifecycleRefused(t *testing.T, via, token, op, arg string, status int, code, msg string) {
	t.Helper()
	rec, r := f.lifecycleCall(t, via, token, op, arg)
	switch {
	case r == nil:
		t.Fatalf("%s %s over %s succeeded (%+v), want refused", op, arg, via, rec)
	case via == admin.ViaHTTP && (r.status != status || r.code != code), !strings.Contains(r.msg, msg):
		t.Fatalf("%s %s over %s: refused %s, want %d %s with %q", op, arg, via, r, status, code, msg)
	}
}

// wantTenantTokenRefused: a tenant's token never reaches the operation:
// 403 insufficient_scope from the API; over MCP an unknown tool, or the
// refusal of every request of an archived tenant.
func (f *fixture) wantTenantTokenRefused(t *testing.T, via, token, op, arg string) {
	t.Helper()
	if via == admin.ViaHTTP {
		f.wantLifecycleRefused(t, via, token, op, arg, http.StatusForbidden, "insufficient_scope", "insufficient scope")
		return
	}
	rec, r := f.lifecycleCall(t, via, token, op, arg)
	switch {
	case r == nil:
		t.Fatalf("a tenant's token ran %s %s over MCP: %+v", op, arg, rec)
	case r.status == http.StatusOK && strings.Contains(r.msg, "not found"): // the tool, to a tenant
	case r.status == http.StatusForbidden && strings.Contains(r.msg, "archived"):
	default:
		t.Fatalf("%s %s over MCP with a tenant's token: %s, want an unknown tool", op, arg, r)
	}
}

// mark is where chain stands, for eventsSince.
func (f *fixture) mark(t *testing.T, chain tenant.ID) int {
	t.Helper()
	return len(f.chain(t, string(chain)))
}

// steps returns the steps of the lifecycle/op events of chain after mark,
// in order, each checked to have succeeded and to be done by sub over
// via.
func (f *fixture) steps(t *testing.T, chain tenant.ID, mark int, op, sub, via string) []string {
	t.Helper()
	var out []string
	for _, e := range f.chain(t, string(chain))[mark:] {
		if e.Kind != audit.KindLifecycle || e.Method != "lifecycle/"+op {
			continue
		}
		if e.Outcome != audit.OutcomeOK || e.Actor == nil || e.Actor.Sub != sub || e.Actor.Issuer != f.adminIss.Issuer() ||
			e.Detail["via"] != via || e.Tenant != string(chain) {
			t.Errorf("lifecycle/%s step %s: outcome %s act %+v via %q tenant %q, want ok by %s (%s) via %s in %s",
				op, e.Detail["step"], e.Outcome, e.Actor, e.Detail["via"], e.Tenant, sub, f.adminIss.Issuer(), via, chain)
		}
		out = append(out, e.Detail["step"])
	}
	return out
}

// wantSteps wants exactly these lifecycle/op steps in chain after mark.
func (f *fixture) wantSteps(t *testing.T, chain tenant.ID, mark int, op, sub, via string, want ...string) {
	t.Helper()
	if got := f.steps(t, chain, mark, op, sub, via); !slices.Equal(got, want) {
		t.Errorf("lifecycle/%s steps in %s: %v, want %v", op, chain, got, want)
	}
}

// lastAdminEvent is the last admin/method event of chain after mark,
// checked to have succeeded, by sub over via.
func (f *fixture) lastAdminEvent(t *testing.T, chain tenant.ID, mark int, method, sub, via string) *audit.Event {
	t.Helper()
	var last *audit.Event
	for _, e := range f.chain(t, string(chain))[mark:] {
		if e.Kind == audit.KindAdmin && e.Method == "admin/"+method {
			last = e
		}
	}
	switch {
	case last == nil:
		t.Fatalf("no admin/%s event in %s", method, chain)
	case last.Outcome != audit.OutcomeOK || last.Actor == nil || last.Actor.Sub != sub || last.Actor.Issuer != f.adminIss.Issuer() || last.Detail["via"] != via:
		t.Errorf("admin/%s in %s: outcome %s act %+v via %q, want ok by %s via %s", method, chain, last.Outcome, last.Actor, last.Detail["via"], sub, via)
	}
	return last
}

// get returns the tenant's record, or nil if it is not registered.
func (f *fixture) get(t *testing.T, id tenant.ID) *registry.Tenant {
	t.Helper()
	rec, err := f.reg.Get(context.Background(), id)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return nil
	case err != nil:
		t.Fatal(err)
	}
	return rec
}

// storedArchive returns the archive named name in the archive store and
// the SHA-256 stored beside it.
func (f *fixture) storedArchive(t *testing.T, name string) ([]byte, string) {
	t.Helper()
	read := func(name string) []byte {
		rc, err := f.archives.Open(context.Background(), name)
		if err != nil {
			t.Fatalf("archive store: %v", err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	raw, sum := read(name), strings.TrimSpace(string(read(name+lifecycle.SumSuffix)))
	if got := sha256.Sum256(raw); hex.EncodeToString(got[:]) != sum {
		t.Fatalf("archive %s: its stored sha256 %s is not its own", name, sum)
	}
	return raw, sum
}

// openArchive opens an archive and checks it holds tenant id's record
// and a section of every backend and the audit trail.
func openArchive(t *testing.T, raw []byte, id tenant.ID, sum string) *archive.Archive {
	t.Helper()
	a, err := archive.Open(bytes.NewReader(raw), t.TempDir(), &archive.OpenOptions{SHA256: sum})
	if err != nil {
		t.Fatalf("archive of %s does not open: %v", id, err)
	}
	t.Cleanup(func() { a.Close() })
	man := a.Manifest()
	var rec registry.Tenant
	if err := json.Unmarshal(man.Tenant, &rec); err != nil || rec.ID != id {
		t.Fatalf("archive's tenant record: %s (%v), want tenant %s", man.Tenant, err, id)
	}
	if man.Strategy != config.IsolationDatabase {
		t.Errorf("archive's strategy %q", man.Strategy)
	}
	var sections []string
	for _, s := range man.Sections {
		if s.Parts > 0 {
			sections = append(sections, s.Name)
		}
	}
	slices.Sort(sections)
	if want := []string{lifecycle.AuditSection, "blobs", "docs"}; !slices.Equal(sections, want) {
		t.Errorf("archive's sections with parts: %v, want %v", sections, want)
	}
	return a
}

// partText reads one part of an archive.
func partText(t *testing.T, a *archive.Archive, section, name string) string {
	t.Helper()
	rc, err := a.Section(section).Open(name)
	if err != nil {
		t.Fatalf("part %s/%s: %v (the section has %v)", section, name, err, a.Section(section).Names())
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// createTenant registers a tenant of the external id over via.
func (f *fixture) createTenant(t *testing.T, via, token, externalID string) *registry.Tenant {
	t.Helper()
	var rec registry.Tenant
	if via == admin.ViaMCP {
		f.callOK(t, token, "create_tenant", map[string]any{"external_id": externalID}, &rec)
	} else {
		f.apiJSON(t, "POST", "/admin/v1/tenants", token, `{"external_id":"`+externalID+`"}`, http.StatusCreated, &rec)
	}
	return &rec
}

// wantNewTenant registers ten's external id again, after ten was deleted
// and purged: a new tenant, with a new internal id, which ten's users —
// their tokens name the external id — find empty.
func (f *fixture) wantNewTenant(t *testing.T, via, token string, ten *tenanttest.Tenant) {
	t.Helper()
	again := f.createTenant(t, via, token, ten.Record.ExternalID)
	if again.ID == ten.Record.ID {
		t.Fatal("the tenant registered again kept its internal id")
	}
	var keys documents.ListOutput
	f.callOK(t, ten.Token, "list_documents", map[string]any{}, &keys)
	if len(keys.Keys) != 0 {
		t.Fatalf("the new tenant sees %v", keys.Keys)
	}
	if res, err := f.callTool(t, ten.Token, "get_document", map[string]any{"key": "notes/plan"}); err != nil || !res.IsError {
		t.Fatalf("the new tenant reads the old one's document: %+v %v", res, err)
	}
	if left := f.sums(t, again.ID); len(left) != 0 {
		t.Fatalf("the new tenant holds data: %v", left)
	}
	if blobs, err := f.stores.Blobs.List(context.Background(), again.ID, ""); err != nil || len(blobs) != 0 {
		t.Fatalf("the new tenant's blobs: %v %v", blobs, err)
	}
}

// wantArchived wants the tenant's requests refused: its data is archived.
func (f *fixture) wantArchived(t *testing.T, token string) {
	t.Helper()
	if msg := f.wantRefused(t, token, http.StatusForbidden, ""); !strings.Contains(msg, "archived") {
		t.Fatalf("request of an archived tenant: %q", msg)
	}
}

// TestLifecycleThroughAdmin: archive, purge, restore from the archive
// store and delete, over the admin API and over the admin tools: tenant
// tokens never reach them; archiving refuses the tenant's next request and
// keeps its data until the purge; purging removes every trace of it (and
// only of an archived tenant); restoring gives back byte-identical data;
// a tenant deleted with purge_now and registered again is a new tenant
// that sees nothing of the old one. Each step is audited in the tenant's
// chain with the admin in act, and no other tenant changes.
func TestLifecycleThroughAdmin(t *testing.T) {
	for _, c := range []struct {
		via      string
		separate bool
	}{{admin.ViaHTTP, false}, {admin.ViaMCP, true}} {
		t.Run(c.via, func(t *testing.T) {
			t.Parallel()
			testLifecycleThroughAdmin(t, setup(t, setupOptions{tenants: 3, separateIssuer: c.separate}), c.via)
		})
	}
}

func testLifecycleThroughAdmin(t *testing.T, f *fixture, via string) {
	tok, ten, others := f.actOn(t, ops)
	neighbour := f.h.Tenant(1)
	id := ten.Record.ID
	data, content := f.sums(t, id), f.content(t, id)
	if len(data) != 2 || len(content) != 2 {
		t.Fatalf("tenant 0's data: %v, %v; want a database and a blob", data, content)
	}
	initial := f.get(t, id)

	// Tenant tokens — its own and its neighbour's — reach none of them.
	for _, tt := range []string{ten.Token, neighbour.Token} {
		for _, op := range []string{"archive", "purge", "delete", "delete_now"} {
			f.wantTenantTokenRefused(t, via, tt, op, string(id))
		}
		f.wantTenantTokenRefused(t, via, tt, "restore", string(id)+"/20261201T000000.000000Z.tar.gz")
	}
	// Only an archived tenant is purged.
	f.wantLifecycleRefused(t, via, tok, "purge", string(id), http.StatusBadRequest, "invalid_request", "only an archived tenant")
	if diff := cmp.Diff(initial, f.get(t, id)); diff != "" {
		t.Fatalf("refused operations changed the tenant (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(data, f.sums(t, id)); diff != "" {
		t.Fatalf("refused operations changed the tenant's data (-before +after):\n%s", diff)
	}
	f.wantOthersUnchanged(t, others, "refused operations")

	// Archive: refused at once, data kept until the purge.
	mark := f.mark(t, id)
	archived := f.lifecycleOK(t, via, tok, "archive", string(id))
	lc := archived.Lifecycle
	if archived.Status != registry.StatusArchived || lc.Archive == "" || lc.Target != registry.StatusActive || lc.Deleted ||
		lc.Operation != "" || !lc.PurgeAfter.Equal(lc.ArchivedAt.Add(lifecycle.DefaultRetention)) || !lc.ArchivedAt.Equal(f.clock.Now().UTC().Truncate(time.Microsecond)) {
		t.Fatalf("archived: %+v", archived)
	}
	if stored := f.get(t, id); !cmp.Equal(stored, archived) {
		t.Fatalf("archive answered %+v, stored %+v", archived, stored)
	}
	raw, sum := f.storedArchive(t, lc.Archive)
	a := openArchive(t, raw, id, sum)
	if got := partText(t, a, "blobs", a.Section("blobs").Names()[0]); got != "report of tenant 0" {
		t.Errorf("archived blob: %q", got)
	}
	f.wantArchived(t, ten.Token)
	if got := f.toolsList(t, neighbour.Token); !slices.Equal(got, documentTools) {
		t.Fatalf("the neighbour's tools/list: %v", got)
	}
	if diff := cmp.Diff(data, f.sums(t, id)); diff != "" {
		t.Fatalf("archiving changed the tenant's data (-before +after):\n%s", diff)
	}
	if e := f.lastAdminEvent(t, id, mark, "archive_tenant", ops, via); e.Detail["archive"] != lc.Archive || e.Detail["status"] != "archived" {
		t.Errorf("admin/archive_tenant detail %v", e.Detail)
	}
	f.wantSteps(t, id, mark, lifecycle.OpArchive, ops, via, "suspend", "write")
	f.wantOthersUnchanged(t, others, "archive")
	// Archiving again changes nothing.
	mark = f.mark(t, id)
	if again := f.lifecycleOK(t, via, tok, "archive", string(id)); !cmp.Equal(again, archived) {
		t.Errorf("archive again: %s", cmp.Diff(archived, again))
	}
	f.wantSteps(t, id, mark, lifecycle.OpArchive, ops, via)

	// Purge: every trace gone; the archive stays.
	f.clock.Advance(time.Hour)
	mark = f.mark(t, id)
	purged := f.lifecycleOK(t, via, tok, "purge", string(id))
	if purged.Status != registry.StatusPurged || !purged.Lifecycle.PurgedAt.Equal(f.clock.Now().UTC().Truncate(time.Microsecond)) || purged.Lifecycle.Archive != lc.Archive {
		t.Fatalf("purged: %+v", purged)
	}
	if left := f.sums(t, id); len(left) != 0 {
		t.Fatalf("after the purge the tenant still has %v", left)
	}
	f.wantArchived(t, ten.Token)
	f.storedArchive(t, lc.Archive)
	f.lastAdminEvent(t, id, mark, "purge_tenant", ops, via)
	f.wantSteps(t, id, mark, lifecycle.OpPurge, ops, via, "docs", "blobs")
	f.wantOthersUnchanged(t, others, "purge")
	if again := f.lifecycleOK(t, via, tok, "purge", string(id)); !cmp.Equal(again, f.get(t, id)) || again.Status != registry.StatusPurged {
		t.Errorf("purge again: %+v", again)
	}

	// Restore from the archive store: the same data, served again.
	mark = f.mark(t, id)
	restored := f.lifecycleOK(t, via, tok, "restore", lc.Archive)
	if restored.ID != id || restored.Status != registry.StatusActive || restored.Lifecycle != (registry.Lifecycle{Archive: lc.Archive}) {
		t.Fatalf("restored: %+v", restored)
	}
	f.wantRestored(t, id, content, a)
	var doc documents.Document
	f.callOK(t, ten.Token, "get_document", map[string]any{"key": "notes/plan"}, &doc)
	if doc.Content != "plan of tenant 0" {
		t.Fatalf("restored document %q", doc.Content)
	}
	if e := f.lastAdminEvent(t, id, mark, "restore_tenant", ops, via); e.Detail["archive"] != lc.Archive || e.Tenant != string(id) {
		t.Errorf("admin/restore_tenant: %+v", e)
	}
	f.wantSteps(t, id, mark, lifecycle.OpRestore, ops, via, "docs", "blobs", "activate")
	f.wantOthersUnchanged(t, others, "restore")
	// A served tenant is not restored over.
	restoredData := f.sums(t, id)
	f.wantLifecycleRefused(t, via, tok, "restore", lc.Archive, http.StatusBadRequest, "invalid_request", "only a purged, deleted or archived tenant")
	if diff := cmp.Diff(restoredData, f.sums(t, id)); diff != "" {
		t.Fatalf("a refused restore changed the data (-before +after):\n%s", diff)
	}

	// Delete with purge_now: archived, purged, registration removed.
	f.clock.Advance(time.Hour)
	mark = f.mark(t, id)
	gone := f.lifecycleOK(t, via, tok, "delete_now", string(id))
	if gone.ID != id || gone.Status != registry.StatusPurged || !gone.Lifecycle.Deleted || gone.Lifecycle.Archive == lc.Archive {
		t.Fatalf("deleted: %+v", gone)
	}
	if rec := f.get(t, id); rec != nil {
		t.Fatalf("a tenant deleted with purge_now is still registered: %+v", rec)
	}
	if left := f.sums(t, id); len(left) != 0 {
		t.Fatalf("after delete with purge_now the tenant still has %v", left)
	}
	if e := f.lastAdminEvent(t, id, mark, "delete_tenant", ops, via); e.Detail["purge_now"] != "true" || e.Detail["archive"] != gone.Lifecycle.Archive {
		t.Errorf("admin/delete_tenant detail %v", e.Detail)
	}
	f.wantSteps(t, id, mark, lifecycle.OpArchive, ops, via, "suspend", "write")
	f.wantSteps(t, id, mark, lifecycle.OpPurge, ops, via, "docs", "blobs", "remove_record")
	f.wantLifecycleRefused(t, via, tok, "archive", string(id), http.StatusNotFound, "not_found", "not found")
	f.wantOthersUnchanged(t, others, "delete with purge_now")

	// The same external id again: a new tenant, which sees nothing of
	// the old one's data.
	f.wantNewTenant(t, via, tok, ten)
	// The old archive is restored only explicitly, and not over the new
	// tenant: its external id is taken.
	before := f.snapshot(t)
	f.wantLifecycleRefused(t, via, tok, "restore", gone.Lifecycle.Archive, http.StatusConflict, "exists", "already")
	if diff := cmp.Diff(before, f.snapshot(t)); diff != "" {
		t.Fatalf("a refused restore changed the registry (-before +after):\n%s", diff)
	}
	if left := f.sums(t, id); len(left) != 0 {
		t.Fatalf("a refused restore left data behind: %v", left)
	}
	f.wantOthersUnchanged(t, others, "a refused restore")
}

// TestExportThroughAdmin: GET /admin/v1/tenants/{id}/export streams the
// tenant's whole archive, which verifies and holds its data and audit
// trail, and changes nothing; a tenant's token gets 403 and not one byte
// of it; an export that fails before its first byte is an ordinary error,
// one that fails after it cuts the stream, so it never looks complete.
func TestExportThroughAdmin(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	const ops = "dpo@example.com"
	tok, ten, others := f.actOn(t, ops)
	id := ten.Record.ID
	path := "/admin/v1/tenants/" + string(id) + "/export"
	rec := f.get(t, id)
	data := f.sums(t, id)

	// Tenant tokens: refused before anything is read.
	for _, tt := range []string{ten.Token, f.h.Tenant(1).Token} {
		resp, b := f.do(t, "GET", path, tt, "")
		var e apiError
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Content-Type") != "application/json" ||
			json.Unmarshal(b, &e) != nil || e.Error.Code != "insufficient_scope" {
			t.Fatalf("export with a tenant token: %d %s: %q", resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
		if bytes.HasPrefix(b, []byte{0x1f, 0x8b}) || bytes.Contains(b, []byte("tenant 0")) || resp.Header.Get("Content-Disposition") != "" {
			t.Fatalf("export with a tenant token streamed something: %q", b)
		}
	}

	mark := f.mark(t, id)
	resp, raw := f.do(t, "GET", path, tok, "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/gzip" || resp.Header.Get("Cache-Control") != "no-store" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="`+string(id)+`.tar.gz"` {
		t.Fatalf("export: %d %v", resp.StatusCode, resp.Header)
	}
	a := openArchive(t, raw, id, "")
	// The archive holds exactly the tenant's data, part for part.
	got := map[string]string{}
	for _, p := range a.Manifest().Parts {
		if p.Section != lifecycle.AuditSection {
			got[p.Section+"/"+p.Name] = p.SHA256
		}
	}
	if diff := cmp.Diff(data, got); diff != "" {
		t.Errorf("exported parts (-the tenant's data +the archive):\n%s", diff)
	}
	// Its audit trail is the tenant's own chain, as an export that
	// verifies offline: none of another tenant's events.
	trail := partText(t, a, lifecycle.AuditSection, "trail.jsonl")
	if !strings.Contains(trail, `"put_document"`) || strings.Contains(trail, string(f.h.Tenant(1).Record.ID)) {
		t.Errorf("the archive's audit trail: %s", trail)
	}
	// Nothing changed: the tenant is still served as it was.
	if diff := cmp.Diff(rec, f.get(t, id)); diff != "" {
		t.Fatalf("export changed the tenant (-before +after):\n%s", diff)
	}
	if got := f.toolsList(t, ten.Token); !slices.Equal(got, documentTools) {
		t.Fatalf("tools/list after export: %v", got)
	}
	f.lastAdminEvent(t, id, mark, "export_tenant", ops, admin.ViaHTTP)
	for _, op := range []string{lifecycle.OpArchive, lifecycle.OpPurge, lifecycle.OpRestore} {
		f.wantSteps(t, id, mark, op, ops, admin.ViaHTTP)
	}
	f.wantOthersUnchanged(t, others, "export")

	f.apiRefusal(t, "GET", "/admin/v1/tenants/t"+strings.Repeat("q", 20)+"/export", tok, "", http.StatusNotFound, "not_found")

	// A failure before the first byte: an error answer, audited as one.
	f.faults.m.Store(id, "docs")
	mark = f.mark(t, id)
	f.apiRefusal(t, "GET", path, tok, "", http.StatusInternalServerError, "internal")
	if e := f.chain(t, string(id))[mark:]; len(e) == 0 || e[len(e)-1].Method != "admin/export_tenant" || e[len(e)-1].Outcome != audit.OutcomeError {
		t.Errorf("a failed export's event: %+v", e)
	}
	// A failure after the first byte (the database, large enough to be
	// on its way, is written before the blobs fail): the stream is cut.
	big := make([]byte, 1<<20)
	rand.Read(big) // incompressible
	if err := f.stores.Docs.Put(context.Background(), id, "big", big); err != nil {
		t.Fatal(err)
	}
	f.faults.m.Store(id, "blobs")
	resp, cut, err := f.doErr("GET", path, tok, "")
	switch {
	case resp == nil:
		t.Fatalf("an export that failed after its first byte: no answer: %v", err)
	case resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/gzip" || len(cut) == 0:
		t.Fatalf("an export that failed after its first byte: %d %v, %d bytes: the stream never started", resp.StatusCode, resp.Header, len(cut))
	case !errors.Is(err, io.ErrUnexpectedEOF):
		t.Fatalf("an export that failed after its first byte: %d bytes, read error %v, want the stream cut", len(cut), err)
	}
	if _, err := archive.Open(bytes.NewReader(cut), t.TempDir(), nil); err == nil {
		t.Fatal("the cut export opens as an archive")
	}
	f.faults.m.Delete(id)

	// A purged tenant has nothing to export.
	f.apiJSON(t, "POST", "/admin/v1/tenants/"+string(id)+"/archive", tok, "", http.StatusOK, nil)
	f.apiJSON(t, "POST", "/admin/v1/tenants/"+string(id)+"/purge", tok, "", http.StatusOK, nil)
	f.apiRefusal(t, "GET", path, tok, "", http.StatusBadRequest, "invalid_request")
	f.wantOthersUnchanged(t, others, "archive and purge")
}

// upload posts an archive to POST /admin/v1/restore as the body, of
// Content-Type application/gzip unless ct says another.
func (f *fixture) upload(t *testing.T, token, query string, body []byte, ct ...string) (*http.Response, []byte) {
	t.Helper()
	ct = append(ct, "application/gzip")
	return f.do(t, "POST", "/admin/v1/restore"+query, token, string(body), "Content-Type", ct[0])
}

// corruptPart returns the archive raw with one byte of the tar entry
// named entry changed, its gzip and tar framing intact.
func corruptPart(t *testing.T, raw []byte, entry string) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	tr := tar.NewReader(zr)
	found := false
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == entry {
			b[len(b)/2] ^= 0x01
			found = true
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if !found {
		t.Fatalf("no entry %s in the archive", entry)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestRestoreThroughAdmin: POST /admin/v1/restore brings a purged tenant
// back from an uploaded archive only once every checksum holds: a wrong
// ?sha256, a changed part, a cut or foreign file are refused (422
// bad_archive, naming the part where one is at fault) and change nothing;
// the intact archive gives back byte-identical data. Restoring by name
// refuses names that are no archive. Tenant tokens never reach it.
func TestRestoreThroughAdmin(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	tok, ten, others := f.actOn(t, ops)
	id := ten.Record.ID
	content := f.content(t, id)
	var archived registry.Tenant
	f.apiJSON(t, "POST", "/admin/v1/tenants/"+string(id)+"/archive", tok, "", http.StatusOK, &archived)
	f.apiJSON(t, "POST", "/admin/v1/tenants/"+string(id)+"/purge", tok, "", http.StatusOK, nil)
	name := archived.Lifecycle.Archive
	raw, sum := f.storedArchive(t, name)
	purged := f.get(t, id)
	unchanged := func(after string) {
		t.Helper()
		if diff := cmp.Diff(purged, f.get(t, id)); diff != "" {
			t.Fatalf("after %s the tenant changed (-before +after):\n%s", after, diff)
		}
		if left := f.sums(t, id); len(left) != 0 {
			t.Fatalf("after %s the tenant holds %v", after, left)
		}
		f.wantArchived(t, ten.Token)
		f.wantOthersUnchanged(t, others, after)
	}

	// Tenant tokens: 403, nothing restored.
	for _, tt := range []string{ten.Token, f.h.Tenant(1).Token} {
		resp, b := f.upload(t, tt, "?sha256="+sum, raw)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "insufficient_scope") {
			t.Fatalf("restore with a tenant token: %d %s", resp.StatusCode, b)
		}
		f.wantTenantTokenRefused(t, admin.ViaHTTP, tt, "restore", name)
		f.wantTenantTokenRefused(t, admin.ViaMCP, tt, "restore", name)
	}
	unchanged("restores with tenant tokens")

	badArchive := func(what, query string, body []byte, msg string) {
		t.Helper()
		mark := len(f.chain(t, audit.SystemChain))
		resp, b := f.upload(t, tok, query, body)
		var e apiError
		if resp.StatusCode != http.StatusUnprocessableEntity || json.Unmarshal(b, &e) != nil || e.Error.Code != "bad_archive" || !strings.Contains(e.Error.Message, msg) {
			t.Fatalf("restore of %s: %d %s, want 422 bad_archive with %q", what, resp.StatusCode, b, msg)
		}
		unchanged("the restore of " + what)
		// Audited as a failure in the system chain: no tenant was
		// restored (and an archive's record is not to be trusted).
		events := f.chain(t, audit.SystemChain)[mark:]
		if i := slices.IndexFunc(events, func(e *audit.Event) bool { return e.Method == "admin/restore_tenant" }); i < 0 ||
			events[i].Outcome != audit.OutcomeError || events[i].ErrorClass != "bad_archive" || events[i].Actor.Sub != ops {
			t.Errorf("restore of %s: system chain events %+v, want a failed admin/restore_tenant of class bad_archive", what, events)
		}
	}
	badArchive("the archive with a wrong sha256", "?sha256="+strings.Repeat("0", 64), raw, "sha256")
	badArchive("an archive with a changed part", "", corruptPart(t, raw, "parts/docs/"+docsPart(t, raw)), "part docs/"+docsPart(t, raw))
	badArchive("a changed part with the right sha256", "?sha256="+sum, corruptPart(t, raw, "parts/docs/"+docsPart(t, raw)), "sha256")
	badArchive("an archive cut short", "", raw[:len(raw)*2/3], "archive")
	badArchive("a file that is no archive", "", []byte("PK\x03\x04 not a tenant archive"), "gzip")

	// By name: names that are no archive.
	for _, c := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"archive":""}`, http.StatusBadRequest, "invalid_request"},
		{`{}`, http.StatusBadRequest, "invalid_request"},
		{`{"archive":"x","tenant":"t"}`, http.StatusBadRequest, "invalid_request"},
		{`{"archive":"` + name + lifecycle.SumSuffix + `"}`, http.StatusBadRequest, "invalid_request"},
		{`{"archive":"` + string(id) + `/20200101T000000.000000Z.tar.gz"}`, http.StatusNotFound, "not_found"},
		{`{"archive":"../../registry.db"}`, http.StatusNotFound, "not_found"},
		{`{"archive":"` + string(id) + `"}`, http.StatusNotFound, "not_found"},
	} {
		f.apiRefusal(t, "POST", "/admin/v1/restore", tok, c.body, c.status, c.code)
	}
	if msg := f.callToolError(t, tok, "restore_tenant", map[string]any{"archive": string(id) + "/20200101T000000.000000Z.tar.gz"}); !strings.Contains(msg, "no archive") {
		t.Errorf("restore_tenant of no archive: %q", msg)
	}
	unchanged("restores of no archive")

	// The intact archive, checked against its sha256: the same data back.
	mark := f.mark(t, id)
	resp, b := f.upload(t, tok, "?sha256="+sum, raw)
	var restored registry.Tenant
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &restored) != nil || restored.ID != id || restored.Status != registry.StatusActive {
		t.Fatalf("restore: %d %s", resp.StatusCode, b)
	}
	f.wantRestored(t, id, content, openArchive(t, raw, id, sum))
	if got := f.toolsList(t, ten.Token); !slices.Equal(got, documentTools) {
		t.Fatalf("restored tenant's tools/list: %v", got)
	}
	f.lastAdminEvent(t, id, mark, "restore_tenant", ops, admin.ViaHTTP)
	f.wantSteps(t, id, mark, lifecycle.OpRestore, ops, admin.ViaHTTP, "docs", "blobs", "activate")
	f.wantOthersUnchanged(t, others, "restore")
	// Again, over a served tenant (sent as the type Go's
	// http.DetectContentType gives it): refused, nothing changed.
	data := f.sums(t, id)
	resp, b = f.upload(t, tok, "", raw, "application/x-gzip")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "only a purged, deleted or archived tenant") {
		t.Fatalf("restore over a served tenant: %d %s", resp.StatusCode, b)
	}
	if diff := cmp.Diff(data, f.sums(t, id)); diff != "" {
		t.Fatalf("a refused restore changed the data (-before +after):\n%s", diff)
	}
}

// docsPart is the name of the docs section's one part in an archive.
func docsPart(t *testing.T, raw []byte) string {
	t.Helper()
	a, err := archive.Open(bytes.NewReader(raw), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	names := a.Section("docs").Names()
	if len(names) != 1 {
		t.Fatalf("docs parts %v", names)
	}
	return names[0]
}

// TestPurgeDueThroughAdmin: POST /admin/v1/purge-due and the tool
// purge_due_tenants purge exactly the archived tenants whose retention has
// passed (on the service's clock), each step audited in the tenant's chain
// with the admin in act; a deleted tenant's external id is free once it is
// purged, for a new tenant that sees none of the old data.
func TestPurgeDueThroughAdmin(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{tenants: 3})
	tok := f.adminToken(t, ops)
	for i := range f.tenants {
		f.seed(t, i)
	}
	t0, t1, t2 := f.h.Tenant(0), f.h.Tenant(1), f.h.Tenant(2)
	id0, id1 := t0.Record.ID, t1.Record.ID
	bystander := f.state(t, []tenant.ID{t2.Record.ID})
	day := 24 * time.Hour
	purgeDue := func(via string, want int) {
		t.Helper()
		var out struct {
			Purged int `json:"purged"`
		}
		if via == admin.ViaMCP {
			f.callOK(t, tok, "purge_due_tenants", map[string]any{}, &out)
		} else {
			f.apiJSON(t, "POST", "/admin/v1/purge-due", tok, "", http.StatusOK, &out)
		}
		if out.Purged != want {
			t.Fatalf("purge due over %s: %d purged, want %d", via, out.Purged, want)
		}
	}

	f.lifecycleOK(t, admin.ViaHTTP, tok, "archive", string(id0))
	f.clock.Advance(10 * day)
	deleted := f.lifecycleOK(t, admin.ViaMCP, tok, "delete", string(id1))
	if deleted.Status != registry.StatusArchived || !deleted.Lifecycle.Deleted {
		t.Fatalf("deleted: %+v", deleted)
	}
	// Deleted but not yet purged: its external id is still taken.
	f.apiRefusal(t, "POST", "/admin/v1/tenants", tok, `{"external_id":"test-tenant-1"}`, http.StatusConflict, "exists")

	// Tenant tokens: refused.
	for _, tt := range []string{t0.Token, t2.Token} {
		f.apiRefusal(t, "POST", "/admin/v1/purge-due", tt, "", http.StatusForbidden, "insufficient_scope")
	}
	if _, err := f.callTool(t, t2.Token, "purge_due_tenants", map[string]any{}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("a tenant called purge_due_tenants: %v", err)
	}
	// A day before tenant 0's retention ends: nothing is due.
	f.clock.Advance(19 * day)
	before := f.snapshot(t)
	purgeDue(admin.ViaHTTP, 0)
	purgeDue(admin.ViaMCP, 0)
	if diff := cmp.Diff(before, f.snapshot(t)); diff != "" {
		t.Fatalf("a purge with nothing due changed the registry (-before +after):\n%s", diff)
	}

	// Tenant 0's retention ends: only it is purged.
	f.clock.Advance(day)
	mark0, markSys := f.mark(t, id0), len(f.chain(t, audit.SystemChain))
	purgeDue(admin.ViaHTTP, 1)
	if rec := f.get(t, id0); rec.Status != registry.StatusPurged {
		t.Fatalf("tenant 0 after its retention: %+v", rec)
	}
	if left := f.sums(t, id0); len(left) != 0 {
		t.Fatalf("purged tenant 0 still holds %v", left)
	}
	if rec := f.get(t, id1); rec.Status != registry.StatusArchived || len(f.sums(t, id1)) == 0 {
		t.Fatalf("tenant 1 before its retention: %+v", rec)
	}
	f.wantSteps(t, id0, mark0, lifecycle.OpPurge, ops, admin.ViaHTTP, "docs", "blobs")
	var runs []*audit.Event
	for _, e := range f.chain(t, audit.SystemChain)[markSys:] {
		if e.Method == "admin/purge_due" {
			runs = append(runs, e)
		}
	}
	if len(runs) != 1 || runs[0].Detail["purged"] != "1" || runs[0].Actor.Sub != ops || runs[0].Detail["via"] != admin.ViaHTTP || runs[0].Outcome != audit.OutcomeOK {
		t.Errorf("admin/purge_due events: %+v", runs)
	}
	f.wantOthersUnchanged(t, bystander, "purge due of tenant 0")

	// Tenant 1's: purged, and — deleted — its registration removed.
	f.clock.Advance(10 * day)
	mark1 := f.mark(t, id1)
	purgeDue(admin.ViaMCP, 1)
	if rec := f.get(t, id1); rec != nil {
		t.Fatalf("deleted tenant 1 is still registered after its purge: %+v", rec)
	}
	if left := f.sums(t, id1); len(left) != 0 {
		t.Fatalf("purged tenant 1 still holds %v", left)
	}
	f.wantSteps(t, id1, mark1, lifecycle.OpPurge, ops, admin.ViaMCP, "docs", "blobs", "remove_record")
	purgeDue(admin.ViaHTTP, 0)
	f.wantOthersUnchanged(t, bystander, "purge due of tenant 1")

	// Its external id is free: a new tenant, none of the old data.
	f.wantNewTenant(t, admin.ViaHTTP, tok, t1)
}

// TestTrialsEndingSoon: list_all_tenants and GET /admin/v1/tenants with
// trial_ends_before list the trials that end before then and have not
// ended yet (on the service's clock).
func TestTrialsEndingSoon(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	tok := f.adminToken(t, "sales@example.com")
	now := f.clock.Now()
	for _, c := range []struct {
		ext  string
		body string
	}{
		{"soon", `{"external_id":"soon","trial_days":3}`},
		{"later", `{"external_id":"later","trial_days":10}`},
		{"ended", `{"external_id":"ended","trial_ends_at":"` + now.Add(-time.Hour).Format(time.RFC3339Nano) + `"}`},
		{"paying", `{"external_id":"paying"}`},
	} {
		f.apiJSON(t, "POST", "/admin/v1/tenants", tok, c.body, http.StatusCreated, nil)
	}
	week := now.Add(7 * 24 * time.Hour).UTC().Format(time.RFC3339)
	ext := func(p admin.TenantPage) []string {
		var out []string
		for _, t := range p.Tenants {
			out = append(out, t.ExternalID)
		}
		slices.Sort(out)
		return out
	}
	var page admin.TenantPage
	f.apiJSON(t, "GET", "/admin/v1/tenants?trial_ends_before="+week, tok, "", http.StatusOK, &page)
	if got := ext(page); !slices.Equal(got, []string{"soon"}) {
		t.Fatalf("trials ending within a week: %v, want [soon]", got)
	}
	f.callOK(t, tok, "list_all_tenants", map[string]any{"trial_ends_before": now.Add(11 * 24 * time.Hour).UTC().Format(time.RFC3339)}, &page)
	if got := ext(page); !slices.Equal(got, []string{"later", "soon"}) {
		t.Fatalf("trials ending within 11 days: %v, want [later soon]", got)
	}
	f.clock.Advance(4 * 24 * time.Hour) // "soon" has ended
	f.apiJSON(t, "GET", "/admin/v1/tenants?trial_ends_before="+week, tok, "", http.StatusOK, &page)
	if got := ext(page); len(got) != 0 {
		t.Fatalf("trials ending within the week, four days on: %v, want none", got)
	}
	f.apiRefusal(t, "GET", "/admin/v1/tenants?trial_ends_before=next-week", tok, "", http.StatusBadRequest, "invalid_request")
	if msg := f.callToolError(t, tok, "list_all_tenants", map[string]any{"trial_ends_before": "7d"}); !strings.Contains(msg, "trial_ends_before") {
		t.Errorf("list_all_tenants with a bad trial_ends_before: %q", msg)
	}
	f.apiRefusal(t, "GET", "/admin/v1/tenants?trial_ends_before="+week, f.h.Tenant(0).Token, "", http.StatusForbidden, "insufficient_scope")
}

// TestPurgeRefusedWithoutArchive: a tenant whose archive has gone from
// the archive store is not purged, by name or when due (409 conflict):
// its data would exist nowhere else.
func TestPurgeRefusedWithoutArchive(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	tok, ten, others := f.actOn(t, ops)
	id := ten.Record.ID
	archived := f.lifecycleOK(t, admin.ViaHTTP, tok, "archive", string(id))
	if err := f.archives.Delete(context.Background(), archived.Lifecycle.Archive); err != nil {
		t.Fatal(err)
	}
	data, rec := f.sums(t, id), f.get(t, id)
	f.wantLifecycleRefused(t, admin.ViaHTTP, tok, "purge", string(id), http.StatusConflict, "conflict", "missing from the archive store")
	f.wantLifecycleRefused(t, admin.ViaMCP, tok, "purge", string(id), 0, "", "missing from the archive store")
	f.clock.Advance(lifecycle.DefaultRetention)
	f.apiRefusal(t, "POST", "/admin/v1/purge-due", tok, "", http.StatusConflict, "conflict")
	if diff := cmp.Diff(data, f.sums(t, id)); diff != "" {
		t.Fatalf("a refused purge removed data (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(rec, f.get(t, id)); diff != "" {
		t.Fatalf("a refused purge changed the tenant (-before +after):\n%s", diff)
	}
	var failed []string
	for _, e := range f.chain(t, string(id)) {
		if e.Method == "admin/purge_tenant" && e.Outcome == audit.OutcomeError {
			failed = append(failed, e.ErrorClass)
		}
	}
	if !slices.Equal(failed, []string{"conflict", "conflict"}) {
		t.Errorf("failed admin/purge_tenant events' classes: %v, want two conflicts", failed)
	}
	f.wantOthersUnchanged(t, others, "refused purges")
}

// TestLifecycleWithoutArchiveStore: without an archive store, archive,
// purge, delete and restore are refused (501 no_archive_store, or a tool
// error saying so) and change nothing; an export, which needs no store,
// still works.
func TestLifecycleWithoutArchiveStore(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{noArchiveStore: true})
	tok, ten, _ := f.actOn(t, ops)
	id := string(ten.Record.ID)
	before, data := f.snapshot(t), f.sums(t, ten.Record.ID)
	for _, via := range []string{admin.ViaHTTP, admin.ViaMCP} {
		for _, op := range []string{"archive", "purge", "delete", "delete_now"} {
			f.wantLifecycleRefused(t, via, tok, op, id, http.StatusNotImplemented, "no_archive_store", "no archive store")
		}
		f.wantLifecycleRefused(t, via, tok, "restore", id+"/20261201T000000.000000Z.tar.gz", http.StatusNotImplemented, "no_archive_store", "no archive store")
	}
	if diff := cmp.Diff(before, f.snapshot(t)); diff != "" {
		t.Fatalf("refused operations changed the registry (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(data, f.sums(t, ten.Record.ID)); diff != "" {
		t.Fatalf("refused operations changed the data (-before +after):\n%s", diff)
	}
	resp, raw := f.do(t, "GET", "/admin/v1/tenants/"+id+"/export", tok, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("export without an archive store: %d %s", resp.StatusCode, raw)
	}
	openArchive(t, raw, ten.Record.ID, "")
}

// TestStatusChangesFollowTheLifecycle: an archived or purged tenant comes
// back only through a restore. Suspending, resuming, updating its status
// or impersonating it is refused and changes nothing — a suspension would
// take an archived tenant out of the purge schedule, and suspend + resume
// would serve a purged tenant with no data — so the purge still comes
// when it is due.
func TestStatusChangesFollowTheLifecycle(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	tok, ten, _ := f.actOn(t, ops)
	id := string(ten.Record.ID)
	path := "/admin/v1/tenants/" + id
	refused := func(state string) {
		t.Helper()
		before := f.get(t, ten.Record.ID)
		for _, ep := range []struct{ method, path, body string }{
			{"POST", path + "/suspend", `{"reason":"unpaid"}`},
			{"POST", path + "/resume", ""},
			{"PATCH", path, `{"status":"active"}`},
			{"PATCH", path, `{"status":"trial","trial_ends_at":"2030-01-01T00:00:00Z"}`},
			{"POST", path + "/impersonations", `{"reason":"look","include_suspended":true}`},
		} {
			_, e := f.apiRefusal(t, ep.method, ep.path, tok, ep.body, http.StatusBadRequest, "invalid_request")
			if !strings.Contains(e.Error.Message, state) {
				t.Errorf("%s %s of a %s tenant: %q does not say so", ep.method, ep.path, state, e.Error.Message)
			}
		}
		for _, tool := range []string{"suspend_tenant", "resume_tenant"} {
			if msg := f.callToolError(t, tok, tool, map[string]any{"tenant": id}); !strings.Contains(msg, state) {
				t.Errorf("%s of a %s tenant: %q", tool, state, msg)
			}
		}
		if diff := cmp.Diff(before, f.get(t, ten.Record.ID)); diff != "" {
			t.Fatalf("refused status changes changed a %s tenant (-before +after):\n%s", state, diff)
		}
		f.wantArchived(t, ten.Token)
		if gs := f.grantsList(t); len(gs) != 0 {
			t.Fatalf("an impersonation of a %s tenant was started: %+v", state, gs)
		}
	}
	f.lifecycleOK(t, admin.ViaHTTP, tok, "archive", id)
	refused("archived")
	// Other fields of an archived tenant may still change.
	var renamed registry.Tenant
	f.apiJSON(t, "PATCH", path, tok, `{"name":"Renamed"}`, http.StatusOK, &renamed)
	if renamed.Name != "Renamed" || renamed.Status != registry.StatusArchived {
		t.Fatalf("rename of an archived tenant: %+v", renamed)
	}
	// Still on the purge schedule.
	f.clock.Advance(lifecycle.DefaultRetention)
	f.apiJSON(t, "POST", "/admin/v1/purge-due", tok, "", http.StatusOK, nil)
	if rec := f.get(t, ten.Record.ID); rec.Status != registry.StatusPurged {
		t.Fatalf("after its retention: %+v", rec)
	}
	refused("purged")
	if left := f.sums(t, ten.Record.ID); len(left) != 0 {
		t.Fatalf("the purged tenant holds %v", left)
	}
}

// TestInterruptedArchiveResumes: an archive that fails while writing
// leaves the tenant suspended, mid-archive, with no archive in the store;
// its status cannot be changed meanwhile, and archiving it again finishes
// from the step that failed.
func TestInterruptedArchiveResumes(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	tok, ten, others := f.actOn(t, ops)
	id := ten.Record.ID
	f.faults.m.Store(id, "blobs")
	data := f.sums(t, id)
	f.wantLifecycleRefused(t, admin.ViaHTTP, tok, "archive", string(id), http.StatusInternalServerError, "internal", "internal error")
	rec := f.get(t, id)
	if rec.Status != registry.StatusSuspended || rec.Lifecycle.Operation != lifecycle.OpArchive || rec.Lifecycle.Step != "write" {
		t.Fatalf("after a failed archive: %+v", rec)
	}
	if names, err := f.archives.List(context.Background(), string(id)+"/"); err != nil || len(names) != 0 {
		t.Fatalf("a failed archive left %v in the store (%v)", names, err)
	}
	if msg := f.wantRefused(t, ten.Token, http.StatusForbidden, ""); !strings.Contains(msg, "suspended") {
		t.Fatalf("request of a tenant being archived: %q", msg)
	}
	_, e := f.apiRefusal(t, "POST", "/admin/v1/tenants/"+string(id)+"/resume", tok, "", http.StatusBadRequest, "invalid_request")
	if !strings.Contains(e.Error.Message, "in progress") {
		t.Errorf("resume during an archive: %q", e.Error.Message)
	}
	f.wantLifecycleRefused(t, admin.ViaHTTP, tok, "purge", string(id), http.StatusBadRequest, "invalid_request", "only an archived tenant")
	if diff := cmp.Diff(data, f.sums(t, id)); diff != "" {
		t.Fatalf("a failed archive changed the data (-before +after):\n%s", diff)
	}

	f.faults.m.Delete(id)
	mark := f.mark(t, id)
	archived := f.lifecycleOK(t, admin.ViaMCP, tok, "archive", string(id))
	if archived.Status != registry.StatusArchived || archived.Lifecycle.Archive != rec.Lifecycle.Archive || archived.Lifecycle.Target != registry.StatusActive {
		t.Fatalf("the archive finished: %+v", archived)
	}
	f.wantSteps(t, id, mark, lifecycle.OpArchive, ops, admin.ViaMCP, "write")
	raw, sum := f.storedArchive(t, archived.Lifecycle.Archive)
	openArchive(t, raw, id, sum)
	f.wantOthersUnchanged(t, others, "an interrupted archive")
}
