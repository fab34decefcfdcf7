package cli

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/tenantmcp/tenantmcp/registry"
)

// reloadOnSIGHUP reloads the tenant registry from storage whenever the
// process receives SIGHUP, until ctx ends: "kill -HUP <pid>" makes tenant
// changes take effect at once instead of within registry.cache_ttl.
func reloadOnSIGHUP(ctx context.Context, reg *registry.Registry, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				n, err := reg.Refresh(ctx)
				if err != nil {
					log.Error("SIGHUP: reloading the tenant registry failed; cached records stay in use until they expire", "err", err)
					continue
				}
				log.Info("SIGHUP: tenant registry reloaded", "tenants", n)
			}
		}
	}()
}
