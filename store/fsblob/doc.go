// Package fsblob is the filesystem blob backend: each tenant's objects
// live in their own directory, <root>/<internal id>/, and every access goes
// through an os.Root opened on that directory, so no key and no symbolic
// link planted on disk can reach outside it (os.Root refuses absolute
// links and links that leave the directory).
//
//	blobs, err := fsblob.Open("/var/lib/tenantmcp/blobs", nil)
//	if err != nil { return err }
//	defer blobs.Close()
//	set := &store.Set{Blobs: blobs}
//
// Writes are atomic: data goes to a temporary file in the target
// directory, is fsynced, then renamed over the object, and the directory
// is fsynced; a failed or cancelled Put leaves the old object (or none)
// and no partial file. Readers see the old or the new value, never a mix.
//
// Keys map to paths segment by segment. Bytes other than a-z 0-9 - _ .
// are written as %xx (lower-case hex), so names on disk are lower-case
// ASCII and stay distinct on case-insensitive file systems. Intermediate
// segments are directories "<segment>.d", the last is a file
// "<segment>.o": "docs/Plan Q3.md" is docs.d/%50lan%20%513.md.o, and
// "dir" and "dir/a" coexist as dir.o and dir.d/a.o. Escaped segments
// longer than 200 bytes are split into "<chunk>.c" directories. List
// walks only the tenant's directory, never follows links, decodes names
// back to keys and sorts them; files it did not write are ignored.
//
// The Store is a store.Portable. Export writes one part per object,
// "blobs/<key>" (PartPrefix + key) holding its bytes, in key order,
// streamed from disk; the same layout as s3blob's, so an export of one
// restores into the other. Import writes the parts into a staging
// directory <root>/<id>.import-<random>.t, fsyncs it and renames it to
// the tenant's directory, so a tenant gets the whole import or nothing.
// Purge removes the tenant's directory (links in it are removed, not
// followed) and any staging directory a crash left.
package fsblob
