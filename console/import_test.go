package console_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"mime/multipart"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/console"
	"github.com/tenantmcp/tenantmcp/registry"
)

// upload posts the import form as a browser would (multipart, the csrf
// field first); fields are name/value pairs, csrf "" leaves it out.
func (b *browser) upload(csrf, fileName string, content []byte, fields ...string) (*http.Response, string) {
	b.t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if csrf != "" {
		mw.WriteField("csrf", csrf)
	}
	for i := 0; i+1 < len(fields); i += 2 {
		mw.WriteField(fields[i], fields[i+1])
	}
	if fileName != "" {
		fw, err := mw.CreateFormFile("file", fileName)
		if err != nil {
			b.t.Fatal(err)
		}
		fw.Write(content)
	}
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, b.f.base+"/console/jobs/import", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if b.origin != "" {
		req.Header.Set("Origin", b.origin)
	}
	return b.do(req)
}

var importIDRE = regexp.MustCompile(`id="import-(con_[A-Za-z0-9_-]+)"`)

var tagRE = regexp.MustCompile(`<[^>]*>`)

// waitImport reloads the jobs page until the newest import has finished
// and returns the page from that import on, as text (tags removed,
// unescaped), the raw page, and the import's id.
func (b *browser) waitImport() (text, raw, id string) {
	b.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		_, body := b.get("/console/jobs")
		m := importIDRE.FindStringSubmatch(body)
		if m == nil {
			b.t.Fatalf("the jobs page lists no import:\n%s", body)
		}
		// The newest import is listed first; its heading says its state.
		section := body[strings.Index(body, m[0]):]
		if head, _, _ := strings.Cut(section, "</h3>"); !strings.HasSuffix(head, "running") {
			return unescape(tagRE.ReplaceAllString(section, "")), body, m[1]
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("the import did not finish:\n%s", body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (f *fixture) tenantCount(t *testing.T) int {
	t.Helper()
	recs, err := f.reg.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

// TestImportUpload: an admin uploads a CSV of good and bad rows; the
// import runs in the background and the jobs page shows its counts and
// the bad rows' errors; every created tenant is audited as the operator
// through the console; a row naming another tenant that is registered
// leaves it unchanged (and it is still served). A second upload of the
// same file creates nothing and says the rows are registered.
func TestImportUpload(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{data: true})
	b := f.admin(t)
	ctx := context.Background()
	zero := f.tenant(t, 0)
	iss := zero.Issuer
	csv := "external_id,name,rate_limit,allowed_tools,issuer\n" +
		"org_a,Acme,300,list_documents," + iss + "\n" + // 2
		"org_b,Bad rate,ten,," + iss + "\n" + // 3
		"org_c,Bad tool,,nope," + iss + "\n" + // 4
		"org_a,Twice,,," + iss + "\n" + // 5
		"org_d,<b>Globex</b>,,," + iss + "\n" + // 6
		zero.ExternalID + ",Taken over,1,," + iss + "\n" // 7
	before := f.tenantCount(t)
	tok := b.csrf("/console/jobs")
	resp, body := b.upload(tok, "../../tenants.csv", []byte(csv))
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/console/jobs" {
		t.Fatalf("upload: %d at %s\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	wantContains(t, body, "Import of tenants.csv started: 6 rows.")
	page, raw, id := b.waitImport()
	wantContains(t, page,
		"tenants.csv (csv): done",
		"6 rows: 2 created, 1 skipped (already registered), 3 failed",
		`line 3 (org_b): rate_limit: "ten" is not a whole number`,
		`line 4 (org_c): invalid tenant: allowed_tools: "nope" not served here`,
		"line 5 (org_a): the tenant is also on line 2",
		"line 7 ("+zero.ExternalID+"): name, rate_limit differ from the file and were not changed",
		"by alice",
	)
	wantNot(t, raw, "<b>Globex</b>", "../")
	check(t, "jobs page with an import", raw) // a11y_test.go
	if n := f.tenantCount(t); n != before+2 {
		t.Fatalf("%d tenants after the import, want %d", n, before+2)
	}
	for _, ext := range []string{"org_a", "org_d"} {
		rec, err := f.reg.Lookup(ctx, iss, ext)
		if err != nil {
			t.Fatalf("%s: %v", ext, err)
		}
		if ev := f.wantConsoleEvent(t, rec, "create_tenant", "alice"); ev.RequestID != id {
			t.Errorf("%s: create event request id %q, want the import's %q", ext, ev.RequestID, id)
		}
	}
	if a, _ := f.reg.Lookup(ctx, iss, "org_a"); a.Name != "Acme" || a.RateLimit != 300 || len(a.AllowedTools) != 1 {
		t.Errorf("org_a: %+v", a)
	}
	if d, _ := f.reg.Lookup(ctx, iss, "org_d"); d.Name != "<b>Globex</b>" {
		t.Errorf("org_d: %+v", d)
	}
	// The registered tenant the file names is not changed, and is still
	// served; the other tenant neither.
	if after := f.tenant(t, 0); after.Name != zero.Name || after.RateLimit != zero.RateLimit || !after.UpdatedAt.Equal(zero.UpdatedAt) {
		t.Errorf("the import changed tenant 0: %+v → %+v", zero, after)
	}
	for i := range 2 {
		if st := f.mcpStatus(t, f.h.Tenant(i).Token); st != http.StatusOK {
			t.Errorf("tenant %d after the import: tools/list %d", i, st)
		}
	}
	if evs := f.consoleEvents(t, string(zero.ID), "create_tenant"); len(evs) != 0 {
		t.Errorf("tenant 0's chain has %d create events from the import", len(evs))
	}

	// The same file again: nothing new.
	resp, body = b.upload(b.csrf("/console/jobs"), "tenants.csv", []byte(csv))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("second upload: %d\n%s", resp.StatusCode, body)
	}
	page, _, id2 := b.waitImport()
	if id2 == id {
		t.Fatal("the second upload is not listed as an import of its own")
	}
	wantContains(t, page, "6 rows: 0 created, 3 skipped (already registered), 3 failed")
	if n := f.tenantCount(t); n != before+2 {
		t.Errorf("%d tenants after the second import, want %d", n, before+2)
	}
	a, _ := f.reg.Lookup(ctx, iss, "org_a")
	f.wantConsoleEvent(t, a, "create_tenant", "alice") // still one

	// A dry run of a new row creates nothing.
	resp, body = b.upload(b.csrf("/console/jobs"), "more.jsonl", []byte(`{"external_id": "org_e", "issuer": "`+iss+`"}`+"\n"), "dry_run", "1")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("dry run: %d\n%s", resp.StatusCode, body)
	}
	wantContains(t, body, "Dry run (nothing is changed) of more.jsonl started: 1 row.")
	page, _, _ = b.waitImport()
	wantContains(t, page, "more.jsonl (jsonl), dry run: done", "1 row: 1 would be created, 0 skipped")
	if _, err := f.reg.Lookup(ctx, iss, "org_e"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("the dry run created org_e: %v", err)
	}
}

// TestImportUploadRefused: an upload without the CSRF token or from
// another site, by a tenant user, signed out, of a file that cannot be
// imported, with no file or too large a file is refused and creates
// nothing.
func TestImportUploadRefused(t *testing.T) {
	t.Parallel()
	f := setup(t, setupOptions{})
	b := f.admin(t)
	tok := b.csrf("/console/jobs")
	good := []byte("external_id\norg_new\n")
	before := f.tenantCount(t)

	refused := func(name string, resp *http.Response, body string, status int, want ...string) {
		t.Helper()
		if resp.StatusCode != status {
			t.Errorf("%s: %d, want %d\n%s", name, resp.StatusCode, status, body)
		}
		for _, w := range want {
			if !strings.Contains(unescape(body), w) {
				t.Errorf("%s: the page lacks %q:\n%s", name, w, body)
			}
		}
		if n := f.tenantCount(t); n != before {
			t.Fatalf("%s: %d tenants, want %d: the refused upload created some", name, n, before)
		}
	}
	resp, body := b.upload("", "t.csv", good)
	refused("no csrf", resp, body, http.StatusForbidden, "the form's security token is missing or does not match this session")
	resp, body = b.upload(tok+"x", "t.csv", good)
	refused("wrong csrf", resp, body, http.StatusForbidden, "nothing was changed")
	b.origin = "https://evil.example"
	resp, body = b.upload(tok, "t.csv", good)
	refused("cross-site", resp, body, http.StatusForbidden, "it came from another site")
	b.origin = f.base

	user, _, _ := f.signIn(t, "bob", "read:tools")
	resp, body = user.upload(user.csrf("/console/jobs"), "t.csv", good)
	refused("tenant user", resp, body, http.StatusForbidden, "No admin access")
	wantNot(t, body, "Import tenants", "org_new")
	out := f.browser(t)
	resp, body = out.upload(tok, "t.csv", good)
	refused("signed out", resp, body, http.StatusUnauthorized, "Your session has ended; nothing was changed")

	resp, body = b.upload(tok, "t.csv", []byte("external_id,plan\norg_new,gold\n"))
	refused("unknown column", resp, body, http.StatusUnprocessableEntity, "Nothing was changed.", `t.csv: CSV header (line 1): unknown column "plan"`)
	resp, body = b.upload(tok, "t.json", good, "format", "json")
	refused("wrong format", resp, body, http.StatusUnprocessableEntity, "given as json but looks like CSV")
	wantContains(t, body, `<option value="json" selected>`)
	check(t, "refused upload", body) // a11y_test.go
	resp, body = b.upload(tok, "t.csv", good, "format", "xlsx")
	refused("unknown format", resp, body, http.StatusUnprocessableEntity, `format "xlsx": want one of csv, json, jsonl`)
	resp, body = b.upload(tok, "", nil)
	refused("no file", resp, body, http.StatusUnprocessableEntity, "file: choose one CSV or JSON file to import")
	resp, body = b.upload(tok, "t.csv", []byte("external_id\n"+strings.Repeat("org_x\n", console.MaxImportBytes/6+1)))
	refused("too large", resp, body, http.StatusRequestEntityTooLarge, fmt.Sprintf("at most %d MiB", console.MaxImportBytes>>20))
	_, body = b.get("/console/jobs")
	wantNot(t, body, `id="import-con_`)
}
