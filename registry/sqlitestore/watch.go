package sqlitestore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/tenantmcp/tenantmcp/registry"
)

// DefaultWatchInterval is how often Watch looks for writes unless
// Options.WatchInterval says otherwise.
const DefaultWatchInterval = 250 * time.Millisecond

var _ registry.Watcher = (*Store)(nil)

// Watch implements registry.Watcher. Triggers record every write of a
// tenant row, by whatever process, in the table tenant_changes (which
// keeps the last 1000). Every Options.WatchInterval Watch asks the file
// whether another connection has written to it (PRAGMA data_version,
// which reads no table) and, if so, reports the changes recorded since it
// last looked. If more changes were made between two looks than the
// table keeps, or the table was reset, it reports Change{All: true}.
// Watch reads on a connection of its own, outside the store's pool; an
// error is logged and the next look starts over.
func (s *Store) Watch(ctx context.Context, changed func(registry.Change)) error {
	db, err := sql.Open("sqlite", s.dsn)
	if err != nil {
		return fmt.Errorf("sqlitestore: watch %s: %w", s.path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	tick := time.NewTicker(s.watchEvery)
	defer tick.Stop()
	var (
		w       *changeLog // nil until watching
		failing bool
	)
	defer func() {
		if w != nil {
			w.conn.Close()
		}
	}()
	for {
		if w == nil {
			w, err = startChangeLog(ctx, db)
			if err == nil {
				changed(registry.Change{All: true}) // what was cached before may be stale
			}
		} else if err = w.poll(ctx, changed); err != nil {
			w.conn.Close()
			w = nil
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && !failing:
			s.log.WarnContext(ctx, "sqlitestore: looking for tenant changes failed; retrying (until then other processes' changes apply within registry.cache_ttl)",
				"path", s.path, "error", err)
		case err == nil && failing:
			s.log.InfoContext(ctx, "sqlitestore: looking for tenant changes again", "path", s.path)
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// changeLog reads tenant_changes on one connection, whose data_version
// tells whether anybody else wrote since it last looked.
type changeLog struct {
	conn    *sql.Conn
	version int64 // data_version when last read
	last    int64 // seq of the last change read
}

func startChangeLog(ctx context.Context, db *sql.DB) (*changeLog, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	w := &changeLog{conn: conn}
	// data_version first: a change committed after it is read again at
	// the next look, never missed.
	if w.version, err = w.dataVersion(ctx); err == nil {
		w.last, err = w.lastSeq(ctx)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return w, nil
}

func (w *changeLog) dataVersion(ctx context.Context) (int64, error) {
	var v int64
	err := w.conn.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&v)
	return v, err
}

func (w *changeLog) lastSeq(ctx context.Context) (int64, error) {
	var seq int64
	err := w.conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM tenant_changes`).Scan(&seq)
	return seq, err
}

// poll reports the changes committed since the last look, if any.
func (w *changeLog) poll(ctx context.Context, changed func(registry.Change)) error {
	v, err := w.dataVersion(ctx)
	if err != nil || v == w.version {
		return err
	}
	rows, err := w.conn.QueryContext(ctx, `SELECT seq, tenant_id, issuer, external_id FROM tenant_changes
		WHERE seq > $1 ORDER BY seq`, w.last)
	if err != nil {
		return err
	}
	var (
		out  []registry.Change
		next = w.last
		gap  bool
	)
	for rows.Next() {
		var (
			seq int64
			c   registry.Change
		)
		if err := rows.Scan(&seq, &c.ID, &c.Issuer, &c.ExternalID); err != nil {
			rows.Close()
			return err
		}
		if len(out) == 0 && seq != w.last+1 {
			gap = true // pruned before we looked
		}
		out = append(out, c)
		next = seq
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if len(out) == 0 {
		// Nothing new. A log that now ends before what we read was reset
		// (the file restored from a backup, say).
		if next, err = w.lastSeq(ctx); err != nil {
			return err
		}
		gap = next < w.last
	}
	w.version, w.last = v, next
	if gap {
		changed(registry.Change{All: true})
		return nil
	}
	for _, c := range out {
		changed(c)
	}
	return nil
}
