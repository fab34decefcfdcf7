package sqliteaudit

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/audit/audittest"
)

// TestMigrateSpans opens a file written with schema version 1 (records
// indexed by (chain, time)): version 2 drops the index and covers the
// records in spans, and queries by time find what they found before.
func TestMigrateSpans(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	db, err := openDB(path, defaultBusy, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE audit_schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT;
		INSERT INTO audit_schema_version VALUES (1, 0);` + migrations[0]); err != nil {
		t.Fatal(err)
	}
	ref := audit.NewMemoryStore()
	var evs []audit.Event
	for i := range 700 {
		e := audittest.Event("a", i)
		if i%50 == 3 {
			e.Time = e.Time.Add(-24 * time.Hour) // out of order
		}
		evs = append(evs, e)
	}
	recs, _ := audittest.Records(t, "a", audit.Head{}, evs...)
	other, _ := audittest.Records(t, "b", audit.Head{}, audittest.Event("b", 0), audittest.Event("b", 1))
	for i, r := range append(recs, other...) {
		e := audittest.Event("b", i%2)
		if i < len(evs) {
			e = evs[i]
		}
		if _, err := db.Exec(`INSERT INTO audit_records (chain, seq, prev, hash, time, outcome, tool, user_id, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.Chain, int64(r.Seq), r.Prev[:], r.Hash[:], e.Time.UnixMicro(), e.Outcome, e.Tool, e.User, []byte(r.Body)); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	if err := ref.Append(ctx, append(recs, other...)); err != nil {
		t.Fatal(err)
	}

	s, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var indexes, spans int
	if err := s.r.QueryRow(`SELECT COUNT(*) FROM sqlite_schema WHERE name = 'audit_records_chain_time'`).Scan(&indexes); err != nil || indexes != 0 {
		t.Errorf("the (chain, time) index after migrating: %d, %v; want gone", indexes, err)
	}
	if err := s.r.QueryRow(`SELECT COUNT(*) FROM audit_spans`).Scan(&spans); err != nil || spans != 3+1 {
		t.Errorf("%d spans, %v; want 4 (3 of a, 1 of b)", spans, err)
	}
	more := audittest.AppendN(t, s, "a", 700, 300)
	if err := ref.Append(ctx, more); err != nil {
		t.Fatal(err)
	}
	at := audittest.At
	audittest.SameQueries(t, s, ref, "a",
		audit.Filter{Since: at(100), Until: at(120)},
		audit.Filter{Since: at(600), Until: at(800), Limit: 500},
		audit.Filter{Until: audittest.Base, Limit: 500},
		audit.Filter{Since: at(-24 * 60), Until: at(-23 * 60), Limit: 500},
		audit.Filter{Since: at(990)})
	var v int
	if err := s.r.QueryRow(`SELECT MAX(version) FROM audit_schema_version`).Scan(&v); err != nil || v != len(migrations) {
		t.Errorf("schema version %d, %v; want %d", v, err, len(migrations))
	}
}
