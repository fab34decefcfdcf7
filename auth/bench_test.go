package auth_test

import (
	"testing"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/internal/idptest"
)

func benchVerifier(b *testing.B, cacheSize int) (*auth.Verifier, map[string]string) {
	b.Helper()
	idp := idptest.New(b)
	cm, _ := auth.Preset("auth0")
	v, err := auth.NewVerifier(b.Context(), &auth.Options{
		Issuer: idp.Issuer(), Audience: resource, JWKSURL: idp.JWKSURL(), Claims: cm, CacheSize: cacheSize,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(v.Close)
	c := idp.Auth0Claims(resource, "org_bench", "Bench", "auth0|bench", "docs:read", "docs:write")
	return v, map[string]string{"RS256": idp.Sign(c), "ES256": idp.SignES256(c)}
}

func benchVerify(b *testing.B, cacheSize int) {
	v, toks := benchVerifier(b, cacheSize)
	for _, alg := range []string{"RS256", "ES256"} {
		tok := toks[alg]
		b.Run(alg, func(b *testing.B) {
			ctx := b.Context()
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyCached measures a token seen before: SHA-256 of the token
// and a sharded map lookup.
func BenchmarkVerifyCached(b *testing.B) { benchVerify(b, 0) }

// BenchmarkVerifyUncached measures full verification: parse, signature,
// claims.
func BenchmarkVerifyUncached(b *testing.B) { benchVerify(b, -1) }

// BenchmarkVerifyCachedParallel shows the cache under concurrent readers.
func BenchmarkVerifyCachedParallel(b *testing.B) {
	v, toks := benchVerifier(b, 0)
	tok := toks["ES256"]
	if _, err := v.Verify(b.Context(), tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(b.Context(), tok); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
