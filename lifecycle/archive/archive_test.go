package archive_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tenantmcp/tenantmcp/lifecycle/archive"
)

type part struct {
	section, name string
	data          []byte
}

var tenantRecord = json.RawMessage(`{"id":"abcdefghijklmnopqrstuvwxyz","issuer":"https://idp.example/","external_id":"org_1","name":"Acme","status":"archived"}`)

func random(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// sampleParts: several sections, empty parts, binary, a part larger than
// the test spill threshold (4 KiB) that dominates the compressed size,
// names that need PAX headers.
func sampleParts() []part {
	return []part{
		{"sql", "schema.sql", []byte("CREATE TABLE notes (id int, body text);\n")},
		{"sql", "rows/notes.jsonl", []byte(`{"id":1,"body":"a"}` + "\n" + `{"id":2,"body":"b"}` + "\n")},
		{"blobs", "notes/q3.md", []byte("# Q3\nrevenue up\n")},
		{"blobs", "empty", nil},
		{"blobs", "bin/random.bin", random(200_000, 1)},
		{"blobs", "日本語/ファイル.txt", []byte("こんにちは")},
		{"blobs", strings.Repeat("long-name/", 60) + "x", []byte("long")},
		{"kv", "kv.jsonl", []byte(`{"k":"a","v":"AAE="}` + "\n")},
		{"kv", "kv-empty.jsonl", []byte{}},
	}
}

var createdAt = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// write makes an archive of parts, with sections "audit" (no part) and the
// counts below.
func write(t testing.TB, parts []part, o *archive.WriterOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := archive.NewWriter(&buf, archive.Meta{
		Tenant: tenantRecord, Strategy: "rls", ServerVersion: "v1.2.3", CreatedAt: createdAt,
		Counts: map[string]map[string]int64{"sql": {"tables": 1}},
	}, o)
	w.Section("audit")
	for _, p := range parts {
		pw, err := w.Section(p.section).Create(p.name)
		if err != nil {
			t.Fatalf("Create(%s/%s): %v", p.section, p.name, err)
		}
		// In several writes, to cross the spill threshold midway.
		for chunk := range slices.Chunk(p.data, 3000) {
			if _, err := pw.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
		if err := pw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	w.Count("sql", "rows", 2)
	w.Count("kv", "keys", 1)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var smallSpill = &archive.WriterOptions{SpillThreshold: 4096}

// open opens b with a spool in a fresh directory, and checks when the
// test ends that the directory is empty again.
func open(t *testing.T, b []byte, o *archive.OpenOptions) (*archive.Archive, error) {
	t.Helper()
	dir := t.TempDir()
	t.Cleanup(func() { wantEmpty(t, dir) })
	a, err := archive.Open(bytes.NewReader(b), dir, o)
	if err != nil {
		if a != nil {
			t.Fatalf("Open failed (%v) but returned an archive", err)
		}
		wantEmpty(t, dir)
		return nil, err
	}
	t.Cleanup(func() { a.Close() })
	return a, nil
}

// wantEmpty checks that dir holds no file, and (where /proc tells) that
// this process holds no file open in it: spools are unlinked at once, so
// a spool not closed would only show there.
func wantEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) > 0 {
		t.Errorf("%s holds %d files, want none (first: %s)", dir, len(ents), ents[0].Name())
	}
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(target, dir+string(os.PathSeparator)) {
			t.Errorf("file %s is still open", target)
		}
	}
}

func readParts(t *testing.T, a *archive.Archive, section string) []part {
	t.Helper()
	var got []part
	r := a.Section(section)
	for _, name := range r.Names() {
		rc, err := r.Open(name)
		if err != nil {
			t.Fatalf("Open(%s/%s): %v", section, name, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("read %s/%s: %v", section, name, err)
		}
		got = append(got, part{section, name, b})
	}
	return got
}

func bySection(parts []part, section string) []part {
	var out []part
	for _, p := range parts {
		if p.section == section {
			if p.data == nil {
				p.data = []byte{}
			}
			out = append(out, p)
		}
	}
	return out
}

var cmpPart = cmp.Comparer(func(a, b part) bool {
	return a.section == b.section && a.name == b.name && bytes.Equal(a.data, b.data)
})

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	parts := sampleParts()
	spill := t.TempDir()
	var buf bytes.Buffer
	w := archive.NewWriter(&buf, archive.Meta{Tenant: tenantRecord, Strategy: "schema", CreatedAt: createdAt}, &archive.WriterOptions{SpillThreshold: 4096, TempDir: spill})
	for _, p := range parts {
		pw, err := w.Section(p.section).Create(p.name)
		if err != nil {
			t.Fatal(err)
		}
		pw.Write(p.data)
		if err := pw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	wantEmpty(t, spill)
	size, sum := w.Sum()
	if whole := sha256.Sum256(buf.Bytes()); size != int64(buf.Len()) || sum != hex.EncodeToString(whole[:]) {
		t.Fatalf("Sum() = %d %s, want %d %x", size, sum, buf.Len(), whole)
	}

	a, err := open(t, buf.Bytes(), &archive.OpenOptions{SHA256: sum})
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range []string{"sql", "blobs", "kv"} {
		if diff := cmp.Diff(bySection(parts, sec), readParts(t, a, sec), cmpPart); diff != "" {
			t.Errorf("section %s (-want +got):\n%s", sec, diff)
		}
	}
	if names := a.Section("nope").Names(); len(names) != 0 {
		t.Errorf("a section the archive does not have lists %q", names)
	}
	m := a.Manifest()
	if m.Format != archive.Format || m.Version != archive.Version || !m.CreatedAt.Equal(createdAt) ||
		m.Strategy != "schema" || m.ServerVersion != "dev" {
		t.Errorf("manifest header: %+v", m)
	}
	var rec, want map[string]any
	json.Unmarshal(m.Tenant, &rec)
	json.Unmarshal(tenantRecord, &want)
	if diff := cmp.Diff(want, rec); diff != "" {
		t.Errorf("tenant record (-want +got):\n%s", diff)
	}
	if len(m.Parts) != len(parts) {
		t.Fatalf("manifest lists %d parts, want %d", len(m.Parts), len(parts))
	}
	for i, p := range parts {
		sum := sha256.Sum256(p.data)
		want := archive.Part{Section: p.section, Name: p.name, Size: int64(len(p.data)), SHA256: hex.EncodeToString(sum[:])}
		if m.Parts[i] != want {
			t.Errorf("manifest part %d = %+v, want %+v", i, m.Parts[i], want)
		}
	}
}

func TestManifestSectionsAndCounts(t *testing.T) {
	t.Parallel()
	a, err := open(t, write(t, sampleParts(), smallSpill), nil)
	if err != nil {
		t.Fatal(err)
	}
	size := func(section string) (n int64) {
		for _, p := range bySection(sampleParts(), section) {
			n += int64(len(p.data))
		}
		return n
	}
	want := []archive.SectionInfo{
		{Name: "audit"}, // named, never written to
		{Name: "blobs", Parts: 5, Bytes: size("blobs")},
		{Name: "kv", Parts: 2, Bytes: size("kv"), Counts: map[string]int64{"keys": 1}},
		{Name: "sql", Parts: 2, Bytes: size("sql"), Counts: map[string]int64{"rows": 2, "tables": 1}},
	}
	if diff := cmp.Diff(want, a.Manifest().Sections); diff != "" {
		t.Errorf("sections (-want +got):\n%s", diff)
	}
	// Manifest returns a copy.
	m := a.Manifest()
	m.Sections[2].Counts["keys"] = 99
	m.Parts[0].Name = "changed"
	if a.Manifest().Sections[2].Counts["keys"] != 1 || a.Manifest().Parts[0].Name != "schema.sql" {
		t.Error("changing the returned manifest changed the archive's")
	}
}

// An archive is a plain tar.gz: parts under parts/<section>/ in the order
// written, mode 0600, the manifest last (docs/archive-format.md).
func TestLayoutForCustomers(t *testing.T) {
	t.Parallel()
	parts := sampleParts()
	es := unpack(t, write(t, parts, smallSpill))
	var names []string
	for _, e := range es {
		names = append(names, e.hdr.Name)
		if e.hdr.Typeflag != tar.TypeReg || e.hdr.Mode != 0o600 || !e.hdr.ModTime.Equal(createdAt) {
			t.Errorf("%s: type %q mode %o time %v", e.hdr.Name, e.hdr.Typeflag, e.hdr.Mode, e.hdr.ModTime)
		}
	}
	var want []string
	for _, p := range parts {
		want = append(want, "parts/"+p.section+"/"+p.name)
	}
	want = append(want, "manifest.json")
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	var m map[string]any
	if err := json.Unmarshal(es[len(es)-1].data, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"format", "version", "created_at", "server_version", "strategy", "tenant", "sections", "parts"} {
		if _, ok := m[k]; !ok {
			t.Errorf("manifest has no %q", k)
		}
	}
}

func TestPartErrorMessage(t *testing.T) {
	t.Parallel()
	es := unpack(t, write(t, sampleParts(), smallSpill))
	es[2].data = []byte("# Q3\nrevenue UP\n")
	_, err := open(t, pack(t, es), nil)
	if err == nil || !strings.HasPrefix(err.Error(), "archive: part blobs/notes/q3.md: ") || !strings.Contains(err.Error(), "sha256 mismatch") {
		t.Fatalf("error %q does not name the part and the mismatch", err)
	}
}

// entry is a tar entry, to build altered archives from a valid one.
type entry struct {
	hdr  tar.Header
	data []byte
}

func unpack(t testing.TB, b []byte) []entry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var es []entry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return es
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, entry{*h, data})
	}
}

func pack(t testing.TB, es []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range es {
		h := e.hdr
		h.Size = int64(len(e.data))
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func file(name string, data []byte) entry {
	return entry{tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o600}, data}
}

// editManifest changes the last entry's manifest with fn.
func editManifest(t testing.TB, es []entry, fn func(m *archive.Manifest)) []entry {
	t.Helper()
	var m archive.Manifest
	if err := json.Unmarshal(es[len(es)-1].data, &m); err != nil {
		t.Fatal(err)
	}
	fn(&m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	es = slices.Clone(es)
	es[len(es)-1].data = b
	return es
}

func TestCorruptionIsRefused(t *testing.T) {
	t.Parallel()
	valid := write(t, sampleParts(), smallSpill)
	es := unpack(t, valid)
	manifest := len(es) - 1
	const q3 = 2 // es[q3] is blobs/notes/q3.md
	without := func(i int) []entry { return slices.Delete(slices.Clone(es), i, i+1) }
	with := func(i int, e ...entry) []entry { return slices.Insert(slices.Clone(es), i, e...) }

	type want struct {
		err           error  // errors.Is
		section, name string // the PartError, if any
		msg           string // in the message
	}
	cases := []struct {
		name  string
		input func() []byte
		want  want
	}{
		{"flipped byte in a part", func() []byte {
			es := slices.Clone(es)
			es[q3].data = bytes.Clone(es[q3].data)
			es[q3].data[3] ^= 1
			return pack(t, es)
		}, want{archive.ErrCorrupt, "blobs", "notes/q3.md", "sha256 mismatch"}},
		{"flipped byte in a binary part", func() []byte {
			es := slices.Clone(es)
			es[4].data = bytes.Clone(es[4].data)
			es[4].data[150_000] ^= 0x80
			return pack(t, es)
		}, want{archive.ErrCorrupt, "blobs", "bin/random.bin", "sha256 mismatch"}},
		{"a part changed size", func() []byte {
			es := slices.Clone(es)
			es[q3].data = append(bytes.Clone(es[q3].data), '!')
			return pack(t, es)
		}, want{archive.ErrCorrupt, "blobs", "notes/q3.md", "size mismatch"}},
		{"an empty part that is not empty", func() []byte {
			es := slices.Clone(es)
			es[3].data = []byte{0}
			return pack(t, es)
		}, want{archive.ErrCorrupt, "blobs", "empty", "size mismatch"}},
		{"missing part", func() []byte { return pack(t, without(q3)) },
			want{archive.ErrCorrupt, "blobs", "notes/q3.md", "missing from the archive"}},
		{"missing empty part", func() []byte { return pack(t, without(3)) },
			want{archive.ErrCorrupt, "blobs", "empty", "missing from the archive"}},
		{"extra part", func() []byte { return pack(t, with(manifest, file("parts/kv/extra.jsonl", []byte("{}")))) },
			want{archive.ErrCorrupt, "kv", "extra.jsonl", "not listed"}},
		{"extra part in a new section", func() []byte { return pack(t, with(0, file("parts/evil/x", nil))) },
			want{archive.ErrCorrupt, "evil", "x", "not listed"}},
		{"extra entry outside parts/", func() []byte { return pack(t, with(0, file("README.txt", []byte("hi")))) },
			want{archive.ErrCorrupt, "", "", `entry "README.txt"`}},
		{"extra directory entry", func() []byte {
			return pack(t, with(0, entry{tar.Header{Typeflag: tar.TypeDir, Name: "parts/", Mode: 0o700}, nil}))
		}, want{archive.ErrCorrupt, "", "", "not a regular file"}},
		{"symbolic link", func() []byte {
			return pack(t, with(0, entry{tar.Header{Typeflag: tar.TypeSymlink, Name: "parts/kv/link", Linkname: "/etc/passwd"}, nil}))
		}, want{archive.ErrCorrupt, "", "", "not a regular file"}},
		{"hard link", func() []byte {
			return pack(t, with(0, entry{tar.Header{Typeflag: tar.TypeLink, Name: "parts/kv/link", Linkname: "parts/kv/kv.jsonl"}, nil}))
		}, want{archive.ErrCorrupt, "", "", "not a regular file"}},
		{"path traversal", func() []byte { return pack(t, with(0, file("parts/kv/../../../etc/cron.d/x", []byte("boom")))) },
			want{archive.ErrCorrupt, "", "", "../../../etc/cron.d/x"}},
		{"absolute path", func() []byte { return pack(t, with(0, file("/etc/passwd", nil))) },
			want{archive.ErrCorrupt, "", "", "/etc/passwd"}},
		{"duplicate entry", func() []byte { return pack(t, with(q3+1, es[q3])) },
			want{archive.ErrCorrupt, "blobs", "notes/q3.md", "twice in the archive"}},
		{"duplicate entry with other content", func() []byte { return pack(t, with(0, file(es[q3].hdr.Name, []byte("first")))) },
			want{archive.ErrCorrupt, "blobs", "notes/q3.md", "twice in the archive"}},
		{"manifest missing", func() []byte { return pack(t, without(manifest)) },
			want{archive.ErrCorrupt, "", "", "manifest.json is missing"}},
		{"manifest not last", func() []byte {
			es := slices.Clone(es)
			es[manifest], es[manifest-1] = es[manifest-1], es[manifest]
			return pack(t, es)
		}, want{archive.ErrCorrupt, "", "", "after manifest.json"}},
		{"two manifests", func() []byte { return pack(t, append(slices.Clone(es), es[manifest])) },
			want{archive.ErrCorrupt, "", "", "after manifest.json"}},
		{"manifest edited: a part's sha256", func() []byte {
			return pack(t, editManifest(t, es, func(m *archive.Manifest) { m.Parts[q3].SHA256 = strings.Repeat("0", 64) }))
		}, want{archive.ErrCorrupt, "blobs", "notes/q3.md", "sha256 mismatch"}},
		{"manifest edited: a part's size", func() []byte {
			return pack(t, editManifest(t, es, func(m *archive.Manifest) { m.Parts[q3].Size++ }))
		}, want{archive.ErrCorrupt, "blobs", "notes/q3.md", "size mismatch"}},
		{"manifest edited: a part renamed", func() []byte {
			return pack(t, editManifest(t, es, func(m *archive.Manifest) { m.Parts[q3].Name = "notes/q4.md" }))
		}, want{archive.ErrCorrupt, "blobs", "notes/q4.md", "missing from the archive"}},
		{"manifest edited: a part dropped", func() []byte {
			return pack(t, editManifest(t, es, func(m *archive.Manifest) {
				m.Parts = slices.Delete(m.Parts, q3, q3+1)
				m.Sections[1].Parts--
				m.Sections[1].Bytes -= int64(len(es[q3].data))
			}))
		}, want{archive.ErrCorrupt, "blobs", "notes/q3.md", "not listed"}},
		{"manifest edited: a part listed twice", func() []byte {
			return pack(t, editManifest(t, es, func(m *archive.Manifest) { m.Parts = append(m.Parts, m.Parts[q3]) }))
		}, want{archive.ErrCorrupt, "blobs", "notes/q3.md", "listed twice"}},
		{"manifest edited: a section's sums", func() []byte {
			return pack(t, editManifest(t, es, func(m *archive.Manifest) { m.Sections[1].Bytes++ }))
		}, want{archive.ErrCorrupt, "", "", "section blobs says"}},
		{"manifest edited: a section removed", func() []byte {
			return pack(t, editManifest(t, es, func(m *archive.Manifest) { m.Sections = slices.Delete(m.Sections, 1, 2) }))
		}, want{archive.ErrCorrupt, "blobs", "notes/q3.md", "section is not in"}},
		{"manifest edited: a part name with ..", func() []byte {
			return pack(t, editManifest(t, es, func(m *archive.Manifest) { m.Parts[q3].Name = "../q3.md" }))
		}, want{archive.ErrCorrupt, "", "", "invalid name"}},
		{"manifest edited: tenant is not an object", func() []byte {
			return pack(t, editManifest(t, es, func(m *archive.Manifest) { m.Tenant = json.RawMessage(`"acme"`) }))
		}, want{archive.ErrCorrupt, "", "", "tenant record"}},
		{"manifest edited: no strategy", func() []byte {
			return pack(t, editManifest(t, es, func(m *archive.Manifest) { m.Strategy = "" }))
		}, want{archive.ErrCorrupt, "", "", "strategy"}},
		{"manifest edited: not JSON", func() []byte {
			es := slices.Clone(es)
			es[manifest].data = append(bytes.Clone(es[manifest].data[:100]), "}}"...)
			return pack(t, es)
		}, want{archive.ErrCorrupt, "", "", "not valid JSON"}},
		{"manifest edited: unknown field", func() []byte {
			es := slices.Clone(es)
			es[manifest].data = append([]byte(`{"extra":1,`), es[manifest].data[1:]...)
			return pack(t, es)
		}, want{archive.ErrCorrupt, "", "", "extra"}},
		{"manifest edited: another format", func() []byte {
			return pack(t, editManifest(t, es, func(m *archive.Manifest) { m.Format = "tenantmcp-audit-export" }))
		}, want{archive.ErrCorrupt, "", "", "names format"}},
		{"wrong format version", func() []byte {
			return pack(t, editManifest(t, es, func(m *archive.Manifest) { m.Version = 2 }))
		}, want{archive.ErrUnsupportedVersion, "", "", "version 2"}},
		{"format version 0", func() []byte {
			return pack(t, editManifest(t, es, func(m *archive.Manifest) { m.Version = 0 }))
		}, want{archive.ErrUnsupportedVersion, "", "", "version 0"}},
		{"truncated in the large part", func() []byte { return valid[:len(valid)/2] },
			want{archive.ErrCorrupt, "blobs", "bin/random.bin", "cut short"}},
		{"truncated by one byte", func() []byte { return valid[:len(valid)-1] },
			want{archive.ErrCorrupt, "", "", "unexpected EOF"}},
		{"gzip trailer damaged", func() []byte {
			b := bytes.Clone(valid)
			b[len(b)-6] ^= 1 // in the CRC-32
			return b
		}, want{archive.ErrCorrupt, "", "", "checksum"}},
		{"garbage after the gzip stream", func() []byte { return append(bytes.Clone(valid), "garbage that is not gzip"...) },
			want{archive.ErrCorrupt, "", "", "gzip"}},
		{"data after the end of the tar", func() []byte {
			var tarBuf bytes.Buffer
			zr, _ := gzip.NewReader(bytes.NewReader(valid))
			io.Copy(&tarBuf, zr)
			tarBuf.WriteString("trailing")
			return gz(tarBuf.Bytes())
		}, want{archive.ErrCorrupt, "", "", "data after the end"}},
		{"not gzip", func() []byte { return []byte("PK\x03\x04 a zip file") },
			want{archive.ErrCorrupt, "", "", "not a gzip stream"}},
		{"empty input", func() []byte { return nil },
			want{archive.ErrCorrupt, "", "", "not a gzip stream"}},
		{"gzip of nothing", func() []byte { return gz(nil) },
			want{archive.ErrCorrupt, "", "", "manifest.json is missing"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := open(t, c.input(), nil)
			checkRefusal(t, err, c.want.err, c.want.section, c.want.name, c.want.msg)
		})
	}
}

func checkRefusal(t *testing.T, err, want error, section, name, msg string) {
	t.Helper()
	if err == nil {
		t.Fatal("Open accepted it")
	}
	if !errors.Is(err, want) {
		t.Errorf("error %q is not %v", err, want)
	}
	var pe *archive.PartError
	switch {
	case section == "" && errors.As(err, &pe):
		t.Errorf("error %q names part %s/%s, want no part", err, pe.Section, pe.Name)
	case section != "" && !errors.As(err, &pe):
		t.Errorf("error %q names no part, want %s/%s", err, section, name)
	case section != "" && (pe.Section != section || pe.Name != name):
		t.Errorf("error %q names part %s/%s, want %s/%s", err, pe.Section, pe.Name, section, name)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("error %q does not say %q", err, msg)
	}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// Every prefix of an archive is refused, and so is every single flipped
// byte (gzip's checksum and the manifest's hashes cover all of it).
func TestEveryTruncationAndBitFlipIsRefused(t *testing.T) {
	t.Parallel()
	valid := write(t, []part{{"kv", "kv.jsonl", []byte("one line\n")}, {"blobs", "a", random(3000, 2)}}, nil)
	dir := t.TempDir()
	step := max(1, len(valid)/300)
	for n := 0; n < len(valid); n += step {
		if a, err := archive.Open(bytes.NewReader(valid[:n]), dir, nil); err == nil || !errors.Is(err, archive.ErrCorrupt) {
			a.Close()
			t.Fatalf("the first %d of %d bytes: %v, want ErrCorrupt", n, len(valid), err)
		}
		b := bytes.Clone(valid)
		b[n] ^= 0x10
		if a, err := archive.Open(bytes.NewReader(b), dir, nil); err == nil {
			a.Close()
			// The header's mtime, OS and extra flags are not checksummed
			// by gzip, and change nothing of the content.
			if n >= 10 {
				t.Fatalf("byte %d flipped: accepted", n)
			}
		} else if !errors.Is(err, archive.ErrCorrupt) && !errors.Is(err, archive.ErrUnsupportedVersion) && !errors.Is(err, archive.ErrLimit) {
			t.Fatalf("byte %d flipped: %v", n, err)
		}
	}
	wantEmpty(t, dir)
}

// With the archive's recorded SHA-256, a change the manifest cannot show
// (the tenant record) is refused too.
func TestWholeArchiveChecksum(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := archive.NewWriter(&buf, archive.Meta{Tenant: tenantRecord, Strategy: "sqlite"}, nil)
	pw, _ := w.Section("sql").Create("tenant.db")
	pw.Write([]byte("SQLite format 3\x00"))
	pw.Close()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, sum := w.Sum()
	edited := pack(t, editManifest(t, unpack(t, buf.Bytes()), func(m *archive.Manifest) {
		m.Tenant = json.RawMessage(`{"id":"someone-else"}`)
	}))
	a, err := open(t, edited, nil)
	if err != nil {
		t.Fatalf("without a recorded checksum the edit cannot be seen, but: %v", err)
	}
	if string(a.Manifest().Tenant) != `{"id":"someone-else"}` {
		t.Fatalf("tenant = %s", a.Manifest().Tenant)
	}
	_, err = open(t, edited, &archive.OpenOptions{SHA256: sum})
	checkRefusal(t, err, archive.ErrCorrupt, "", "", "not the expected "+sum)
	if _, err := open(t, buf.Bytes(), &archive.OpenOptions{SHA256: sum}); err != nil {
		t.Fatal(err)
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	// A gzip bomb: 64 MiB of zeros compress to about 64 KiB.
	bomb := pack(t, []entry{file("parts/blobs/zeros", make([]byte, 64<<20))})
	if len(bomb) > 1<<20 {
		t.Fatalf("the bomb is %d bytes", len(bomb))
	}
	many := make([]part, 10)
	for i := range many {
		many[i] = part{"kv", strings.Repeat("k", 100) + string(rune('a'+i)), make([]byte, 100_000)}
	}
	manyArchive := write(t, many, nil)
	expanded, _ := io.Copy(io.Discard, must(gzip.NewReader(bytes.NewReader(manyArchive))))
	cases := []struct {
		name          string
		input         []byte
		lim           archive.Limits
		section, part string
		msg           string
	}{
		{"one part larger than the total", bomb, archive.Limits{MaxTotal: 1 << 20}, "blobs", "zeros", "more than the archive may expand to"},
		{"parts that add up to more than the total", manyArchive, archive.Limits{MaxTotal: 500_000}, "kv", strings.Repeat("k", 100) + "e", "more than the archive may expand to"},
		{"the manifest beyond the total", manyArchive, archive.Limits{MaxTotal: expanded - 1024 - 1000}, "", "", "manifest.json: the archive expands to more than"},
		{"too many parts", manyArchive, archive.Limits{MaxParts: 9}, "", "", "more than 9 parts"},
		{"names longer than the manifest may be", manyArchive, archive.Limits{MaxManifest: 900}, "", "", "names longer"},
		{"manifest too large", manyArchive, archive.Limits{MaxManifest: 1500}, "", "", "manifest.json has"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := open(t, c.input, &archive.OpenOptions{Limits: &c.lim})
			checkRefusal(t, err, archive.ErrLimit, c.section, c.part, c.msg)
		})
	}
	t.Run("within the limits", func(t *testing.T) {
		t.Parallel()
		if _, err := open(t, manyArchive, &archive.OpenOptions{Limits: &archive.Limits{MaxTotal: 1_100_000, MaxParts: 10, MaxManifest: 4096}}); err != nil {
			t.Fatal(err)
		}
	})
}

// Parts are hashed again as they are read from the spool.
func TestSpoolChangedOnDisk(t *testing.T) {
	t.Parallel()
	a, err := open(t, write(t, sampleParts(), nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := archive.SpoolFile(a)
	// The spool holds the parts back to back: byte 0 is schema.sql's.
	if _, err := f.WriteAt([]byte("X"), 0); err != nil {
		t.Fatal(err)
	}
	rc, err := a.Section("sql").Open("schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadAll(rc); !errors.Is(err, archive.ErrCorrupt) || !strings.Contains(err.Error(), "sql/schema.sql") {
		t.Fatalf("reading a part changed on disk: %v", err)
	}
	if _, err := a.Section("sql").Open("nope"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Open of a part the archive does not have: %v", err)
	}
	a.Close()
	if _, err := io.ReadAll(func() io.ReadCloser { rc, _ := a.Section("kv").Open("kv.jsonl"); return rc }()); err == nil {
		t.Fatal("read after Close succeeded")
	}
}

// A failing source is reported as such, not as corruption.
func TestSourceError(t *testing.T) {
	t.Parallel()
	valid := write(t, sampleParts(), nil)
	boom := errors.New("connection reset")
	dir := t.TempDir()
	_, err := archive.Open(io.MultiReader(bytes.NewReader(valid[:len(valid)/2]), errReader{boom}), dir, nil)
	if !errors.Is(err, boom) || errors.Is(err, archive.ErrCorrupt) {
		t.Fatalf("Open from a failing reader: %v", err)
	}
	wantEmpty(t, dir)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
