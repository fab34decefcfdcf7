package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/storetest"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// TestPortableContract runs the Portable contract on both strategies: RLS
// over the application pool, schema per tenant through the Provisioner.
func TestPortableContract(t *testing.T) {
	for _, s := range strategies {
		t.Run(string(s), func(t *testing.T) {
			t.Parallel()
			storetest.RunPortable(t, func(t *testing.T) (store.Backend, store.Portable) {
				e := setup(t, s)
				return e.portable(t, s)
			})
		})
	}
}

// portable returns a backend of strategy s over the application pool and
// its Portable: the backend itself (RLS) or the Provisioner (schemas),
// with the migrations ms in every tenant schema.
func (e *env) portable(t testing.TB, s Strategy, ms ...Migration) (backend, store.Portable) {
	t.Helper()
	if s == RowLevelSecurity {
		b, err := NewRLS(e.appPool, nil)
		if err != nil {
			t.Fatal(err)
		}
		return b, b
	}
	p := e.provisioner(t, ms...)
	b, err := NewSchemas(e.appPool, &SchemaOptions{Provisioner: p})
	if err != nil {
		t.Fatal(err)
	}
	return b, p
}

// portableTables are two tables of the application's own, in every shape
// a value can take: a_kids references kinds (and sorts before it, so only
// the foreign key orders them), kinds has an identity key and a generated
// column, a_kids a serial one. Under row level security (rls) they have a
// tenant_id column, part of their keys as the documentation advises;
// in a tenant schema they have none.
func portableTables(rls bool) []Migration {
	col, key, ref := "", "id", "kind_id"
	if rls {
		col, key, ref = "\n\ttenant_id text NOT NULL DEFAULT current_setting('app.tenant_id'),", "tenant_id, id", "tenant_id, kind_id"
	}
	return []Migration{{Version: 1, Name: "kinds and kids", SQL: `
CREATE TABLE kinds (
	id   bigint GENERATED ALWAYS AS IDENTITY,` + col + `
	b    bytea, t text, n numeric, f double precision, r real,
	ts   timestamptz, tsl timestamp, d date, iv interval,
	j    jsonb, js json, arr text[], ia integer[], u uuid, bl boolean, addr inet,
	up   text GENERATED ALWAYS AS (upper(t)) STORED,
	PRIMARY KEY (` + key + `)
);
CREATE TABLE a_kids (
	id      bigserial,` + col + `
	kind_id bigint NOT NULL,
	note    text,
	PRIMARY KEY (` + key + `),
	FOREIGN KEY (` + ref + `) REFERENCES kinds (` + key + `)
);`}}
}

// sqlEnv is a database of strategy s with portableTables (under row level
// security, or in every tenant schema), a backend over the application
// pool and its Portable.
func sqlEnv(t *testing.T, s Strategy) (*env, backend, store.Portable) {
	t.Helper()
	if s == RowLevelSecurity {
		e := setup(t, s, portableTables(true)...)
		for _, table := range []string{"kinds", "a_kids"} {
			if err := EnableRLS(context.Background(), e.admin, table, &MigrateOptions{OwnerRole: e.owner, AppRole: e.app}); err != nil {
				t.Fatal(err)
			}
		}
		b, p := e.portable(t, s)
		return e, b, p
	}
	e := setup(t, s)
	b, p := e.portable(t, s, portableTables(false)...)
	return e, b, p
}

// seedSQL stores documents and rows in both tables for id, every text
// carrying mark. Values: all 256 bytes, escapes COPY must keep, unicode,
// NULLs, infinities, NaN, negative zero, subnormal and extreme floats,
// microseconds, JSON whitespace and duplicate keys, arrays of awkward
// strings, and a 3 MiB bytea next to a 1 MiB text.
func seedSQL(t *testing.T, b backend, id tenant.ID, mark string) {
	t.Helper()
	ctx := context.Background()
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	large := make([]byte, 3<<20)
	rand.NewChaCha8([32]byte{1}).Read(large)
	for k, v := range map[string][]byte{"doc/all": all, "doc/empty": {}, "doc/" + mark: []byte(mark)} {
		if err := b.Put(ctx, id, k, v); err != nil {
			t.Fatal(err)
		}
	}
	awkward := mark + " tab\there\nnew line\r\\back\\N \\. \\x41 \x01\x7f ünï 日本 🎉 'quote' \"dq\""
	err := b.InTx(ctx, id, func(tx store.Tx) error {
		var kinds []int64
		insert := func(q string, args ...any) error {
			var k int64
			if err := tx.QueryRow(ctx, q+" RETURNING id", args...).Scan(&k); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
			kinds = append(kinds, k)
			return nil
		}
		if err := insert(`INSERT INTO kinds (b, t, n, f, r, ts, tsl, d, iv, j, js, arr, ia, u, bl, addr) VALUES ($1, $2,
			'12345678901234567890.123456789012345678901234567890', 'NaN', '-0', '2024-02-29 23:59:59.999999+05:30',
			'1999-12-31 23:59:59.000001', 'infinity', '1 year 2 mons 3 days 04:05:06.789',
			'{"b": 1, "a": [1, 2.50, null, "é"]}', '{ "keep" :  "whitespace" , "dup": 1, "dup": 2 }',
			ARRAY['a"b', NULL, 'c,d', '', 'NULL', E'\\', E'tab\tnl\n', $2], '{1,NULL,3}',
			'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true, '192.168.0.1/24')`, all, awkward); err != nil {
			return err
		}
		if err := insert("INSERT INTO kinds DEFAULT VALUES"); err != nil {
			return err
		}
		if err := insert(`INSERT INTO kinds (b, t, n, f, r, ts, d, iv, j, js, arr) VALUES ($1, $2, 'NaN', '5e-324', 'Infinity',
			'infinity', '-infinity', '-1 days +02:00:00.000001', '[]', '""', '{}')`, large, strings.Repeat("ü日🎉\\\t\n"+mark, 1<<20/40)); err != nil {
			return err
		}
		for _, f := range []string{"0.1", "-0", "1.7976931348623157e308", "-Infinity", "2.2250738585072014e-308", "0.30000000000000004"} {
			if err := insert("INSERT INTO kinds (f, t) VALUES ($1::float8, $2)", f, mark+" "+f); err != nil {
				return err
			}
		}
		for i, k := range kinds {
			for _, note := range []any{nil, fmt.Sprintf("%s kid %d ✓", mark, i)} {
				if _, err := tx.Exec(ctx, "INSERT INTO a_kids (kind_id, note) VALUES ($1, $2)", k, note); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seed %s: %v", id, err)
	}
}

// rowsOf returns a digest of everything id holds, read by the superuser:
// every row of every table (as PostgreSQL's text of the whole row) and,
// with schemas, the schema's sequences and migration versions, or "none"
// for a missing schema.
func (e *env) rowsOf(t *testing.T, s Strategy, id tenant.ID) string {
	t.Helper()
	ctx := context.Background()
	from, where, args := func(table string) string { return "public." + table }, " WHERE tenant_id = $1", []any{string(id)}
	var out strings.Builder
	if s == SchemaPerTenant {
		var exists bool
		e.admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", SchemaName(id)).Scan(&exists)
		if !exists {
			return "none"
		}
		q := ident(SchemaName(id))
		from, where, args = func(table string) string { return q + "." + table }, "", nil
		var seqs, versions string
		if err := e.admin.QueryRow(ctx, `SELECT
			(SELECT string_agg(last_value || '/' || is_called, ',' ORDER BY 1) FROM (
				SELECT last_value, is_called FROM `+q+`.kinds_id_seq UNION ALL SELECT last_value, is_called FROM `+q+`.a_kids_id_seq) s),
			(SELECT string_agg(component || ':' || version, ',' ORDER BY component, version) FROM `+q+`.tenantmcp_migrations)`).Scan(&seqs, &versions); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "sequences %s; migrations %s; ", seqs, versions)
	}
	for _, table := range []string{"tenantmcp_documents", "kinds", "a_kids"} {
		var n int
		var sum string
		if err := e.admin.QueryRow(ctx, "SELECT count(*), md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) FROM "+from(table)+" x"+where, args...).Scan(&n, &sum); err != nil {
			t.Fatalf("digest of %s: %v", table, err)
		}
		fmt.Fprintf(&out, "%s: %d rows %s; ", table, n, sum)
	}
	return out.String()
}

// tenantsOf returns rowsOf for each of ids.
func (e *env) tenantsOf(t *testing.T, s Strategy, ids []tenant.ID) []string {
	t.Helper()
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = e.rowsOf(t, s, id)
	}
	return out
}

// forEachSQLEnv runs test on each strategy's sqlEnv, in parallel.
func forEachSQLEnv(t *testing.T, test func(t *testing.T, s Strategy, e *env, b backend, p store.Portable)) {
	for _, s := range strategies {
		t.Run(string(s), func(t *testing.T) {
			t.Parallel()
			e, b, p := sqlEnv(t, s)
			test(t, s, e, b, p)
		})
	}
}

func exportSQL(t *testing.T, p store.Portable, id tenant.ID) *storetest.MemoryParts {
	t.Helper()
	parts := &storetest.MemoryParts{}
	if err := p.Export(context.Background(), id, parts); err != nil {
		t.Fatalf("Export(%s): %v", id, err)
	}
	return parts
}

// sameParts fails unless a and b hold the same parts, byte for byte.
func sameParts(t *testing.T, a, b *storetest.MemoryParts, what string) {
	t.Helper()
	if !slices.Equal(a.Names(), b.Names()) {
		t.Fatalf("%s: parts %q, want %q", what, b.Names(), a.Names())
	}
	for _, n := range a.Names() {
		pa, _ := a.Part(n)
		pb, _ := b.Part(n)
		if !bytes.Equal(pa, pb) {
			t.Fatalf("%s: part %s differs (%d bytes, want %d)", what, n, len(pb), len(pa))
		}
	}
}

// TestPortableSQLRoundTrip exports a tenant with rows of every shape in
// the application's own tables, purges it and imports it back: the rows
// are byte-identical (and so is a second export), the sequences go on
// where they were, and no other tenant's rows, schema or role change at
// any step.
func TestPortableSQLRoundTrip(t *testing.T) {
	forEachSQLEnv(t, func(t *testing.T, s Strategy, e *env, b backend, p store.Portable) {
		ctx := context.Background()
		others := ids(2)
		for _, o := range others {
			seedSQL(t, b, o, marker(o))
		}
		a := tenant.NewID()
		seedSQL(t, b, a, "mine")
		othersBefore := e.tenantsOf(t, s, others)
		before := e.rowsOf(t, s, a)

		parts := exportSQL(t, p, a)
		for _, n := range parts.Names() {
			data, _ := parts.Part(n)
			for _, o := range others {
				if bytes.Contains(data, []byte(marker(o))) {
					t.Fatalf("part %s holds other tenant %s's rows", n, o)
				}
			}
		}
		if got := e.rowsOf(t, s, a); got != before {
			t.Fatalf("Export changed the tenant: %s, was %s", got, before)
		}

		if err := p.Purge(ctx, a); err != nil {
			t.Fatal(err)
		}
		wantPurged(t, e, s, a)
		wantTenants(t, e, s, others, othersBefore, "after Purge")

		if err := p.Import(ctx, a, parts); err != nil {
			t.Fatalf("Import: %v", err)
		}
		if got := e.rowsOf(t, s, a); got != before {
			t.Fatalf("after Import:\n%s\nwant\n%s", got, before)
		}
		sameParts(t, parts, exportSQL(t, p, a), "export after Import")
		wantTenants(t, e, s, others, othersBefore, "after Import")
		wantNoCrossRead(t, b, s, others[0], a)

		// Under another id the rows are the same too; the next
		// identity value follows the archived ones.
		c := tenant.NewID()
		if err := p.Import(ctx, c, parts); err != nil {
			t.Fatalf("Import under a new id: %v", err)
		}
		sameParts(t, parts, exportSQL(t, p, c), "export of the copy")
		var maxID, next int64
		err := b.InTx(ctx, c, func(tx store.Tx) error {
			if err := tx.QueryRow(ctx, "SELECT max(id) FROM kinds").Scan(&maxID); err != nil {
				return err
			}
			return tx.QueryRow(ctx, "INSERT INTO kinds (t) VALUES ('after') RETURNING id").Scan(&next)
		})
		if err != nil {
			t.Fatalf("insert after Import: %v", err)
		}
		if next <= maxID {
			t.Errorf("identity after Import gave %d, not above the imported %d", next, maxID)
		}
		wantTenants(t, e, s, append(others, a), append(othersBefore, before), "after the copy")
		if err := CheckAppRole(ctx, e.appPool); err != nil {
			t.Errorf("CheckAppRole after Import: %v", err)
		}
	})
}

// wantPurged fails unless id has no row anywhere, and, with schemas, no
// schema, role or catalog entry.
func wantPurged(t *testing.T, e *env, s Strategy, id tenant.ID) {
	t.Helper()
	ctx := context.Background()
	if s == RowLevelSecurity {
		want := "tenantmcp_documents: 0 rows d41d8cd98f00b204e9800998ecf8427e; kinds: 0 rows d41d8cd98f00b204e9800998ecf8427e; a_kids: 0 rows d41d8cd98f00b204e9800998ecf8427e; "
		if got := e.rowsOf(t, s, id); got != want {
			t.Fatalf("tenant %s after Purge: %s", id, got)
		}
		return
	}
	var schemas, roles, catalog int
	if err := e.admin.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = $1),
		(SELECT count(*) FROM pg_roles WHERE rolname = $1),
		(SELECT count(*) FROM public.tenantmcp_schemas WHERE tenant_id = $2)`, SchemaName(id), string(id)).Scan(&schemas, &roles, &catalog); err != nil {
		t.Fatal(err)
	}
	if schemas+roles+catalog != 0 {
		t.Fatalf("tenant %s after Purge: %d schema, %d role, %d catalog row left", id, schemas, roles, catalog)
	}
}

// wantTenants fails unless each of ids still holds what digests say, and,
// with schemas, still has its role.
func wantTenants(t *testing.T, e *env, s Strategy, ids []tenant.ID, digests []string, when string) {
	t.Helper()
	for i, id := range ids {
		if got := e.rowsOf(t, s, id); got != digests[i] {
			t.Fatalf("%s: tenant %s changed:\n%s\nwas\n%s", when, id, got, digests[i])
		}
		if s == SchemaPerTenant {
			var role bool
			e.admin.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", SchemaName(id)).Scan(&role)
			if !role {
				t.Fatalf("%s: tenant %s lost its role", when, id)
			}
		}
	}
}

func marker(id tenant.ID) string { return "secret-of-" + string(id) }

// wantNoCrossRead checks, as the application role inside reader's
// transaction, that none of owner's rows can be read: the policy hides
// them (RLS), or its schema is out of reach (schemas).
func wantNoCrossRead(t *testing.T, b backend, s Strategy, reader, owner tenant.ID) {
	t.Helper()
	ctx := context.Background()
	if s == SchemaPerTenant {
		err := b.InTx(ctx, reader, func(tx store.Tx) error {
			var n int
			return tx.QueryRow(ctx, "SELECT count(*) FROM "+ident(SchemaName(owner))+".kinds").Scan(&n)
		})
		wantCode(t, err, "42501", "reading the imported schema from another tenant")
		return
	}
	err := b.InTx(ctx, reader, func(tx store.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM kinds WHERE tenant_id = $1 OR t LIKE 'mine%'", string(owner)).Scan(&n); err != nil {
			return err
		}
		if n != 0 {
			t.Errorf("tenant %s reads %d of %s's imported rows", reader, n, owner)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitForLockWait waits until a session of the test database waits for a
// lock.
func waitForLockWait(t *testing.T, e *env) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var waiting bool
		if err := e.admin.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE NOT l.granted AND a.datname = current_database())`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no session waits for a lock")
		}
	}
}

// TestPortablePurgeInterrupted cancels a purge while it waits halfway
// (RLS: after deleting from two tables, on a row lock in the third;
// schemas: on a table lock, before the schema is dropped): nothing of it
// remains, and the next purge completes.
func TestPortablePurgeInterrupted(t *testing.T) {
	forEachSQLEnv(t, func(t *testing.T, s Strategy, e *env, b backend, p store.Portable) {
		ctx := context.Background()
		a, other := tenant.NewID(), tenant.NewID()
		seedSQL(t, b, a, "mine")
		seedSQL(t, b, other, marker(other))
		before, otherBefore := e.rowsOf(t, s, a), e.rowsOf(t, s, other)

		// Purge deletes referencing tables first: a_kids, then
		// tenantmcp_documents, then kinds, where it waits.
		lock := "SELECT 1 FROM public.kinds WHERE tenant_id = '" + string(a) + "' FOR UPDATE"
		if s == SchemaPerTenant {
			lock = "LOCK TABLE " + ident(SchemaName(a)) + ".kinds IN ACCESS SHARE MODE"
		}
		holder, err := e.admin.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer holder.Rollback(ctx)
		if _, err := holder.Exec(ctx, lock); err != nil {
			t.Fatal(err)
		}
		pctx, cancel := context.WithCancel(ctx)
		done := make(chan error)
		go func() { done <- p.Purge(pctx, a) }()
		waitForLockWait(t, e)
		cancel()
		if err := <-done; err == nil {
			t.Fatal("cancelled Purge succeeded")
		}
		if err := holder.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if got := e.rowsOf(t, s, a); got != before {
			t.Fatalf("after the cancelled Purge:\n%s\nwant everything as it was:\n%s", got, before)
		}
		if err := p.Purge(ctx, a); err != nil {
			t.Fatalf("Purge after the cancelled one: %v", err)
		}
		wantPurged(t, e, s, a)
		if err := p.Purge(ctx, a); err != nil {
			t.Fatalf("second Purge: %v", err)
		}
		wantTenants(t, e, s, []tenant.ID{other}, []string{otherBefore}, "after the Purges")
	})
}

// TestPortableImportRefusals: Import refuses a tenant that holds rows only
// in an application table (store.ErrNotEmpty), and parts that cannot be
// restored (ErrArchive): rows breaking a foreign key, a malformed row, a
// row count that does not match, a part of the other strategy. Each time
// nothing of the import remains — with schemas no schema and no role
// either — and the next correct import succeeds.
func TestPortableImportRefusals(t *testing.T) {
	forEachSQLEnv(t, func(t *testing.T, s Strategy, e *env, b backend, p store.Portable) {
		ctx := context.Background()
		src, full := tenant.NewID(), tenant.NewID()
		seedSQL(t, b, src, "mine")
		parts := exportSQL(t, p, src)
		err := b.InTx(ctx, full, func(tx store.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO kinds (t) VALUES ('only row')")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		fullBefore := e.rowsOf(t, s, full)
		if err := p.Import(ctx, full, parts); !errors.Is(err, store.ErrNotEmpty) {
			t.Fatalf("Import into a tenant with one row in kinds: err = %v, want store.ErrNotEmpty", err)
		}
		if got := e.rowsOf(t, s, full); got != fullBefore {
			t.Fatalf("refused Import changed the tenant: %s", got)
		}

		own, other, tables := rlsParts, schemaParts, rlsParts+"public."
		if s == SchemaPerTenant {
			own, other, tables = schemaParts, rlsParts, schemaParts
		}
		kids, kinds := tables+"a_kids.copy", tables+"kinds.copy"
		for what, change := range map[string]func(name string, b []byte) (string, []byte){
			"a kid of a missing kind": func(name string, b []byte) (string, []byte) {
				if name == kids {
					b = bytes.Replace(b, []byte("\t1\t"), []byte("\t999999\t"), 1)
				}
				return name, b
			},
			"a row with a column too many": func(name string, b []byte) (string, []byte) {
				if name == kinds {
					b = bytes.Replace(b, []byte("\n"), []byte("\tx\n"), 1)
				}
				return name, b
			},
			"a row the manifest does not count": func(name string, b []byte) (string, []byte) {
				if name == kids {
					b = b[:bytes.LastIndexByte(b[:len(b)-1], '\n')+1]
				}
				return name, b
			},
			"parts under the other strategy's names": func(name string, b []byte) (string, []byte) {
				return other + strings.TrimPrefix(name, own), b
			},
		} {
			bad := rewriteParts(t, parts, change)
			dst := tenant.NewID()
			err := p.Import(ctx, dst, bad)
			if err == nil || errors.Is(err, store.ErrNotEmpty) {
				t.Fatalf("%s: Import: err = %v, want a refusal", what, err)
			}
			t.Logf("%s: %v", what, err)
			wantPurged(t, e, s, dst)
			if err := p.Import(ctx, dst, parts); err != nil {
				t.Fatalf("%s: then a correct Import: %v", what, err)
			}
		}
	})
}

// rewriteParts copies parts through change, which may rename a part or
// change its content.
func rewriteParts(t *testing.T, parts *storetest.MemoryParts, change func(name string, b []byte) (string, []byte)) *storetest.MemoryParts {
	t.Helper()
	out := &storetest.MemoryParts{}
	for _, n := range parts.Names() {
		b, _ := parts.Part(n)
		n, b = change(n, slices.Clone(b))
		w, err := out.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
		w.Close()
	}
	return out
}

// TestPortableMigrationVersions: a schema archive records its migration
// versions. An older one is restored at its own versions and then
// migrated — into a new tenant, and into an empty schema already at the
// newer version; a newer one is refused and leaves nothing.
func TestPortableMigrationVersions(t *testing.T) {
	e, b, v1 := sqlEnv(t, SchemaPerTenant)
	ctx := context.Background()
	src := tenant.NewID()
	seedSQL(t, b, src, "mine")
	old := exportSQL(t, v1, src)

	ms := append(portableTables(false), Migration{Version: 2, Name: "extra column, notes filled in", SQL: `
ALTER TABLE kinds ADD COLUMN extra text NOT NULL DEFAULT 'added';
UPDATE a_kids SET note = 'migrated' WHERE note IS NULL;`})
	v2 := e.provisioner(t, ms...)
	fresh, provisioned := tenant.NewID(), tenant.NewID()
	if err := v2.Provision(ctx, provisioned); err != nil {
		t.Fatal(err)
	}
	for _, id := range []tenant.ID{fresh, provisioned} {
		if err := v2.Import(ctx, id, old); err != nil {
			t.Fatalf("Import of a v1 archive with v2 migrations: %v", err)
		}
		var versions string
		var kinds, added, migrated, nulls int
		err := e.admin.QueryRow(ctx, `SELECT
			(SELECT string_agg(component || ':' || version, ',' ORDER BY component, version) FROM `+ident(SchemaName(id))+`.tenantmcp_migrations),
			(SELECT count(*) FROM `+ident(SchemaName(id))+`.kinds), (SELECT count(*) FROM `+ident(SchemaName(id))+`.kinds WHERE extra = 'added'),
			(SELECT count(*) FILTER (WHERE note = 'migrated') FROM `+ident(SchemaName(id))+`.a_kids),
			(SELECT count(*) FILTER (WHERE note IS NULL) FROM `+ident(SchemaName(id))+`.a_kids)`).Scan(&versions, &kinds, &added, &migrated, &nulls)
		if err != nil {
			t.Fatal(err)
		}
		if versions != "app:1,app:2,tenantmcp:1" || kinds != 9 || added != 9 || migrated != 9 || nulls != 0 {
			t.Fatalf("tenant %s after Import: migrations %s, %d kinds (%d with the added column), %d notes migrated, %d NULL; want app:1,app:2,tenantmcp:1, 9, 9, 9, 0",
				id, versions, kinds, added, migrated, nulls)
		}
	}

	newer := exportSQL(t, v2, fresh)
	dst := tenant.NewID()
	err := v1.Import(ctx, dst, newer)
	if !errors.Is(err, ErrArchive) || !strings.Contains(err.Error(), "upgrade") {
		t.Fatalf("Import of a v2 archive with v1 migrations: err = %v, want ErrArchive saying to upgrade", err)
	}
	wantPurged(t, e, SchemaPerTenant, dst)
	generic := e.provisioner(t) // knows no application migrations
	if err := generic.Import(ctx, dst, newer); !errors.Is(err, ErrArchive) {
		t.Fatalf("Import of application tables without their migrations: err = %v, want ErrArchive", err)
	}
	wantPurged(t, e, SchemaPerTenant, dst)
}

func TestReadManifest(t *testing.T) {
	parts := func(files ...string) *storetest.MemoryParts {
		m := &storetest.MemoryParts{}
		for i := 0; i < len(files); i += 2 {
			w, err := m.Create(files[i])
			if err != nil {
				t.Fatal(err)
			}
			io.WriteString(w, files[i+1])
			w.Close()
		}
		return m
	}
	const mf = rlsParts + manifestName
	table := `{"name": "x", "columns": ["a"], "part": "postgres/rls/x.copy", "rows": 1}`
	for _, c := range []struct {
		what  string
		parts *storetest.MemoryParts
		want  string // "" for success
	}{
		{"no parts", parts(), ""},
		{"good", parts(rlsParts+"x.copy", "1\n", mf, `{"format": 1, "strategy": "row_level_security", "tables": [`+table+`]}`), ""},
		{"no manifest", parts(rlsParts+"x.copy", "1\n"), "no part postgres/rls/manifest.json"},
		{"not JSON", parts(mf, "{"), "manifest.json: unexpected end"},
		{"newer format", parts(mf, `{"format": 2, "strategy": "row_level_security"}`), "format 2"},
		{"other strategy", parts(mf, `{"format": 1, "strategy": "schema_per_tenant"}`), "the parts are from schema_per_tenant"},
		{"missing table part", parts(mf, `{"format": 1, "strategy": "row_level_security", "tables": [`+table+`]}`), "part postgres/rls/x.copy of table \"x\" is missing"},
		{"unknown part", parts(mf, `{"format": 1, "strategy": "row_level_security"}`, rlsParts+"y.copy", ""), "unknown part postgres/rls/y.copy"},
		{"part twice", parts(rlsParts+"x.copy", "", mf, `{"format": 1, "strategy": "row_level_security", "tables": [`+table+`, `+table+`]}`), "bad entry"},
		{"part outside", parts("x.copy", "", mf, `{"format": 1, "strategy": "row_level_security", "tables": [{"name": "x", "part": "x.copy"}]}`), "bad entry"},
	} {
		_, err := readManifest(c.parts, rlsParts, RowLevelSecurity)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.what, err)
		case c.want != "" && (!errors.Is(err, ErrArchive) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: err = %v, want ErrArchive saying %q", c.what, err, c.want)
		}
	}
}

// copyText encodes fields as COPY's text format does
// (CopyAttributeOutText): the decoder's reference.
func copyText(fields [][]byte) []byte {
	var out []byte
	for i, f := range fields {
		if i > 0 {
			out = append(out, '\t')
		}
		if f == nil {
			out = append(out, `\N`...)
			continue
		}
		for _, c := range f {
			if c == '\\' {
				out = append(out, `\\`...)
				continue
			}
			for letter, b := range copyEscapes {
				if c == b {
					c = letter
					out = append(out, '\\')
				}
			}
			out = append(out, c)
		}
	}
	return out
}

func TestDecodeCopyRow(t *testing.T) {
	for _, c := range []struct {
		line string
		want [][]byte
	}{
		{"", [][]byte{{}}},
		{"\t", [][]byte{{}, {}}},
		{`\N`, [][]byte{nil}},
		{`\N` + "\t" + `\\N`, [][]byte{nil, []byte(`\N`)}},
		{`a\tb\nc\\d\re\bf\fg\vh`, [][]byte{[]byte("a\tb\nc\\d\re\bf\fg\vh")}},
		{`\101\0\7777\x41\x4gz\xz\q`, [][]byte{[]byte("A\x00\xff7A\x04gzxzq")}},
		{"ünï 日本 🎉", [][]byte{[]byte("ünï 日本 🎉")}},
	} {
		got, err := decodeCopyRow([]byte(c.line), nil)
		if err != nil {
			t.Errorf("decodeCopyRow(%q): %v", c.line, err)
			continue
		}
		if !slices.EqualFunc(got, c.want, func(a, b []byte) bool { return bytes.Equal(a, b) && (a == nil) == (b == nil) }) {
			t.Errorf("decodeCopyRow(%q) = %q, want %q", c.line, got, c.want)
		}
	}
	for _, bad := range []string{`a\`, `a\Nb`} {
		if _, err := decodeCopyRow([]byte(bad), nil); err == nil {
			t.Errorf("decodeCopyRow(%q) succeeded", bad)
		}
	}
}

// FuzzDecodeCopyRow: whatever the line, no panic; and every row of
// fields, encoded as PostgreSQL encodes it, decodes to the same fields.
func FuzzDecodeCopyRow(f *testing.F) {
	f.Add([]byte("a\tb\\n\x00"), []byte(`\N`))
	f.Add([]byte{}, []byte("\\\t\n"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		decodeCopyRow(a, nil)
		fields := [][]byte{a, b, nil, bytes.ToUpper(a)}
		got, err := decodeCopyRow(copyText(fields), nil)
		if err != nil {
			t.Fatalf("decode of %q: %v", copyText(fields), err)
		}
		if !slices.EqualFunc(got, fields, func(x, y []byte) bool { return bytes.Equal(x, y) && (x == nil) == (y == nil) }) {
			t.Fatalf("decode(encode(%q)) = %q", fields, got)
		}
	})
}

// BenchmarkPortable measures Export and Import of one tenant of 10,000
// documents of 1 KiB, on each strategy; -benchtime=Nx keeps the database
// small (each Import adds a tenant).
func BenchmarkPortable(b *testing.B) {
	for _, s := range strategies {
		b.Run(string(s), func(b *testing.B) {
			e := setup(b, s)
			be, p := e.portable(b, s)
			ctx := context.Background()
			id := tenant.NewID()
			err := be.InTx(ctx, id, func(tx store.Tx) error {
				_, err := tx.Exec(ctx, `INSERT INTO tenantmcp_documents (key, content)
					SELECT 'doc/' || i, decode(repeat(md5(i::text), 32), 'hex') FROM generate_series(1, 10000) i`)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
			parts := &storetest.MemoryParts{}
			if err := p.Export(ctx, id, parts); err != nil {
				b.Fatal(err)
			}
			var size int64
			for _, n := range parts.Names() {
				data, _ := parts.Part(n)
				size += int64(len(data))
			}
			b.Run("export", func(b *testing.B) {
				b.SetBytes(size)
				for b.Loop() {
					if err := p.Export(ctx, id, &storetest.MemoryParts{}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("import", func(b *testing.B) {
				b.SetBytes(size)
				for b.Loop() {
					if err := p.Import(ctx, tenant.NewID(), parts); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// TestPortableCreateRoleAdmin runs a schema tenant's export, purge and
// import through an administrator that is no superuser (CREATEROLE, owner
// of the database, a member of the owner role after Setup), as
// docs/isolation-postgres.md allows.
func TestPortableCreateRoleAdmin(t *testing.T) {
	ctx := context.Background()
	sfx := testenv.Suffix()
	admin, owner, app := "tmcp_admin_"+sfx, "tmcp_owner_"+sfx, "tmcp_app_"+sfx
	dropRolesAtCleanup(t, app, owner, admin)
	dsn := testenv.Postgres(t)
	super := newPool(t, dsn, 1)
	for _, q := range []string{
		"CREATE ROLE " + admin + " LOGIN CREATEROLE",
		"ALTER DATABASE " + ident(strings.TrimPrefix(dsnPath(t, dsn), "/")) + " OWNER TO " + admin,
		"ALTER SCHEMA public OWNER TO " + admin,
	} {
		if _, err := super.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	adminDSN := testenv.WithUser(t, dsn, admin, "")
	if err := Setup(ctx, adminDSN, &SetupOptions{OwnerRole: owner, AppRole: app}); err != nil {
		t.Fatal(err)
	}
	adminPool := newPool(t, adminDSN, 1) // Export, Import and Purge need one connection
	if err := Migrate(ctx, adminPool, SchemaPerTenant, &MigrateOptions{OwnerRole: owner, AppRole: app}); err != nil {
		t.Fatal(err)
	}
	p, err := NewProvisioner(adminPool, &ProvisionerOptions{OwnerRole: owner, AppRole: app, Migrations: portableTables(false)})
	if err != nil {
		t.Fatal(err)
	}
	appPool := newPool(t, testenv.WithUser(t, dsn, app, ""), 2)
	b, err := NewSchemas(appPool, &SchemaOptions{Provisioner: p})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{dsn: dsn, owner: owner, app: app, admin: super, appPool: appPool}
	a, other := tenant.NewID(), tenant.NewID()
	seedSQL(t, b, a, "mine")
	seedSQL(t, b, other, marker(other))
	before, otherBefore := e.rowsOf(t, SchemaPerTenant, a), e.rowsOf(t, SchemaPerTenant, other)
	parts := exportSQL(t, p, a)
	if err := p.Purge(ctx, a); err != nil {
		t.Fatal(err)
	}
	wantPurged(t, e, SchemaPerTenant, a)
	if err := p.Import(ctx, a, parts); err != nil {
		t.Fatal(err)
	}
	if got := e.rowsOf(t, SchemaPerTenant, a); got != before {
		t.Fatalf("after Import:\n%s\nwant\n%s", got, before)
	}
	wantTenants(t, e, SchemaPerTenant, []tenant.ID{other}, []string{otherBefore}, "at the end")
	if err := CheckAppRole(ctx, appPool); err != nil {
		t.Errorf("CheckAppRole after Import: %v", err)
	}
}

func dsnPath(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return u.Path
}
