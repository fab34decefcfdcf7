package main

import (
	"context"
	"runtime"
	"strconv"
	"time"

	"github.com/tenantmcp/tenantmcp/tenant"
)

// memStats is the part of runtime.MemStats a phase records.
type memStats struct {
	mallocs, bytes uint64
	cpu            time.Duration
}

func (m *memStats) read() {
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	m.mallocs, m.bytes = s.Mallocs, s.TotalAlloc
	m.cpu = processCPU()
}

// docWorkload builds a get_document call per tenant; each answer must
// hold that tenant's own document.
func docWorkload(addr string, t *tmcp, n int) *workload {
	w := &workload{addr: addr}
	for i := range n {
		w.reqs = append(w.reqs, buildRequest(addr, t.tokens[i], callBody("get_document", `{"key":"`+docKey+`"}`)))
		w.expect = append(w.expect, docContent(t.recs[i]))
	}
	return w
}

// tenantIDs lists the registered tenants of (e).
func tenantIDs(ctx context.Context, pg *pgEnv) ([]tenant.ID, error) {
	rows, err := pg.admin.Query(ctx, "SELECT id FROM public.tenantmcp_tenants ORDER BY id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []tenant.ID
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		ids = append(ids, tenant.ID(s))
	}
	return ids, rows.Err()
}

func itoa(i int) string { return strconv.Itoa(i) }
