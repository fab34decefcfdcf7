// Package rediskv is the Redis key-value backend with prefix isolation:
// tenant id's value for key is the Redis string at
//
//	<Namespace><tenant id>/<key>
//
// Tenant ids are registry-assigned and all the same length ([a-z2-7]),
// and keys have passed store.ValidateKey, so one tenant's namespace never
// overlaps another's. List uses SCAN (never KEYS) with a MATCH pattern in
// which every glob metacharacter of the namespace and the tenant's prefix
// (* ? [ ] \) is escaped, then checks each key with strings.HasPrefix as a
// second guard, strips the namespace and sorts.
//
//	kv, err := rediskv.Open("redis://127.0.0.1:6379/0", &rediskv.Options{Namespace: "prod:"})
//	if err != nil { return err }
//	defer kv.Close()
//	set := &store.Set{KV: kv}
//
// Durability is Redis's: with the default RDB snapshots a crash can lose
// recent writes; enable AOF (appendfsync everysec or always) for data that
// matters. Values never expire.
//
// The Store is a store.Portable. Export writes one part, PartName
// ("kv.jsonl"): JSON Lines of Record, one per key, with the value in
// base64 and the remaining TTL in milliseconds (keys written by other
// means may have one), read in SCAN batches and bounded pipelines.
// Import SETs them back under the target tenant with those TTLs counted
// from the import and, as Redis has no transaction across pipelines,
// purges the namespace again if anything fails. Purge SCANs the tenant's
// namespace and UNLINKs every key in it, whatever its type.
package rediskv
