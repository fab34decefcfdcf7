package auth

import "context"

// Ready reports whether v holds signing keys to verify tokens with: nil if
// it does, ErrKeysUnavailable if none are loaded (the JWK Set could not be
// fetched). A verifier without keys asks for a fetch, as a token with an
// unknown kid does (at most one per Options.RefreshRateLimit, shared with
// those tokens), and waits for it until ctx ends; the fetch goes on after
// ctx ends. So a server whose identity provider was down at start becomes
// ready soon after the provider is back, not only at the next periodic
// refresh. Serve it as a readiness check (server.Options.Ready).
func (v *Verifier) Ready(ctx context.Context) error {
	if v.hasKeys(ctx) {
		return nil
	}
	if v.refresh != nil {
		_ = v.refresh.await(ctx, func() bool { return v.hasKeys(ctx) })
		if v.hasKeys(ctx) {
			return nil
		}
	}
	return ErrKeysUnavailable
}

// hasKeys reports whether any key is loaded. Reading never fetches.
func (v *Verifier) hasKeys(ctx context.Context) bool {
	all, err := v.local.KeyReadAll(context.WithoutCancel(ctx))
	return err == nil && len(all) > 0
}
