// Command tenantmcp serves MCP tools to many customer organisations from one
// deployment. Run "tenantmcp --help" for the commands.
package main

import "github.com/tenantmcp/tenantmcp/cli"

func main() { cli.Main(nil) }
