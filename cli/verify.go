package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/tenantmcp/tenantmcp/internal/verify"
)

func newVerifyCmd(e *env) *cobra.Command {
	var (
		url, tokA, tokB, adminTok     string
		writeT, readT, listT, deleteT string
		asJSON                        bool
		timeout                       time.Duration
	)
	cmd := &cobra.Command{
		Use:   "verify --url URL --token-a T1 --token-b T2 [--admin-token T] [--json]",
		Short: "Attack a live deployment as a hostile tenant and report any cross-tenant leak",
		Long: `Verify that a running deployment keeps its tenants apart, using nothing but
its MCP URL and two tenants' tokens (A and B, of two different tenants).

As tenant A it writes marker data through the tenant tools it finds (every
put_/get_/list_/delete_ family: the documents tools, the notes tools, or the
tools you name with --write-tool, --read-tool, --list-tool, --delete-tool). As
tenant B it then tries to list, read, overwrite and delete that data through
every tool, with path and prefix tricks (../, %, *, A's tenant id from A's
token), A's exact keys, encodings and look-alike characters, wrong argument
types, duplicate keys, oversize and malformed bodies; it names A's tenant in
arguments and headers, and calls the tools A sees and B does not. On a
stateful server it replays A's session id with B's token and holds GET
streams as B while A's tools run and send notifications (on a stateless one
these lines say "not applicable"); on MCP 2026-07-28 it holds a
subscriptions/listen stream as B the same way. Every byte B receives is
searched for A's markers.

It sends tokens made locally from A's: re-signed with garbage, with changed
claims (B's tenant, a later expiry, the admin scope) under the old signature,
expired, unsigned (alg none), HMAC-signed with the issuer's public key (from
the JWK Set the protected-resource metadata points to), for another audience
or issuer, naming an unknown key: each must get 401. It checks that the admin
API (/admin/v1/) and the admin MCP tools refuse tenant tokens (and, with
--admin-token, that they serve that token), and that /metrics and the debug
endpoints are not served on the public URL.

It prints one line per attack, PASS, LEAK or N/A (not applicable here) with
the evidence, or ERROR when a check could not run, then deletes its markers
as A, also when interrupted (Ctrl-C). Exit status: 0 when nothing leaked and
every check ran, 1 on any LEAK or ERROR, 2 for a usage error. Rate limits
(429) are waited out, so a run may take a minute on a deployment with a low
limit. The tokens may also come from TENANTMCP_VERIFY_TOKEN_A,
TENANTMCP_VERIFY_TOKEN_B and TENANTMCP_VERIFY_ADMIN_TOKEN, which keeps them
out of the process list.

Run it against a staging deployment, or against production with two test
tenants: it writes (and removes) data in both.`,
		Example: `  # against "tenantmcp dev" (it prints the tokens of acme and globex, and ADMIN_TOKEN)
  tenantmcp verify --url http://127.0.0.1:8080/mcp --token-a "$ACME" --token-b "$GLOBEX" --admin-token "$ADMIN_TOKEN"

  # a deployment, tokens from the environment, a report for CI
  TENANTMCP_VERIFY_TOKEN_A=$(get-token tenant-a) TENANTMCP_VERIFY_TOKEN_B=$(get-token tenant-b) \
    tenantmcp verify --url https://mcp.example.com/mcp --json > verify.json

  # your own tools
  tenantmcp verify --url https://mcp.example.com/mcp --token-a "$A" --token-b "$B" \
    --write-tool create_ticket --read-tool get_ticket --list-tool list_tickets --delete-tool close_ticket`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			tokA = orEnv(tokA, e.getenv("TENANTMCP_VERIFY_TOKEN_A"))
			tokB = orEnv(tokB, e.getenv("TENANTMCP_VERIFY_TOKEN_B"))
			adminTok = orEnv(adminTok, e.getenv("TENANTMCP_VERIFY_ADMIN_TOKEN"))
			switch {
			case url == "":
				return usagef(cmd, "--url is required: the deployment's MCP endpoint, e.g. --url https://mcp.example.com/mcp")
			case tokA == "" || tokB == "":
				return usagef(cmd, "--token-a and --token-b are required: tokens of two different tenants (or TENANTMCP_VERIFY_TOKEN_A and _B)")
			case (writeT == "") != (readT == ""):
				return usagef(cmd, "--write-tool and --read-tool go together: the tools that write and read one object")
			case writeT == "" && (listT != "" || deleteT != ""):
				return usagef(cmd, "--list-tool and --delete-tool need --write-tool and --read-tool")
			case timeout <= 0:
				return usagef(cmd, "--timeout must be positive, e.g. 30s")
			}
			rep, err := verify.Run(cmd.Context(), url, tokA, tokB, &verify.Options{
				AdminToken: adminTok, WriteTool: writeT, ReadTool: readT, ListTool: listT, DeleteTool: deleteT, Timeout: timeout,
			})
			if errors.Is(err, verify.ErrInvalidTarget) {
				return usagef(cmd, "%v", err)
			}
			if rep != nil {
				if werr := writeReport(e, rep, asJSON); werr != nil {
					return werr
				}
			}
			switch {
			case errors.Is(err, context.Canceled):
				return errors.New("interrupted: the markers written so far were deleted (see the cleanup line)")
			case err != nil:
				return err
			case rep.Count(verify.StatusLeak) > 0:
				return fmt.Errorf("%d of %d checks found a leak between tenants (LEAK lines)", rep.Count(verify.StatusLeak), len(rep.Checks))
			case rep.Count(verify.StatusError) > 0:
				return fmt.Errorf("%d checks could not run (ERROR lines): nothing leaked in the others, but the verification is incomplete", rep.Count(verify.StatusError))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&url, "url", "", "the deployment's MCP endpoint, e.g. https://mcp.example.com/mcp (required)")
	f.StringVar(&tokA, "token-a", "", "bearer token of a user of tenant A, whose data is attacked (or TENANTMCP_VERIFY_TOKEN_A)")
	f.StringVar(&tokB, "token-b", "", "bearer token of a user of another tenant, B, the attacker (or TENANTMCP_VERIFY_TOKEN_B)")
	f.StringVar(&adminTok, "admin-token", "", "an admin's token: also check that the admin API and tools serve it (or TENANTMCP_VERIFY_ADMIN_TOKEN)")
	f.StringVar(&writeT, "write-tool", "", "tool that writes one object (with --read-tool); default: every put_/save_/create_… tool with a get_ tool")
	f.StringVar(&readT, "read-tool", "", "tool that reads one object back by its key or id")
	f.StringVar(&listT, "list-tool", "", "tool that lists the objects (optional; its first string argument gets the prefix tricks)")
	f.StringVar(&deleteT, "delete-tool", "", "tool that deletes one object (optional; without it markers stay and are named)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON (url, protocol, stateful, tenants, toolsets, markers, checks[id, attack, status, evidence])")
	f.DurationVar(&timeout, "timeout", 30*time.Second, "bound on each request")
	return cmd
}

// writeReport prints the report as a table or as JSON.
func writeReport(e *env, rep *verify.Report, asJSON bool) error {
	if !asJSON {
		return rep.WriteTable(e.stdout)
	}
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// orEnv returns flag, or val when the flag was not given.
func orEnv(flag, val string) string {
	if flag != "" {
		return flag
	}
	return val
}
