package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// RunPortable runs the contract suite of store.Portable: an export, purge
// and import give back every key and value byte for byte; purge is
// idempotent and leaves nothing; import refuses a tenant that holds data
// and leaves nothing behind when it fails (unknown parts, a part that
// cannot be opened, a read error mid-stream); and no step reads or
// changes any other tenant's data.
//
// newBackend must return a fresh, empty backend and its Portable, which
// may be the same value. The suite seeds and reads tenants through the
// Backend, so for a backend whose native data is SQL the Backend only has
// to reach its documents. The suite closes the Backend.
//
//	func TestPortable(t *testing.T) {
//		storetest.RunPortable(t, func(t *testing.T) (store.Backend, store.Portable) {
//			s := newStore(t)
//			return s, s
//		})
//	}
func RunPortable(t *testing.T, newBackend func(t *testing.T) (store.Backend, store.Portable)) {
	run := func(name string, test func(t *testing.T, s portableSetup)) {
		t.Run(name, func(t *testing.T) {
			b, p := newBackend(t)
			t.Cleanup(func() {
				if err := b.Close(); err != nil {
					t.Errorf("close backend: %v", err)
				}
			})
			test(t, portableSetup{b: b, p: p})
		})
	}
	run("ExportPurgeImport", testExportPurgeImport)
	run("PurgeIdempotent", testPurgeIdempotent)
	run("ImportNotEmpty", testImportNotEmpty)
	run("ImportUnderNewID", testImportUnderNewID)
	run("ImportUnknownPart", testImportUnknownPart)
	run("ImportFailsHalfway", testImportFailsHalfway)
	run("EmptyTenant", testEmptyTenant)
	run("ConcurrentPutOfOtherTenant", testConcurrentPut)
}

type portableSetup struct {
	b store.Backend
	p store.Portable
}

// MemoryParts keeps the parts of an export in memory. It is a
// store.PartWriter and a store.PartReader, and it enforces the rules of
// PartWriter: a part must be closed before the next is created, names are
// unique, slash-separated and have no empty, "." or ".." element. The
// zero value is ready to use; it is safe for one writer at a time and
// any number of readers once writing is done.
type MemoryParts struct {
	mu      sync.Mutex
	names   []string
	data    map[string][]byte
	writing string // the part being written, "" if none
}

var (
	_ store.PartWriter = (*MemoryParts)(nil)
	_ store.PartReader = (*MemoryParts)(nil)
)

// Create starts part name.
func (m *MemoryParts) Create(name string) (io.WriteCloser, error) {
	if err := ValidPartName(name); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.writing != "" {
		return nil, fmt.Errorf("storetest: part %q created while part %q is still open", name, m.writing)
	}
	if _, dup := m.data[name]; dup {
		return nil, fmt.Errorf("storetest: part %q created twice", name)
	}
	if m.data == nil {
		m.data = map[string][]byte{}
	}
	m.names = append(m.names, name)
	m.data[name] = []byte{}
	m.writing = name
	return &memoryPart{m: m, name: name}, nil
}

// Names lists the parts in the order they were created.
func (m *MemoryParts) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.names)
}

// Open returns the content of part name; an unknown name is an error
// wrapping fs.ErrNotExist.
func (m *MemoryParts) Open(name string) (io.ReadCloser, error) {
	b, ok := m.Part(name)
	if !ok {
		return nil, fmt.Errorf("storetest: open part %q: %w", name, fs.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// Part returns the content of part name and whether it exists. The
// caller must not modify it.
func (m *MemoryParts) Part(name string) ([]byte, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.data[name]
	return b, ok
}

// Writing returns the part that is created but not yet closed, or "".
func (m *MemoryParts) Writing() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.writing
}

type memoryPart struct {
	m      *MemoryParts
	name   string
	closed bool
}

func (p *memoryPart) Write(b []byte) (int, error) {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	if p.closed {
		return 0, fmt.Errorf("storetest: write to part %q after Close", p.name)
	}
	p.m.data[p.name] = append(p.m.data[p.name], b...)
	return len(b), nil
}

func (p *memoryPart) Close() error {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	if p.closed {
		return fmt.Errorf("storetest: part %q closed twice", p.name)
	}
	p.closed = true
	p.m.writing = ""
	return nil
}

// ValidPartName reports whether name follows the rules of
// store.PartWriter: not empty, slash-separated, with no empty, "." or
// ".." element.
func ValidPartName(name string) error {
	for el := range strings.SplitSeq(name, "/") {
		if el == "" || el == "." || el == ".." {
			return fmt.Errorf("storetest: part name %q: empty, \".\" or \"..\" element", name)
		}
	}
	return nil
}

// Digest returns a SHA-256 over every key and value tenant id holds in b,
// in key order, to compare a tenant's data before and after an operation.
func Digest(t testing.TB, b store.Backend, id tenant.ID) string {
	t.Helper()
	ctx := context.Background()
	keys, err := b.List(ctx, id, "")
	if err != nil {
		t.Fatalf("List(%s): %v", id, err)
	}
	h := sha256.New()
	for _, k := range keys {
		v, err := b.Get(ctx, id, k)
		if err != nil {
			t.Fatalf("Get(%s, %q): %v", id, k, err)
		}
		binary.Write(h, binary.BigEndian, uint64(len(k)))
		io.WriteString(h, k)
		binary.Write(h, binary.BigEndian, uint64(len(v)))
		h.Write(v)
	}
	return fmt.Sprintf("%d keys, sha256 %s", len(keys), hex.EncodeToString(h.Sum(nil)))
}

// PortableData returns the data set the Portable suite exports: many keys
// (look-alike names, nested prefixes, a key of store.MaxKeyLen bytes, glob
// and escaping characters), binary values with NUL bytes, an empty value
// and one value of store.MaxValueSize/4 bytes. The values are the same on
// every call.
func PortableData() map[string][]byte {
	r := rand.New(rand.NewChaCha8([32]byte{'s', 't', 'o', 'r', 'e'}))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	d := map[string][]byte{
		"a":                     []byte("top"),
		"a/b":                   []byte("nested"),
		"a/b/c":                 []byte("deeper"),
		"ab":                    []byte("sibling"),
		"dir":                   []byte("file and prefix at once"),
		"dir/x":                 []byte("under dir"),
		"Docs/Plan Q3.md":       []byte("# Plan\n\nUpper case, a space.\n"),
		"unicode/日本語 ✓":         []byte("ünïcödé"),
		"glob/[ab]*?":           []byte("glob characters"),
		"percent/%41%2F":        []byte("percent"),
		"bin/nul":               {0, 0, 0, 1, 0, 255, '\n', 0},
		"bin/random":            random(4096),
		"empty":                 {},
		"large":                 random(store.MaxValueSize / 4),
		"long/" + longSegment(): []byte("a key of store.MaxKeyLen bytes"),
	}
	for _, k := range LookalikeKeys {
		d[k] = []byte("lookalike " + k)
	}
	for i := range 120 {
		d[fmt.Sprintf("bulk/%03d", i)] = append([]byte(fmt.Sprintf("bulk %d:", i)), random(i)...)
	}
	return d
}

func longSegment() string { return strings.Repeat("k", store.MaxKeyLen-len("long/")) }

// seed stores data for id through the Backend.
func seed(t *testing.T, b store.Backend, id tenant.ID, data map[string][]byte) {
	t.Helper()
	for _, k := range slices.Sorted(mapKeys(data)) {
		if err := store.ValidateKey(k); err != nil {
			t.Fatalf("test data: %v", err)
		}
		if err := b.Put(context.Background(), id, k, data[k]); err != nil {
			t.Fatalf("Put(%s, %q): %v", id, k, err)
		}
	}
}

func mapKeys(m map[string][]byte) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// wantData checks that id holds exactly data, byte for byte.
func wantData(t *testing.T, b store.Backend, id tenant.ID, data map[string][]byte, when string) {
	t.Helper()
	ctx := context.Background()
	keys, err := b.List(ctx, id, "")
	if err != nil {
		t.Fatalf("%s: List: %v", when, err)
	}
	want := slices.Sorted(mapKeys(data))
	if !slices.Equal(keys, want) && (len(keys) != 0 || len(want) != 0) {
		var extra, missing []string
		for _, k := range keys {
			if _, ok := data[k]; !ok {
				extra = append(extra, k)
			}
		}
		for _, k := range want {
			if !slices.Contains(keys, k) {
				missing = append(missing, k)
			}
		}
		t.Fatalf("%s: tenant holds %d keys, want %d; unexpected %.60q; missing %.60q",
			when, len(keys), len(want), firstFew(extra), firstFew(missing))
	}
	for _, k := range want {
		got, err := b.Get(ctx, id, k)
		if err != nil {
			t.Fatalf("%s: Get(%q): %v", when, k, err)
		}
		if !bytes.Equal(got, data[k]) {
			t.Fatalf("%s: Get(%q) = %d bytes %.40q, want %d bytes %.40q", when, k, len(got), got, len(data[k]), data[k])
		}
	}
}

func firstFew(keys []string) []string {
	if len(keys) > 8 {
		return append(keys[:8:8], fmt.Sprintf("... %d more", len(keys)-8))
	}
	return keys
}

// wantEmpty checks that id holds nothing: List is empty and every key of
// data is gone.
func wantEmpty(t *testing.T, b store.Backend, id tenant.ID, data map[string][]byte, when string) {
	t.Helper()
	wantData(t, b, id, nil, when)
	for k := range data {
		if _, err := b.Get(context.Background(), id, k); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: Get(%q): err = %v, want store.ErrNotFound", when, k, err)
		}
	}
}

// others are tenants whose data must never change.
type others struct {
	b       store.Backend
	ids     []tenant.ID
	digests []string
}

// seedOthers stores data for n other tenants, each value carrying a
// marker that must never appear in an export of someone else.
func seedOthers(t *testing.T, b store.Backend, n int) *others {
	t.Helper()
	o := &others{b: b}
	for i := range n {
		id := tenant.NewID()
		data := map[string][]byte{"a": nil, "a/b": nil, "dir": nil, "secret.txt": nil, "bin/nul": nil}
		for k := range data {
			data[k] = []byte(marker(id) + " " + k)
		}
		data["bin/nul"] = append(data["bin/nul"], 0, 0, 255)
		if i == 0 {
			data["empty"] = []byte{} // an empty value next to the others
		}
		seed(t, b, id, data)
		o.ids = append(o.ids, id)
		o.digests = append(o.digests, Digest(t, b, id))
	}
	return o
}

func marker(id tenant.ID) string { return "other-tenant-" + string(id) + "-secret" }

// unchanged fails unless every other tenant's data is as it was seeded.
func (o *others) unchanged(t *testing.T, when string) {
	t.Helper()
	for i, id := range o.ids {
		if got := Digest(t, o.b, id); got != o.digests[i] {
			t.Fatalf("%s: other tenant %s changed: %s, was %s", when, id, got, o.digests[i])
		}
	}
}

// notIn fails if any part holds another tenant's marker.
func (o *others) notIn(t *testing.T, parts *MemoryParts) {
	t.Helper()
	for _, n := range parts.Names() {
		b, _ := parts.Part(n)
		for _, id := range o.ids {
			if bytes.Contains(b, []byte(marker(id))) || strings.Contains(n, string(id)) {
				t.Fatalf("part %q holds data or the id of other tenant %s", n, id)
			}
		}
	}
}

func export(t *testing.T, p store.Portable, id tenant.ID) *MemoryParts {
	t.Helper()
	parts := &MemoryParts{}
	if err := p.Export(context.Background(), id, parts); err != nil {
		t.Fatalf("Export(%s): %v", id, err)
	}
	if w := parts.Writing(); w != "" {
		t.Fatalf("Export(%s) returned with part %q still open", id, w)
	}
	return parts
}

func purge(t *testing.T, p store.Portable, id tenant.ID) {
	t.Helper()
	if err := p.Purge(context.Background(), id); err != nil {
		t.Fatalf("Purge(%s): %v", id, err)
	}
}

// importParts runs Import through a reader that checks every opened part
// is closed again.
func importParts(p store.Portable, id tenant.ID, r store.PartReader) error {
	cr := &countingReader{r: r}
	err := p.Import(context.Background(), id, cr)
	if n := cr.open.Load(); n != 0 {
		err = errors.Join(err, fmt.Errorf("storetest: Import left %d parts open", n))
	}
	return err
}

func mustImport(t *testing.T, p store.Portable, id tenant.ID, r store.PartReader) {
	t.Helper()
	if err := importParts(p, id, r); err != nil {
		t.Fatalf("Import(%s): %v", id, err)
	}
}

func testExportPurgeImport(t *testing.T, s portableSetup) {
	o := seedOthers(t, s.b, 3)
	id := tenant.NewID()
	data := PortableData()
	seed(t, s.b, id, data)
	before := Digest(t, s.b, id)

	parts := export(t, s.p, id)
	if got := Digest(t, s.b, id); got != before {
		t.Fatalf("Export changed the tenant: %s, was %s", got, before)
	}
	o.unchanged(t, "after Export")
	o.notIn(t, parts)
	if len(parts.Names()) == 0 {
		t.Fatal("Export of a tenant with data wrote no part")
	}

	purge(t, s.p, id)
	wantEmpty(t, s.b, id, data, "after Purge")
	o.unchanged(t, "after Purge")

	mustImport(t, s.p, id, parts)
	wantData(t, s.b, id, data, "after Import")
	o.unchanged(t, "after Import")

	// The restored tenant is an ordinary one again: it exports the same
	// data and takes writes.
	again := export(t, s.p, id)
	purge(t, s.p, id)
	mustImport(t, s.p, id, again)
	wantData(t, s.b, id, data, "after a second round")
	if err := s.b.Put(context.Background(), id, "new", []byte("after restore")); err != nil {
		t.Fatalf("Put after Import: %v", err)
	}
	data["new"] = []byte("after restore")
	wantData(t, s.b, id, data, "after a Put on the restored tenant")
	o.unchanged(t, "at the end")
}

func testPurgeIdempotent(t *testing.T, s portableSetup) {
	ctx := context.Background()
	o := seedOthers(t, s.b, 3)
	id := tenant.NewID()
	data := PortableData()
	seed(t, s.b, id, data)
	purge(t, s.p, id)
	purge(t, s.p, id)
	wantEmpty(t, s.b, id, data, "after two Purges")
	purge(t, s.p, tenant.NewID()) // never had data
	o.unchanged(t, "after Purges")

	// A purged tenant starts from nothing: old data does not come back
	// with the next write.
	if err := s.b.Put(ctx, id, "fresh", []byte("new life")); err != nil {
		t.Fatalf("Put after Purge: %v", err)
	}
	wantData(t, s.b, id, map[string][]byte{"fresh": []byte("new life")}, "after a Put on the purged tenant")
	purge(t, s.p, id)
	wantEmpty(t, s.b, id, data, "after the last Purge")
	o.unchanged(t, "at the end")
}

func testImportNotEmpty(t *testing.T, s portableSetup) {
	o := seedOthers(t, s.b, 2)
	src, dst := tenant.NewID(), tenant.NewID()
	data := PortableData()
	seed(t, s.b, src, data)
	parts := export(t, s.p, src)
	dstData := map[string][]byte{"a": []byte("dst's own"), "mine/only": []byte("kept"), "large": []byte("not the import's")}
	seed(t, s.b, dst, dstData)

	err := importParts(s.p, dst, parts)
	if !errors.Is(err, store.ErrNotEmpty) {
		t.Fatalf("Import into a tenant with data: err = %v, want store.ErrNotEmpty", err)
	}
	wantData(t, s.b, dst, dstData, "after the refused Import")

	// Even an export with nothing in it is refused.
	empty := export(t, s.p, tenant.NewID())
	if err := importParts(s.p, dst, empty); !errors.Is(err, store.ErrNotEmpty) {
		t.Fatalf("Import of an empty export into a tenant with data: err = %v, want store.ErrNotEmpty", err)
	}
	wantData(t, s.b, dst, dstData, "after the refused empty Import")

	// Importing over the source itself is refused too.
	if err := importParts(s.p, src, parts); !errors.Is(err, store.ErrNotEmpty) {
		t.Fatalf("Import into its own source: err = %v, want store.ErrNotEmpty", err)
	}
	wantData(t, s.b, src, data, "source after the refused Import")
	o.unchanged(t, "at the end")
}

func testImportUnderNewID(t *testing.T, s portableSetup) {
	o := seedOthers(t, s.b, 2)
	src, dst := tenant.NewID(), tenant.NewID()
	data := PortableData()
	seed(t, s.b, src, data)
	parts := export(t, s.p, src)

	mustImport(t, s.p, dst, parts)
	wantData(t, s.b, dst, data, "new id after Import")
	wantData(t, s.b, src, data, "source after Import under a new id")

	// The copy is independent of its source.
	ctx := context.Background()
	if err := s.b.Put(ctx, dst, "a", []byte("changed in the copy")); err != nil {
		t.Fatal(err)
	}
	if err := s.b.Delete(ctx, dst, "a/b"); err != nil {
		t.Fatal(err)
	}
	wantData(t, s.b, src, data, "source after writes to the copy")
	purge(t, s.p, dst)
	wantEmpty(t, s.b, dst, data, "copy after Purge")
	wantData(t, s.b, src, data, "source after the copy's Purge")
	o.unchanged(t, "at the end")
}

func testImportUnknownPart(t *testing.T, s portableSetup) {
	o := seedOthers(t, s.b, 2)
	src := tenant.NewID()
	data := PortableData()
	seed(t, s.b, src, data)
	parts := export(t, s.p, src)

	for _, first := range []bool{true, false} {
		dst := tenant.NewID()
		bad := withExtraPart(t, parts, "unknown/part.bin", []byte("no backend writes this"), first)
		err := importParts(s.p, dst, bad)
		if err == nil {
			t.Fatalf("Import with an unknown part (first=%v) succeeded", first)
		}
		if errors.Is(err, store.ErrNotEmpty) {
			t.Fatalf("Import with an unknown part: err = %v, want an error about the part, not ErrNotEmpty", err)
		}
		wantEmpty(t, s.b, dst, data, fmt.Sprintf("after the Import with an unknown part (first=%v)", first))
		// Nothing of it remains: a correct import into the same tenant
		// is not refused as ErrNotEmpty.
		mustImport(t, s.p, dst, parts)
		wantData(t, s.b, dst, data, "after a correct Import")
		purge(t, s.p, dst)
	}
	wantData(t, s.b, src, data, "source at the end")
	o.unchanged(t, "at the end")
}

func testImportFailsHalfway(t *testing.T, s portableSetup) {
	o := seedOthers(t, s.b, 2)
	src := tenant.NewID()
	data := PortableData()
	seed(t, s.b, src, data)
	parts := export(t, s.p, src)
	names := parts.Names()

	largest := 0
	for i, n := range names {
		if b, _ := parts.Part(n); len(b) > len(mustPart(parts, names[largest])) {
			largest = i
		}
	}
	type failure struct {
		what string
		r    *failingReader
	}
	fails := []failure{
		{"Open fails on the 2nd part", &failingReader{r: parts, openFails: min(1, len(names)-1)}},
		{"Open fails on the last part", &failingReader{r: parts, openFails: len(names) - 1}},
	}
	for _, i := range []int{0, largest, len(names) - 1} {
		fails = append(fails, failure{fmt.Sprintf("read error in the middle of part %q", names[i]), &failingReader{r: parts, openFails: -1, readFails: i}})
	}
	for _, f := range fails {
		dst := tenant.NewID()
		err := importParts(s.p, dst, f.r)
		if !f.r.failed {
			// Import must open every part and read each to its end.
			t.Fatalf("%s: Import never reached the fault (err = %v)", f.what, err)
		}
		if err == nil {
			t.Fatalf("%s: Import succeeded", f.what)
		}
		if !errors.Is(err, errInjected) {
			t.Errorf("%s: Import error %q does not wrap the reader's error", f.what, err)
		}
		wantEmpty(t, s.b, dst, data, f.what)
		mustImport(t, s.p, dst, parts)
		wantData(t, s.b, dst, data, f.what+", then a correct Import")
		purge(t, s.p, dst)
	}
	wantData(t, s.b, src, data, "source at the end")
	o.unchanged(t, "at the end")
}

func testEmptyTenant(t *testing.T, s portableSetup) {
	o := seedOthers(t, s.b, 2)
	never := tenant.NewID()
	parts := export(t, s.p, never)
	o.notIn(t, parts)
	wantEmpty(t, s.b, never, nil, "after Export of a tenant that never had data")

	dst := tenant.NewID()
	mustImport(t, s.p, dst, parts)
	wantEmpty(t, s.b, dst, nil, "after Import of an empty export")
	mustImport(t, s.p, never, parts) // still empty, so allowed again
	wantEmpty(t, s.b, never, nil, "after Import of an empty export into its source")

	// A tenant that had data and lost it all exports as empty too.
	gone := tenant.NewID()
	seed(t, s.b, gone, map[string][]byte{"x": []byte("1"), "y/z": []byte("2")})
	for _, k := range []string{"x", "y/z"} {
		if err := s.b.Delete(context.Background(), gone, k); err != nil {
			t.Fatal(err)
		}
	}
	parts = export(t, s.p, gone)
	dst = tenant.NewID()
	mustImport(t, s.p, dst, parts)
	wantEmpty(t, s.b, dst, nil, "after Import of a tenant that deleted everything")
	o.unchanged(t, "at the end")
}

func testConcurrentPut(t *testing.T, s portableSetup) {
	o := seedOthers(t, s.b, 1)
	src := tenant.NewID()
	data := PortableData()
	seed(t, s.b, src, data)

	busy := tenant.NewID()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var putErr error
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			key := fmt.Sprintf("busy/%d", i%50)
			if err := s.b.Put(ctx, busy, key, []byte(marker(busy)+" "+key)); err != nil && ctx.Err() == nil {
				putErr = err
				return
			}
		}
	})
	var exports []*MemoryParts
	for range 3 {
		exports = append(exports, export(t, s.p, src))
	}
	cancel()
	wg.Wait()
	if putErr != nil {
		t.Fatalf("concurrent Put of another tenant: %v", putErr)
	}
	busyOthers := &others{b: s.b, ids: []tenant.ID{busy}}
	for _, parts := range exports {
		busyOthers.notIn(t, parts)
		o.notIn(t, parts)
		dst := tenant.NewID()
		mustImport(t, s.p, dst, parts)
		wantData(t, s.b, dst, data, "Import of an export taken during another tenant's writes")
	}
	o.unchanged(t, "at the end")
}

func mustPart(m *MemoryParts, name string) []byte {
	b, _ := m.Part(name)
	return b
}

// withExtraPart copies parts and adds one more, first or last.
func withExtraPart(t *testing.T, parts *MemoryParts, name string, content []byte, first bool) *MemoryParts {
	t.Helper()
	out := &MemoryParts{}
	add := func(name string, b []byte) {
		w, err := out.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
		w.Close()
	}
	if first {
		add(name, content)
	}
	for _, n := range parts.Names() {
		add(n, mustPart(parts, n))
	}
	if !first {
		add(name, content)
	}
	return out
}

// errInjected is the fault a failingReader injects.
var errInjected = errors.New("storetest: injected read failure")

// failingReader fails Open of the part at index openFails, or returns
// errInjected half way through the part at index readFails (-1: never).
type failingReader struct {
	r         store.PartReader
	openFails int
	readFails int
	failed    bool // the fault was hit
}

func (f *failingReader) Names() []string { return f.r.Names() }

func (f *failingReader) Open(name string) (io.ReadCloser, error) {
	i := slices.Index(f.r.Names(), name)
	if i >= 0 && i == f.openFails {
		f.failed = true
		return nil, fmt.Errorf("open part %q: %w", name, errInjected)
	}
	rc, err := f.r.Open(name)
	if err != nil || i < 0 || i != f.readFails || f.openFails >= 0 {
		return rc, err
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, err
	}
	return &halfReader{r: bytes.NewReader(b[:len(b)/2]), f: f}, nil
}

// halfReader returns the first half of a part, then errInjected.
type halfReader struct {
	r *bytes.Reader
	f *failingReader
}

func (h *halfReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if err == io.EOF {
		h.f.failed = true
		return n, errInjected
	}
	return n, err
}

func (h *halfReader) Close() error { return nil }

// countingReader counts parts opened and not yet closed.
type countingReader struct {
	r    store.PartReader
	open atomic.Int64
}

func (c *countingReader) Names() []string { return c.r.Names() }

func (c *countingReader) Open(name string) (io.ReadCloser, error) {
	rc, err := c.r.Open(name)
	if err != nil {
		return nil, err
	}
	c.open.Add(1)
	return &countedPart{ReadCloser: rc, c: c}, nil
}

type countedPart struct {
	io.ReadCloser
	c    *countingReader
	once sync.Once
}

func (p *countedPart) Close() error {
	p.once.Do(func() { p.c.open.Add(-1) })
	return p.ReadCloser.Close()
}
