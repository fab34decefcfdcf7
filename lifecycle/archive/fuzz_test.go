package archive_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/lifecycle/archive"
)

var update = flag.Bool("update", false, "rewrite the seed corpus in testdata/fuzz/FuzzOpen")

// fuzzLimits keep every input small.
var fuzzLimits = &archive.Limits{MaxTotal: 1 << 20, MaxParts: 64, MaxManifest: 64 << 10}

// seeds are the seed corpus in testdata/fuzz/FuzzOpen, with what Open
// must make of each (nil: it opens).
func seeds(t testing.TB) map[string]struct {
	data []byte
	want error
} {
	valid := write(t, []part{
		{"sql", "schema.sql", []byte("CREATE TABLE t (x int);\n")},
		{"blobs", "notes/q3.md", []byte("# Q3\n")},
		{"blobs", "empty", nil},
		{"kv", "kv.jsonl", []byte(`{"k":"a","v":"AAE="}` + "\n")},
	}, nil)
	es := unpack(t, valid)
	lying := editManifest(t, es, func(m *archive.Manifest) { m.Parts[1].SHA256 = strings.Repeat("ab", 32) })
	traversal := slices.Insert(slices.Clone(es), 0, file("parts/blobs/../../../../tmp/evil", []byte("x")))
	manifest := len(es) - 1
	ins := func(i int, e ...entry) []entry { return slices.Insert(slices.Clone(es), i, e...) }
	// More of TestCorruptionIsRefused's attacks, each refused as corrupt.
	attacks := map[string][]entry{
		"symlink":                 ins(0, entry{tar.Header{Typeflag: tar.TypeSymlink, Name: "parts/kv/link", Linkname: "/etc/passwd"}, nil}),
		"hard-link":               ins(0, entry{tar.Header{Typeflag: tar.TypeLink, Name: "parts/kv/link", Linkname: "parts/kv/kv.jsonl"}, nil}),
		"absolute-path":           ins(0, file("/etc/passwd", nil)),
		"outside-parts":           ins(0, file("README.txt", []byte("hi"))),
		"duplicate-entry":         ins(1, es[0]),
		"two-manifests":           append(slices.Clone(es), es[manifest]),
		"manifest-dotdot-name":    editManifest(t, es, func(m *archive.Manifest) { m.Parts[1].Name = "../q3.md" }),
		"manifest-listed-twice":   editManifest(t, es, func(m *archive.Manifest) { m.Parts = append(m.Parts, m.Parts[1]) }),
		"manifest-another-format": editManifest(t, es, func(m *archive.Manifest) { m.Format = "tenantmcp-audit-export" }),
	}
	var raw bytes.Buffer // the valid archive's tar, uncompressed: FuzzOpen compresses it
	io.Copy(&raw, must(gzip.NewReader(bytes.NewReader(valid))))
	out := map[string]struct {
		data []byte
		want error
	}{
		"valid":          {valid, nil},
		"valid-tar":      {raw.Bytes(), nil},
		"truncated":      {valid[:len(valid)*2/3], archive.ErrCorrupt},
		"path-traversal": {pack(t, traversal), archive.ErrCorrupt},
		"lying-hash":     {pack(t, lying), archive.ErrCorrupt},
	}
	for name, es := range attacks {
		out[name] = struct {
			data []byte
			want error
		}{pack(t, es), archive.ErrCorrupt}
	}
	return out
}

// FuzzOpen: Open never panics, fails only with its documented errors,
// writes nothing but its spool in the directory it is given (and leaves
// nothing there), and an archive it accepts reads back as its manifest
// says and survives being written again. Inputs that are not gzip are
// compressed first, so that the fuzzer reaches the tar and manifest
// checks too.
func FuzzOpen(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s.data)
	}
	// One directory for all inputs: a directory per input would cost more
	// than most inputs do.
	parent := f.TempDir()
	dir := filepath.Join(parent, "spool")
	if err := os.Mkdir(dir, 0o700); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		inputs := [][]byte{data}
		if !bytes.HasPrefix(data, []byte{0x1f, 0x8b}) {
			inputs = append(inputs, gz(data))
		}
		for _, in := range inputs {
			a, err := archive.Open(bytes.NewReader(in), dir, &archive.OpenOptions{Limits: fuzzLimits})
			if err != nil {
				if a != nil || !errors.Is(err, archive.ErrCorrupt) && !errors.Is(err, archive.ErrUnsupportedVersion) && !errors.Is(err, archive.ErrLimit) {
					t.Fatalf("Open: %v (archive %v)", err, a)
				}
			} else {
				rewrite(t, a, dir)
				if err := a.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if ents, _ := os.ReadDir(parent); len(ents) != 1 || ents[0].Name() != "spool" {
				t.Fatalf("Open wrote outside its directory: %v", ents)
			}
			wantEmpty(t, dir)
		}
	})
}

// rewrite reads every part of a, checks it against the manifest, writes
// the parts into a new archive and checks that it opens with the same
// parts.
func rewrite(t *testing.T, a *archive.Archive, dir string) {
	m := a.Manifest()
	var buf bytes.Buffer
	w := archive.NewWriter(&buf, archive.Meta{Tenant: m.Tenant, Strategy: m.Strategy, ServerVersion: m.ServerVersion, CreatedAt: m.CreatedAt}, nil)
	for _, s := range m.Sections {
		w.Section(s.Name)
	}
	for _, p := range m.Parts {
		rc, err := a.Section(p.Section).Open(p.Name)
		if err != nil {
			t.Fatalf("%s/%s is in the manifest but: %v", p.Section, p.Name, err)
		}
		pw, err := w.Section(p.Section).Create(p.Name)
		if err != nil {
			t.Fatalf("an accepted part name is refused by the Writer: %v", err)
		}
		if n, err := io.Copy(pw, rc); err != nil || n != p.Size {
			t.Fatalf("%s/%s: read %d bytes (%v), manifest says %d", p.Section, p.Name, n, err, p.Size)
		}
		pw.Close()
	}
	if err := w.Close(); err != nil {
		t.Fatalf("writing an accepted archive again: %v", err)
	}
	b, err := archive.Open(&buf, dir, nil)
	if err != nil {
		t.Fatalf("an accepted archive, written again, is refused: %v", err)
	}
	defer b.Close()
	if !slices.Equal(b.Manifest().Parts, m.Parts) {
		t.Fatalf("parts written again: %+v, want %+v", b.Manifest().Parts, m.Parts)
	}
}

// The seed corpus was made by seeds (go test . -run TestFuzzSeedCorpus
// -update rewrites it), and each seed does what its name says.
func TestFuzzSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzOpen")
	if *update {
		os.MkdirAll(dir, 0o755)
		for name, s := range seeds(t) {
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(s.data)))
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, s := range seeds(t) {
		raw, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("seed %s: %v (go test . -run TestFuzzSeedCorpus -update makes it)", name, err)
		}
		lit, ok := strings.CutPrefix(string(raw), "go test fuzz v1\n[]byte(")
		lit, ok2 := strings.CutSuffix(lit, ")\n")
		data, err := strconv.Unquote(lit)
		if !ok || !ok2 || err != nil {
			t.Fatalf("seed %s is not a corpus file of one []byte", name)
		}
		in := []byte(data)
		if !bytes.HasPrefix(in, []byte{0x1f, 0x8b}) {
			in = gz(in)
		}
		_, err = open(t, in, nil)
		if s.want == nil && err != nil || s.want != nil && !errors.Is(err, s.want) {
			t.Errorf("seed %s: Open: %v, want %v", name, err, s.want)
		}
		if name == "path-traversal" && !strings.Contains(fmt.Sprint(err), "../") ||
			name == "lying-hash" && !strings.Contains(fmt.Sprint(err), "part blobs/notes/q3.md: sha256 mismatch") {
			t.Errorf("seed %s: %v", name, err)
		}
	}
}
