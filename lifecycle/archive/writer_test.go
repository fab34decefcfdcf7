package archive_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/lifecycle/archive"
)

func newWriter(t *testing.T, o *archive.WriterOptions) (*archive.Writer, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	return archive.NewWriter(&buf, archive.Meta{Tenant: tenantRecord, Strategy: "rls"}, o), &buf
}

func TestPartNames(t *testing.T) {
	t.Parallel()
	good := []string{"a", "kv.jsonl", "blobs/notes/q3.md", "Plan Q3.md", "日本語/✓", "a..b", ".hidden", "a/.b", "x:y", strings.Repeat("x", archive.MaxPartName)}
	bad := []string{"", "/abs", "a/", "a//b", ".", "..", "../x", "a/../b", "a/./b", "./a", `a\b`, "a\x00b", "a\nb", "a\x7fb", "a\u0085b",
		"\xff", strings.Repeat("x", archive.MaxPartName+1)}
	for _, name := range good {
		if err := archive.ValidatePartName(name); err != nil {
			t.Errorf("ValidatePartName(%q): %v", name, err)
		}
	}
	w, _ := newWriter(t, nil)
	defer w.Close()
	for _, name := range bad {
		if err := archive.ValidatePartName(name); !errors.Is(err, archive.ErrInvalidName) {
			t.Errorf("ValidatePartName(%q): %v, want ErrInvalidName", name, err)
		}
		if _, err := w.Section("kv").Create(name); !errors.Is(err, archive.ErrInvalidName) {
			t.Errorf("Create(%q): %v, want ErrInvalidName", name, err)
		}
	}
	// Refused names do not spoil the Writer.
	pw, err := w.Section("kv").Create("fine")
	if err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestWriterMisuse(t *testing.T) {
	t.Parallel()
	t.Run("twice the same name", func(t *testing.T) {
		w, _ := newWriter(t, nil)
		defer w.Close()
		pw, _ := w.Section("kv").Create("a")
		pw.Close()
		if _, err := w.Section("kv").Create("a"); !errors.Is(err, archive.ErrInvalidName) {
			t.Fatalf("second Create of a name: %v", err)
		}
		// The same name in another section is another part.
		if pw, err := w.Section("blobs").Create("a"); err != nil {
			t.Fatal(err)
		} else {
			pw.Close()
		}
	})
	t.Run("create while a part is open", func(t *testing.T) {
		w, _ := newWriter(t, nil)
		defer w.Close()
		pw, _ := w.Section("kv").Create("a")
		if _, err := w.Section("blobs").Create("b"); err == nil || !strings.Contains(err.Error(), "kv/a is still open") {
			t.Fatalf("Create while kv/a is open: %v", err)
		}
		pw.Close()
		if pw.Close() != nil {
			t.Fatal("a second Close of a part failed")
		}
		if _, err := pw.Write([]byte("x")); err == nil {
			t.Fatal("Write after Close succeeded")
		}
	})
	t.Run("close with a part open", func(t *testing.T) {
		w, buf := newWriter(t, nil)
		w.Section("kv").Create("a")
		if err := w.Close(); err == nil || !strings.Contains(err.Error(), "kv/a is still open") {
			t.Fatalf("Close with an open part: %v", err)
		}
		if _, err := open(t, buf.Bytes(), nil); err == nil {
			t.Fatal("the output of a failed Close opens")
		}
	})
	for _, sec := range []string{"", "Blobs", "a/b", "../x", "9lives", strings.Repeat("s", 65)} {
		t.Run("section "+sec, func(t *testing.T) {
			w, _ := newWriter(t, nil)
			if _, err := w.Section(sec).Create("a"); !errors.Is(err, archive.ErrInvalidName) {
				t.Fatalf("Create in section %q: %v", sec, err)
			}
			if err := w.Close(); !errors.Is(err, archive.ErrInvalidName) {
				t.Fatalf("Close after section %q: %v", sec, err)
			}
		})
	}
	t.Run("count name", func(t *testing.T) {
		w, _ := newWriter(t, nil)
		w.Count("kv", "Keys!", 1)
		if err := w.Close(); !errors.Is(err, archive.ErrInvalidName) {
			t.Fatalf("Close after a bad count name: %v", err)
		}
	})
	t.Run("after close", func(t *testing.T) {
		w, _ := newWriter(t, nil)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Section("kv").Create("a"); err == nil {
			t.Fatal("Create after Close succeeded")
		}
		if err := w.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}

func TestWriterMeta(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		meta archive.Meta
		msg  string
	}{
		{"no tenant", archive.Meta{Strategy: "rls"}, "Meta.Tenant"},
		{"tenant not an object", archive.Meta{Tenant: json.RawMessage(`["x"]`), Strategy: "rls"}, "Meta.Tenant"},
		{"tenant not JSON", archive.Meta{Tenant: json.RawMessage(`{`), Strategy: "rls"}, "Meta.Tenant"},
		{"no strategy", archive.Meta{Tenant: tenantRecord}, "Meta.Strategy"},
		{"bad strategy", archive.Meta{Tenant: tenantRecord, Strategy: "RLS please"}, "Meta.Strategy"},
		{"bad server version", archive.Meta{Tenant: tenantRecord, Strategy: "rls", ServerVersion: "\xff"}, "Meta.ServerVersion"},
		{"bad count section", archive.Meta{Tenant: tenantRecord, Strategy: "rls", Counts: map[string]map[string]int64{"A": {"rows": 1}}}, "section"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			w := archive.NewWriter(&buf, c.meta, nil)
			if err := w.Close(); err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("Close: %v, want an error about %s", err, c.msg)
			}
		})
	}
}

func TestWriterLimits(t *testing.T) {
	t.Parallel()
	t.Run("parts", func(t *testing.T) {
		w, _ := newWriter(t, &archive.WriterOptions{Limits: &archive.Limits{MaxParts: 2}})
		for _, name := range []string{"a", "b"} {
			pw, _ := w.Section("kv").Create(name)
			pw.Close()
		}
		if _, err := w.Section("kv").Create("c"); !errors.Is(err, archive.ErrLimit) {
			t.Fatalf("third part: %v", err)
		}
		if err := w.Close(); !errors.Is(err, archive.ErrLimit) {
			t.Fatalf("Close: %v", err)
		}
	})
	t.Run("total", func(t *testing.T) {
		dir := t.TempDir()
		w, _ := newWriter(t, &archive.WriterOptions{TempDir: dir, SpillThreshold: 1000, Limits: &archive.Limits{MaxTotal: 200_000}})
		pw, _ := w.Section("blobs").Create("big")
		_, err := io.Copy(pw, bytes.NewReader(make([]byte, 300_000)))
		if !errors.Is(err, archive.ErrLimit) {
			t.Fatalf("writing past the total: %v", err)
		}
		pw.Close()
		if err := w.Close(); !errors.Is(err, archive.ErrLimit) {
			t.Fatalf("Close: %v", err)
		}
		wantEmpty(t, dir)
	})
	t.Run("manifest", func(t *testing.T) {
		w, _ := newWriter(t, &archive.WriterOptions{Limits: &archive.Limits{MaxManifest: 1000}})
		var err error
		for i := 0; err == nil && i < 10; i++ {
			var pw io.WriteCloser
			if pw, err = w.Section("kv").Create(strings.Repeat("k", 100) + string(rune('a'+i))); err == nil {
				pw.Close()
			}
		}
		if !errors.Is(err, archive.ErrLimit) {
			t.Fatalf("ten parts of long names with a 1000-byte manifest: %v", err)
		}
		w.Close()
	})
}

// failWriter fails after n bytes.
type failWriter struct{ n int }

func (f *failWriter) Write(b []byte) (int, error) {
	if len(b) > f.n {
		return 0, errors.New("no space left on device")
	}
	f.n -= len(b)
	return len(b), nil
}

// A failing destination fails the Writer for good, and the spool is
// removed all the same.
func TestWriterDestinationFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w := archive.NewWriter(&failWriter{n: 1000}, archive.Meta{Tenant: tenantRecord, Strategy: "rls"}, &archive.WriterOptions{TempDir: dir, SpillThreshold: 100})
	var err error
	for i := 0; err == nil && i < 20; i++ {
		var pw io.WriteCloser
		if pw, err = w.Section("blobs").Create(string(rune('a' + i))); err == nil {
			pw.Write(random(50_000, uint64(i)))
			err = pw.Close()
		}
	}
	if err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("writing 1 MB into 1000 bytes: %v", err)
	}
	if _, err2 := w.Section("blobs").Create("later"); err2 == nil {
		t.Fatal("Create after a failure succeeded")
	}
	if err := w.Close(); err == nil {
		t.Fatal("Close after a failure succeeded")
	}
	wantEmpty(t, dir)
}

// An aborted archive is refused by Open (it is an unfinished gzip
// stream), and its spool is released.
func TestWriterAbort(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	w, buf := newWriter(t, &archive.WriterOptions{TempDir: dir, SpillThreshold: 100})
	pw, _ := w.Section("blobs").Create("a")
	pw.Write(random(10_000, 4))
	pw.Close()
	pw, _ = w.Section("blobs").Create("b") // the export failed while writing b
	pw.Write(random(10_000, 5))
	w.Abort()
	wantEmpty(t, dir)
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "aborted") {
		t.Fatalf("Close after Abort: %v", err)
	}
	_, err := open(t, buf.Bytes(), nil)
	checkRefusal(t, err, archive.ErrCorrupt, "", "", "cut short")
	w.Abort() // a second Abort does nothing
}
