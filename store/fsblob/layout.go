package fsblob

import (
	"strings"
)

// On-disk layout of a tenant's objects, under <root>/<tenant id>/:
//
// A key is split at "/" into segments. Each segment is escaped: the bytes
// a-z, 0-9, '-', '_' and '.' are kept, every other byte (upper-case
// letters, non-ASCII, punctuation, '%') becomes "%xx" with lower-case hex.
// Names on disk are therefore plain lower-case ASCII, which keeps keys
// apart on case-insensitive or normalising file systems (macOS, Windows)
// and stops anything from being read as a path separator.
//
// Every segment but the last is a directory named <escaped>.d; the last is
// a file named <escaped>.o. So "dir" (dir.o) and "dir/a" (dir.d/a.o)
// coexist. An escaped segment longer than 200 bytes is cut into 200-byte
// chunks; all but the last become directories named <chunk>.c. Temporary
// files are named tmp-<random>.t and never collide with an object.
// Anything else found on disk is ignored.
const (
	dirSuffix   = ".d"
	objSuffix   = ".o"
	chunkSuffix = ".c"
	tmpSuffix   = ".t"
	maxChunk    = 200
)

const hexDigits = "0123456789abcdef"

func keep(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
}

// escape encodes one key segment.
func escape(seg string) string {
	n := 0
	for i := 0; i < len(seg); i++ {
		if !keep(seg[i]) {
			n++
		}
	}
	if n == 0 {
		return seg
	}
	var b strings.Builder
	b.Grow(len(seg) + 2*n)
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		if keep(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// unescape decodes an escaped segment; ok is false for text escape never
// produces.
func unescape(s string) (seg string, ok bool) {
	if !strings.Contains(s, "%") {
		for i := 0; i < len(s); i++ {
			if !keep(s[i]) {
				return "", false
			}
		}
		return s, true
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case keep(c):
			b = append(b, c)
		case c == '%' && i+2 < len(s):
			hi, lo := strings.IndexByte(hexDigits, s[i+1]), strings.IndexByte(hexDigits, s[i+2])
			if hi < 0 || lo < 0 {
				return "", false
			}
			b = append(b, byte(hi<<4|lo))
			i += 2
		default:
			return "", false
		}
	}
	return string(b), true
}

// segmentNames returns the path components for one escaped segment with
// its final suffix (dirSuffix or objSuffix).
func segmentNames(dst []string, esc, suffix string) []string {
	for len(esc) > maxChunk {
		dst = append(dst, esc[:maxChunk]+chunkSuffix)
		esc = esc[maxChunk:]
	}
	return append(dst, esc+suffix)
}

// objectPath returns the slash-separated path of key's file relative to
// the tenant directory. key must have passed store.ValidateKey.
func objectPath(key string) string {
	var parts []string
	for {
		i := strings.IndexByte(key, '/')
		if i < 0 {
			parts = segmentNames(parts, escape(key), objSuffix)
			break
		}
		parts = segmentNames(parts, escape(key[:i]), dirSuffix)
		key = key[i+1:]
	}
	return strings.Join(parts, "/")
}

// dirPath returns the directory that holds the objects under the complete
// segments segs ("" for the tenant directory itself).
func dirPath(segs []string) string {
	var parts []string
	for _, s := range segs {
		parts = segmentNames(parts, escape(s), dirSuffix)
	}
	return strings.Join(parts, "/")
}

// parent returns the directory part of a slash-separated path ("" for
// the top).
func parent(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ""
	}
	return p[:i]
}
