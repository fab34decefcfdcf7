package postgres

import "errors"

// Errors returned by this package. Classify them with errors.Is.
var (
	// ErrNotProvisioned: the tenant has no schema yet (schema per tenant).
	// Provision it with Provisioner.Provision (tenantmcp tenant create) or
	// upgrade with Provisioner.MigrateAll (tenantmcp db migrate).
	ErrNotProvisioned = errors.New("postgres: tenant schema not provisioned; run `tenantmcp tenant create` or `tenantmcp db migrate`")
	// ErrNotMigrated: the shared tables do not exist yet; run Migrate
	// (tenantmcp db migrate) with the owner role first.
	ErrNotMigrated = errors.New("postgres: tenantmcp tables not found; run Setup and Migrate (`tenantmcp db setup`, `tenantmcp db migrate`) first")
	// ErrUnsafeRole: the connection's role could bypass tenant isolation
	// (superuser, BYPASSRLS, owner of the tenant tables, or able to use
	// tenant schemas without SET ROLE). Connect as the application role
	// that Setup created.
	ErrUnsafeRole = errors.New("postgres: connected role can bypass tenant isolation")
	// ErrRoleExists: Setup was given a password for an application role
	// that already exists, without SetupOptions.ResetPassword. Roles are
	// shared by every database of the cluster, so the role may be another
	// deployment's; its password was left unchanged.
	ErrRoleExists = errors.New("postgres: role already exists")
	// ErrPoolTimeout: no connection of the pool became free within the
	// backend's acquire timeout (RLSOptions.AcquireTimeout,
	// SchemaOptions.AcquireTimeout): the database is as busy as the pool
	// allows. Nothing was sent to the database, so the operation may be
	// retried; a server answers 503 with Retry-After.
	ErrPoolTimeout = errors.New("postgres: no database connection became free within the acquire timeout")
	// ErrClosed: the backend was closed.
	ErrClosed = errors.New("postgres: backend closed")
	// ErrInvalidOptions: an option or argument is not acceptable.
	ErrInvalidOptions = errors.New("postgres: invalid options")
)
