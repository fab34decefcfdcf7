package postgres

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Default role names of this package's functions when the options name
// none. They are RoleNames("tenantmcp"); a deployment (the tenantmcp
// command) uses RoleNames of its own database instead.
const (
	DefaultOwnerRole = "tenantmcp_owner"
	DefaultAppRole   = "tenantmcp_app"
)

// RoleNames returns the owner and application role names for a deployment
// whose tables live in database: "<database>_owner" and "<database>_app".
// Roles belong to the whole cluster, not to a database, so naming them
// after the database keeps deployments that share a cluster apart.
//
// A database name that is not already a plain role name (lowercase
// [a-z0-9_] starting with a letter, not starting with pg_ or t_, at most 57
// bytes) is sanitized: every other character becomes '_', "db_" is put in
// front if needed, it is cut to 48 bytes and "_" and the first 8 hex digits
// of the name's SHA-256 are appended, so that "my-db", "My_DB" and "my_db"
// still get different roles. The results always pass Setup's checks; quote
// them (pgx.Identifier) in SQL like any other name.
func RoleNames(database string) (owner, app string) {
	s := strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, strings.ToLower(database))
	reserved := s == "" || s[0] < 'a' || s[0] > 'z' || strings.HasPrefix(s, "pg_") || strings.HasPrefix(s, "t_")
	if s == database && !reserved && len(s) <= 63-len("_owner") {
		return s + "_owner", s + "_app"
	}
	if reserved {
		s = "db_" + s
	}
	sum := sha256.Sum256([]byte(database))
	base := fmt.Sprintf("%.48s_%x", s, sum[:4])
	return base + "_owner", base + "_app"
}

// Advisory lock keys (pg_advisory_xact_lock). They only have to be
// distinct from other users of advisory locks in the same database.
const (
	lockSetup     int64 = 0x746d63705f736574 // "tmcp_set"
	lockMigrate   int64 = 0x746d63705f6d6967 // "tmcp_mig"
	lockProvision int32 = 0x746d6370         // "tmcp", with hashtext(tenant id) as the second key
)

// SetupOptions configures Setup.
type SetupOptions struct {
	// OwnerRole owns the tenantmcp tables and tenant schemas. It is created
	// NOLOGIN: migrations run as an administrator that does SET ROLE to it.
	// "" means DefaultOwnerRole.
	OwnerRole string
	// AppRole is the role the server connects as. "" means DefaultAppRole.
	AppRole string
	// AppPassword is set on AppRole if Setup creates it, hashed on this
	// side with SCRAM-SHA-256 so the clear text never reaches the server or
	// its logs. It must be printable ASCII. "" sets no password (use trust,
	// peer or certificate authentication). If AppRole already exists Setup
	// does not touch its password: with AppPassword set it fails with
	// ErrRoleExists unless ResetPassword is true, since the role may be
	// another deployment's.
	AppPassword string
	// ResetPassword sets AppPassword on an existing AppRole too. false
	// means an existing role keeps its password.
	ResetPassword bool
}

// roleNames are the validated owner and application role names.
type roleNames struct{ owner, app string }

func newRoleNames(owner, app string) (roleNames, error) {
	r := roleNames{owner: owner, app: app}
	if r.owner == "" {
		r.owner = DefaultOwnerRole
	}
	if r.app == "" {
		r.app = DefaultAppRole
	}
	for _, n := range []string{r.owner, r.app} {
		if err := validRoleName(n); err != nil {
			return r, err
		}
	}
	if r.owner == r.app {
		return r, fmt.Errorf("%w: owner and application role are both %q; they must differ (the application role must not own the tables)", ErrInvalidOptions, r.owner)
	}
	return r, nil
}

func validRoleName(n string) error {
	switch {
	case n == "" || len(n) > 63:
		return fmt.Errorf("%w: role name %q must be 1 to 63 bytes", ErrInvalidOptions, n)
	case strings.HasPrefix(n, "pg_"):
		return fmt.Errorf("%w: role name %q: names starting with pg_ are reserved", ErrInvalidOptions, n)
	case strings.HasPrefix(n, "t_"):
		return fmt.Errorf("%w: role name %q: names starting with t_ are used for tenant roles", ErrInvalidOptions, n)
	}
	for _, c := range n {
		if c < 0x21 || c == 0x7f || c == '"' {
			return fmt.Errorf("%w: role name %q contains a space, quote or control character", ErrInvalidOptions, n)
		}
	}
	return nil
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// Setup creates or updates the owner and application roles and grants
// them what they need in the database adminDSN names. It must run as a
// superuser or a role with CREATEROLE that owns the database; it is
// idempotent and safe to run from two places at once.
//
// The owner role is created NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB
// NOCREATEROLE NOINHERIT; an existing owner role keeps its attributes. The
// application role is created or altered to LOGIN NOSUPERUSER NOBYPASSRLS
// NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION; an existing one keeps
// its password unless ResetPassword (see AppPassword). Setup refuses an
// application role that is a member of the owner role.
//
// Grants: the owner gets CONNECT and CREATE on the database (CREATE is for
// tenant schemas) and USAGE, CREATE on schema public; the application role
// gets CONNECT on the database and USAGE on schema public, nothing else
// (table privileges come from Migrate). If PUBLIC may still create objects
// in schema public (PostgreSQL 14 and older) that is revoked. A
// non-superuser administrator is granted the owner role so that it can
// SET ROLE to it in Migrate and Provision.
func Setup(ctx context.Context, adminDSN string, o *SetupOptions) error {
	if o == nil {
		o = &SetupOptions{}
	}
	r, err := newRoleNames(o.OwnerRole, o.AppRole)
	if err != nil {
		return err
	}
	var verifier string
	if o.AppPassword != "" {
		if verifier, err = scramVerifier(o.AppPassword); err != nil {
			return err
		}
	}
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return fmt.Errorf("postgres: setup: connect as administrator: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error { return setupRoles(ctx, tx, r, verifier, o.ResetPassword) })
	if err != nil {
		return fmt.Errorf("postgres: setup: %w", err)
	}
	return nil
}

func setupRoles(ctx context.Context, tx pgx.Tx, r roleNames, verifier string, reset bool) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockSetup); err != nil {
		return err
	}
	var super bool
	var db string
	if err := tx.QueryRow(ctx, "SELECT rolsuper, current_database() FROM pg_roles WHERE rolname = current_user").Scan(&super, &db); err != nil {
		return err
	}
	exists := func(role string) (bool, error) {
		var ok bool
		err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&ok)
		return ok, err
	}
	ok, err := exists(r.owner)
	if err != nil {
		return err
	}
	if !ok {
		if _, err := tx.Exec(ctx, "CREATE ROLE "+ident(r.owner)+" NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT"); err != nil {
			return fmt.Errorf("create owner role %q: %w", r.owner, err)
		}
	}
	const appAttrs = " LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION"
	ok, err = exists(r.app)
	if err != nil {
		return err
	}
	verb := "CREATE"
	if ok {
		verb = "ALTER"
		var member bool
		if err := tx.QueryRow(ctx, "SELECT pg_has_role($1, $2, 'MEMBER')", r.app, r.owner).Scan(&member); err != nil {
			return err
		}
		if member {
			return fmt.Errorf("%w: application role %q is a member of owner role %q; revoke that membership first", ErrUnsafeRole, r.app, r.owner)
		}
		if verifier != "" && !reset {
			return fmt.Errorf("%w: application role %q already exists and keeps its password (it may be another deployment's); set ResetPassword to replace it", ErrRoleExists, r.app)
		}
	}
	stmt := verb + " ROLE " + ident(r.app) + appAttrs
	if verifier != "" {
		// The verifier is base64 and punctuation from scramVerifier: no quotes.
		stmt += " PASSWORD '" + verifier + "'"
	}
	if _, err := tx.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s application role %q: %w", strings.ToLower(verb), r.app, err)
	}
	grants := []string{
		"GRANT CONNECT, CREATE ON DATABASE " + ident(db) + " TO " + ident(r.owner),
		"GRANT USAGE, CREATE ON SCHEMA public TO " + ident(r.owner),
		"GRANT CONNECT ON DATABASE " + ident(db) + " TO " + ident(r.app),
		"GRANT USAGE ON SCHEMA public TO " + ident(r.app),
	}
	var publicCreate bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(n.nspacl) a
		WHERE n.nspname = 'public' AND a.grantee = 0 AND a.privilege_type = 'CREATE')`).Scan(&publicCreate); err != nil {
		return err
	}
	if publicCreate {
		grants = append(grants, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
	}
	if !super {
		grants = append(grants, "GRANT "+ident(r.owner)+" TO CURRENT_USER")
	}
	for _, g := range grants {
		if _, err := tx.Exec(ctx, g); err != nil {
			return fmt.Errorf("%s: %w", g, err)
		}
	}
	return nil
}

// scramVerifier returns the SCRAM-SHA-256 verifier PostgreSQL stores for
// password (the format of pg_authid.rolpassword), so the clear text never
// travels to the server.
func scramVerifier(password string) (string, error) {
	for _, c := range password {
		if c < 0x20 || c > 0x7e {
			return "", fmt.Errorf("%w: AppPassword must be printable ASCII (set other passwords with psql's \\password)", ErrInvalidOptions)
		}
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	return scramVerifierSalt(password, salt, 4096)
}

func scramVerifierSalt(password string, salt []byte, iter int) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("postgres: hash password: %w", err)
	}
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iter, b64(salt), b64(storedKey[:]), b64(serverKey)), nil
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// CheckAppRole refuses (with ErrUnsafeRole) a connection whose role could
// bypass tenant isolation: a superuser or BYPASSRLS session or current
// user; a role that is, or can become, the owner of tenantmcp_documents or
// tenantmcp_schemas; or, with schema per tenant, a role that inherits
// tenant roles (it must be NOINHERIT and use no tenant schema without SET
// ROLE). It also checks that row level security is enabled and forced on
// tenantmcp_documents. It returns ErrNotMigrated if neither table exists.
// The server calls it once at startup with its application pool.
func CheckAppRole(ctx context.Context, pool *pgxpool.Pool) error {
	if pool == nil {
		return fmt.Errorf("%w: nil pool", ErrInvalidOptions)
	}
	type roleRow struct {
		name                   string
		super, bypass, inherit bool
	}
	var sess, cur roleRow
	err := pool.QueryRow(ctx, `SELECT s.rolname, s.rolsuper, s.rolbypassrls, s.rolinherit,
			c.rolname, c.rolsuper, c.rolbypassrls, c.rolinherit
		FROM pg_roles s, pg_roles c WHERE s.rolname = session_user AND c.rolname = current_user`).
		Scan(&sess.name, &sess.super, &sess.bypass, &sess.inherit, &cur.name, &cur.super, &cur.bypass, &cur.inherit)
	if err != nil {
		return fmt.Errorf("postgres: check application role: %w", err)
	}
	for _, r := range []roleRow{sess, cur} {
		if r.super {
			return fmt.Errorf("%w: role %q is a superuser (superusers ignore row level security and every privilege); connect as the application role", ErrUnsafeRole, r.name)
		}
		if r.bypass {
			return fmt.Errorf("%w: role %q has BYPASSRLS; connect as the application role (ALTER ROLE %s NOBYPASSRLS)", ErrUnsafeRole, r.name, ident(r.name))
		}
	}
	rows, err := pool.Query(ctx, `SELECT c.relname, pg_get_userbyid(c.relowner),
			pg_has_role(session_user, c.relowner, 'MEMBER') OR pg_has_role(current_user, c.relowner, 'MEMBER'),
			c.relrowsecurity, c.relforcerowsecurity
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relname IN ('tenantmcp_documents', 'tenantmcp_schemas')
		ORDER BY c.relname`)
	if err != nil {
		return fmt.Errorf("postgres: check application role: %w", err)
	}
	var found int
	var schemas bool
	for rows.Next() {
		var table, owner string
		var member, rls, force bool
		if err := rows.Scan(&table, &owner, &member, &rls, &force); err != nil {
			rows.Close()
			return fmt.Errorf("postgres: check application role: %w", err)
		}
		found++
		if member {
			rows.Close()
			return fmt.Errorf("%w: role %q owns or can act as %q, the owner of %s (owners can disable row level security); connect as the application role", ErrUnsafeRole, cur.name, owner, table)
		}
		switch table {
		case "tenantmcp_documents":
			if !rls || !force {
				rows.Close()
				return fmt.Errorf("%w: row level security is not enabled and forced on tenantmcp_documents; run Migrate", ErrUnsafeRole)
			}
		case "tenantmcp_schemas":
			schemas = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("postgres: check application role: %w", err)
	}
	if found == 0 {
		return ErrNotMigrated
	}
	if schemas {
		if sess.inherit || cur.inherit {
			return fmt.Errorf("%w: role %q is INHERIT, so it would hold every tenant role's privileges at once; ALTER ROLE %s NOINHERIT", ErrUnsafeRole, cur.name, ident(cur.name))
		}
		var usable int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_namespace n
			WHERE n.nspname ~ '^t_t[a-z2-7]{20}$'
			  AND n.nspowner = (SELECT relowner FROM pg_class WHERE oid = to_regclass('public.tenantmcp_schemas'))
			  AND has_schema_privilege(n.oid, 'USAGE')`).Scan(&usable)
		if err != nil {
			return fmt.Errorf("postgres: check application role: %w", err)
		}
		if usable > 0 {
			return fmt.Errorf("%w: role %q can use %d tenant schema(s) without SET ROLE; it must be NOINHERIT and hold no direct grants on tenant schemas", ErrUnsafeRole, cur.name, usable)
		}
	}
	return nil
}

// pgCode returns the SQLSTATE of err, or "".
func pgCode(err error) string {
	if err == nil {
		return "" // before pe, which escapes to the heap
	}
	var pe interface{ SQLState() string }
	if errors.As(err, &pe) {
		return pe.SQLState()
	}
	return ""
}
