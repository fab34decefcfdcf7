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
// connection; each Append is one transaction that reads every chain's
// stored head, checks that the batch follows it and inserts the batch, so
// a batch goes in whole or not at all (audit.ErrConflict when it does not
// follow). Readers have connections of their own and never wait for the
// writer.
//
// Tables (named audit_*, so the file may hold other tables too):
// audit_records (primary key (chain, seq), an index on (chain, time),
// the body as a BLOB, exactly the bytes hashed), audit_checkpoints
// (times kept to the nanosecond, as signed) and audit_floors (where each
// chain stood before its oldest kept record, so that a chain retention
// emptied continues where it stood). Triggers refuse UPDATE of records
// and checkpoints; DeleteBefore is the only thing that removes them.
// Whoever can write the file can still change it: that is what the hash
// chain and the signed checkpoints are for (Tamperer shows it in tests).
package sqliteaudit
