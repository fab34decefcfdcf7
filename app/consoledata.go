package app

import (
	"fmt"

	"github.com/tenantmcp/tenantmcp/console"
	"github.com/tenantmcp/tenantmcp/lifecycle"
)

// consoleData gives the console's data pages their sources: the server's
// in-memory metrics history (charts, the tenants page's sparklines), the
// audit store with the key that verifies its checkpoints (the audit
// viewer) and the lifecycle's steps (the jobs page's progress).
func (a *App) consoleData(o *console.Options) error {
	// The server is built after its routes, the console among them; by
	// the time a console request arrives it is serving.
	o.Charts = console.LateHistory(func() console.ChartSource {
		if s := a.serving.Load(); s != nil {
			return s
		}
		return nil // not a nil *server.Server in an interface
	})
	o.Activity = console.NewActivity(o.Charts)
	if a.audit != nil {
		pub, err := AuditPublicKey(a.Config) // created by the audit writer, which starts first
		if err != nil {
			return fmt.Errorf("console: audit viewer: %w", err)
		}
		o.Audit = console.NewAuditSource(a.audit, pub)
	}
	if a.Stores != nil {
		// Only for the steps of each operation, which the backends decide.
		m, err := lifecycle.New(lifecycle.Options{Registry: a.Registry, Backends: a.backends})
		if err != nil {
			return fmt.Errorf("console: jobs: %w", err)
		}
		o.Jobs = m
	}
	return nil
}
