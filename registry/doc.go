// Package registry maps the identity provider's tenant identifier to a
// durable tenant record and decides, per request, whether that tenant may
// be served.
//
// A token names its tenant by issuer and an external id chosen by the
// identity provider (Auth0 org_id, Entra tid, Cognito custom:tenant_id,
// ...). The registry keys records by exactly that pair and gives each
// record an internal id of its own (tenant.ID) from which every storage
// name derives, so no claim text ever becomes a schema, file or key name.
//
// A Registry sits in front of a Store (sqlitestore, pgstore, or
// MemoryStore) with a sharded, bounded in-memory cache: a hit takes one
// shard's read lock and allocates nothing; concurrent misses of one tenant
// make one store call; "not registered" is remembered briefly so a flood
// of tokens from an unknown organisation does not reach the database.
// Status rules (suspended, trial expiry) are applied at every call.
//
//	st, err := sqlitestore.Open("/var/lib/tenantmcp/registry.db", nil)
//	if err != nil { return err }
//	reg := registry.New(st, nil)
//	acme, err := reg.Add(ctx, registry.Tenant{
//		Issuer: "https://acme.eu.auth0.com/", ExternalID: "org_8Fz2", Name: "Acme",
//	})
//	...
//	rec, err := reg.Resolve(ctx, claims.Issuer, claims.OrgID) // per request
//	switch {
//	case errors.Is(err, registry.ErrUnknownTenant): // 403: not registered
//	case errors.Is(err, registry.ErrSuspended), errors.Is(err, registry.ErrTrialExpired): // 403
//	case err != nil: // 503: store unavailable
//	}
//
// Records returned by Resolve are shared, read-only pointers; admin
// operations (Add, Get, Lookup, Update, Delete, List) go to the store and
// drop the affected cache entry, so changes made through a Registry apply
// to its next request. Changes made by another process (a CLI beside a
// running server, another replica) reach a Registry that runs Watch
// within about a second: pgstore broadcasts every write with
// LISTEN/NOTIFY and sqlitestore polls the file for writes of other
// processes, and the Registry drops the changed entries. Without a
// watcher (MemoryStore, or while the watcher reconnects) they apply
// within Options.TTL (or NegativeTTL for a newly added tenant), or at
// once after Refresh.
//
//	go reg.Watch(ctx) // until ctx ends
package registry
