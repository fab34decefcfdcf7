// Command shutdownserver is the tenantmcp command line serving the example
// documents tools and a tool that takes its time, for the graceful
// shutdown test (cli/shutdown_test.go), which builds it and stops it with
// SIGTERM as an orchestrator would.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/tenantmcp/tenantmcp/cli"
	"github.com/tenantmcp/tenantmcp/examples/documents"
	"github.com/tenantmcp/tenantmcp/server"
)

// SlowInput is the slow tool's arguments.
type SlowInput struct {
	Millis int `json:"millis" jsonschema:"how long to work, in milliseconds (at most 60000)"`
	// Label, if set, is written to stderr as "slow tool entered: LABEL"
	// when the call starts, so that the test knows it is in flight.
	Label string `json:"label,omitempty"`
}

// slow works for in.Millis milliseconds, or until its request is
// cancelled, as a tool waiting on a slow backend does.
func slow(ctx context.Context, in SlowInput) (string, error) {
	if in.Label != "" {
		fmt.Fprintf(os.Stderr, "slow tool entered: %s\n", in.Label)
	}
	t := time.NewTimer(time.Duration(min(max(in.Millis, 0), 60000)) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return "done", nil
	case <-ctx.Done():
		return "", context.Cause(ctx)
	}
}

func main() {
	tools := append(documents.Tools(), server.NewTool("slow", "Work for a while, then answer.", slow, server.ReadOnly()))
	cli.Main(&cli.Options{Name: "shutdown-server", Tools: tools})
}
