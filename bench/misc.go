package main

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// memStats is the part of runtime.MemStats a phase records, with the
// process's and the machine's CPU time.
type memStats struct {
	mallocs, bytes uint64
	cpu            time.Duration
	busy           time.Duration // all processes' CPU time (0 without /proc/stat)
}

func (m *memStats) read() {
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	m.mallocs, m.bytes = s.Mallocs, s.TotalAlloc
	m.cpu = processCPU()
	m.busy = machineBusy()
}

// machineBusy is the CPU time all processes have used since boot (user,
// nice, system, irq, softirq; the first line of /proc/stat, in units of
// 1/100 s), or 0 where there is no /proc/stat. A phase's busy time minus
// its process's CPU time is what other processes (PostgreSQL for e, other
// sessions on a shared machine) took from the same cores.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 8 || string(f[0]) != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7} { // user nice system (idle iowait) irq softirq
		n, err := strconv.ParseInt(string(f[i]), 10, 64)
		if err != nil {
			return 0
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
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

// backendsCPU is the CPU time (user + system) the PostgreSQL backends
// pids have used so far (testenv.ProcessCPU). ok is false where
// PostgreSQL is not a process of this machine that /proc shows, or a
// backend has gone (its time would be missing).
func backendsCPU(pids []int) (d time.Duration, ok bool) {
	if len(pids) == 0 {
		return 0, false
	}
	for _, pid := range pids {
		cpu, ok := testenv.ProcessCPU(pid, "postgres")
		if !ok {
			return 0, false
		}
		d += cpu
	}
	return d, true
}
