package console_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/lifecycle"
	"github.com/tenantmcp/tenantmcp/registry"
)

// TestJobsPage: an operation in progress shows its step and progress
// (idle once it stopped), an archived tenant its purge date.
func TestJobsPage(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{data: true})
	v, _ := jobSources.Load(f)
	m := v.(*lifecycle.Manager)
	zero, one := f.tenant(t, 0), f.tenant(t, 1)
	b := f.admin(t)
	_, body := b.get("/console/jobs")
	wantContains(t, body, "No lifecycle operation is in progress.", "No tenant is archived.", "2 tenants read")

	steps := m.Steps(lifecycle.OpPurge, zero)
	rec, err := f.reg.Update(context.Background(), zero.ID, func(r *registry.Tenant) error {
		r.Status = registry.StatusArchived
		r.Lifecycle = registry.Lifecycle{Operation: lifecycle.OpPurge, Step: steps[1], Archive: "a/zero.tar.gz"}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	purgeAt := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	if _, err := f.reg.Update(context.Background(), one.ID, func(r *registry.Tenant) error {
		r.Status = registry.StatusArchived
		r.Lifecycle = registry.Lifecycle{Archive: "a/one.tar.gz", ArchivedAt: purgeAt.Add(-30 * 24 * time.Hour), PurgeAfter: purgeAt}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	done, total, ok := m.Progress(rec)
	if !ok || done != 1 || total != len(steps) {
		t.Fatalf("progress %d/%d %v", done, total, ok)
	}
	_, body = b.get("/console/jobs")
	wantContains(t, body,
		fmt.Sprintf("step %d of %d: %s", done+1, total, steps[1]),
		fmt.Sprintf(`value="%d" max="%d"`, done, total),
		"steps: "+strings.Join(steps, " → "),
		"a/one.tar.gz", purgeAt.Format("2006-01-02 15:04 UTC"), "(due: the purge job removes its data)",
	)
	wantNot(t, body, "<strong>idle</strong>")
	f.clock.advance(10 * time.Minute)
	_, body = b.get("/console/jobs")
	wantContains(t, body, "<strong>idle</strong>")
}
