// Package testenv gives tests their own PostgreSQL database and Redis
// namespace on the services the machine runs, and removes them afterwards.
//
// The services are found through TENANTMCP_TEST_POSTGRES (default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable) and
// TENANTMCP_TEST_REDIS (default 127.0.0.1:6379). When CI=true a missing
// service fails the test; elsewhere the test is skipped with a one-line
// message saying how to enable it.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPostgres and DefaultRedis are used when the environment does not
// name the services.
const (
	DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	DefaultRedis    = "127.0.0.1:6379"
)

// PostgresAdminDSN returns the DSN of the superuser connection tests use to
// create their databases and roles.
func PostgresAdminDSN() string {
	if v := os.Getenv("TENANTMCP_TEST_POSTGRES"); v != "" {
		return v
	}
	return DefaultPostgres
}

// RedisAddr returns the host:port of the test Redis.
func RedisAddr() string {
	if v := os.Getenv("TENANTMCP_TEST_REDIS"); v != "" {
		return v
	}
	return DefaultRedis
}

func inCI() bool { return os.Getenv("CI") == "true" }

// unavailable fails the test in CI and skips it elsewhere, in one line
// that says how to run it.
func unavailable(t testing.TB, service, addr, env string, err error) {
	t.Helper()
	if inCI() {
		t.Fatalf("%s is required when CI=true but is not reachable at %s (%v): start it (scripts/services-up) or set %s", service, addr, err, env)
	}
	t.Skipf("%s not reachable at %s (%v): set %s or start %s (CI=true makes this a failure)", service, addr, err, env, service)
}

// postgresProbe connects to the test PostgreSQL once per test binary, so
// that without PostgreSQL every test skips at once rather than each
// waiting for its own connection attempt to fail.
var postgresProbe = sync.OnceValue(func() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, PostgresAdminDSN())
	if err != nil {
		return err
	}
	return c.Close(ctx)
})

// RequirePostgres skips the test (fails it when CI=true) if the test
// PostgreSQL is not reachable. Postgres and DropRolesAtCleanup call it
// first, before registering any cleanup, so a skipped test leaves no
// cleanup behind that would need the missing server.
func RequirePostgres(t testing.TB) {
	t.Helper()
	if err := postgresProbe(); err != nil {
		unavailable(t, "PostgreSQL", hostOf(PostgresAdminDSN()), "TENANTMCP_TEST_POSTGRES", err)
	}
}

// hostOf is the host:port of a postgres:// URL, for messages (never the
// password).
func hostOf(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		return "(TENANTMCP_TEST_POSTGRES is not a postgres:// URL)"
	}
	return u.Host
}

// Suffix returns a short random lowercase hex string for unique names.
func Suffix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Postgres creates a fresh database for the test and returns a superuser
// DSN for it. The database is dropped when the test ends.
func Postgres(t testing.TB) string {
	t.Helper()
	return PostgresNamed(t, "tmcp_test_"+Suffix())
}

// PostgresNamed is Postgres for a database named name, which must be
// unique (add Suffix) and a plain lowercase identifier. Use it when the
// name must be known before the database exists, say to register a
// DropRolesAtCleanup for roles named after it.
func PostgresNamed(t testing.TB, name string) string {
	t.Helper()
	RequirePostgres(t)
	admin := PostgresAdminDSN()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connect to the test PostgreSQL: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop test database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("drop test database %s: %v", name, err)
		}
	})
	return WithDatabase(t, admin, name)
}

// WithDatabase returns dsn with its database replaced by name.
func WithDatabase(t testing.TB, dsn, name string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parse DSN: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// WithUser returns dsn with its user (and password) replaced.
func WithUser(t testing.TB, dsn, user, password string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("parse DSN: %v", err)
	}
	if password == "" {
		u.User = url.User(user)
	} else {
		u.User = url.UserPassword(user, password)
	}
	return u.String()
}

// Redis checks that the test Redis answers and returns its address and a
// key namespace unique to this test ("tmcptest:<random>:"). Keys under the
// namespace are deleted when the test ends.
func Redis(t testing.TB) (addr, namespace string) {
	t.Helper()
	addr = RedisAddr()
	if err := redisCmd(addr, "PING"); err != nil {
		unavailable(t, "Redis", addr, "TENANTMCP_TEST_REDIS", err)
	}
	namespace = "tmcptest:" + Suffix() + ":"
	t.Cleanup(func() {
		// EVAL a small script rather than pull in a client here.
		script := `local c="0" repeat local r=redis.call("SCAN",c,"MATCH",ARGV[1],"COUNT",1000) c=r[1] for _,k in ipairs(r[2]) do redis.call("DEL",k) end until c=="0" return 0`
		if err := redisCmd(addr, "EVAL", script, "0", namespace+"*"); err != nil {
			t.Errorf("clean Redis namespace %s: %v", namespace, err)
		}
	})
	return addr, namespace
}

// redisCmd sends one RESP command and checks the reply is not an error.
func redisCmd(addr string, args ...string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write([]byte(b.String())); err != nil {
		return err
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if n > 0 && buf[0] == '-' {
		return fmt.Errorf("redis: %s", strings.TrimSpace(string(buf[1:n])))
	}
	return nil
}

// PostgresWithRoles is Postgres plus unique owner and application role
// names for tenantmcp's Setup to create. When the test ends the database
// is dropped first, then those roles and every per-tenant role ("t_t…")
// granted to the application role: roles are cluster-wide and none may be
// left behind.
func PostgresWithRoles(t testing.TB) (dsn, owner, app string) {
	t.Helper()
	sfx := Suffix()
	owner, app = "tmcp_owner_"+sfx, "tmcp_app_"+sfx
	// Registered before the database: cleanups run last-registered first,
	// so the database (and all the roles own or were granted there) is
	// gone by then and a plain DROP ROLE suffices.
	DropRolesAtCleanup(t, app, owner)
	return Postgres(t), owner, app
}

// DropRolesAtCleanup drops, when the test ends, app, every tenant role
// ("t_t…") granted to it, and others. Call it before Postgres: cleanups
// run last-registered first, so the database, and with it everything the
// roles own or were granted there, is gone by then and a plain DROP ROLE
// suffices. Like Postgres it first skips the test (fails it when CI=true)
// if PostgreSQL is not reachable, so no cleanup is left for a test that
// cannot run.
func DropRolesAtCleanup(t testing.TB, app string, others ...string) {
	t.Helper()
	RequirePostgres(t)
	t.Cleanup(func() {
		if err := DropRoles(PostgresAdminDSN(), app, others...); err != nil {
			t.Errorf("drop test roles: %v", err)
		}
	})
}

// DropRoles drops app, the tenant roles granted to it, and others,
// connected to dsn. The roles must own nothing in any remaining database.
func DropRoles(dsn, app string, others ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	rows, err := c.Query(ctx, `SELECT r.rolname FROM pg_auth_members m
		JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles a ON a.oid = m.member
		WHERE a.rolname = $1 AND r.rolname ~ '^t_t[a-z2-7]{20}$'`, app)
	if err != nil {
		return err
	}
	roles, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range append(append(roles, app), others...) {
		if _, err := c.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{r}.Sanitize()); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r, err))
		}
	}
	return errors.Join(errs...)
}

// OnlySessionsAs fails the test unless every client session connected to
// the database of dsn (a superuser DSN; its own session aside) is role.
// A session that is closing may linger a moment, so it waits up to 5s.
func OnlySessionsAs(t testing.TB, dsn, role string) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rows, err := c.Query(ctx, `SELECT usename || ' (' || coalesce(state, '') || ')' FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
			  AND usename IS DISTINCT FROM $1`, role)
		if err != nil {
			t.Fatal(err)
		}
		others, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if len(others) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions as roles other than %s are connected to the database: %v", role, others)
		}
	}
}
