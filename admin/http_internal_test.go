package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/lifecycle"
	"github.com/tenantmcp/tenantmcp/registry"
)

// TestFailBusy: a refusal because another operation holds the tenant is
// 409 busy with Retry-After, not the 400 invalid_request that its
// validation-error form would give; a refused create stays 409 exists;
// an operation that lost its lease is 409 lease_lost.
func TestFailBusy(t *testing.T) {
	busy := &lifecycle.BusyError{ExternalID: "org_a", Operation: lifecycle.OpArchive, Holder: "ops@example", Via: ViaHTTP,
		Since: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}
	for _, c := range []struct {
		name       string
		err        error
		status     int
		code       string
		retryAfter string
	}{
		{"busy", busy, http.StatusConflict, "busy", busyRetryAfter},
		{"busy, wrapped", fmt.Errorf("suspend: %w", busy), http.StatusConflict, "busy", busyRetryAfter},
		{"create of a tenant being created", fmt.Errorf("%w: %w", lifecycle.ErrBusy, registry.ErrExists), http.StatusConflict, "exists", ""},
		{"lease lost", fmt.Errorf("archive: %w", lifecycle.ErrLeaseLost), http.StatusConflict, "lease_lost", busyRetryAfter},
		{"invalid", &registry.ValidationError{Problems: []string{"name: too long"}}, http.StatusBadRequest, "invalid_request", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			fail(rec, c.err)
			var body struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if rec.Code != c.status || body.Error.Code != c.code || rec.Header().Get("Retry-After") != c.retryAfter {
				t.Errorf("%d %q Retry-After %q, want %d %q %q (body %s)", rec.Code, body.Error.Code, rec.Header().Get("Retry-After"),
					c.status, c.code, c.retryAfter, rec.Body)
			}
			if c.code == "busy" && body.Error.Message != c.err.Error() {
				t.Errorf("message %q, want the error's %q", body.Error.Message, c.err.Error())
			}
		})
	}
}
