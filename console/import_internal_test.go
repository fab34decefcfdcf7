package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
)

// gatedStore is a registry store whose creates wait for the gate.
type gatedStore struct {
	*registry.MemoryStore
	gate    chan struct{}
	entered chan struct{} // a create is waiting
	once    sync.Once
}

func (s *gatedStore) Create(ctx context.Context, t *registry.Tenant) error {
	s.once.Do(func() { close(s.entered) })
	<-s.gate
	return s.MemoryStore.Create(ctx, t)
}

// TestImportBoundedAndClosed: while an import runs, another upload is
// refused and changes nothing; Close stops the running import after its
// rows in flight (none is left half made), waits for it, leaves no
// goroutine behind and lists it as interrupted, and a closed console
// starts no import.
func TestImportBoundedAndClosed(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	st := &gatedStore{MemoryStore: registry.NewMemoryStore(), gate: make(chan struct{}), entered: make(chan struct{})}
	reg := registry.New(st, nil)
	svc, err := admin.NewService(admin.Options{Registry: reg, Store: admin.NewMemoryStore(), Issuer: "https://idp.example/"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{
		Service: svc, Issuer: "https://admins.example", ClientID: "console", RedirectURL: "http://127.0.0.1/console/callback",
		Authenticator: AuthenticatorFunc(func(context.Context, string) (*server.AdminCaller, error) { return nil, server.ErrNotAdmin }),
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	c.sessions.add(&session{id: "sid", csrf: "tok", subject: "alice", name: "alice", admin: true, created: now, expires: now.Add(time.Hour)})
	do := func(method, path string, body []byte, ct string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "http://127.0.0.1"+path, bytes.NewReader(body))
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: "sid"})
		req.Header.Set("Origin", "http://127.0.0.1")
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, req)
		return rec
	}
	upload := func(content string) *httptest.ResponseRecorder {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		mw.WriteField("csrf", "tok")
		fw, _ := mw.CreateFormFile("file", "t.csv")
		fw.Write([]byte(content))
		mw.Close()
		return do(http.MethodPost, "/console/jobs/import", b.Bytes(), mw.FormDataContentType())
	}
	const rows = admin.DefaultImportParallel + 2
	var csv strings.Builder
	csv.WriteString("external_id\n")
	for i := range rows {
		fmt.Fprintf(&csv, "org_%d\n", i)
	}
	if rec := upload(csv.String()); rec.Code != http.StatusSeeOther {
		t.Fatalf("upload: %d\n%s", rec.Code, rec.Body)
	}
	<-st.entered // the import runs, its creates held at the gate

	rec := upload("external_id\nother\n")
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "another import is running on this server") {
		t.Fatalf("second upload while one runs: %d\n%s", rec.Code, rec.Body)
	}
	body := do(http.MethodGet, "/console/jobs", nil, "").Body.String()
	if !strings.Contains(body, "t.csv</code> (csv): running") || !strings.Contains(body, `<button type="submit" disabled`) {
		t.Fatalf("the jobs page does not show the running import:\n%s", body)
	}

	closed := make(chan struct{})
	go func() {
		c.Close()
		close(closed)
	}()
	<-c.imports.ctx.Done() // Close has stopped the import: no further row starts
	close(st.gate)         // the rows in flight finish
	<-closed

	recs, err := reg.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	jobs, can := c.imports.list()
	if len(jobs) != 1 || can {
		t.Fatalf("%d imports listed, may start %v", len(jobs), can)
	}
	v := jobs[0].view()
	if v.Running || !v.Interrupted || v.Created != len(recs) || v.Created < 1 || v.Created > admin.DefaultImportParallel || v.Pending != rows-v.Created {
		t.Fatalf("after Close: %+v, %d registered", v, len(recs))
	}
	for _, r := range recs {
		if r.Status != registry.StatusActive {
			t.Errorf("%s is %s after Close: a row in flight was left unfinished", r.ExternalID, r.Status)
		}
	}
	body = do(http.MethodGet, "/console/jobs", nil, "").Body.String()
	if !strings.Contains(body, "(csv): stopped") || !strings.Contains(body, fmt.Sprintf("interrupted (the server is shutting down) with %d of %d rows not started", v.Pending, rows)) {
		t.Errorf("the jobs page does not show the interrupted import:\n%s", body)
	}
	rec = upload("external_id\nlate\n")
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "shutting down") {
		t.Errorf("upload after Close: %d\n%s", rec.Code, rec.Body)
	}
	if _, err := reg.Lookup(context.Background(), "https://idp.example/", "late"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("the closed console imported: %v", err)
	}
	if err := c.Close(); err != nil { // twice is fine
		t.Error(err)
	}
}

func TestDisplayName(t *testing.T) {
	for in, want := range map[string]string{
		"tenants.csv":               "tenants.csv",
		`C:\Users\me\tenants.csv`:   "tenants.csv",
		"../../etc/passwd":          "passwd",
		"a\x00b\u202ec.csv":         "abc.csv",
		"":                          "the uploaded file",
		"/":                         "the uploaded file",
		strings.Repeat("x", 150):    strings.Repeat("x", 100) + "…",
		"<script>alert(1)</script>": "script>",
	} {
		if got := displayName(in); got != want {
			t.Errorf("displayName(%q) = %q, want %q", in, got, want)
		}
	}
}
