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
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tenantmcp/tenantmcp/app"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/server"
)

// Run executes the tenantmcp command line args and returns the process
// exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) int {
	return RunWith(ctx, nil, args, stdout, stderr, environ)
}

// RunWith is Run for a binary of your own: opts names it and gives the
// tools it serves (nil = tenantmcp itself).
func RunWith(ctx context.Context, opts *Options, args []string, stdout, stderr io.Writer, environ []string) int {
	e := &env{stdout: stdout, stderr: stderr, environ: environ, name: "tenantmcp"}
	if opts != nil {
		e.tools = opts.Tools
		if opts.Name != "" {
			e.name = opts.Name
		}
	}
	root := newRoot(e)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if cmd, err := root.ExecuteContextC(ctx); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "%s: %v\nRun '%s %s --help' for usage.\n", e.name, err, e.name, ue.cmd)
			return 2
		}
		if a := advice(e, cmd, err); a != "" {
			fmt.Fprintf(stderr, "%s: %v: %s\n", e.name, err, a)
			return 1
		}
		fmt.Fprintf(stderr, "%s: %v\n", e.name, err)
		return 1
	}
	return 0
}

// env is what every command may use from its surroundings.
type env struct {
	stdout, stderr io.Writer
	environ        []string
	// name is the binary's name; tools what it serves (nil = the
	// example documents tools).
	name  string
	tools []server.Tool
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

// logger builds the command's logger: text (or format "json") on stderr
// at level.
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
	return usageError{cmd: strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" "), err: fmt.Errorf(format, args...)}
}

func newRoot(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   e.name,
		Short: "Serve MCP tools to many customer organisations from one deployment",
		Long: strings.ReplaceAll(`NAME serves MCP (Model Context Protocol) tools to many customer
organisations (tenants) from one deployment. Each request's tenant comes from
its verified bearer token (Auth0 organization, Entra tenant, Cognito attribute
or any claim you name); tools see only that tenant's data.

Try it:
  NAME dev                      start a local server with demo tenants acme and globex
  NAME init --oauth auth0 --multi-tenant -o deploy.toml
  NAME serve --config deploy.toml`, "NAME", e.name),
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       versionText(),
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError{cmd: strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" "), err: err}
	})
	root.AddCommand(
		newInitCmd(e),
		newDevCmd(e),
		newServeCmd(e),
		newTokenCmd(e),
		newTenantCmd(e),
		newImpersonationCmd(e),
		newDBCmd(e),
		newAuditCmd(e),
		newVerifyCmd(e),
		newVersionCmd(e),
	)
	if e.name != "tenantmcp" {
		renameInHelp(root, e.name)
	}
	argsAreUsage(root)
	return root
}

// Version, if set at build time with -ldflags
// "-X github.com/tenantmcp/tenantmcp/cli.Version=v1.2.3", replaces the
// module version recorded in the binary's build information.
var Version = ""

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, VCS commit and Go version (also: tenantmcp --version)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(e.stdout, versionText())
			return nil
		},
	}
}

// versionText describes the running binary from its build information:
// "tenantmcp v1.2.3, commit 4f1c…e9 (modified), go1.26.0". Builds without
// VCS stamping (go test, -buildvcs=false as in CI) say "commit unknown";
// builds from a checkout without a module version say "(devel)".
func versionText() string {
	return formatVersion(debug.ReadBuildInfo())
}

func formatVersion(bi *debug.BuildInfo, ok bool) string {
	version, commit, modified, goVersion := Version, "", false, runtime.Version()
	if ok {
		if version == "" {
			version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if version == "" {
		version = "(devel)"
	}
	c := "commit unknown"
	if commit != "" {
		c = "commit " + commit
		if modified {
			c += " (modified)"
		}
	}
	return fmt.Sprintf("tenantmcp %s, %s, %s", version, c, goVersion)
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
		Tools:       e.tools,
		Logger:      log,
		Progress:    e.stderr,
		S3AccessKey: e.getenv("AWS_ACCESS_KEY_ID"),
		S3SecretKey: e.getenv("AWS_SECRET_ACCESS_KEY"),
	}
}

// renameInHelp makes the help of a binary of your own (cli.Options.Name)
// name that binary in its descriptions and examples.
func renameInHelp(cmd *cobra.Command, name string) {
	cmd.Long = commandNameRE.ReplaceAllString(cmd.Long, "${1}"+name+" ")
	cmd.Example = commandNameRE.ReplaceAllString(cmd.Example, "${1}"+name+" ")
	for _, c := range cmd.Commands() {
		renameInHelp(c, name)
	}
}

// commandNameRE finds "tenantmcp" used as a command (not inside a path,
// a role or a database name).
var commandNameRE = regexp.MustCompile(`(^|[\s"'(])tenantmcp `)

// argsAreUsage makes a wrong number of arguments a usage error (exit 2,
// with a pointer to --help), like a bad flag.
func argsAreUsage(cmd *cobra.Command) {
	if check := cmd.Args; check != nil {
		cmd.Args = func(c *cobra.Command, args []string) error {
			if err := check(c, args); err != nil {
				return usagef(c, "%v", err)
			}
			return nil
		}
	}
	for _, c := range cmd.Commands() {
		argsAreUsage(c)
	}
}
