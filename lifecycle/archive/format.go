package archive

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The archive format (docs/archive-format.md describes it for customers):
// a gzip-compressed tar whose entries are
//
//	parts/<section>/<part name>   one regular file per part, in the order written
//	manifest.json                 last: the Manifest, as indented JSON
const (
	// Format names the format in the manifest.
	Format = "tenantmcp-tenant-archive"
	// Version is the format version this package writes and reads.
	Version = 1
	// ManifestName is the manifest's tar entry, always the last one.
	ManifestName = "manifest.json"
	// PartsDir is the tar directory that holds the parts.
	PartsDir = "parts/"
)

// Name limits that no option changes.
const (
	MaxPartName    = 1024 // bytes of a part name (without "parts/<section>/")
	MaxSectionName = 64   // bytes of a section name, a count name or a strategy
)

// Limits bound what Open accepts: everything in an archive is under the
// control of whoever hands it over. A Writer keeps to the same limits, so
// an archive it writes with the defaults opens with them. Zero fields mean
// the defaults.
type Limits struct {
	// MaxTotal is the most bytes the archive may expand to (the tar stream
	// after decompression: parts, headers and manifest). It bounds the
	// spool on disk, so a gzip bomb cannot fill it. Zero means 64 GiB.
	MaxTotal int64
	// MaxParts is the most parts an archive may hold. Zero means 1,000,000.
	MaxParts int
	// MaxManifest is the largest manifest, in bytes; the manifest is held
	// in memory. Zero means 512 MiB.
	MaxManifest int64
}

// Default limits.
const (
	DefaultMaxTotal    = 64 << 30
	DefaultMaxParts    = 1_000_000
	DefaultMaxManifest = 512 << 20
)

func (l *Limits) withDefaults() Limits {
	var v Limits
	if l != nil {
		v = *l
	}
	if v.MaxTotal <= 0 {
		v.MaxTotal = DefaultMaxTotal
	}
	if v.MaxParts <= 0 {
		v.MaxParts = DefaultMaxParts
	}
	if v.MaxManifest <= 0 {
		v.MaxManifest = DefaultMaxManifest
	}
	return v
}

// Errors. Every refusal of Open wraps ErrCorrupt, ErrUnsupportedVersion or
// ErrLimit; one that concerns a part is a *PartError as well.
var (
	// ErrCorrupt: the archive is not intact — a part's size or SHA-256
	// differs from the manifest, a part is missing, extra or twice in it,
	// the manifest is missing, malformed or not last, the compressed
	// stream is damaged or cut short, or the archive's own SHA-256 is not
	// the expected one.
	ErrCorrupt = errors.New("archive: corrupt archive")
	// ErrUnsupportedVersion: the manifest names a format version this
	// build does not read.
	ErrUnsupportedVersion = errors.New("archive: unsupported archive format version")
	// ErrLimit: the archive (or one being written) exceeds a Limits bound.
	ErrLimit = errors.New("archive: the archive exceeds a size limit")
	// ErrInvalidName: a section, part or store name that this package
	// does not accept.
	ErrInvalidName = errors.New("archive: invalid name")
)

// PartError is a refusal that concerns one part; Open's errors name the
// failing part through it ("archive: part blobs/notes/q3.md: sha256
// mismatch: ...").
type PartError struct {
	Section, Name string
	Err           error // is ErrCorrupt or ErrLimit
}

func (e *PartError) Error() string {
	return "archive: part " + e.Section + "/" + e.Name + ": " + e.Err.Error()
}

func (e *PartError) Unwrap() error { return e.Err }

// kindError is an error with its own message that errors.Is matches to
// one of the sentinels, so that messages do not repeat the sentinel's
// text.
type kindError struct {
	kind error
	msg  string
}

func (e *kindError) Error() string        { return e.msg }
func (e *kindError) Is(target error) bool { return target == e.kind }

func kind(k error, format string, args ...any) error {
	return &kindError{kind: k, msg: fmt.Sprintf(format, args...)}
}

// Manifest describes an archive: who and what it holds, and the size and
// SHA-256 of every part.
type Manifest struct {
	Format        string    `json:"format"`
	Version       int       `json:"version"`
	CreatedAt     time.Time `json:"created_at"`
	ServerVersion string    `json:"server_version"`
	Strategy      string    `json:"strategy"`
	// Tenant is the tenant's registry record, as the Writer's caller gave it.
	Tenant   json.RawMessage `json:"tenant"`
	Sections []SectionInfo   `json:"sections"`
	// Parts are in the order they were written, which is the order of the
	// tar entries and of each section's Names.
	Parts []Part `json:"parts"`
}

// SectionInfo sums up one section: how many parts and bytes it holds, and
// the counts its caller recorded (rows, keys, events, ...).
type SectionInfo struct {
	Name   string           `json:"name"`
	Parts  int              `json:"parts"`
	Bytes  int64            `json:"bytes"`
	Counts map[string]int64 `json:"counts,omitempty"`
}

// Part is one part in the manifest; its tar entry is
// "parts/<Section>/<Name>".
type Part struct {
	Section string `json:"section"`
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"` // lower-case hex
}

// Path is the part's tar entry name.
func (p Part) Path() string { return PartsDir + p.Section + "/" + p.Name }

// validWord checks a section name, a count name or a strategy: 1 to
// MaxSectionName bytes of a-z 0-9 _ -, starting with a letter.
func validWord(what, s string) error {
	ok := s != "" && len(s) <= MaxSectionName && s[0] >= 'a' && s[0] <= 'z'
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-'
	}
	if !ok {
		return kind(ErrInvalidName, "archive: invalid %s %q: want 1 to %d characters a-z 0-9 _ -, starting with a letter", what, s, MaxSectionName)
	}
	return nil
}

// ValidatePartName reports whether name is acceptable as a part name:
// 1 to MaxPartName bytes of UTF-8, relative, slash-separated segments that
// are not empty, "." or "..", and no backslash or control character.
// Errors are ErrInvalidName.
func ValidatePartName(name string) error {
	if name == "" || len(name) > MaxPartName {
		return kind(ErrInvalidName, "archive: invalid part name of %d bytes: want 1 to %d", len(name), MaxPartName)
	}
	if !utf8.ValidString(name) {
		return kind(ErrInvalidName, "archive: invalid part name %q: not UTF-8", name)
	}
	for _, r := range name {
		if r == '\\' || unicode.IsControl(r) {
			return kind(ErrInvalidName, "archive: invalid part name %q: contains %U", name, r)
		}
	}
	for seg := range strings.SplitSeq(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return kind(ErrInvalidName, "archive: invalid part name %q: an empty, \".\" or \"..\" segment (or a leading or trailing '/')", name)
		}
	}
	return nil
}

// splitPartPath splits a tar entry name "parts/<section>/<name>".
func splitPartPath(p string) (section, name string, ok bool) {
	rest, found := strings.CutPrefix(p, PartsDir)
	if !found {
		return "", "", false
	}
	section, name, found = strings.Cut(rest, "/")
	if !found || validWord("section", section) != nil || ValidatePartName(name) != nil {
		return "", "", false
	}
	return section, name, true
}
