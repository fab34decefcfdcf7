package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
	c := signedInConsole(t, svc, "http://127.0.0.1/console/callback")
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

// signedInConsole is a console for svc at redirect with one admin
// session: cookie "sid", CSRF token "tok".
func signedInConsole(t *testing.T, svc *admin.Service, redirect string) *Console {
	t.Helper()
	c, err := New(Options{
		Service: svc, Issuer: "https://admins.example", ClientID: "console", RedirectURL: redirect,
		Authenticator: AuthenticatorFunc(func(context.Context, string) (*server.AdminCaller, error) { return nil, server.ErrNotAdmin }),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	now := time.Now()
	c.sessions.add(&session{id: "sid", csrf: "tok", subject: "alice", name: "alice", admin: true, created: now, expires: now.Add(time.Hour)})
	return c
}

// countingReader is a request body that counts the bytes read of it.
type countingReader struct {
	r    io.Reader
	read int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += int64(n)
	return n, err
}

// TestUploadCrossSiteNotRead: an admin's browser made to post a large
// upload from another site (or without saying where it came from) is
// refused before a byte of the body is read (before the fix the upload
// was parsed, up to 8 MiB in memory, before the Origin check); the same
// upload from the console's own page is read.
func TestUploadCrossSiteNotRead(t *testing.T) {
	svc, err := admin.NewService(admin.Options{Registry: registry.New(registry.NewMemoryStore(), nil), Store: admin.NewMemoryStore(), Issuer: "https://idp.example/"})
	if err != nil {
		t.Fatal(err)
	}
	c := signedInConsole(t, svc, "https://console.example/console/callback")
	var file bytes.Buffer
	mw := multipart.NewWriter(&file)
	mw.WriteField("csrf", "tok")
	fw, _ := mw.CreateFormFile("file", "t.csv")
	fw.Write([]byte("external_id\n"))
	fw.Write(bytes.Repeat([]byte("org_x\n"), (MaxImportBytes-100)/6))
	mw.Close()
	now := time.Now()
	c.sessions.add(&session{id: "sid2", csrf: "not-tok", subject: "alice", name: "alice", admin: true, created: now, expires: now.Add(time.Hour)})
	post := func(sid string, hdr ...string) (*httptest.ResponseRecorder, int64) {
		body := &countingReader{r: bytes.NewReader(file.Bytes())}
		req := httptest.NewRequest(http.MethodPost, "https://console.example/console/jobs/import", body)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: sid})
		req.Header.Set("Content-Type", mw.FormDataContentType())
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, req)
		return rec, body.read
	}
	for name, hdr := range map[string][]string{
		"cross-origin":          {"Origin", "https://evil.example"},
		"cross-site fetch":      {"Sec-Fetch-Site", "cross-site"},
		"same-site fetch":       {"Origin", "https://console.example", "Sec-Fetch-Site", "same-site"},
		"no origin at all":      nil,
		"null origin, no fetch": {"Origin", "null"},
	} {
		rec, read := post("sid", hdr...)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "nothing was changed") {
			t.Errorf("%s: %d, want 403\n%s", name, rec.Code, rec.Body)
		}
		if read != 0 {
			t.Errorf("%s: %d bytes of the refused upload were read, want 0", name, read)
		}
	}
	// The same upload from the console's page is read (the counting
	// works), and refused here for its CSRF token: another session's.
	rec, read := post("sid2", "Origin", "https://console.example", "Sec-Fetch-Site", "same-origin")
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "security token") || read != int64(file.Len()) {
		t.Errorf("same-origin upload with another session's token: %d, %d of %d bytes read\n%s", rec.Code, read, file.Len(), rec.Body)
	}
	if jobs, _ := c.imports.list(); len(jobs) != 0 {
		t.Fatalf("a refused upload started an import: %+v", jobs[0].view())
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
