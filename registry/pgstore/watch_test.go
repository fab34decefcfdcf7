package pgstore_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/registry/pgstore"
	"github.com/tenantmcp/tenantmcp/registry/registrytest"
)

// Two replicas: each has its own pool on one database, and a fresh schema
// per subtest.
func TestWatchContract(t *testing.T) {
	t.Parallel()
	dsn := testenv.Postgres(t)
	poolA, poolB := newPool(t, dsn), newPool(t, dsn)
	registrytest.RunWatcher(t, func(t *testing.T) (registry.Store, registry.Store) {
		schema := "reg_" + testenv.Suffix()
		a := pgstore.New(poolA, &pgstore.Options{Schema: schema})
		if err := a.Migrate(context.Background()); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		return a, pgstore.New(poolB, &pgstore.Options{Schema: schema})
	})
}

func openStore(t *testing.T, dsn string, opts *pgstore.Options) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// terminateListeners ends the backends of Watch's connections to the
// database of dsn and returns how many there were.
func terminateListeners(t *testing.T, dsn string) int {
	t.Helper()
	var n int
	if err := newPool(t, dsn).QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = $1`, pgstore.ListenerName).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The listener's backend is killed (a failover, an idle-session timeout):
// Watch reconnects, reports that anything may have changed, and goes on
// reporting changes. Each failure is logged at warn, each recovery at
// info.
func TestWatchReconnects(t *testing.T) {
	t.Parallel()
	dsn := testenv.Postgres(t)
	var logs testenv.SyncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	watched, other := openStore(t, dsn, &pgstore.Options{Logger: log}), openStore(t, dsn, nil)
	c := registrytest.Watch(t, watched)
	c.Ready(t)
	const rounds = 3
	for i := range rounds {
		if n := terminateListeners(t, dsn); n != 1 {
			t.Fatalf("round %d: terminated %d listener backends, want 1", i, n)
		}
		c.Ready(t) // listening again
		c.ExpectCreate(t, other, fmt.Sprintf("org_%d", i))
	}
	out := logs.String()
	if w, i := strings.Count(out, "level=WARN msg=\"pgstore: listening for tenant changes failed"),
		strings.Count(out, "level=INFO msg=\"pgstore: listening for tenant changes again"); w != rounds || i != rounds {
		t.Errorf("%d warnings and %d recoveries logged, want %d each:\n%s", w, i, rounds, out)
	}
}

// Deployments in two schemas of one database do not hear each other's
// changes.
func TestWatchSeparatesSchemas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	a := openStore(t, dsn, &pgstore.Options{Schema: "deploy_a"})
	b := openStore(t, dsn, &pgstore.Options{Schema: `deploy "b"`})
	if a.Channel() == b.Channel() {
		t.Fatalf("both schemas notify channel %q", a.Channel())
	}
	if long := pgstore.New(nil, &pgstore.Options{Schema: strings.Repeat("x", 63)}).Channel(); len(long) > 63 {
		t.Fatalf("channel %q is longer than an identifier may be", long)
	}
	c := registrytest.Watch(t, a)
	c.Ready(t)
	if err := b.Create(ctx, registrytest.Record("https://idp.example.com/", "org_b")); err != nil {
		t.Fatal(err)
	}
	c.ExpectCreate(t, a, "org_a") // and not org_b's first
}

// Anything else on the channel (anyone connected may NOTIFY it) is taken
// as a change of any tenant; real changes are still reported after it.
func TestWatchForeignNotification(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	s := openStore(t, dsn, nil)
	c := registrytest.Watch(t, s)
	c.Ready(t)
	conn := newPool(t, dsn)
	for _, payload := range []string{"junk", `{"id":"not an id"}`, ""} {
		if _, err := conn.Exec(ctx, `SELECT pg_notify($1, $2)`, s.Channel(), payload); err != nil {
			t.Fatal(err)
		}
		if got := c.Next(t); !got.All {
			t.Fatalf("after NOTIFY %q: reported %+v, want All", payload, got)
		}
	}
	c.ExpectCreate(t, s, "org_1")
}

// The listener has a connection of its own: a pool whose every
// connection is in use does not keep it from listening.
func TestWatchNeedsNoPoolConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	if err := openStore(t, dsn, nil).Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	pool := newPool(t, dsn)
	held := make([]interface{ Release() }, 0, 8)
	for range pool.Config().MaxConns {
		c, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	defer func() {
		for _, c := range held {
			c.Release()
		}
	}()
	c := registrytest.Watch(t, pgstore.New(pool, nil))
	c.Ready(t)
	c.ExpectCreate(t, openStore(t, dsn, nil), "org_1")
}
