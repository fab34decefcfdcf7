// Package s3blob is the S3 (and S3-compatible) blob backend with prefix
// isolation: tenant id's object under key is stored at
//
//	<Prefix><tenant id>/<key>
//
// in one bucket. Tenant ids are registry-assigned and all the same length
// ([a-z2-7]), and keys have passed store.ValidateKey before they get
// here, so one tenant's namespace can never overlap another's. List pages
// through ListObjectsV2 with the tenant's namespace as the prefix, checks
// each returned key against it again, and strips it.
//
//	blobs, err := s3blob.Open(ctx, s3blob.Config{
//		Bucket:    "tenantmcp-blobs",
//		Endpoint:  "http://127.0.0.1:9000", // MinIO; empty for AWS
//		Region:    "us-east-1",
//		PathStyle: true,
//		AccessKey: accessKey, SecretKey: secretKey,
//		Prefix:    "prod/",
//	})
//	if err != nil { return err }
//	set := &store.Set{Blobs: blobs}
//
// With an *s3.Client built elsewhere (for example with the AWS default
// credential chain), use New instead of Open.
//
// S3 replaces an object atomically on PutObject, so a failed Put leaves
// the previous object. DeleteObject succeeds for missing keys; Delete
// checks with HeadObject first so that it can return store.ErrNotFound,
// which makes it two requests and not atomic (see Store.Delete). Per
// tenant access control at the bucket level (IAM policies per prefix) is
// not needed for isolation, because requests are only ever made under the
// tenant's own namespace, but operators may add it as defence in depth.
//
// The Store is a store.Portable. Export writes one part per object,
// "blobs/<key>" (PartPrefix + key) holding its bytes, in key order,
// streamed page by page; the layout of fsblob's exports. Import puts the
// parts back one PutObject each and, as S3 has no transaction, purges the
// namespace again if any part fails. Purge deletes everything under
// <Prefix><tenant id>/ with one DeleteObjects request per page of up to
// 1000 keys, listing from the start each round.
package s3blob
