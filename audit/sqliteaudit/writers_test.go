package sqliteaudit_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/audit/audittest"
	"github.com/tenantmcp/tenantmcp/audit/sqliteaudit"
)

// TestOtherWriterSeen: a Store keeps the heads it wrote, but whatever
// another connection commits to the file (a second process's Store, or
// someone changing the file) makes it read them again, so a batch that no
// longer follows the file is refused, not stored.
func TestOtherWriterSeen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	a, b := open(t, path, nil), open(t, path, nil)
	tm := tamperer(t, path)
	bodies := audittest.Bodies(t, "c", 0, 20)
	appendOn := func(s *sqliteaudit.Store, h audit.Head, bs ...[]byte) (audit.Head, error) {
		recs, next := audittest.Chain("c", h, bs...)
		return next, s.Append(ctx, recs)
	}
	head, err := appendOn(a, audit.Head{}, bodies[0:3]...)
	if err != nil {
		t.Fatal(err)
	}

	// The other process appends to the chain: a's next batch, chained on
	// the head a wrote, collides with it.
	bHead, err := b.Head(ctx, "c")
	if err != nil || bHead != head {
		t.Fatalf("b.Head = %+v, %v; want %+v", bHead, err, head)
	}
	if bHead, err = appendOn(b, bHead, bodies[3:5]...); err != nil {
		t.Fatal(err)
	}
	if _, err := appendOn(a, head, bodies[5]); !errors.Is(err, audit.ErrConflict) {
		t.Fatalf("a's append after b's: err = %v, want ErrConflict", err)
	}
	if head, err = appendOn(a, bHead, bodies[5]); err != nil {
		t.Fatalf("a's append on the file's head: %v", err)
	}

	// Cases where the file's change leaves the next seq free, so that
	// only reading the head again can tell: the last record removed, or
	// rewritten in place.
	if err := tm.TruncateTail(ctx, "c", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := appendOn(a, head, bodies[6]); !errors.Is(err, audit.ErrConflict) {
		t.Fatalf("append after the last record was removed: err = %v, want ErrConflict", err)
	}
	stored, err := a.Head(ctx, "c")
	if err != nil || stored != bHead {
		t.Fatalf("Head after the truncation = %+v, %v; want %+v", stored, err, bHead)
	}
	if head, err = appendOn(a, stored, bodies[6]); err != nil {
		t.Fatal(err)
	}
	if err := tm.Rechain(ctx, "c", head.Seq, []byte(`{"time":"2026-03-01T12:00:00Z","kind":"request","outcome":"ok"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := appendOn(a, head, bodies[7]); !errors.Is(err, audit.ErrConflict) {
		t.Fatalf("append after the last record was rewritten: err = %v, want ErrConflict", err)
	}

	// Without anyone else writing, the remembered heads are right.
	if head, err = a.Head(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	for i := 8; i < 20; i++ {
		if head, err = appendOn(a, head, bodies[i]); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if _, err := appendOn(a, audit.Head{Seq: head.Seq - 1, Hash: head.Hash}, bodies[0]); !errors.Is(err, audit.ErrConflict) {
		t.Errorf("append on a stale seq: err = %v, want ErrConflict", err)
	}
	v := audit.NewVerifier("c")
	for _, r := range audittest.ScanAll(t, b, "c", 1) {
		if err := v.Next(&r); err != nil {
			t.Fatal(err)
		}
	}
	if v.Head() != head {
		t.Errorf("verified head %+v, want %+v", v.Head(), head)
	}
}

// TestQueryAfterTruncation: spans past a head that someone cut back are
// dropped before the chain grows again, so queries by time still find
// the records appended after.
func TestQueryAfterTruncation(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	s := open(t, path, nil)
	tm := tamperer(t, path)
	evs := make([]audit.Event, 600)
	for i := range evs {
		evs[i] = audittest.Event("a", i)
	}
	recs := audittest.Append(t, s, "a", evs...)
	if err := tm.TruncateTail(ctx, "a", 400); err != nil {
		t.Fatal(err)
	}
	// The new records are an hour before the removed ones.
	later := make([]audit.Event, 300)
	for i := range later {
		later[i] = audittest.Event("a", i+200)
		later[i].Time = later[i].Time.Add(-time.Hour)
	}
	recs = append(recs[:200], audittest.Append(t, s, "a", later...)...)
	ref := audit.NewMemoryStore()
	if err := ref.Append(ctx, recs); err != nil {
		t.Fatal(err)
	}
	at := audittest.At
	audittest.SameQueries(t, s, ref, "a",
		audit.Filter{Since: at(150), Until: at(210), Limit: 500},
		audit.Filter{Since: at(300), Until: at(400), Limit: 500},
		audit.Filter{Since: at(430), Limit: 500},
		audit.Filter{Until: at(160), Limit: 20})
}
