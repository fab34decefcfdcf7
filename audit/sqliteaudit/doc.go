// Package sqliteaudit keeps the audit trail in one SQLite file (through
// modernc.org/sqlite, no cgo): the embedded default.
//
//	st, err := sqliteaudit.Open(filepath.Join(dataDir, "audit.db"), nil) // creates and migrates
//	if err != nil {
//		return err
//	}
//	defer st.Close()
//	h, err := st.Head(ctx, tenantID)
//	rec, _ := h.Next(tenantID, body)
//	err = st.Append(ctx, []audit.Record{rec})
//
// The file runs in WAL mode with synchronous=FULL, so a batch that Append
// reported stored survives a crash or a power cut. Writes go through one
// connection, held for the store's life; each Append is one BEGIN
// IMMEDIATE transaction that checks that the batch follows each chain's
// head and inserts it, so a batch goes in whole or not at all
// (audit.ErrConflict when it does not follow). The heads checked are
// those the store last wrote, unless another connection (another
// process's Store, or anyone else writing the file) committed since, as
// PRAGMA data_version tells inside the transaction: then they are read
// from the file again. Readers have connections of their own and never
// wait for the writer.
//
// Tables (named audit_*, so the file may hold other tables too):
// audit_records (primary key (chain, seq), the body as a BLOB, exactly the
// bytes hashed), audit_spans (the earliest and latest event time of each
// run of 256 records of a chain, which time-bounded queries read instead
// of an index on (chain, time): such an index cost every batch a written
// page per chain), audit_checkpoints (times kept to the nanosecond, as
// signed) and audit_floors (where each chain stood before its oldest kept
// record, so that a chain retention emptied continues where it stood).
// Triggers refuse UPDATE of records and checkpoints; DeleteBefore is the
// only thing that removes them. Whoever can write the file can still
// change it: that is what the hash chain and the signed checkpoints are
// for (Tamperer shows it in tests).
package sqliteaudit
