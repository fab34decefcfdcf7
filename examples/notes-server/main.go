// Command notes-server serves the notes tools (examples/notes) with the
// whole tenantmcp command line: dev, serve, init, token, tenant, db.
//
//	go run ./examples/notes-server dev
package main

import (
	"github.com/tenantmcp/tenantmcp/cli"
	"github.com/tenantmcp/tenantmcp/examples/notes"
)

// snippet:start main
func main() {
	cli.Main(&cli.Options{Name: "notes-server", Tools: notes.Tools()})
}

// snippet:end
