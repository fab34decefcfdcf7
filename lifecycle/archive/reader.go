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
	"io/fs"
	"maps"
	"strings"
	"sync"

	"github.com/tenantmcp/tenantmcp/lifecycle/archive/internal/spool"
	"github.com/tenantmcp/tenantmcp/store"
)

// OpenOptions configure Open. A nil *OpenOptions means defaults.
type OpenOptions struct {
	// Limits bound the archive (see Limits). Nil means the defaults.
	Limits *Limits
	// SHA256 is the archive's expected SHA-256 (lower-case hex), as
	// Writer.Sum gave it when the archive was written. Empty means the
	// archive is checked against its own manifest only; set, any change
	// to the file is refused, also one to the manifest's tenant record.
	SHA256 string
}

// Archive is an opened, fully verified archive: its parts are spooled in
// one temporary file until Close.
type Archive struct {
	man      Manifest
	tempDir  string
	f        *spool.File      // made for the first part
	spooled  int64            // bytes in f
	parts    map[string]entry // by section + "/" + name
	sections map[string][]string
	mu       sync.RWMutex // held for reading by part reads; Close takes it for writing
	closed   bool
}

type entry struct {
	off, size int64
	sum       [sha256.Size]byte
}

// Open reads the whole archive from r, spooling its parts into a
// temporary file in tempDir ("" means os.TempDir()) while hashing them,
// then verifies it: the manifest is the last entry, of a known format
// and version; every part it lists is in the archive with its size and
// SHA-256; no entry is extra or twice in it; the compressed stream is
// intact and, with o.SHA256, the whole file is the one expected. Any
// failure is refused, naming the part where one is at fault (see
// PartError), and nothing is kept. Only one file is ever created, in
// tempDir, and its name never comes from the archive.
func Open(r io.Reader, tempDir string, o *OpenOptions) (*Archive, error) {
	if o == nil {
		o = &OpenOptions{}
	}
	lim := o.Limits.withDefaults()
	whole := sha256.New()
	src := &sourceReader{r: io.TeeReader(r, whole)}
	zr, err := gzip.NewReader(src)
	if err != nil {
		return nil, classify(err, src, nil, "", "not a gzip stream")
	}
	defer zr.Close()
	expanded := &capReader{r: zr, left: lim.MaxTotal, max: lim.MaxTotal}
	a := &Archive{tempDir: tempDir, parts: map[string]entry{}, sections: map[string][]string{}}
	if err := a.read(tar.NewReader(expanded), src, expanded, lim); err != nil {
		a.Close()
		return nil, err
	}
	if o.SHA256 != "" {
		if got := hex.EncodeToString(whole.Sum(nil)); got != o.SHA256 {
			a.Close()
			return nil, kind(ErrCorrupt, "archive: the archive's sha256 is %s, not the expected %s: it was changed after it was written", got, o.SHA256)
		}
	}
	return a, nil
}

// sourceReader remembers an error of the archive's own reader, which is
// not the archive's fault.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(b []byte) (int, error) {
	n, err := s.r.Read(b)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// capReader fails with ErrLimit once more than left bytes were read.
type capReader struct {
	r         io.Reader
	left, max int64
	over      bool
}

func (c *capReader) Read(b []byte) (int, error) {
	if c.left <= 0 {
		// One byte more says whether the stream really goes on.
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n > 0 {
			c.over = true
			return 0, ErrLimit
		}
		return 0, err
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.r.Read(b)
	c.left -= int64(n)
	return n, err
}

// errWriter remembers a write error of the spool, which is not the
// archive's fault either.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	n, err := e.w.Write(b)
	if err != nil {
		e.err = err
	}
	return n, err
}

// classify turns an error met reading the stream at entry at (a part
// "section/name", another entry's name, or "" before the first) into
// Open's error: the source's own failure, ErrLimit, or ErrCorrupt.
func classify(err error, src *sourceReader, expanded *capReader, at, what string) error {
	if src.err != nil {
		return fmt.Errorf("archive: reading the archive: %w", src.err)
	}
	var msg string
	k := ErrCorrupt
	if expanded != nil && (expanded.over || errors.Is(err, ErrLimit)) {
		k, msg = ErrLimit, fmt.Sprintf("the archive expands to more than %d bytes", expanded.max)
	} else {
		msg = fmt.Sprintf("%s: %v", what, err)
	}
	if sec, name, ok := strings.Cut(at, "/"); ok {
		return &PartError{Section: sec, Name: name, Err: kind(k, "%s", msg)}
	}
	if at != "" {
		return kind(k, "archive: %s: %s", at, msg)
	}
	return kind(k, "archive: %s", msg)
}

func (a *Archive) read(tr *tar.Reader, src *sourceReader, expanded *capReader, lim Limits) error {
	var manifest []byte
	var order []string // parts in archive order
	var nameBytes int64
	at := "" // the entry being read, for errors
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			if at == "" {
				return classify(err, src, expanded, "", "cut short or damaged at its start")
			}
			return classify(err, src, expanded, at, "cut short or damaged after this entry")
		}
		if manifest != nil {
			return kind(ErrCorrupt, "archive: entry %q after %s, which must be last", hdr.Name, ManifestName)
		}
		if hdr.Typeflag != tar.TypeReg || sparse(hdr) {
			return kind(ErrCorrupt, "archive: entry %q is not a regular file (type %q)", hdr.Name, hdr.Typeflag)
		}
		if hdr.Name == ManifestName {
			at = ManifestName
			if hdr.Size > lim.MaxManifest {
				return kind(ErrLimit, "archive: %s has %d bytes, more than %d", ManifestName, hdr.Size, lim.MaxManifest)
			}
			var buf bytes.Buffer
			if _, err := io.CopyN(&buf, tr, hdr.Size); err != nil {
				return classify(err, src, expanded, at, "cut short")
			}
			manifest = buf.Bytes()
			continue
		}
		sec, name, ok := splitPartPath(hdr.Name)
		if !ok {
			return kind(ErrCorrupt, "archive: entry %q is neither a part (parts/<section>/<name>) nor %s", hdr.Name, ManifestName)
		}
		key := sec + "/" + name
		if _, dup := a.parts[key]; dup {
			return &PartError{Section: sec, Name: name, Err: kind(ErrCorrupt, "twice in the archive")}
		}
		// The manifest must list every name, so names beyond its limit
		// cannot make a valid archive: this bounds what is held in memory.
		if nameBytes += int64(len(key)); len(a.parts) >= lim.MaxParts || nameBytes > lim.MaxManifest {
			return kind(ErrLimit, "archive: more than %d parts, or names longer than the manifest may be (%d bytes)", lim.MaxParts, lim.MaxManifest)
		}
		if hdr.Size < 0 || hdr.Size > expanded.left {
			return &PartError{Section: sec, Name: name, Err: kind(ErrLimit, "%d bytes, more than the archive may expand to (%d bytes)", hdr.Size, lim.MaxTotal)}
		}
		at = key
		if a.f == nil {
			if a.f, err = spool.Create(a.tempDir); err != nil {
				return fmt.Errorf("archive: spool: %w", err)
			}
		}
		h := sha256.New()
		sw := &errWriter{w: a.f}
		n, err := io.Copy(io.MultiWriter(sw, h), tr)
		switch {
		case sw.err != nil:
			return fmt.Errorf("archive: part %s: spool: %w", key, sw.err)
		case err != nil:
			return classify(err, src, expanded, at, "cut short or damaged")
		case n != hdr.Size:
			return classify(io.ErrUnexpectedEOF, src, expanded, at, "cut short")
		}
		e := entry{off: a.spooled, size: n}
		a.spooled += n
		h.Sum(e.sum[:0])
		a.parts[key] = e
		order = append(order, key)
	}
	// The tar ends with zero blocks; what follows them must be zeros too
	// (tar pads to records) up to the end of the compressed stream, which
	// gzip verifies with its checksum only when read to the end.
	if err := drainZeros(expanded); err != nil {
		return classify(err, src, expanded, at, "damaged after the end of the tar")
	}
	if manifest == nil {
		return kind(ErrCorrupt, "archive: %s is missing: the archive is incomplete", ManifestName)
	}
	return a.check(manifest, order, lim)
}

// sparse reports a GNU or PAX sparse file, whose holes the tar reader
// would expand without reading them.
func sparse(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

func drainZeros(r io.Reader) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		for _, c := range buf[:n] {
			if c != 0 {
				return errors.New("data after the end of the archive")
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// check parses the manifest and compares it with the parts read.
func (a *Archive) check(raw []byte, order []string, lim Limits) error {
	var head struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return kind(ErrCorrupt, "archive: %s is not valid JSON: %v", ManifestName, err)
	}
	if head.Format != Format {
		return kind(ErrCorrupt, "archive: %s names format %q, not %q", ManifestName, head.Format, Format)
	}
	if head.Version != Version {
		return kind(ErrUnsupportedVersion, "archive: %s is format version %d; this build reads version %d", ManifestName, head.Version, Version)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return kind(ErrCorrupt, "archive: %s: %v", ManifestName, err)
	}
	if dec.More() {
		return kind(ErrCorrupt, "archive: %s has data after its JSON object", ManifestName)
	}
	var tenant map[string]json.RawMessage
	if json.Unmarshal(m.Tenant, &tenant) != nil || tenant == nil {
		return kind(ErrCorrupt, "archive: %s: the tenant record is not a JSON object", ManifestName)
	}
	if err := validWord("strategy", m.Strategy); err != nil {
		return kind(ErrCorrupt, "archive: %s: %v", ManifestName, err)
	}
	if len(m.Parts) > lim.MaxParts {
		return kind(ErrLimit, "archive: %s lists more than %d parts", ManifestName, lim.MaxParts)
	}
	sums := map[string]*SectionInfo{}
	for i := range m.Sections {
		s := &m.Sections[i]
		if err := validWord("section", s.Name); err != nil || sums[s.Name] != nil {
			return kind(ErrCorrupt, "archive: %s: section %q is invalid or listed twice", ManifestName, s.Name)
		}
		sums[s.Name] = &SectionInfo{Name: s.Name}
	}
	listed := map[string]bool{}
	for _, p := range m.Parts {
		key := p.Section + "/" + p.Name
		bad := func(format string, args ...any) error {
			return &PartError{Section: p.Section, Name: p.Name, Err: kind(ErrCorrupt, format, args...)}
		}
		if validWord("section", p.Section) != nil || ValidatePartName(p.Name) != nil {
			return kind(ErrCorrupt, "archive: %s lists a part with an invalid name: %q", ManifestName, key)
		}
		if listed[key] {
			return bad("listed twice in %s", ManifestName)
		}
		listed[key] = true
		s := sums[p.Section]
		if s == nil {
			return bad("its section is not in the manifest's sections")
		}
		s.Parts++
		s.Bytes += p.Size
		e, ok := a.parts[key]
		switch {
		case !ok:
			return bad("missing from the archive (%s lists it)", ManifestName)
		case e.size != p.Size:
			return bad("size mismatch: %s says %d bytes, the part has %d", ManifestName, p.Size, e.size)
		case hex.EncodeToString(e.sum[:]) != p.SHA256:
			return bad("sha256 mismatch: %s says %s, the part has %x", ManifestName, p.SHA256, e.sum)
		}
		a.sections[p.Section] = append(a.sections[p.Section], p.Name)
	}
	for _, key := range order {
		if !listed[key] {
			sec, name, _ := strings.Cut(key, "/")
			return &PartError{Section: sec, Name: name, Err: kind(ErrCorrupt, "in the archive but not listed in %s", ManifestName)}
		}
	}
	for _, s := range m.Sections {
		if got := sums[s.Name]; got.Parts != s.Parts || got.Bytes != s.Bytes {
			return kind(ErrCorrupt, "archive: %s: section %s says %d parts of %d bytes, its parts add up to %d of %d",
				ManifestName, s.Name, s.Parts, s.Bytes, got.Parts, got.Bytes)
		}
	}
	a.man = m
	return nil
}

// Manifest returns the archive's manifest.
func (a *Archive) Manifest() Manifest {
	m := a.man
	m.Tenant = bytes.Clone(m.Tenant)
	m.Sections = append([]SectionInfo(nil), m.Sections...)
	for i, s := range m.Sections {
		m.Sections[i].Counts = maps.Clone(s.Counts)
	}
	m.Parts = append([]Part(nil), m.Parts...)
	return m
}

// Section returns the parts of section name, for a backend's Import. A
// section the archive does not have has no parts.
func (a *Archive) Section(name string) store.PartReader {
	return &partReader{a: a, section: name, names: a.sections[name]}
}

// Close removes the spool. Readers of parts fail from then on.
func (a *Archive) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil
	}
	a.closed = true
	if a.f == nil {
		return nil
	}
	return a.f.Close()
}

type partReader struct {
	a       *Archive
	section string
	names   []string
}

func (p *partReader) Names() []string { return append([]string(nil), p.names...) }

// Open returns the part's content. The content is hashed again as it is
// read: a spool changed on disk since Open fails the read at its end.
func (p *partReader) Open(name string) (io.ReadCloser, error) {
	e, ok := p.a.parts[p.section+"/"+name]
	if !ok {
		return nil, fmt.Errorf("archive: part %s/%s: %w", p.section, name, fs.ErrNotExist)
	}
	return &partContent{a: p.a, key: p.section + "/" + name, e: e, h: sha256.New()}, nil
}

// partContent reads one part from the spool.
type partContent struct {
	a   *Archive
	key string
	e   entry
	off int64
	h   hash.Hash
}

func (c *partContent) Read(b []byte) (int, error) {
	if c.off >= c.e.size {
		if !bytes.Equal(c.h.Sum(nil), c.e.sum[:]) {
			return 0, kind(ErrCorrupt, "archive: part %s: the spooled copy changed on disk since it was verified", c.key)
		}
		return 0, io.EOF
	}
	if int64(len(b)) > c.e.size-c.off {
		b = b[:c.e.size-c.off]
	}
	c.a.mu.RLock()
	defer c.a.mu.RUnlock()
	if c.a.closed {
		return 0, fmt.Errorf("archive: part %s: read after the archive was closed", c.key)
	}
	n, err := c.a.f.ReadAt(b, c.e.off+c.off)
	c.off += int64(n)
	c.h.Write(b[:n])
	if err == io.EOF {
		if c.off < c.e.size {
			err = kind(ErrCorrupt, "archive: part %s: the spool is shorter than it was", c.key)
		} else {
			err = nil
		}
	}
	return n, err
}

func (c *partContent) Close() error { return nil }
