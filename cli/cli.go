// Package cli implements the tenantmcp command line: init, dev, serve,
// token, tenant and db. Commands write to injected writers and take their
// environment as a slice, so tests run them in-process.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/internal/app"
)

// Run executes the command line args and returns the process exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) int {
	root := newRoot(&env{stdout: stdout, stderr: stderr, environ: environ})
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "tenantmcp: %v\nRun 'tenantmcp %s --help' for usage.\n", err, ue.cmd)
			return 2
		}
		fmt.Fprintf(stderr, "tenantmcp: %v\n", err)
		return 1
	}
	return 0
}

// env is what every command may use from its surroundings.
type env struct {
	stdout, stderr io.Writer
	environ        []string
}

// getenv looks a variable up in the injected environment.
func (e *env) getenv(name string) string {
	for _, kv := range e.environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

// logger builds the command's logger: text on stderr at level.
func (e *env) logger(level, format string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	hopts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(e.stderr, hopts))
	}
	return slog.New(slog.NewTextHandler(e.stderr, hopts))
}

type usageError struct {
	cmd string
	err error
}

func (u usageError) Error() string { return u.err.Error() }

func usagef(cmd *cobra.Command, format string, args ...any) error {
	return usageError{cmd: strings.TrimPrefix(cmd.CommandPath(), "tenantmcp "), err: fmt.Errorf(format, args...)}
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "tenantmcp",
		Short: "Serve MCP tools to many customer organisations from one deployment",
		Long: `tenantmcp serves MCP (Model Context Protocol) tools to many customer
organisations (tenants) from one deployment. Each request's tenant comes from
its verified bearer token (Auth0 organization, Entra tenant, Cognito attribute
or any claim you name); tools see only that tenant's data.

Try it:
  tenantmcp dev                      start a local server with demo tenants acme and globex
  tenantmcp init --oauth auth0 --multi-tenant > deploy.toml
  tenantmcp serve --config deploy.toml`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{cmd: strings.TrimPrefix(cmd.CommandPath(), "tenantmcp "), err: err}
	})
	root.AddCommand(
		newInitCmd(e),
		newDevCmd(e),
		newServeCmd(e),
		newTokenCmd(e),
		newTenantCmd(e),
		newDBCmd(e),
		newVersionCmd(e),
	)
	return root
}

// Version is set at build time with -ldflags "-X github.com/tenantmcp/tenantmcp/cli.Version=v1.2.3".
var Version = "dev"

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(e.stdout, "tenantmcp %s\n", Version)
			return nil
		},
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// appOptions are the options every command assembles a deployment with:
// the dev issuer (nil for --config deployments), the logger, progress on
// stderr and S3 credentials from the standard AWS variables.
func (e *env) appOptions(dev *auth.DevIssuer, log *slog.Logger) *app.Options {
	return &app.Options{
		Dev:         dev,
		Logger:      log,
		Progress:    e.stderr,
		S3AccessKey: e.getenv("AWS_ACCESS_KEY_ID"),
		S3SecretKey: e.getenv("AWS_SECRET_ACCESS_KEY"),
	}
}
