// Package archive is the tenant archive: all of one tenant's data — the
// parts each backend exports (store.Portable), its tenant record, the
// isolation strategy, counts, and the SHA-256 of every part — in one
// gzip-compressed tar with a manifest, which a customer can inspect with
// tar and sha256sum (docs/archive-format.md); and the archive store that
// keeps archives (DirStore on a filesystem, s3archive on S3).
//
// Writing: a Writer gives each backend a store.PartWriter per section and
// writes the manifest last, so parts stream out without being held.
//
//	w := archive.NewWriter(file, archive.Meta{Tenant: record, Strategy: "rls"}, nil)
//	if err := blobs.Export(ctx, id, w.Section("blobs")); err != nil {
//		w.Abort() // not Close, which would finish a valid archive of half the data
//		return err
//	}
//	if err := w.Close(); err != nil { ... }
//	size, sum := w.Sum() // record it: OpenOptions.SHA256 checks it on restore
//
// Reading: Open reads the whole archive into a spool, verifies every part
// against the manifest and refuses anything else — naming the part where
// one is at fault — before a single part can be imported.
//
//	a, err := archive.Open(rc, tempDir, &archive.OpenOptions{SHA256: sum})
//	if err != nil { return err } // e.g. "archive: part blobs/notes/q3.md: sha256 mismatch: ..."
//	defer a.Close()
//	err = blobs.Import(ctx, newID, a.Section("blobs"))
//
// Everything in an archive is treated as hostile: sizes, part counts,
// the manifest and names are bounded (Limits), so a gzip bomb cannot
// fill the disk, and the spool is one temporary file whose name never
// comes from the archive.
package archive
