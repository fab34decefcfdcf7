// Package verify attacks a live tenantmcp deployment the way a hostile
// tenant would, with nothing but its MCP URL and two tenants' tokens, and
// reports for each attack whether tenant B reached anything of tenant A's.
//
//	rep, err := verify.Run(ctx, "https://mcp.example.com/mcp", tokenA, tokenB, nil)
//	if err != nil {
//		return err // an unusable target; or ctx was cancelled, and rep holds what ran
//	}
//	rep.WriteTable(os.Stdout)
//	if rep.Count(verify.StatusLeak) > 0 {
//		os.Exit(1)
//	}
//
// As tenant A it writes marker data through the tenant tools it finds; as
// tenant B it tries to list, read, overwrite and delete that data with
// every argument trick it knows, replays A's session, listens on streams
// while A works, and calls tools B may not use. It also sends forged,
// expired, unsigned and otherwise wrong tokens made from A's, and checks
// that admin endpoints refuse tenant tokens and that metrics are not
// public. Every byte B (or a forged token) receives is scanned for A's
// marker data. A's markers are deleted at the end, also when ctx is
// cancelled.
package verify
