package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// TestTenantLabels: however many tenants ask, concurrently, at most max
// get a label of their own; a tenant keeps its label; max 0 labels none.
func TestTenantLabels(t *testing.T) {
	for _, max := range []int{0, 1, 20} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			built := map[string]int{}
			var mu sync.Mutex
			l := newTenantLabels(max, func(label string) *tenantSeries {
				mu.Lock()
				defer mu.Unlock()
				built[label]++
				return &tenantSeries{}
			})
			got := make([]map[tenant.ID]*tenantSeries, 8)
			var wg sync.WaitGroup
			for g := range got {
				got[g] = map[tenant.ID]*tenantSeries{}
				wg.Go(func() {
					for i := range 2000 {
						id := tenant.ID(fmt.Sprintf("t%05d", (i*7+g)%1000))
						got[g][id] = l.series(id)
					}
				})
			}
			wg.Wait()
			if built[otherTenants] != 1 || len(built) > max+1 {
				t.Fatalf("labels built: %v, want other once and at most %d tenants", built, max)
			}
			own := 0
			for id, ts := range got[0] {
				if ts != l.other {
					own++
					if built[string(id)] != 1 {
						t.Errorf("tenant %s labelled %d times", id, built[string(id)])
					}
				}
				for g := range got {
					if got[g][id] != ts {
						t.Errorf("tenant %s has two series", id)
					}
				}
			}
			if own != max {
				t.Errorf("%d tenants with their own label, want %d", own, max)
			}
		})
	}
}

// TestLogHandler: a line logged with a request's context gets its
// tenant_id and request_id, once, whatever the line or the logger
// already has; other lines are left alone.
func TestLogHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewTextHandler(&buf, nil)))
	if LogHandler(log.Handler()) != log.Handler() {
		t.Error("LogHandler wraps its own handler again")
	}
	rq := &request{tenant: &registry.Tenant{ID: "tabc"}, prefix: "p", seq: 35}
	ctx := context.WithValue(context.Background(), requestKey{}, rq)
	for _, c := range []struct {
		log  func()
		want string
	}{
		{func() { log.InfoContext(ctx, "a") }, `msg=a tenant_id=tabc request_id=p-z`},
		{func() { log.InfoContext(ctx, "b", "tenant_id", "tabc") }, `msg=b tenant_id=tabc request_id=p-z`},
		{func() { log.With("request_id", "p-z").InfoContext(ctx, "c") }, `msg=c request_id=p-z tenant_id=tabc`},
		{func() { log.With("tenant_id", "tabc", "request_id", "p-z").InfoContext(ctx, "d") }, `msg=d tenant_id=tabc request_id=p-z`},
		{func() { log.Info("e") }, `msg=e`},
		{func() { log.InfoContext(context.Background(), "f") }, `msg=f`},
		{func() { Logger(ctx).Info("g") }, ``}, // no logger in this request: discarded
	} {
		buf.Reset()
		c.log()
		got := strings.TrimSpace(buf.String())
		if _, after, ok := strings.Cut(got, " level=INFO "); ok {
			got = after
		}
		if got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
	rq.log = slog.New(slog.NewTextHandler(&buf, nil))
	buf.Reset()
	Logger(ctx).Info("h")
	if got := buf.String(); !strings.Contains(got, "msg=h tenant_id=tabc request_id=p-z") {
		t.Errorf("Logger(ctx): %q", got)
	}
	if Logger(context.Background()) == nil {
		t.Error("Logger outside a request is nil")
	}
}
