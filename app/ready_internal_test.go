package app

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantmcp/tenantmcp/internal/testenv"
)

// TestPingPoolBusy: a pool whose every connection is serving requests is
// answering, not down; a pool that cannot connect is down.
func TestPingPoolBusy(t *testing.T) {
	cfg, err := pgxpool.ParseConfig(testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pingPool(ctx, p); err != nil {
		t.Fatalf("idle pool: %v", err)
	}
	conn, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelShort()
	if err := pingPool(short, p); err != nil {
		t.Errorf("pool with every connection in use: %v, want it counted as answering", err)
	}
	conn.Release()

	down, err := pgxpool.New(context.Background(), "postgres://nobody@127.0.0.1:1/none?connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	if err := pingPool(ctx, down); err == nil {
		t.Error("unreachable PostgreSQL counted as answering")
	}
}
