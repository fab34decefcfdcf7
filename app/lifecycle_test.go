package app_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
	_ "modernc.org/sqlite" // the "sqlite" driver, to read tenant files as they are on disk

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/config"
	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/lifecycle"
	"github.com/tenantmcp/tenantmcp/lifecycle/archive"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/registry/registrytest"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// The tenant lifecycle through the assembled app, on every isolation
// strategy: what exists on disk, in PostgreSQL, in S3 and in Redis is read
// directly from there (files, catalogs, rows, objects, keys), never through
// the stores under test.

// lcVariant is one deployment shape the lifecycle tests run on.
type lcVariant struct {
	name string
	iso  string
	s3   bool // blobs and archives in S3 (gofakes3) instead of the filesystem
}

var lcVariants = []lcVariant{
	{name: "database_per_tenant", iso: config.IsolationDatabase},
	{name: "prefix_s3", iso: config.IsolationPrefix, s3: true},
	{name: "row_level_security", iso: config.IsolationRLS},
	{name: "schema_per_tenant", iso: config.IsolationSchema},
}

// lcProvisionSteps are the provisioning steps each strategy persists
// (the record is written before any of them).
var lcProvisionSteps = map[string][]string{
	config.IsolationDatabase: {"provision/docs", "provision/activate"},
	config.IsolationPrefix:   {"provision/activate"},
	config.IsolationRLS:      {"provision/activate"},
	config.IsolationSchema:   {"provision/sql", "provision/activate"},
}

const lcBucket = "tenant-objects"

// kvNamespace is the Redis key prefix of a deployment's KV store.
const kvNamespace = "tenantmcp:"

var errCrash = errors.New("crash injected by the test")

// lcEnv is a served deployment with direct access to every place tenant
// data lives.
type lcEnv struct {
	*deployment
	v       lcVariant
	dataDir string
	pg      *pgx.Conn // superuser, on the deployment's database (RLS, schema)
	appRole string
	rdb     *redis.Client // the deployment's Redis database
	s3      *s3mem.Backend

	mu      sync.Mutex
	crashOp string   // the operation whose crashAt-th step (1-based) fails
	crashAt int      // 0: none
	calls   int      // steps of crashOp since arm
	seen    []string // op/step of every step since arm
}

// arm makes the k-th step of operation op from now fail as a crash would
// (k = 0: none) and forgets the steps seen.
func (e *lcEnv) arm(op string, k int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.crashOp, e.crashAt, e.calls, e.seen = op, k, 0, nil
}

// steps are the op/step of every step since arm.
func (e *lcEnv) steps() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.seen)
}

// beforeStep is the deployment's app.Options.BeforeLifecycleStep.
func (e *lcEnv) beforeStep(op, step string, id tenant.ID) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seen = append(e.seen, op+"/"+step)
	if op != e.crashOp {
		return nil
	}
	e.calls++
	if e.calls == e.crashAt {
		return errCrash
	}
	return nil
}

// redisDBs are the Redis databases these tests may take, one per
// deployment: the KV store's namespace is fixed, so deployments are kept
// apart by database. A database that holds any key is someone else's
// and skipped.
var redisDBs = struct {
	sync.Mutex
	used map[int]bool
}{used: map[int]bool{}}

// redisDB takes an empty Redis database for the test and returns a client
// on it and its URL; its tenantmcp keys are removed when the test ends.
func redisDB(t *testing.T) (*redis.Client, string) {
	t.Helper()
	addr, _ := testenv.Redis(t) // skips (fails in CI) without Redis
	ctx := context.Background()
	redisDBs.Lock()
	defer redisDBs.Unlock()
	for db := 9; db <= 15; db++ {
		if redisDBs.used[db] {
			continue
		}
		c := redis.NewClient(&redis.Options{Addr: addr, DB: db})
		n, err := c.DBSize(ctx).Result()
		if err != nil {
			c.Close()
			t.Fatalf("redis db %d: %v", db, err)
		}
		if n != 0 {
			c.Close()
			continue
		}
		redisDBs.used[db] = true
		t.Cleanup(func() {
			keys, err := c.Keys(ctx, kvNamespace+"*").Result()
			if err == nil && len(keys) > 0 {
				err = c.Del(ctx, keys...).Err()
			}
			if err != nil {
				t.Errorf("clean redis db %d: %v", db, err)
			}
			c.Close()
			redisDBs.Lock()
			delete(redisDBs.used, db)
			redisDBs.Unlock()
		})
		return c, fmt.Sprintf("redis://%s/%d", addr, db)
	}
	t.Fatalf("no empty Redis database among 9-15 at %s: the lifecycle tests need one each", addr)
	return nil, ""
}

// lcDeploy serves a deployment of variant v with a KV store in Redis;
// lifecycleLines are added to its [lifecycle] section.
func lcDeploy(t *testing.T, v lcVariant, lifecycleLines ...string) *lcEnv {
	t.Helper()
	ctx := context.Background()
	e := &lcEnv{v: v}
	opts := &app.Options{BeforeLifecycleStep: e.beforeStep}
	var rdbURL string
	e.rdb, rdbURL = redisDB(t)

	var cfg strings.Builder
	fmt.Fprintf(&cfg, "[auth.multi_tenant]\ntenant_claim = \"org_id\"\nisolation = %q\n", v.iso)
	fmt.Fprintf(&cfg, "[storage]\nredis_url = %q\n", rdbURL)
	if v.s3 {
		e.s3 = s3mem.New()
		if err := e.s3.CreateBucket(lcBucket); err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(gofakes3.New(e.s3).Server())
		t.Cleanup(srv.Close)
		fmt.Fprintf(&cfg, "blob = \"s3\"\ns3_bucket = %q\ns3_endpoint = %q\ns3_path_style = true\n", lcBucket, srv.URL)
		opts.S3AccessKey, opts.S3SecretKey = "test", "test"
	}
	switch v.iso {
	case config.IsolationRLS, config.IsolationSchema:
		adminDSN, owner, appRole := testenv.PostgresWithRoles(t)
		password := app.RandomPassword()
		appDSN, err := app.AppDSN(adminDSN, appRole, password)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&cfg, "[database]\ndsn = %q\nowner_role = %q\napp_role = %q\n", appDSN, owner, appRole)
		if v.iso == config.IsolationSchema {
			fmt.Fprintf(&cfg, "admin_dsn = %q\n", adminDSN)
		}
		setup, err := config.Parse([]byte("[auth]\nprovider = \"generic\"\nissuer = \"http://127.0.0.1/dev\"\n"+cfg.String()), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := app.SetupDatabase(ctx, setup, adminDSN, &app.SetupOptions{AppPassword: password}); err != nil {
			t.Fatalf("db setup: %v", err)
		}
		if e.pg, err = pgx.Connect(ctx, adminDSN); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.pg.Close(context.Background()) })
		e.appRole = appRole
	}
	cfg.WriteString("[lifecycle]\n")
	switch {
	case v.s3:
		cfg.WriteString("archives = \"s3\"\n")
	case v.iso == config.IsolationRLS: // archives outside the data directory
		fmt.Fprintf(&cfg, "archive_dir = %q\n", t.TempDir())
	}
	for _, l := range lifecycleLines {
		cfg.WriteString(l + "\n")
	}
	e.deployment = deploy(t, cfg.String(), opts)
	e.dataDir = e.app.Config.Server.DataDir
	return e
}

// admin runs fn with the admin service recording into the audit trail, as
// a CLI command does, and writes the events before it returns.
func (e *lcEnv) admin(t *testing.T, fn func(*admin.Service) error) error {
	t.Helper()
	ctx := context.Background()
	aud, flush, err := e.app.CommandAuditor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := e.app.AdminService(ctx, aud)
	if err != nil {
		t.Fatal(err)
	}
	return errors.Join(fn(svc), flush())
}

var ops = admin.Principal{Subject: "ops@example.com", Via: admin.ViaCLI}

// do runs fn, one operation of the admin service, recorded in the audit
// trail.
func (e *lcEnv) do(t *testing.T, fn func(context.Context, *admin.Service) (*registry.Tenant, error)) (*registry.Tenant, error) {
	t.Helper()
	var rec *registry.Tenant
	err := e.admin(t, func(s *admin.Service) error {
		var err error
		rec, err = fn(context.Background(), s)
		return err
	})
	return rec, err
}

func (e *lcEnv) create(t *testing.T, spec admin.TenantSpec) (*registry.Tenant, error) {
	t.Helper()
	return e.do(t, func(ctx context.Context, s *admin.Service) (*registry.Tenant, error) {
		rec, _, err := s.CreateTenant(ctx, ops, spec, "")
		return rec, err
	})
}

func (e *lcEnv) mustCreate(t *testing.T, spec admin.TenantSpec) *registry.Tenant {
	t.Helper()
	rec, err := e.create(t, spec)
	if err != nil {
		t.Fatalf("create %s: %v", spec.ExternalID, err)
	}
	return rec
}

// archive, purge, restore and deleteNow are the admin operations.
func (e *lcEnv) archive(t *testing.T, id tenant.ID) (*registry.Tenant, error) {
	t.Helper()
	return e.do(t, func(ctx context.Context, s *admin.Service) (*registry.Tenant, error) {
		return s.ArchiveTenant(ctx, ops, id)
	})
}

func (e *lcEnv) purge(t *testing.T, id tenant.ID) (*registry.Tenant, error) {
	t.Helper()
	return e.do(t, func(ctx context.Context, s *admin.Service) (*registry.Tenant, error) {
		return s.PurgeTenant(ctx, ops, id)
	})
}

func (e *lcEnv) restore(t *testing.T, name string) (*registry.Tenant, error) {
	t.Helper()
	return e.do(t, func(ctx context.Context, s *admin.Service) (*registry.Tenant, error) {
		return s.RestoreArchive(ctx, ops, name)
	})
}

func (e *lcEnv) deleteNow(t *testing.T, id tenant.ID) (*registry.Tenant, error) {
	t.Helper()
	return e.do(t, func(ctx context.Context, s *admin.Service) (*registry.Tenant, error) {
		return s.DeleteTenant(ctx, ops, id, true)
	})
}

func (e *lcEnv) token(t *testing.T, externalID string) string {
	t.Helper()
	tok, err := e.iss.Mint(auth.TokenRequest{Audience: e.url, TenantID: externalID, UserID: "u-" + externalID})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func sum(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }

// rowsSum is the count and SHA-256 of rows in sorted order: a table's
// content regardless of the order a scan returns it in.
func rowsSum(rows []string) string {
	slices.Sort(rows)
	return fmt.Sprintf("%d rows %s", len(rows), sum([]byte(strings.Join(rows, "\n"))))
}

// contents is every piece of tenant id's data in every backend, read
// where it lives: name → checksum. A Redis key's entry says whether it
// expires; ttls gives how long it has left.
func (e *lcEnv) contents(t *testing.T, id tenant.ID) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	switch e.v.iso {
	case config.IsolationDatabase:
		sqliteContents(t, filepath.Join(e.dataDir, "tenants", string(id)+".db"), out)
	case config.IsolationRLS:
		for _, table := range e.rlsTables(t) {
			rows := e.pgStrings(t, "SELECT t::text FROM public."+pgx.Identifier{table}.Sanitize()+" t WHERE tenant_id::text = $1", string(id))
			if len(rows) > 0 {
				out["sql:"+table] = rowsSum(rows)
			}
		}
	case config.IsolationSchema:
		schema := "t_" + string(id)
		if len(e.pgStrings(t, "SELECT rolname::text FROM pg_roles WHERE rolname = $1", schema)) > 0 {
			out["sql:role"] = "exists"
		}
		if len(e.pgStrings(t, "SELECT tenant_id::text FROM public.tenantmcp_schemas WHERE tenant_id::text = $1", string(id))) > 0 {
			out["sql:catalog"] = "registered"
		}
		rels := e.pgStrings(t, `SELECT c.relkind::text || ' ' || c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relkind IN ('r', 'S') ORDER BY 1`, schema)
		if len(e.pgStrings(t, "SELECT nspname::text FROM pg_namespace WHERE nspname = $1", schema)) > 0 {
			out["sql:schema"] = "exists"
		}
		for _, rel := range rels {
			kind, name, _ := strings.Cut(rel, " ")
			q := pgx.Identifier{schema, name}.Sanitize()
			if kind == "S" {
				out["sql:sequence "+name] = strings.Join(e.pgStrings(t, "SELECT last_value::text || ' ' || is_called::text FROM "+q), "")
				continue
			}
			if name == "tenantmcp_migrations" {
				// Bookkeeping: a restore applies the archive's migration
				// versions anew, so applied_at is the time of the restore.
				out["sql:"+name] = rowsSum(e.pgStrings(t, "SELECT component || ' ' || version || ' ' || name FROM "+q))
				continue
			}
			out["sql:"+name] = rowsSum(e.pgStrings(t, "SELECT t::text FROM "+q+" t"))
		}
	}
	if e.s3 != nil {
		for _, key := range e.s3Keys(t, string(id)+"/") {
			obj, err := e.s3.GetObject(lcBucket, key, nil)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(obj.Contents)
			obj.Contents.Close()
			if err != nil {
				t.Fatal(err)
			}
			out["blobs:"+strings.TrimPrefix(key, string(id)+"/")] = sum(b)
		}
	} else {
		root := filepath.Join(e.dataDir, "blobs", string(id))
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			switch {
			case errors.Is(err, fs.ErrNotExist) && path == root:
				return nil
			case err != nil:
				return err
			case path == root:
				out["blobs:"] = "directory"
			case d.Type().IsRegular():
				b, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(root, path)
				out["blobs:"+filepath.ToSlash(rel)] = sum(b)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for key, ttl := range e.ttls(t, id) {
		v, err := e.rdb.Get(ctx, kvNamespace+string(id)+"/"+key).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		out["kv:"+key] = sum(v)
		if ttl > 0 {
			out["kv:"+key] += " expires"
		}
	}
	return out
}

// ttls lists tenant id's Redis keys (without the namespace) with the time
// each has left (0: none).
func (e *lcEnv) ttls(t *testing.T, id tenant.ID) map[string]time.Duration {
	t.Helper()
	ctx := context.Background()
	base := kvNamespace + string(id) + "/"
	keys, err := e.rdb.Keys(ctx, base+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]time.Duration{}
	for _, k := range keys {
		ttl, err := e.rdb.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimPrefix(k, base)] = max(ttl, 0)
	}
	return out
}

// sqliteContents reads every table of the SQLite file at path, if it
// exists, opened read-only beside the store's own connections.
func sqliteContents(t *testing.T, path string, out map[string]string) {
	t.Helper()
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tables := queryStrings(t, db, "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
	out["docs:file"] = "exists"
	for _, table := range tables {
		rows, err := db.Query(`SELECT * FROM "` + strings.ReplaceAll(table, `"`, `""`) + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		var all []string
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			all = append(all, fmt.Sprintf("%q", vals))
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			t.Fatal(err)
		}
		out["docs:"+table] = rowsSum(all)
	}
}

func queryStrings(t *testing.T, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// pgStrings runs q as the superuser (who is not subject to row level
// security) and returns its one text column.
func (e *lcEnv) pgStrings(t *testing.T, q string, args ...any) []string {
	t.Helper()
	rows, err := e.pg.Query(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// rlsTables are the tables under tenant isolation.
func (e *lcEnv) rlsTables(t *testing.T) []string {
	t.Helper()
	return e.pgStrings(t, `SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relrowsecurity
		  AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
		ORDER BY 1`)
}

func (e *lcEnv) s3Keys(t *testing.T, prefix string) []string {
	t.Helper()
	p := gofakes3.NewPrefix(&prefix, nil)
	list, err := e.s3.ListBucket(lcBucket, &p, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, c := range list.Contents {
		keys = append(keys, c.Key)
	}
	return keys
}

// orphans lists tenant storage that no registered, unpurged tenant owns —
// files, blob directories or objects, rows, schemas, tenant roles, Redis
// keys — and anything in the stores' directories that is not a tenant's.
func (e *lcEnv) orphans(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	recs, err := e.app.Registry.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	live := map[tenant.ID]bool{}
	for _, r := range recs {
		live[r.ID] = r.Status != registry.StatusPurged
	}
	var out []string
	own := func(where, id string) {
		if !live[tenant.ID(id)] {
			out = append(out, where+" of "+id)
		}
	}
	// idOf splits name into a tenant id and the rest.
	idOf := func(name string) (string, string, bool) {
		if len(name) < tenant.IDLen || !tenant.ID(name[:tenant.IDLen]).Valid() {
			return "", "", false
		}
		return name[:tenant.IDLen], name[tenant.IDLen:], true
	}
	dirNames := func(dir string) []os.DirEntry {
		ents, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		return ents
	}
	if e.v.iso == config.IsolationDatabase {
		for _, ent := range dirNames(filepath.Join(e.dataDir, "tenants")) {
			id, rest, ok := idOf(ent.Name())
			if !ok || !slices.Contains([]string{".db", ".db-wal", ".db-shm", ".db-journal"}, rest) {
				out = append(out, "stray file tenants/"+ent.Name())
				continue
			}
			own("SQLite file "+ent.Name(), id)
		}
	}
	if e.s3 != nil {
		for _, key := range e.s3Keys(t, "") {
			if strings.HasPrefix(key, "archives/") {
				continue
			}
			id, rest, ok := idOf(key)
			if !ok || !strings.HasPrefix(rest, "/") {
				out = append(out, "stray object "+key)
				continue
			}
			own("object "+key, id)
		}
	} else {
		for _, ent := range dirNames(filepath.Join(e.dataDir, "blobs")) {
			id, rest, ok := idOf(ent.Name())
			if !ok || rest != "" || !ent.IsDir() {
				out = append(out, "stray entry blobs/"+ent.Name())
				continue
			}
			own("blob directory", id)
		}
	}
	switch e.v.iso {
	case config.IsolationRLS:
		for _, table := range e.rlsTables(t) {
			for _, id := range e.pgStrings(t, "SELECT DISTINCT tenant_id::text FROM public."+pgx.Identifier{table}.Sanitize()) {
				own("rows of "+table, id)
			}
		}
	case config.IsolationSchema:
		for _, s := range e.pgStrings(t, `SELECT nspname::text FROM pg_namespace WHERE nspname ~ '^t_'`) {
			own("schema "+s, strings.TrimPrefix(s, "t_"))
		}
		// Roles are cluster-wide: this deployment's are those granted to
		// its application role.
		for _, r := range e.pgStrings(t, `SELECT r.rolname::text FROM pg_auth_members m
			JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles a ON a.oid = m.member WHERE a.rolname = $1`, e.appRole) {
			own("role "+r, strings.TrimPrefix(r, "t_"))
		}
		for _, id := range e.pgStrings(t, "SELECT tenant_id::text FROM public.tenantmcp_schemas") {
			own("tenantmcp_schemas row", id)
		}
	}
	keys, err := e.rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		id, rest, ok := idOf(strings.TrimPrefix(k, kvNamespace))
		if !strings.HasPrefix(k, kvNamespace) || !ok || !strings.HasPrefix(rest, "/") {
			out = append(out, "stray Redis key "+k)
			continue
		}
		own("Redis key "+k, id)
	}
	slices.Sort(out)
	return out
}

func (e *lcEnv) noOrphans(t *testing.T, when string) {
	t.Helper()
	if o := e.orphans(t); len(o) > 0 {
		t.Fatalf("%s: storage that no registered tenant owns:\n  %s", when, strings.Join(o, "\n  "))
	}
}

// TestLifecycleCrashAtEveryProvisioningStep: on every strategy, a
// provisioning stopped before each of its persisted steps (as a killed
// process would stop) leaves a registered, provisioning tenant that the
// server refuses with "being set up" and no storage of any unregistered
// tenant; creating the tenant again, or the reconciler, finishes it —
// same internal id, the requested status, storage the server uses — once.
func TestLifecycleCrashAtEveryProvisioningStep(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	for _, v := range lcVariants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := lcDeploy(t, v)
			e.arm("", 0)
			e.mustCreate(t, admin.TenantSpec{ExternalID: "reference"})
			steps := e.steps()
			if want := lcProvisionSteps[v.iso]; !slices.Equal(steps, want) {
				t.Fatalf("provisioning steps %v, want %v", steps, want)
			}
			registered := 1
			// k = 0: killed right after the record was written, before the
			// first step was persisted (the state Provision leaves then,
			// written here as it does).
			for k, step := range append([]string{"provision/record"}, steps...) {
				for _, finish := range []string{"create", "reconcile"} {
					ext := fmt.Sprintf("crash-%d-%s", k, finish)
					spec := admin.TenantSpec{ExternalID: ext, Name: ext, Status: registry.StatusTrial, TrialDays: 14}
					if k == 0 {
						if _, err := e.app.Registry.Add(ctx, registry.Tenant{
							Issuer: e.iss.Issuer(), ExternalID: ext, Name: ext, Status: registry.StatusProvisioning, TrialEndsAt: time.Now().AddDate(0, 0, 14),
							Lifecycle: registry.Lifecycle{Operation: lifecycle.OpProvision, Step: "record", Target: registry.StatusTrial},
						}); err != nil {
							t.Fatal(err)
						}
					} else {
						e.arm(lifecycle.OpProvision, k)
						if _, err := e.create(t, spec); !errors.Is(err, errCrash) {
							t.Fatalf("create with a crash before %s: %v", step, err)
						}
					}
					registered++
					half, err := e.app.Registry.Lookup(ctx, e.iss.Issuer(), ext)
					if err != nil {
						t.Fatalf("after a crash before %s: %v", step, err)
					}
					if half.Status != registry.StatusProvisioning || half.Lifecycle.Operation+"/"+half.Lifecycle.Step != step {
						t.Fatalf("after a crash before %s: status %s, lifecycle %+v", step, half.Status, half.Lifecycle)
					}
					tok := e.token(t, ext)
					if code, body := post(t, e.url, tok); code != 503 || !strings.Contains(body, "being set up") {
						t.Fatalf("a half-provisioned tenant's request: %d %s", code, body)
					}
					e.noOrphans(t, "after a crash before "+step)

					e.arm("", 0)
					switch finish {
					case "create":
						if _, err := e.create(t, spec); err != nil {
							t.Fatalf("create again after a crash before %s: %v", step, err)
						}
					case "reconcile":
						m, err := e.app.Lifecycle(ctx, nil)
						if err != nil {
							t.Fatal(err)
						}
						if n, err := m.Reconcile(ctx, lifecycle.System, 0); n != 1 || err != nil {
							t.Fatalf("reconcile after a crash before %s: finished %d, %v; want 1", step, n, err)
						}
					}
					done, err := e.app.Registry.Get(ctx, half.ID)
					if err != nil {
						t.Fatal(err)
					}
					if done.Status != registry.StatusTrial || done.TrialEndsAt.IsZero() || !done.Lifecycle.IsZero() {
						t.Fatalf("finished after a crash before %s (%s): status %s, trial end %v, lifecycle %+v", step, finish, done.Status, done.TrialEndsAt, done.Lifecycle)
					}
					e.noOrphans(t, "after finishing")
					if recs, _ := e.app.Registry.List(ctx); len(recs) != registered {
						t.Fatalf("%d tenants registered, want %d", len(recs), registered)
					}
					// The storage is complete: it exists (before anything
					// could create it on first use), and the server stores
					// and reads.
					have := e.contents(t, done.ID)
					for _, want := range map[string][]string{
						config.IsolationDatabase: {"docs:file", "docs:documents"},
						config.IsolationSchema:   {"sql:schema", "sql:role", "sql:catalog", "sql:tenantmcp_documents"},
					}[v.iso] {
						if _, ok := have[want]; !ok {
							t.Fatalf("finished after a crash before %s (%s): no %s in %v", step, finish, want, have)
						}
					}
					c := e.client(t, ext, "u-"+ext)
					if out, isErr := call(t, c, "put_document", map[string]any{"key": "k", "content": ext}); isErr {
						t.Fatalf("put after finishing: %s", out)
					}
					if out, _ := call(t, c, "get_document", map[string]any{"key": "k"}); !strings.Contains(out, ext) {
						t.Fatalf("get after finishing: %s", out)
					}
					if _, err := e.create(t, spec); !errors.Is(err, registry.ErrExists) {
						t.Fatalf("creating a finished tenant again: %v, want ErrExists", err)
					}
				}
			}
			e.noOrphans(t, "at the end")
		})
	}
}

// seed gives tenant ext (id) data in every backend: a document through the
// server's tools, a binary document and a blob through the stores, and
// Redis keys with and without a time to live.
func (e *lcEnv) seed(t *testing.T, ext string, id tenant.ID) {
	t.Helper()
	ctx := context.Background()
	c := e.client(t, ext, "u-"+ext)
	if out, isErr := call(t, c, "put_document", map[string]any{"key": "plans/q3.md", "content": ext + " plan: ünïcode\nline 2"}); isErr {
		t.Fatalf("%s put: %s", ext, out)
	}
	binary := []byte("\x00\x01\xff\xfe" + ext + strings.Repeat("\x00", 300))
	if err := e.app.Stores.Docs.Put(ctx, id, "raw/binary.bin", binary); err != nil {
		t.Fatal(err)
	}
	if e.v.iso != config.IsolationPrefix { // there the documents are the blobs
		big := make([]byte, 200<<10)
		for i := range big {
			big[i] = byte(i*7 + len(ext))
		}
		if err := e.app.Stores.Blobs.Put(ctx, id, "reports/"+ext+"/2026.pdf", big); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.app.Stores.KV.Put(ctx, id, "counters/visits", []byte("42-"+ext)); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.Set(ctx, kvNamespace+string(id)+"/sessions/s1", "session of "+ext, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if e.v.iso == config.IsolationDatabase { // a table of the tenant's own
		err := e.app.Stores.SQL.InTx(ctx, id, func(tx store.Tx) error {
			if _, err := tx.Exec(ctx, "CREATE TABLE invoices (n INTEGER PRIMARY KEY, total REAL, pdf BLOB)"); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO invoices VALUES (1, 99.5, $1), (2, NULL, x'00ff')", binary)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// others is the contents of every tenant but skip.
func (e *lcEnv) others(t *testing.T, skip tenant.ID, ids ...tenant.ID) map[tenant.ID]map[string]string {
	t.Helper()
	out := map[tenant.ID]map[string]string{}
	for _, id := range ids {
		if id != skip {
			out[id] = e.contents(t, id)
		}
	}
	return out
}

// openArchive opens the archive named name in the deployment's archive
// store, checked against the SHA-256 stored beside it.
func (e *lcEnv) openArchive(t *testing.T, name string) *archive.Archive {
	t.Helper()
	read := func(n string) []byte {
		if e.s3 != nil {
			obj, err := e.s3.GetObject(lcBucket, "archives/"+n, nil)
			if err != nil {
				t.Fatalf("archive object %s: %v", n, err)
			}
			defer obj.Contents.Close()
			b, err := io.ReadAll(obj.Contents)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		b, err := os.ReadFile(filepath.Join(e.app.Config.EffectiveArchiveDir(), filepath.FromSlash(n)))
		if err != nil {
			t.Fatalf("archive file %s: %v", n, err)
		}
		return b
	}
	raw := read(name)
	want := strings.TrimSpace(string(read(name + lifecycle.SumSuffix)))
	if got := sum(raw); got != want {
		t.Fatalf("archive %s has SHA-256 %s, the sum beside it says %s", name, got, want)
	}
	a, err := archive.Open(strings.NewReader(string(raw)), t.TempDir(), &archive.OpenOptions{SHA256: want})
	if err != nil {
		t.Fatalf("open archive %s: %v", name, err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// TestLifecycleArchivePurgeRestore: on every strategy, archive → purge →
// restore gives the tenant back under its own id with byte-identical data
// in every backend (rows, schema tables, SQLite tables, files or objects,
// Redis keys with their time to live), served again; the archive holds a
// section per backend and the audit trail; purge leaves nothing behind;
// no other tenant's data changes by a byte at any step. A deleted tenant's
// external id, created again, is a new tenant without the old data, and
// the old archive cannot take it over.
func TestLifecycleArchivePurgeRestore(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	for _, v := range lcVariants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := lcDeploy(t, v)
			acme := e.mustCreate(t, admin.TenantSpec{ExternalID: "acme", Name: "Acme"})
			globex := e.mustCreate(t, admin.TenantSpec{ExternalID: "globex"})
			initech := e.mustCreate(t, admin.TenantSpec{ExternalID: "initech", Status: registry.StatusTrial, TrialDays: 14})
			all := []tenant.ID{acme.ID, globex.ID, initech.ID}
			for _, r := range []*registry.Tenant{acme, globex, initech} {
				e.seed(t, r.ExternalID, r.ID)
			}
			acmeClient := e.client(t, "acme", "u-acme")
			before := e.contents(t, acme.ID)
			ttlBefore := e.ttls(t, acme.ID)["sessions/s1"]
			others := e.others(t, acme.ID, all...)
			unchanged := func(when string) {
				t.Helper()
				if diff := cmp.Diff(others, e.others(t, acme.ID, all...)); diff != "" {
					t.Fatalf("%s changed other tenants' data (-before +after):\n%s", when, diff)
				}
			}
			for _, part := range []string{"blobs:", "kv:counters/visits", "kv:sessions/s1"} {
				if !slices.ContainsFunc(slices.Collect(maps.Keys(before)), func(k string) bool { return strings.HasPrefix(k, part) }) {
					t.Fatalf("seeded data lacks %s: %v", part, before)
				}
			}

			// Archive: refused at once, data still in place, all of it in
			// the archive.
			arch, err := e.archive(t, acme.ID)
			if err != nil {
				t.Fatal(err)
			}
			if arch.Status != registry.StatusArchived || arch.Lifecycle.Archive == "" || arch.Lifecycle.PurgeAfter.Sub(arch.Lifecycle.ArchivedAt) != lifecycle.DefaultRetention {
				t.Fatalf("archived: %s %+v", arch.Status, arch.Lifecycle)
			}
			if _, err := acmeClient.CallErr(ctx, "list_documents", nil); err == nil || !strings.Contains(err.Error(), "archived") {
				t.Fatalf("an archived tenant's request: %v", err)
			}
			if diff := cmp.Diff(before, e.contents(t, acme.ID)); diff != "" {
				t.Fatalf("archiving changed the tenant's data (-before +after):\n%s", diff)
			}
			unchanged("archive")
			a := e.openArchive(t, arch.Lifecycle.Archive)
			m := a.Manifest()
			var sections []string
			for _, s := range m.Sections {
				sections = append(sections, s.Name)
			}
			wantSections := map[string][]string{
				config.IsolationDatabase: {"audit", "blobs", "docs", "kv"},
				config.IsolationPrefix:   {"audit", "blobs", "kv"},
				config.IsolationRLS:      {"audit", "blobs", "kv", "sql"},
				config.IsolationSchema:   {"audit", "blobs", "kv", "sql"},
			}[v.iso]
			if slices.Sort(sections); m.Strategy != v.iso || !slices.Equal(sections, wantSections) {
				t.Fatalf("archive: strategy %q, sections %v; want %q, %v", m.Strategy, sections, v.iso, wantSections)
			}
			trail, err := a.Section(lifecycle.AuditSection).Open("trail.jsonl")
			if err != nil {
				t.Fatal(err)
			}
			tb, _ := io.ReadAll(trail)
			trail.Close()
			for _, want := range []string{`"admin/create_tenant"`, `"lifecycle/provision"`, string(acme.ID)} {
				if !strings.Contains(string(tb), want) {
					t.Errorf("the archive's audit trail lacks %s:\n%s", want, tb)
				}
			}
			if strings.Contains(string(tb), string(globex.ID)) {
				t.Errorf("acme's archived audit trail names globex")
			}

			// Purge: nothing of acme is left anywhere.
			purged, err := e.purge(t, acme.ID)
			if err != nil {
				t.Fatal(err)
			}
			if purged.Status != registry.StatusPurged {
				t.Fatalf("purged: %s", purged.Status)
			}
			if left := e.contents(t, acme.ID); len(left) > 0 {
				t.Fatalf("after the purge acme still has %v", left)
			}
			e.noOrphans(t, "after the purge")
			unchanged("purge")

			// Restore: the same tenant, the same bytes, served again.
			back, err := e.restore(t, arch.Lifecycle.Archive)
			if err != nil {
				t.Fatal(err)
			}
			if back.ID != acme.ID || back.Status != registry.StatusActive || back.Name != "Acme" {
				t.Fatalf("restored: %s %s %q", back.ID, back.Status, back.Name)
			}
			if diff := cmp.Diff(before, e.contents(t, acme.ID)); diff != "" {
				t.Fatalf("restored data differs (-before +after):\n%s", diff)
			}
			// A key's time to live is restored as what it had left when
			// archived (1h, less the seconds this test took).
			if ttl := e.ttls(t, acme.ID)["sessions/s1"]; ttl <= ttlBefore-10*time.Minute || ttl > ttlBefore {
				t.Fatalf("restored TTL %v, had %v", ttl, ttlBefore)
			}
			if out, _ := call(t, acmeClient, "get_document", map[string]any{"key": "plans/q3.md"}); !strings.Contains(out, "acme plan: ünïcode") {
				t.Fatalf("restored tenant's document through the server: %s", out)
			}
			e.noOrphans(t, "after the restore")
			unchanged("restore")

			// A trial archived and restored (its data never left) is a
			// trial again, ending when it did.
			ia, err := e.archive(t, initech.ID)
			if err != nil {
				t.Fatal(err)
			}
			ib, err := e.restore(t, ia.Lifecycle.Archive)
			if err != nil {
				t.Fatal(err)
			}
			if ib.Status != registry.StatusTrial || !ib.TrialEndsAt.Equal(initech.TrialEndsAt) {
				t.Fatalf("restored trial: %s until %v, was until %v", ib.Status, ib.TrialEndsAt, initech.TrialEndsAt)
			}
			others = e.others(t, acme.ID, all...)

			// Delete with an immediate purge: the registration goes too.
			del, err := e.deleteNow(t, acme.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.app.Registry.Get(ctx, acme.ID); !errors.Is(err, registry.ErrNotFound) {
				t.Fatalf("a deleted, purged tenant is still registered: %v", err)
			}
			if left := e.contents(t, acme.ID); len(left) > 0 {
				t.Fatalf("after delete --purge-now acme still has %v", left)
			}
			e.noOrphans(t, "after delete --purge-now")
			unchanged("delete")

			// The same external id again: a new tenant, with nothing old.
			fresh := e.mustCreate(t, admin.TenantSpec{ExternalID: "acme"})
			if fresh.ID == acme.ID {
				t.Fatal("a re-created tenant got its predecessor's internal id")
			}
			fc := e.client(t, "acme", "u-acme")
			if out, _ := call(t, fc, "list_documents", nil); !strings.Contains(out, `"keys":[]`) {
				t.Fatalf("the re-created tenant sees documents: %s", out)
			}
			for k := range e.contents(t, fresh.ID) {
				if strings.HasPrefix(k, "blobs:") && k != "blobs:" || strings.HasPrefix(k, "kv:") {
					t.Fatalf("the re-created tenant has %s", k)
				}
			}
			// The deleted tenant's archive cannot take the external id over.
			freshBefore := e.contents(t, fresh.ID)
			if _, err := e.restore(t, del.Lifecycle.Archive); !errors.Is(err, registry.ErrExists) {
				t.Fatalf("restoring the deleted tenant over its re-created successor: %v, want ErrExists", err)
			}
			if _, err := e.app.Registry.Get(ctx, acme.ID); !errors.Is(err, registry.ErrNotFound) {
				t.Fatalf("the refused restore registered the old tenant: %v", err)
			}
			if diff := cmp.Diff(freshBefore, e.contents(t, fresh.ID)); diff != "" {
				t.Fatalf("the refused restore changed the new tenant (-before +after):\n%s", diff)
			}
			unchanged("the refused restore")
			e.noOrphans(t, "at the end")
		})
	}
}

// TestLifecycleJobPurgesDueTenants: the server's background job purges an
// archived tenant once lifecycle.retention has passed, and nothing else;
// on PostgreSQL it runs only while it holds the advisory lock, so a
// replica holding it keeps the others from running the round.
func TestLifecycleJobPurgesDueTenants(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	for _, v := range []lcVariant{lcVariants[0], lcVariants[2]} { // SQLite; PostgreSQL (RLS)
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := lcDeploy(t, v, `retention = "1s"`, `reconcile_interval = "20ms"`)
			acme := e.mustCreate(t, admin.TenantSpec{ExternalID: "acme"})
			globex := e.mustCreate(t, admin.TenantSpec{ExternalID: "globex"})
			e.seed(t, "acme", acme.ID)
			e.seed(t, "globex", globex.ID)
			globexData := e.contents(t, globex.ID)
			if e.pg != nil { // another replica's round in progress
				if _, err := e.pg.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(0x746d6c63)); err != nil {
					t.Fatal(err)
				}
			}
			arch, err := e.archive(t, acme.ID)
			if err != nil {
				t.Fatal(err)
			}
			if e.pg != nil {
				// Well past the retention, with many rounds due: still
				// archived, as the lock is held.
				for time.Now().Before(arch.Lifecycle.PurgeAfter.Add(500 * time.Millisecond)) {
					time.Sleep(10 * time.Millisecond)
				}
				if got, _ := e.app.Registry.Get(ctx, acme.ID); got.Status != registry.StatusArchived {
					t.Fatalf("purged by the job while another replica held its lock: %s", got.Status)
				}
				if _, err := e.pg.Exec(ctx, "SELECT pg_advisory_unlock($1)", int64(0x746d6c63)); err != nil {
					t.Fatal(err)
				}
			}
			registrytest.Eventually(t, "the job purges the tenant whose retention passed", func() bool {
				got, err := e.app.Registry.Get(ctx, acme.ID)
				return err == nil && got.Status == registry.StatusPurged
			})
			if left := e.contents(t, acme.ID); len(left) > 0 {
				t.Fatalf("after the job's purge acme still has %v", left)
			}
			if got, _ := e.app.Registry.Get(ctx, globex.ID); got.Status != registry.StatusActive {
				t.Fatalf("globex after the job: %s", got.Status)
			}
			if diff := cmp.Diff(globexData, e.contents(t, globex.ID)); diff != "" {
				t.Fatalf("the job changed globex's data (-before +after):\n%s", diff)
			}
			e.noOrphans(t, "after the job")
		})
	}
}

// TestLifecycleCrashDuringArchivePurgeRestore: on every strategy, an
// archive, a purge and a restore stopped before each of their persisted
// steps finish when run again (archive and purge also by the reconciler),
// with the same result as an uninterrupted run: the archive restores, the
// purge leaves nothing, the restore gives back every byte; no other
// tenant's data changes.
func TestLifecycleCrashDuringArchivePurgeRestore(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	for _, v := range lcVariants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := lcDeploy(t, v)
			acme := e.mustCreate(t, admin.TenantSpec{ExternalID: "acme"})
			globex := e.mustCreate(t, admin.TenantSpec{ExternalID: "globex"})
			e.seed(t, "acme", acme.ID)
			e.seed(t, "globex", globex.ID)
			before, others := e.contents(t, acme.ID), e.contents(t, globex.ID)
			status := func(want registry.Status, when string) *registry.Tenant {
				t.Helper()
				got, err := e.app.Registry.Get(ctx, acme.ID)
				if err != nil {
					t.Fatalf("%s: %v", when, err)
				}
				if got.Status != want || got.Lifecycle.Operation != "" {
					t.Fatalf("%s: %s %+v, want %s with no operation in progress", when, got.Status, got.Lifecycle, want)
				}
				return got
			}
			intact := func(when string) {
				t.Helper()
				if diff := cmp.Diff(before, e.contents(t, acme.ID)); diff != "" {
					t.Fatalf("%s: acme's data (-want +got):\n%s", when, diff)
				}
				if diff := cmp.Diff(others, e.contents(t, globex.ID)); diff != "" {
					t.Fatalf("%s: globex's data changed (-before +after):\n%s", when, diff)
				}
			}
			gone := func(when string) {
				t.Helper()
				if left := e.contents(t, acme.ID); len(left) > 0 {
					t.Fatalf("%s: acme still has %v", when, left)
				}
				if diff := cmp.Diff(others, e.contents(t, globex.ID)); diff != "" {
					t.Fatalf("%s: globex's data changed (-before +after):\n%s", when, diff)
				}
				e.noOrphans(t, when)
			}
			reconcile := func(when string) {
				t.Helper()
				m, err := e.app.Lifecycle(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				if n, err := m.Reconcile(ctx, lifecycle.System, 0); n != 1 || err != nil {
					t.Fatalf("%s: reconcile finished %d, %v; want 1", when, n, err)
				}
			}
			must := func(rec *registry.Tenant, err error) *registry.Tenant {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
				return rec
			}
			// The steps of each operation, from uninterrupted runs.
			stepsOf := func(run func()) []string {
				t.Helper()
				e.arm("", 0)
				run()
				return e.steps()
			}
			var arch *registry.Tenant
			archiveSteps := stepsOf(func() { arch = must(e.archive(t, acme.ID)) })
			purgeSteps := stepsOf(func() { must(e.purge(t, acme.ID)) })
			restoreSteps := stepsOf(func() { must(e.restore(t, arch.Lifecycle.Archive)) })
			intact("after an uninterrupted archive, purge and restore")
			arch = must(e.archive(t, acme.ID))
			inPlaceSteps := stepsOf(func() { must(e.restore(t, arch.Lifecycle.Archive)) })
			backends := map[string][]string{
				config.IsolationDatabase: {"docs", "blobs", "kv"},
				config.IsolationPrefix:   {"blobs", "kv"},
				config.IsolationRLS:      {"sql", "blobs", "kv"},
				config.IsolationSchema:   {"sql", "blobs", "kv"},
			}[v.iso]
			with := func(op string, steps ...string) []string {
				var out []string
				for _, s := range steps {
					out = append(out, op+"/"+s)
				}
				return out
			}
			for _, c := range []struct{ got, want []string }{
				{archiveSteps, with("archive", "suspend", "write")},
				{purgeSteps, with("purge", backends...)},
				{restoreSteps, with("restore", append(backends, "activate")...)},
				{inPlaceSteps, with("restore", "activate")},
			} {
				if !slices.Equal(c.got, c.want) {
					t.Fatalf("steps %v, want %v", c.got, c.want)
				}
			}

			for k, step := range archiveSteps {
				for _, finish := range []string{"again", "reconcile"} {
					when := fmt.Sprintf("archive stopped before %s, finished %s", step, finish)
					e.arm(lifecycle.OpArchive, k+1)
					if _, err := e.archive(t, acme.ID); !errors.Is(err, errCrash) {
						t.Fatalf("archive with a crash before %s: %v", step, err)
					}
					e.arm("", 0)
					if finish == "again" {
						must(e.archive(t, acme.ID))
					} else {
						reconcile(when)
					}
					got := status(registry.StatusArchived, when)
					if got.Lifecycle.Target != registry.StatusActive || got.Lifecycle.Archive == arch.Lifecycle.Archive {
						t.Fatalf("%s: lifecycle %+v (the previous archive was %s)", when, got.Lifecycle, arch.Lifecycle.Archive)
					}
					arch = got
					e.openArchive(t, arch.Lifecycle.Archive)
					intact(when)
					must(e.restore(t, arch.Lifecycle.Archive)) // in place: active again
					status(registry.StatusActive, when+", restored")
				}
			}
			for k, step := range purgeSteps {
				for _, finish := range []string{"again", "reconcile"} {
					when := fmt.Sprintf("purge stopped before %s, finished %s", step, finish)
					arch = must(e.archive(t, acme.ID))
					e.arm(lifecycle.OpPurge, k+1)
					if _, err := e.purge(t, acme.ID); !errors.Is(err, errCrash) {
						t.Fatalf("purge with a crash before %s: %v", step, err)
					}
					e.arm("", 0)
					if finish == "again" {
						must(e.purge(t, acme.ID))
					} else {
						reconcile(when)
					}
					status(registry.StatusPurged, when)
					gone(when)
					must(e.restore(t, arch.Lifecycle.Archive))
					status(registry.StatusActive, when+", restored")
					intact(when + ", restored")
				}
			}
			for k, step := range restoreSteps {
				when := fmt.Sprintf("restore stopped before %s, run again", step)
				arch = must(e.archive(t, acme.ID))
				must(e.purge(t, acme.ID))
				e.arm(lifecycle.OpRestore, k+1)
				if _, err := e.restore(t, arch.Lifecycle.Archive); !errors.Is(err, errCrash) {
					t.Fatalf("restore with a crash before %s: %v", step, err)
				}
				e.arm("", 0)
				must(e.restore(t, arch.Lifecycle.Archive))
				status(registry.StatusActive, when)
				intact(when)
			}
			// A restore in place (the data never left) stopped before its
			// one step: run again, or finished by the reconciler.
			for _, finish := range []string{"again", "reconcile"} {
				when := "restore in place stopped, finished " + finish
				arch = must(e.archive(t, acme.ID))
				e.arm(lifecycle.OpRestore, 1)
				if _, err := e.restore(t, arch.Lifecycle.Archive); !errors.Is(err, errCrash) {
					t.Fatalf("restore in place with a crash: %v", err)
				}
				e.arm("", 0)
				if finish == "again" {
					must(e.restore(t, arch.Lifecycle.Archive))
				} else {
					reconcile(when)
				}
				status(registry.StatusActive, when)
				intact(when)
			}
			e.noOrphans(t, "at the end")
		})
	}
}
