package console

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"html/template"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/registry"
)

// AuditSource feeds the audit viewer (Options.Audit): one chain at a
// time, a tenant's (its internal id) or audit.SystemChain. NewAuditSource
// makes one from the deployment's audit store.
type AuditSource interface {
	// Query returns a page of the chain's events, newest first.
	Query(ctx context.Context, chain string, f audit.Filter) ([]audit.Record, error)
	// Export writes the chain as 'tenantmcp audit export' does.
	Export(ctx context.Context, chain string, since, until time.Time, w io.Writer) error
	// Verify verifies the chain as 'tenantmcp audit verify' does, within
	// ctx, and remembers the result (Verified). It returns
	// ErrVerifyBusy while another verification runs.
	Verify(ctx context.Context, chain string) (*Verification, error)
	// Verified is the chain's latest verification, nil if none.
	Verified(chain string) *Verification
}

// ErrVerifyBusy: one verification runs at a time, so that operators
// cannot load the audit store with many at once.
var ErrVerifyBusy = errors.New("another audit verification is running: try again when it has finished")

// Verification is the result of verifying a chain.
type Verification struct {
	// At is when it ran.
	At time.Time
	// Report is the verification's report; nil when it did not finish.
	Report *audit.Report
	// Unfinished says why it did not finish (it took too long, the store
	// failed); "" when it did.
	Unfinished string
}

// maxVerifications bounds the results NewAuditSource remembers (the
// oldest go first).
const maxVerifications = 10000

// auditVerifyTimeout bounds a verification started from the console: a
// huge chain is verified with the CLI instead.
const auditVerifyTimeout = 30 * time.Second

// NewAuditSource returns the audit viewer's source over the deployment's
// audit store; pub is the public key of its signing key, which verifies
// the checkpoints.
func NewAuditSource(s audit.Store, pub ed25519.PublicKey) AuditSource {
	return &storeAudit{s: s, pub: pub, busy: make(chan struct{}, 1), done: map[string]*Verification{}, now: time.Now}
}

type storeAudit struct {
	s    audit.Store
	pub  ed25519.PublicKey
	busy chan struct{} // holds a token while a verification runs
	now  func() time.Time
	mu   sync.Mutex
	done map[string]*Verification
}

func (a *storeAudit) Query(ctx context.Context, chain string, f audit.Filter) ([]audit.Record, error) {
	return a.s.Query(ctx, chain, f)
}

func (a *storeAudit) Export(ctx context.Context, chain string, since, until time.Time, w io.Writer) error {
	return audit.Export(ctx, a.s, chain, since, until, w)
}

func (a *storeAudit) Verify(ctx context.Context, chain string) (*Verification, error) {
	select {
	case a.busy <- struct{}{}:
	default:
		return nil, ErrVerifyBusy
	}
	defer func() { <-a.busy }()
	v := &Verification{At: a.now()}
	rep, err := audit.VerifyStore(ctx, a.s, chain, a.pub)
	switch {
	case err != nil && ctx.Err() != nil:
		v.Unfinished = "it did not finish in time: verify this chain with 'tenantmcp audit verify'"
	case err != nil:
		v.Unfinished = "the audit store could not be read: " + err.Error()
	default:
		v.Report = rep
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.done[chain]; !ok && len(a.done) >= maxVerifications {
		oldest := ""
		for c, old := range a.done {
			if oldest == "" || old.At.Before(a.done[oldest].At) {
				oldest = c
			}
		}
		delete(a.done, oldest)
	}
	a.done[chain] = v
	return v, nil
}

func (a *storeAudit) Verified(chain string) *Verification {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.done[chain]
}

// auditPageSize is how many events one page of the viewer shows.
const auditPageSize = 50

func (c *Console) auditRoutes(mux *http.ServeMux) {
	mux.Handle("GET /console/audit", c.admin(c.auditPage))
	mux.Handle("GET /console/audit/export", c.admin(c.auditExport))
	mux.Handle("POST /console/audit/verify", c.admin(c.auditVerify))
}

// auditQuery is the viewer's form, as typed.
type auditQuery struct {
	Tenant, User, Tool, Outcome, Since, Until string
	Before                                    uint64
}

func auditQueryOf(q url.Values) auditQuery {
	before, _ := strconv.ParseUint(q.Get("before"), 10, 64)
	return auditQuery{Tenant: strings.TrimSpace(q.Get("tenant")), User: q.Get("user"), Tool: q.Get("tool"),
		Outcome: q.Get("outcome"), Since: q.Get("since"), Until: q.Get("until"), Before: before}
}

// filter reads the form into a Filter; problems name each field that is
// not understood.
func (aq auditQuery) filter() (audit.Filter, []string) {
	f := audit.Filter{User: aq.User, Tool: aq.Tool, BeforeSeq: aq.Before, Limit: auditPageSize}
	var problems []string
	switch aq.Outcome {
	case "", audit.OutcomeOK, audit.OutcomeError, audit.OutcomeRefused:
		f.Outcome = aq.Outcome
	default:
		problems = append(problems, fmt.Sprintf("outcome: %q is not ok, error or refused", aq.Outcome))
	}
	var err error
	if f.Since, err = parseFormTime(aq.Since); err != nil {
		problems = append(problems, "from: "+err.Error())
	}
	if f.Until, err = parseFormTime(aq.Until); err != nil {
		problems = append(problems, "to: "+err.Error())
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		problems = append(problems, "from must be before to")
	}
	return f, problems
}

// values is the query of the form, with before replaced.
func (aq auditQuery) values(before uint64) string {
	v := url.Values{}
	for k, s := range map[string]string{"tenant": aq.Tenant, "user": aq.User, "tool": aq.Tool, "outcome": aq.Outcome, "since": aq.Since, "until": aq.Until} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if before != 0 {
		v.Set("before", strconv.FormatUint(before, 10))
	}
	return v.Encode()
}

// parseFormTime reads a time field (UTC): a datetime-local value
// (2026-12-31T23:59), RFC 3339 or a date; "" is the zero time.
func parseFormTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", time.RFC3339, time.DateOnly} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time such as 2026-12-31T23:59 (UTC) or a date such as 2026-12-31", s)
}

// auditRow is one event in the viewer.
type auditRow struct {
	Seq    uint64
	E      *audit.Event // nil: the record could not be decoded
	Detail []string     // "key=value", sorted
}

type auditData struct {
	Configured bool
	Q          auditQuery
	Outcomes   []string
	Problems   []string
	Candidates []*registry.Tenant
	// Chain is the chain shown ("" with System for the system chain);
	// T its tenant (only an id for one no longer registered).
	Chain      string
	System     bool
	T          *registry.Tenant
	Rows       []auditRow
	Next       template.URL // query of the next (older) page, or ""
	Export     template.URL // query of the export link
	Status     *Verification
	StatusText string
	// StatusClass styles it: verified, broken or unfinished, none yet.
	StatusClass string
}

// auditPage is the audit viewer: one tenant's chain (or the system's),
// filtered and paged, with the chain's verification status.
func (c *Console) auditPage(w http.ResponseWriter, r *http.Request, s *session) {
	d := auditData{Configured: c.o.Audit != nil, Q: auditQueryOf(r.URL.Query()),
		Outcomes: []string{audit.OutcomeOK, audit.OutcomeError, audit.OutcomeRefused}}
	if !d.Configured || d.Q.Tenant == "" {
		c.render(w, r, s, http.StatusOK, "audit", "Audit", d)
		return
	}
	f, problems := d.Q.filter()
	d.Problems = problems
	chain, ok := c.auditChain(w, r, s, &d)
	if !ok {
		return
	}
	if len(d.Problems) > 0 {
		c.render(w, r, s, http.StatusUnprocessableEntity, "audit", "Audit", d)
		return
	}
	recs, err := c.o.Audit.Query(r.Context(), chain, f)
	if err != nil {
		c.internalError(w, r, s, fmt.Errorf("audit query of chain %q: %w", chain, err))
		return
	}
	for i := range recs {
		row := auditRow{Seq: recs[i].Seq}
		if e, err := recs[i].Event(); err == nil {
			row.E = e
			for _, k := range slices.Sorted(maps.Keys(e.Detail)) {
				row.Detail = append(row.Detail, k+"="+e.Detail[k])
			}
		}
		d.Rows = append(d.Rows, row)
	}
	if len(recs) == auditPageSize && recs[len(recs)-1].Seq > 1 {
		d.Next = template.URL(d.Q.values(recs[len(recs)-1].Seq)) // url.Values.Encode: safe
	}
	exp := d.Q
	exp.User, exp.Tool, exp.Outcome = "", "", ""
	d.Export = template.URL(exp.values(0))
	d.Status = c.o.Audit.Verified(chain)
	var good bool
	d.StatusText, good = verificationText(d.Status)
	switch {
	case d.Status == nil:
		d.StatusClass = "hint"
	case good:
		d.StatusClass = "flash flash-ok"
	default:
		d.StatusClass = "flash flash-error"
	}
	c.render(w, r, s, http.StatusOK, "audit", "Audit", d)
}

// auditChain resolves the form's tenant to its chain, filling d's
// tenant, or its problems and candidates. false: an error page was
// written.
func (c *Console) auditChain(w http.ResponseWriter, r *http.Request, s *session, d *auditData) (string, bool) {
	if strings.EqualFold(d.Q.Tenant, systemTenant) {
		d.System = true
		d.Chain = audit.SystemChain
		return audit.SystemChain, true
	}
	t, cands, err := c.findTenant(r.Context(), s, d.Q.Tenant)
	switch {
	case errors.Is(err, errNoSuchTenant):
		d.Problems = append(d.Problems, fmt.Sprintf("tenant: no tenant has the id or external id %q", d.Q.Tenant))
		d.Candidates = cands
		return "", true
	case err != nil:
		return "", c.callerError(w, r, s, err, &d.Problems)
	}
	d.T, d.Chain = t, string(t.ID)
	return d.Chain, true
}

// verificationText is a chain's status in words, and whether it is good.
func verificationText(v *Verification) (string, bool) {
	switch {
	case v == nil:
		return "Not verified since the console started.", false
	case v.Report == nil:
		return fmt.Sprintf("Verification at %s did not finish: %s.", v.At.UTC().Format(time.DateTime+" UTC"), v.Unfinished), false
	}
	rep := v.Report
	at := v.At.UTC().Format(time.DateTime + " UTC")
	if !rep.OK() {
		return fmt.Sprintf("%s (verified %s).", rep.Status(), at), false
	}
	text := fmt.Sprintf("%s: %d events and %d signed checkpoints verified at %s.", rep.Status(), rep.Events, rep.Checkpoints, at)
	switch n := rep.Unsigned(); {
	case n > 0 && rep.Latest != nil:
		text += fmt.Sprintf(" The %d events after event %d are not checkpointed yet (latest checkpoint %s).", n, rep.Latest.Count, rep.Latest.Time.UTC().Format(time.DateTime+" UTC"))
	case n > 0:
		text += fmt.Sprintf(" None of its %d events is covered by a signed checkpoint yet.", n)
	}
	return text, true
}

// auditVerify verifies the chain of the form's tenant now, bounded by
// auditVerifyTimeout, and goes back to the viewer with the result.
func (c *Console) auditVerify(w http.ResponseWriter, r *http.Request, s *session) {
	if c.o.Audit == nil {
		c.errorPage(w, r, s, http.StatusNotFound, "Audit", "This deployment keeps no audit trail (audit.enabled = false).")
		return
	}
	d := auditData{Q: auditQuery{Tenant: strings.TrimSpace(r.PostFormValue("tenant"))}}
	chain, ok := c.auditChain(w, r, s, &d)
	if !ok {
		return
	}
	back := "/console/audit?" + d.Q.values(0)
	if len(d.Problems) > 0 {
		c.redirect(w, r, s, back, &flash{Kind: "error", Text: strings.Join(d.Problems, "; ")})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), auditVerifyTimeout)
	defer cancel()
	v, err := c.o.Audit.Verify(ctx, chain)
	if err != nil {
		c.redirect(w, r, s, back, &flash{Kind: "error", Text: err.Error()})
		return
	}
	c.log.InfoContext(r.Context(), "console: audit chain verified", "admin", s.subject, "chain", chain, "ok", v.Report != nil && v.Report.OK())
	text, good := verificationText(v)
	kind := "ok"
	if !good {
		kind = "error"
	}
	c.redirect(w, r, s, back, &flash{Kind: kind, Text: text})
}

// auditExport streams the chain of the form's tenant in the export format
// of 'tenantmcp audit export', for the time range of the form.
func (c *Console) auditExport(w http.ResponseWriter, r *http.Request, s *session) {
	if c.o.Audit == nil {
		c.errorPage(w, r, s, http.StatusNotFound, "Audit", "This deployment keeps no audit trail (audit.enabled = false).")
		return
	}
	d := auditData{Q: auditQueryOf(r.URL.Query())}
	if d.Q.Tenant == "" {
		d.Problems = append(d.Problems, "tenant: name the tenant whose trail to export")
	}
	f, problems := d.Q.filter()
	d.Problems = append(d.Problems, problems...)
	chain := ""
	if d.Q.Tenant != "" {
		var ok bool
		if chain, ok = c.auditChain(w, r, s, &d); !ok {
			return
		}
	}
	if len(d.Problems) > 0 {
		d.Configured = true
		c.render(w, r, s, http.StatusUnprocessableEntity, "audit", "Audit", d)
		return
	}
	name := chain
	if chain == audit.SystemChain {
		name = systemTenant
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Content-Disposition", `attachment; filename="audit-`+name+`.jsonl"`)
	cw := &countingWriter{w: w}
	if err := c.o.Audit.Export(r.Context(), chain, f.Since, f.Until, cw); err != nil {
		err = fmt.Errorf("audit export of chain %q: %w", chain, err)
		if cw.n == 0 { // nothing sent yet: an error page instead
			h.Del("Content-Disposition")
			c.internalError(w, r, s, err)
			return
		}
		// The export is cut short, which its missing end line shows to
		// whoever verifies it.
		c.log.ErrorContext(r.Context(), "console: audit export cut short", "admin", s.subject, "err", err)
		return
	}
	c.log.InfoContext(r.Context(), "console: audit exported", "admin", s.subject, "chain", chain)
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (cw *countingWriter) Write(p []byte) (int, error) {
	n, err := cw.w.Write(p)
	cw.n += int64(n)
	return n, err
}
