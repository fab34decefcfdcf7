package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/tenant"
)

var _ registry.Watcher = (*Store)(nil)

// maxPayload bounds a NOTIFY payload: PostgreSQL takes payloads shorter
// than 8000 bytes.
const maxPayload = 8000

// ListenerName is the application_name of the connection Watch holds, as
// pg_stat_activity shows it.
const ListenerName = "tenantmcp registry watch"

// Watch timings.
const (
	idlePing       = 30 * time.Second // how long the listener waits before checking its connection
	connectTimeout = 10 * time.Second
	minBackoff     = 100 * time.Millisecond
	maxBackoff     = 10 * time.Second
)

// channelName is the NOTIFY channel of the registry in schema. Each schema
// has its own, so deployments that share a database do not hear each
// other (notifications never cross databases). A channel name is an
// identifier of at most 63 bytes, and a schema name may be as long, so
// the name carries a hash of the schema.
func channelName(schema string) string {
	h := sha256.Sum256([]byte(schema + "." + TableName))
	return "tenantmcp_registry_" + hex.EncodeToString(h[:8])
}

// Channel returns the name of the channel that every Create, Update and
// Delete of this schema's tenants notifies and Watch listens on.
func (s *Store) Channel() string { return s.channel }

// Watch implements registry.Watcher. Every Create, Update and Delete, by
// any Store on the same database and schema, notifies Channel in its own
// statement, so a change is heard once it is committed and only then.
// Watch listens on a connection of its own, made with the pool's
// settings but outside the pool (it takes none of the pool's
// connections), named ListenerName. An idle listener checks its
// connection every 30s; after a failure Watch reconnects with backoff
// (100ms doubling up to 10s) and reports Change{All: true} once listening
// again. LISTEN needs no privilege; it needs a session of its own, so
// behind a pooler such as PgBouncer the DSN must use session pooling.
func (s *Store) Watch(ctx context.Context, changed func(registry.Change)) error {
	cfg := s.pool.Config().ConnConfig
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = ListenerName
	delay, failing := minBackoff, false
	for {
		listened, err := s.listen(ctx, cfg, changed, failing)
		if ctx.Err() != nil {
			return nil
		}
		if listened { // it worked for a while: a new failure
			delay, failing = minBackoff, false
		}
		if !failing {
			s.log.WarnContext(ctx, "pgstore: listening for tenant changes failed; reconnecting (until then other replicas' changes apply within registry.cache_ttl)",
				"channel", s.channel, "error", err)
		} else {
			s.log.DebugContext(ctx, "pgstore: reconnecting the tenant change listener", "error", err)
		}
		failing = true
		t := time.NewTimer(delay/2 + rand.N(delay/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(2*delay, maxBackoff)
	}
}

// listen connects, listens and reports notifications until the connection
// fails or ctx ends. It reports whether it got as far as listening.
func (s *Store) listen(ctx context.Context, cfg *pgx.ConnConfig, changed func(registry.Change), failing bool) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return false, fmt.Errorf("listen: %w", err)
	}
	if failing {
		s.log.InfoContext(ctx, "pgstore: listening for tenant changes again", "channel", s.channel)
	}
	changed(registry.Change{All: true}) // anything may have changed while nobody listened
	for {
		wctx, cancel := context.WithTimeout(ctx, idlePing)
		n, err := conn.WaitForNotification(wctx)
		idle := wctx.Err() != nil && ctx.Err() == nil
		cancel()
		switch {
		case err == nil:
			changed(s.decode(ctx, n.Payload))
		case ctx.Err() != nil:
			return true, ctx.Err()
		case idle:
			pctx, cancel := context.WithTimeout(ctx, connectTimeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return true, fmt.Errorf("ping: %w", err)
			}
		default:
			return true, err
		}
	}
}

// payload is what the write statements send (see notifying).
type payload struct {
	ID         string `json:"id"`
	Issuer     string `json:"issuer"`
	ExternalID string `json:"external_id"`
}

// decode reads a notification. Anything on the channel that is not one of
// ours (anyone connected to the database may NOTIFY) means that we cannot
// tell what changed.
func (s *Store) decode(ctx context.Context, text string) registry.Change {
	var p payload
	if err := json.Unmarshal([]byte(text), &p); err != nil || !tenant.ID(p.ID).Valid() {
		s.log.WarnContext(ctx, "pgstore: unrecognised notification on the tenant change channel; treating it as a change of any tenant",
			"channel", s.channel, "bytes", len(text))
		return registry.Change{All: true}
	}
	return registry.Change{ID: tenant.ID(p.ID), Issuer: p.Issuer, ExternalID: p.ExternalID}
}
