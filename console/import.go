package console

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/tenantmcp/tenantmcp/admin"
)

// Tenant import from the jobs page: an admin uploads a CSV or JSON file
// (the format of 'tenantmcp tenant import', parsed by admin.ParseImport),
// and admin.Service.Import creates its tenants in the background, each
// audited with the operator's identity (admin.ViaConsole), while the jobs
// page shows the progress. Imports live in the memory of the replica that
// runs them; a row already registered is skipped, so uploading the same
// file again, on any replica, resumes an import that was interrupted.

// Bounds of imports.
const (
	// MaxImportBytes bounds an uploaded file.
	MaxImportBytes = 8 << 20
	// MaxImportsRunning is how many imports run at once on a replica;
	// another upload meanwhile is refused (nothing is changed).
	MaxImportsRunning = 1
	// importsKept is how many finished imports the jobs page lists.
	importsKept = 10
	// importNotesShown bounds the skipped rows listed because their
	// settings differ from the file.
	importNotesShown = 10
)

// maxUploadBody is the largest request an upload may be: the file and the
// form's other fields and multipart framing.
const maxUploadBody = MaxImportBytes + 64<<10

// imports are a console's background imports.
type imports struct {
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	running int
	jobs    []*importJob // newest first
}

func newImports() *imports {
	ctx, cancel := context.WithCancel(context.Background())
	return &imports{ctx: ctx, cancel: cancel}
}

// importJob is one import: what was uploaded, by whom, and how far it is.
type importJob struct {
	// ID is the request id of the principal the creates are audited as.
	ID      string
	File    string
	Format  admin.ImportFormat
	DryRun  bool
	By      string
	Started time.Time

	mu       sync.Mutex
	progress admin.ImportProgress // the latest report
	summary  *admin.ImportSummary // when finished
	notes    []admin.ImportOutcome
	problem  string // the import could not run
	finished time.Time
}

// errImportBusy and errImportsClosed refuse an upload.
var (
	errImportBusy    = errors.New("another import is running on this server; start this one when it has finished (the jobs page shows its progress)")
	errImportsClosed = errors.New("the server is shutting down and starts no import; upload the file again once it is back")
)

// start runs job in the background with run, unless MaxImportsRunning
// already run or the console is closed.
func (im *imports) start(job *importJob, run func(ctx context.Context)) error {
	im.mu.Lock()
	defer im.mu.Unlock()
	switch {
	case im.closed:
		return errImportsClosed
	case im.running >= MaxImportsRunning:
		return errImportBusy
	}
	im.running++
	im.jobs = append([]*importJob{job}, im.jobs...)
	im.wg.Add(1)
	go func() {
		defer im.wg.Done()
		defer im.finished()
		run(im.ctx)
	}()
	return nil
}

// finished counts a job done and forgets the oldest finished jobs beyond
// importsKept.
func (im *imports) finished() {
	im.mu.Lock()
	defer im.mu.Unlock()
	im.running--
	kept := 0
	im.jobs = slices.DeleteFunc(im.jobs, func(j *importJob) bool {
		if j.running() {
			return false
		}
		kept++
		return kept > importsKept
	})
}

// list returns the jobs, newest first, and whether another may start.
func (im *imports) list() ([]*importJob, bool) {
	im.mu.Lock()
	defer im.mu.Unlock()
	return slices.Clone(im.jobs), !im.closed && im.running < MaxImportsRunning
}

// close stops every import (each finishes its rows in flight) and waits
// for them.
func (im *imports) close() {
	im.mu.Lock()
	im.closed = true
	im.mu.Unlock()
	im.cancel()
	im.wg.Wait()
}

// Close stops the console's background work and waits for it: an import
// in progress starts no further row, finishes the rows in flight and is
// listed as interrupted (uploading the same file again continues it). A
// closed console starts no import. Call it when the server shuts down,
// before the audit writer closes.
func (c *Console) Close() error {
	if c.imports != nil {
		c.imports.close()
	}
	return nil
}

func (j *importJob) running() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.finished.IsZero()
}

// update takes a progress report (on the import's goroutine).
func (j *importJob) update(p admin.ImportProgress) {
	j.mu.Lock()
	defer j.mu.Unlock()
	// The report's slices are the import's: keep a copy, made only when
	// there is more in it.
	if len(p.Failures) == len(j.progress.Failures) {
		p.Failures = j.progress.Failures
	} else {
		p.Failures = slices.Clone(p.Failures)
	}
	p.Row = nil
	j.progress = p
}

// finish records the outcome: the counts, and the first rows whose
// settings differ from the registered tenant (not the outcome of every
// row, which the page does not show).
func (j *importJob) finish(sum *admin.ImportSummary, problem string, now time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if sum != nil {
		for _, o := range sum.Outcomes {
			if o.Outcome == admin.RowSkipped && o.Note != "" && len(j.notes) < importNotesShown {
				j.notes = append(j.notes, o)
			}
		}
		s := *sum
		s.Outcomes = nil
		j.summary = &s
	}
	j.problem, j.finished = problem, now
}

// importView is a job as the jobs page shows it.
type importView struct {
	ID, File, By      string
	Format            admin.ImportFormat
	DryRun            bool
	Started, Finished time.Time
	Running           bool
	Interrupted       bool
	Rows, ToCreate    int
	Done              int
	Created, Skipped  int
	Failed, Pending   int
	Failures          []admin.ImportOutcome // the first ones
	MoreFailures      int                   // not in Failures
	Notes             []admin.ImportOutcome
	Problem           string
}

func (j *importJob) view() importView {
	j.mu.Lock()
	defer j.mu.Unlock()
	p := j.progress
	v := importView{
		ID: j.ID, File: j.File, By: j.By, Format: j.Format, DryRun: j.DryRun,
		Started: j.Started, Finished: j.finished, Running: j.finished.IsZero(),
		Rows: p.Rows, ToCreate: p.ToCreate, Done: p.Done,
		Created: p.Created, Skipped: p.Skipped, Failed: p.Failed,
		Failures: p.Failures, Notes: j.notes, Problem: j.problem,
	}
	if s := j.summary; s != nil {
		v.Rows, v.Created, v.Skipped, v.Failed, v.Pending = s.Rows, s.Created, s.Skipped, s.Failed, s.Pending
		v.Interrupted = s.Interrupted
	}
	v.MoreFailures = v.Failed - len(v.Failures)
	return v
}

// importForm is the upload form's fields, kept when an upload is refused.
type importForm struct {
	Format string
	DryRun bool
}

// importData is the imports section of the jobs page.
type importData struct {
	Jobs     []importView
	CanStart bool
	Form     importForm
	Problems []string // of the last upload: nothing was changed
	Formats  []admin.ImportFormat
	Fields   []string
	MaxMiB   int
}

func (c *Console) importData() importData {
	jobs, can := c.imports.list()
	d := importData{CanStart: can, Formats: admin.ImportFormats, Fields: admin.ImportFields(), MaxMiB: MaxImportBytes >> 20}
	for _, j := range jobs {
		d.Jobs = append(d.Jobs, j.view())
	}
	return d
}

func (c *Console) importRoutes(mux *http.ServeMux) {
	c.imports = newImports()
	mux.Handle("POST /console/jobs/import", c.readUpload(c.admin(c.importUpload)))
}

// readUpload reads an admin's multipart upload (at most maxUploadBody)
// before c.admin checks it: the CSRF check reads the form's csrf field
// from r.PostForm, which only parsing the multipart body fills in. A
// request without an admin's session, or from another origin (the header
// part of the CSRF check), is passed on unread, for c.admin to refuse: no
// byte of a cross-site upload's body is read.
func (c *Console) readUpload(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := c.sessionOf(r)
		if s == nil || !s.admin || c.checkOrigin(r) != "" {
			next.ServeHTTP(w, r)
			return
		}
		tooLarge := func() {
			w.Header().Set("Cache-Control", "no-store")
			c.errorPage(w, r, s, http.StatusRequestEntityTooLarge, "File too large",
				fmt.Sprintf("Nothing was imported: an import file may be at most %d MiB. Split it into smaller files and import each (rows already registered are skipped).", MaxImportBytes>>20))
		}
		if r.ContentLength > maxUploadBody {
			tooLarge()
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxUploadBody)
		var mbe *http.MaxBytesError
		// Held in memory: the body is bounded. Another error (not
		// multipart, a broken body) leaves the form empty, and the CSRF
		// check refuses it.
		if err := r.ParseMultipartForm(maxUploadBody); errors.As(err, &mbe) {
			tooLarge()
			return
		}
		next.ServeHTTP(w, r)
	})
}

// importUpload starts an import of the uploaded file: refused with the
// page's problems (and nothing changed) when the file cannot be imported
// as a whole, else run in the background and the jobs page shown.
func (c *Console) importUpload(w http.ResponseWriter, r *http.Request, s *session) {
	form := importForm{Format: r.PostForm.Get("format"), DryRun: r.PostForm.Get("dry_run") != ""}
	refuse := func(status int, problems ...string) {
		d, ok := c.jobsData(w, r, s)
		if !ok {
			return
		}
		d.Import.Form, d.Import.Problems = form, problems
		c.render(w, r, s, status, "jobs", "Jobs", d)
	}
	var files []*multipart.FileHeader
	if r.MultipartForm != nil {
		files = r.MultipartForm.File["file"]
	}
	if len(files) != 1 {
		refuse(http.StatusUnprocessableEntity, "file: choose one CSV or JSON file to import")
		return
	}
	name := displayName(files[0].Filename)
	data, err := readUploaded(files[0])
	switch {
	case err != nil:
		c.internalError(w, r, s, fmt.Errorf("read the uploaded file: %w", err))
		return
	case len(data) > MaxImportBytes:
		refuse(http.StatusRequestEntityTooLarge, fmt.Sprintf("%s: larger than %d MiB; split it into smaller files and import each", name, MaxImportBytes>>20))
		return
	}
	format := admin.ImportFormat(form.Format)
	if format == "" {
		format = admin.DetectImportFormat(data)
	}
	in, err := admin.ParseImport(data, format)
	if err != nil {
		if !errors.Is(err, admin.ErrImportFile) {
			c.internalError(w, r, s, err)
			return
		}
		refuse(http.StatusUnprocessableEntity, name+": "+err.Error())
		return
	}
	p := s.principal()
	job := &importJob{ID: p.RequestID, File: name, Format: in.Format, DryRun: form.DryRun, By: s.name, Started: c.o.Now(),
		progress: admin.ImportProgress{Rows: in.Rows()}}
	err = c.imports.start(job, func(ctx context.Context) { c.runImport(ctx, job, p, in) })
	switch {
	case errors.Is(err, errImportBusy):
		refuse(http.StatusConflict, err.Error())
		return
	case err != nil:
		refuse(http.StatusServiceUnavailable, err.Error())
		return
	}
	c.log.InfoContext(r.Context(), "console: import started", "admin", s.subject, "import", job.ID, "file", job.File, "rows", in.Rows(), "dry_run", job.DryRun)
	what := "Import"
	if job.DryRun {
		what = "Dry run (nothing is changed)"
	}
	c.redirect(w, r, s, "/console/jobs#import-"+job.ID, &flash{Kind: "ok",
		Text: fmt.Sprintf("%s of %s started: %d %s. Reload the page to see its progress.", what, job.File, in.Rows(), plural(in.Rows(), "row", "rows"))})
}

// runImport runs one import to its end (or until the console closes).
func (c *Console) runImport(ctx context.Context, job *importJob, p admin.Principal, in *admin.ImportFile) {
	sum, err := c.o.Service.Import(ctx, p, in, &admin.ImportOptions{DryRun: job.DryRun}, job.update)
	problem := ""
	switch {
	case err != nil && admin.CallerError(err):
		problem = err.Error()
	case err != nil:
		id := "con_" + randomID(9)
		c.log.ErrorContext(ctx, "console: import failed", "admin", p.Subject, "import", job.ID, "error_id", id, "err", err)
		problem = "the import could not run (error id " + id + "; the server log has the details); nothing was created. Upload the file again, and report the id if it persists."
	case sum.Interrupted:
		problem = fmt.Sprintf("interrupted (the server is shutting down) with %d of %d rows not started: upload the same file again to continue; the rows already imported are skipped", sum.Pending, sum.Rows)
	}
	job.finish(sum, problem, c.o.Now())
	if sum != nil {
		c.log.InfoContext(context.WithoutCancel(ctx), "console: import finished", "admin", p.Subject, "import", job.ID, "file", job.File,
			"rows", sum.Rows, "created", sum.Created, "skipped", sum.Skipped, "failed", sum.Failed, "pending", sum.Pending, "dry_run", sum.DryRun)
	}
}

// readUploaded reads an uploaded file, at most one byte more than
// MaxImportBytes.
func readUploaded(fh *multipart.FileHeader) ([]byte, error) {
	f, err := fh.Open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, MaxImportBytes+1))
}

// displayName is an uploaded file's name fit to show: its base name,
// printable, at most 100 characters.
func displayName(name string) string {
	name = path.Base(strings.ReplaceAll(name, `\`, "/"))
	name = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, name)
	if r := []rune(name); len(r) > 100 {
		name = string(r[:100]) + "…"
	}
	if name == "" || name == "." || name == "/" {
		return "the uploaded file"
	}
	return name
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
