package archive

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/tenantmcp/tenantmcp/lifecycle/archive/internal/spool"
	"github.com/tenantmcp/tenantmcp/store"
)

// Meta is what an archive says about itself, besides its parts.
type Meta struct {
	// Tenant is the tenant's registry record as JSON (a marshalled
	// registry.Tenant). Required; it must be a JSON object.
	Tenant json.RawMessage
	// Strategy is the isolation strategy the data was exported from
	// ("rls", "schema", "sqlite", ...). Required: a-z 0-9 _ -.
	Strategy string
	// ServerVersion is the version of the server that wrote the archive.
	// Empty means "dev".
	ServerVersion string
	// CreatedAt is when the archive was made. Zero means now. It is kept
	// in UTC to the second, which is also every tar entry's time.
	CreatedAt time.Time
	// Counts are per section counts (section → what → n, for example
	// "sql" → "rows" → 1200) known before the export; Writer.Count adds
	// to them. A section named here appears in the manifest even if it
	// was never written to.
	Counts map[string]map[string]int64
}

// WriterOptions configure NewWriter. A nil *WriterOptions means defaults.
type WriterOptions struct {
	// TempDir is where parts larger than SpillThreshold are spooled before
	// they go into the tar (which needs each size up front). Empty means
	// os.TempDir().
	TempDir string
	// SpillThreshold is the largest part kept in memory. Zero means 1 MiB.
	SpillThreshold int
	// Limits are the bounds the written archive must keep to (see
	// Limits); a part or a manifest beyond them fails with ErrLimit.
	Limits *Limits
}

// DefaultSpillThreshold is the largest part a Writer keeps in memory.
const DefaultSpillThreshold = 1 << 20

// Writer writes one archive. Sections give each backend a
// store.PartWriter; Close writes the manifest. Parts are written one at a
// time (each closed before the next is created); a Writer is not safe for
// concurrent use. After any error the Writer refuses everything else and
// its output is unusable; Close must still be called to release the spool.
type Writer struct {
	out   *countWriter // compressed bytes, hashed
	gz    *gzip.Writer
	tsize *countWriter // the tar stream (the expanded size Open limits)
	tw    *tar.Writer

	meta      Meta
	tempDir   string
	threshold int
	lim       Limits

	sections map[string]*section
	parts    []Part
	open     *partWriter
	spill    *spool.File // reused by every part that outgrows memory
	manifest int64       // running estimate of the manifest size
	err      error       // sticky
	closed   bool
}

type section struct {
	w      *Writer
	name   string
	names  map[string]bool
	parts  int
	bytes  int64
	counts map[string]int64
}

// NewWriter returns a Writer that writes an archive described by m to w.
// m is checked by Close, which fails if it is incomplete.
func NewWriter(w io.Writer, m Meta, o *WriterOptions) *Writer {
	if o == nil {
		o = &WriterOptions{}
	}
	if m.CreatedAt.IsZero() {
		m.CreatedAt = time.Now()
	}
	m.CreatedAt = m.CreatedAt.UTC().Truncate(time.Second)
	if m.ServerVersion == "" {
		m.ServerVersion = "dev"
	}
	a := &Writer{
		out:       &countWriter{w: w, h: sha256.New()},
		meta:      m,
		tempDir:   o.TempDir,
		threshold: o.SpillThreshold,
		lim:       o.Limits.withDefaults(),
		sections:  map[string]*section{},
	}
	if a.threshold <= 0 {
		a.threshold = DefaultSpillThreshold
	}
	a.gz, _ = gzip.NewWriterLevel(a.out, gzip.DefaultCompression)
	a.gz.ModTime = m.CreatedAt
	a.tsize = &countWriter{w: a.gz}
	a.tw = tar.NewWriter(a.tsize)
	for name, counts := range m.Counts {
		s := a.section(name)
		for what, n := range counts {
			s.count(what, n)
		}
	}
	return a
}

func (a *Writer) fail(err error) error {
	if a.err == nil {
		a.err = err
	}
	return a.err
}

func (a *Writer) section(name string) *section {
	s := a.sections[name]
	if s == nil {
		if err := validWord("section", name); err != nil {
			a.fail(err)
		}
		s = &section{w: a, name: name, names: map[string]bool{}, counts: map[string]int64{}}
		a.sections[name] = s
	}
	return s
}

func (s *section) count(what string, n int64) {
	if err := validWord("count", what); err != nil {
		s.w.fail(err)
		return
	}
	s.counts[what] += n
}

// Section returns the PartWriter for section name (a-z 0-9 _ -, for
// example "sql", "blobs", "kv", "audit"), which appears in the manifest
// even if no part is written to it. Parts are stored under
// "parts/<name>/". Calling it again with the same name returns a writer
// of the same section. An invalid name fails every Create and Close.
func (a *Writer) Section(name string) store.PartWriter { return a.section(name) }

// Count adds n to the count what (a-z 0-9 _ -) of section, for counts
// known only once the export ran.
func (a *Writer) Count(sectionName, what string, n int64) {
	a.section(sectionName).count(what, n)
}

// Create starts part name of the section: the returned writer spools what
// is written, and its Close puts the part into the archive.
func (s *section) Create(name string) (io.WriteCloser, error) {
	a := s.w
	switch {
	case a.err != nil:
		return nil, a.err
	case a.closed:
		return nil, errors.New("archive: Create after Close")
	case a.open != nil:
		return nil, fmt.Errorf("archive: part %s/%s is still open: close it before creating %s", a.open.s.name, a.open.name, name)
	}
	if err := ValidatePartName(name); err != nil {
		return nil, err
	}
	if s.names[name] {
		return nil, kind(ErrInvalidName, "archive: part %s/%s is written twice", s.name, name)
	}
	if len(a.parts) >= a.lim.MaxParts {
		return nil, a.fail(kind(ErrLimit, "archive: more than %d parts", a.lim.MaxParts))
	}
	// Each manifest entry takes its names and about 150 bytes of JSON.
	a.manifest += int64(len(s.name)+len(name)) + 150
	if a.manifest > a.lim.MaxManifest {
		return nil, a.fail(kind(ErrLimit, "archive: the manifest would exceed %d bytes", a.lim.MaxManifest))
	}
	s.names[name] = true
	p := &partWriter{s: s, name: name, h: sha256.New()}
	a.open = p
	return p, nil
}

// partWriter spools one part: in memory up to the threshold, then in the
// Writer's spill file.
type partWriter struct {
	s    *section
	name string
	h    hash.Hash
	buf  bytes.Buffer
	file *spool.File // the spill file once the part outgrew memory
	n    int64
	done bool
}

func (p *partWriter) Write(b []byte) (int, error) {
	a := p.s.w
	if p.done {
		return 0, fmt.Errorf("archive: part %s/%s: write after Close", p.s.name, p.name)
	}
	if a.err != nil {
		return 0, a.err
	}
	// Headers and the manifest come on top of the parts; keep 64 KiB for
	// them so the check here rarely leaves it to Close.
	if a.tsize.n+p.n+int64(len(b))+64<<10 > a.lim.MaxTotal {
		return 0, a.fail(kind(ErrLimit, "archive: part %s/%s: the archive would expand to more than %d bytes", p.s.name, p.name, a.lim.MaxTotal))
	}
	if p.file == nil && p.buf.Len()+len(b) > a.threshold {
		f, err := a.spillFile()
		if err != nil {
			return 0, a.fail(fmt.Errorf("archive: part %s/%s: spool: %w", p.s.name, p.name, err))
		}
		if _, err := f.Write(p.buf.Bytes()); err != nil {
			return 0, a.fail(fmt.Errorf("archive: part %s/%s: spool: %w", p.s.name, p.name, err))
		}
		p.file = f
		p.buf = bytes.Buffer{}
	}
	var err error
	if p.file != nil {
		_, err = p.file.Write(b)
	} else {
		p.buf.Write(b)
	}
	if err != nil {
		return 0, a.fail(fmt.Errorf("archive: part %s/%s: spool: %w", p.s.name, p.name, err))
	}
	p.h.Write(b)
	p.n += int64(len(b))
	return len(b), nil
}

// spillFile returns the spill file, empty and at offset 0.
func (a *Writer) spillFile() (*spool.File, error) {
	if a.spill == nil {
		f, err := spool.Create(a.tempDir)
		if err != nil {
			return nil, err
		}
		a.spill = f
		return f, nil
	}
	if err := a.spill.Truncate(0); err != nil {
		return nil, err
	}
	_, err := a.spill.Seek(0, io.SeekStart)
	return a.spill, err
}

// Close puts the part into the archive. A second Close does nothing.
func (p *partWriter) Close() error {
	if p.done {
		return nil
	}
	p.done = true
	a := p.s.w
	a.open = nil
	if a.err != nil {
		return a.err
	}
	if a.closed {
		return errors.New("archive: part closed after the Writer")
	}
	part := Part{Section: p.s.name, Name: p.name, Size: p.n, SHA256: hex.EncodeToString(p.h.Sum(nil))}
	if err := a.tw.WriteHeader(a.header(part.Path(), p.n)); err != nil {
		return a.fail(fmt.Errorf("archive: part %s/%s: %w", p.s.name, p.name, err))
	}
	var src io.Reader = &p.buf
	if p.file != nil {
		if _, err := p.file.Seek(0, io.SeekStart); err != nil {
			return a.fail(fmt.Errorf("archive: part %s/%s: spool: %w", p.s.name, p.name, err))
		}
		src = p.file
	}
	if _, err := io.CopyN(a.tw, src, p.n); err != nil {
		return a.fail(fmt.Errorf("archive: part %s/%s: %w", p.s.name, p.name, err))
	}
	p.buf = bytes.Buffer{}
	a.parts = append(a.parts, part)
	p.s.parts++
	p.s.bytes += p.n
	return nil
}

func (a *Writer) header(name string, size int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o600, ModTime: a.meta.CreatedAt}
}

// Close writes the manifest as the last entry and finishes the
// compressed stream; it does not close the io.Writer given to NewWriter.
// It fails, writing no manifest, if a part is still open or the Meta is
// incomplete. It releases the spool in every case; a second Close returns
// the first one's result.
func (a *Writer) Close() error {
	if a.closed {
		return a.err
	}
	a.closed = true
	if a.spill != nil {
		if err := a.spill.Close(); err != nil {
			a.fail(fmt.Errorf("archive: spool: %w", err))
		}
		a.spill = nil
	}
	if a.err != nil {
		return a.err
	}
	if a.open != nil {
		return a.fail(fmt.Errorf("archive: part %s/%s is still open at Close", a.open.s.name, a.open.name))
	}
	m, err := a.manifestJSON()
	if err != nil {
		return a.fail(err)
	}
	if int64(len(m)) > a.lim.MaxManifest {
		return a.fail(kind(ErrLimit, "archive: the manifest has %d bytes, more than %d", len(m), a.lim.MaxManifest))
	}
	if err := a.tw.WriteHeader(a.header(ManifestName, int64(len(m)))); err != nil {
		return a.fail(fmt.Errorf("archive: manifest: %w", err))
	}
	if _, err := a.tw.Write(m); err != nil {
		return a.fail(fmt.Errorf("archive: manifest: %w", err))
	}
	if err := a.tw.Close(); err != nil {
		return a.fail(fmt.Errorf("archive: %w", err))
	}
	if err := a.gz.Close(); err != nil {
		return a.fail(fmt.Errorf("archive: %w", err))
	}
	if a.tsize.n > a.lim.MaxTotal {
		return a.fail(kind(ErrLimit, "archive: the archive expands to %d bytes, more than %d", a.tsize.n, a.lim.MaxTotal))
	}
	return nil
}

// Abort gives up the archive: it releases the spool and writes nothing
// more, so the output stays an unfinished gzip stream that Open refuses.
// Call it instead of Close when an export failed: Close would finish a
// valid archive of whatever was written. After Close it does nothing.
func (a *Writer) Abort() {
	if a.closed {
		return
	}
	a.fail(errors.New("archive: the archive was aborted"))
	a.Close()
}

func (a *Writer) manifestJSON() ([]byte, error) {
	m := a.meta
	var obj map[string]json.RawMessage
	if len(m.Tenant) == 0 || json.Unmarshal(m.Tenant, &obj) != nil || obj == nil {
		return nil, errors.New("archive: Meta.Tenant must be the tenant's registry record as a JSON object")
	}
	if err := validWord("strategy", m.Strategy); err != nil {
		return nil, fmt.Errorf("%w (Meta.Strategy)", err)
	}
	if !utf8.ValidString(m.ServerVersion) || len(m.ServerVersion) > 256 {
		return nil, fmt.Errorf("archive: Meta.ServerVersion %q: want at most 256 bytes of UTF-8", m.ServerVersion)
	}
	man := Manifest{
		Format: Format, Version: Version, CreatedAt: m.CreatedAt, ServerVersion: m.ServerVersion,
		Strategy: m.Strategy, Tenant: m.Tenant, Sections: []SectionInfo{}, Parts: a.parts,
	}
	if man.Parts == nil {
		man.Parts = []Part{}
	}
	for _, name := range slices.Sorted(maps.Keys(a.sections)) {
		s := a.sections[name]
		info := SectionInfo{Name: name, Parts: s.parts, Bytes: s.bytes}
		if len(s.counts) > 0 {
			info.Counts = s.counts
		}
		man.Sections = append(man.Sections, info)
	}
	b, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("archive: manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// Sum returns the size and SHA-256 (lower-case hex) of the compressed
// archive written so far: after a successful Close, of the whole archive.
// Recorded with the archive, it lets OpenOptions.SHA256 detect any change
// to it, the manifest's tenant record included.
func (a *Writer) Sum() (size int64, sha256 string) {
	return a.out.n, hex.EncodeToString(a.out.h.Sum(nil))
}

// countWriter counts (and, with h, hashes) what passes through it.
type countWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	if c.h != nil {
		c.h.Write(b[:n])
	}
	c.n += int64(n)
	return n, err
}
