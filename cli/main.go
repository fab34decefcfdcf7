package cli

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/tenantmcp/tenantmcp/server"
)

// Options make the command line serve your own tools. A nil *Options is
// the tenantmcp binary itself (the example documents tools).
type Options struct {
	// Name is the command's name in help and messages; "" = "tenantmcp".
	Name string
	// Tools are served by dev and serve and known to tenant create/update
	// (--allowed-tools). Nil serves the example documents tools.
	Tools []server.Tool
}

// Main runs the command line of a binary with os.Args, the process
// environment and its standard streams, stopping gracefully on SIGINT or
// SIGTERM, and exits with the command's status. A binary serving its own
// tools is:
//
//	func main() { cli.Main(&cli.Options{Name: "notes-server", Tools: notes.Tools()}) }
func Main(opts *Options) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := RunWith(ctx, opts, os.Args[1:], os.Stdout, os.Stderr, os.Environ())
	stop()
	os.Exit(code)
}
