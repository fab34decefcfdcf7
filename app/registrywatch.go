package app

import (
	"context"
)

// watchRegistry keeps the registry cache of a serving process in step
// with tenant changes made elsewhere — by another replica on the same
// PostgreSQL database (LISTEN/NOTIFY), or by the CLI on the same data dir
// (SQLite) — so that a suspension or a new tenant applies within about a
// second rather than registry.cache_ttl, with no SIGHUP. It returns the
// function that stops the watch and waits for it to end.
func (a *App) watchRegistry(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Registry.Watch(ctx); err != nil {
			a.log.ErrorContext(ctx, "registry: cannot watch for tenant changes made elsewhere; they apply within registry.cache_ttl (or on SIGHUP)",
				"error", err)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
