package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/jackc/pgx/v5/pgxpool"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	mcpgoserver "github.com/mark3labs/mcp-go/server"

	"github.com/tenantmcp/tenantmcp/tenant"
)

// (f) is the reference for (e): the cheapest thing one could write
// oneself to serve a tenant's document from PostgreSQL. Bare mcp-go, as
// (b), whose get_document tool returns what (e)'s does (the document as
// structured content and as its JSON text) and runs one query on a pgx
// pool, with no authentication, no row level security and no
// transaction; the tenant comes from the tool's arguments (which is what
// makes it unsafe). It reads (e)'s table and rows, connected as the
// superuser, whom row level security does not filter, through a pool as
// large as (e)'s. e/f is what tenantmcp's request path and isolation cost
// over it.
//
// With -f-rls, (f) reads through (e)'s own documents backend instead
// (postgres.RLS.Get: the tenant setting and the statement in one round
// trip, as the application role, under the policy) on (e)'s pool, with the
// tenant still from the arguments: e/f then is tenantmcp's request path
// alone, and f's PG µs/req against the bare query's is what the isolation
// costs at the database.

// refQuery is (f)'s statement: (e)'s RLS.Get without the policy.
const refQuery = "SELECT content FROM public.tenantmcp_documents WHERE tenant_id = $1 AND key = $2"

const refSchema = `{"type":"object","properties":{"tenant_id":{"type":"string"},"key":{"type":"string"}},"required":["tenant_id","key"]}`

// refDoc is (f)'s result, the same object as (e)'s documents.Document.
type refDoc struct {
	Key     string `json:"key"`
	Content string `json:"content"`
}

type refIn struct {
	TenantID string `json:"tenant_id"`
	Key      string `json:"key"`
}

// refGet reads tenant's document key for (f).
type refGet func(ctx context.Context, tenantID, key string) ([]byte, error)

// bareGet is (f)'s read: refQuery on pool.
func bareGet(pool *pgxpool.Pool) refGet {
	return func(ctx context.Context, tenantID, key string) ([]byte, error) {
		var content []byte
		err := pool.QueryRow(ctx, refQuery, tenantID, key).Scan(&content)
		return content, err
	}
}

// refHandler is (f)'s server, reading with get.
func refHandler(get refGet) http.Handler {
	ms := mcpgoserver.NewMCPServer("bench", "1", mcpgoserver.WithToolCapabilities(false))
	ms.AddTool(mcpgo.NewToolWithRawSchema("get_document", "Read a tenant's document.", json.RawMessage(refSchema)),
		func(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
			var in refIn
			if err := req.BindArguments(&in); err != nil {
				return mcpgo.NewToolResultError("invalid arguments: " + err.Error()), nil
			}
			content, err := get(ctx, in.TenantID, in.Key)
			if err != nil {
				return mcpgo.NewToolResultError(err.Error()), nil
			}
			// The same result as (e)'s get_document: the document as
			// structured content and as its JSON text, encoded once.
			text, err := json.Marshal(refDoc{Key: in.Key, Content: string(content)})
			if err != nil {
				return mcpgo.NewToolResultError(err.Error()), nil
			}
			return mcpgo.NewToolResultStructured(json.RawMessage(text), string(text)), nil
		})
	return mcpgoserver.NewStreamableHTTPServer(ms,
		mcpgoserver.WithEndpointPath("/mcp"),
		mcpgoserver.WithStateLess(true))
}

// openRef opens (f)'s pool: size connections as the superuser of pg's
// database.
func openRef(ctx context.Context, pg *pgEnv, size int) (*pgxpool.Pool, error) {
	dsn, err := withDB(pg.adminDSN, pg.db, "")
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(size)
	cfg.ConnConfig.RuntimeParams["application_name"] = appNameF
	return pgxpool.NewWithConfig(ctx, cfg)
}

// serveRef starts (f) next to (e), whose tenants and documents it reads
// (e's tm registered them and seeded each one's document).
// With viaRLS, (f) reads through e's backend instead (-f-rls).
func serveRef(ctx context.Context, serve func(key, label string, h func(string) (http.Handler, error)) (*target, error), pg *pgEnv, tm *tmcp, size int, viaRLS bool) error {
	get := func(ctx context.Context, tenantID, key string) ([]byte, error) {
		return pg.rls.Get(ctx, tenant.ID(tenantID), key)
	}
	label, app, closePool := "mcp-go + e's RLS backend, no tenant path", appNameE, func() {}
	if !viaRLS { // f's own pool, which -f-rls does not use
		pool, err := openRef(ctx, pg, size)
		if err != nil {
			return fmt.Errorf("(f) pool: %w", err)
		}
		get, label, app, closePool = bareGet(pool), "mcp-go + one pgx query, no isolation", appNameF, pool.Close
	}
	t, err := serve("f", label, func(string) (http.Handler, error) { return refHandler(get), nil })
	if err != nil {
		closePool()
		return fmt.Errorf("(f): %w", err)
	}
	closeHTTP := t.close
	t.close = func() { closeHTTP(); closePool() }
	t.work = func(n int) *workload {
		w := refWorkload(t.addr, tm, n)
		w.backends = pg.backends(app)
		return w
	}
	return nil
}

// refWorkload builds (f)'s get_document call per tenant: the same document
// as (e)'s call, named by the tenant's internal id in the arguments.
func refWorkload(addr string, t *tmcp, n int) *workload {
	w := &workload{addr: addr}
	for i := range n {
		args := `{"tenant_id":"` + string(t.recs[i].ID) + `","key":"` + docKey + `"}`
		w.reqs = append(w.reqs, buildRequest(addr, "", callBody("get_document", args)))
		w.expect = append(w.expect, docContent(t.recs[i]))
	}
	return w
}
