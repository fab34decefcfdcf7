package verify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Status is the outcome of one check.
type Status string

// The outcomes of a check.
const (
	// StatusPass: the attack was refused, or reached nothing of A's.
	StatusPass Status = "PASS"
	// StatusLeak: the attack reached A's data, A's session, a tool or an
	// endpoint it must not reach, or a forged token was accepted.
	StatusLeak Status = "LEAK"
	// StatusNA: the attack does not apply to this deployment (say, session
	// replay on a stateless server).
	StatusNA Status = "N/A"
	// StatusError: the check could not be run (A could not write its
	// markers, the admin token was refused, the server failed).
	StatusError Status = "ERROR"
)

// Check is one attack and its outcome.
type Check struct {
	// ID names the check ("read", "alg-none", ...); stable across runs.
	ID string `json:"id"`
	// Attack says what was tried.
	Attack string `json:"attack"`
	// Status is the outcome.
	Status Status `json:"status"`
	// Evidence says what was seen: the refusals, or what leaked.
	Evidence string `json:"evidence"`
}

// Report is the outcome of a run.
type Report struct {
	// URL is the MCP endpoint verified.
	URL string `json:"url"`
	// Protocol is the MCP revision tenant A's client negotiated.
	Protocol string `json:"protocol,omitempty"`
	// Stateful reports whether the server hands out MCP sessions.
	Stateful bool `json:"stateful"`
	// TenantA and TenantB describe the tokens' identities (the claims in
	// which they differ).
	TenantA string `json:"tenant_a,omitempty"`
	TenantB string `json:"tenant_b,omitempty"`
	// Toolsets are the tenant tools markers were written with, e.g.
	// "put_document/get_document/list_documents/delete_document".
	Toolsets []string `json:"toolsets"`
	// Markers are the keys A wrote.
	Markers []string `json:"markers"`
	// Checks are the attacks, in the order they ran, then the cleanup.
	Checks []Check `json:"checks"`
	// RateLimitedSeconds is how long verify waited on 429 responses.
	RateLimitedSeconds float64 `json:"rate_limited_seconds,omitempty"`
	// Interrupted is set when the run was cancelled before every check ran.
	Interrupted bool `json:"interrupted,omitempty"`
}

// Count returns how many checks have status s.
func (r *Report) Count(s Status) int {
	n := 0
	for _, c := range r.Checks {
		if c.Status == s {
			n++
		}
	}
	return n
}

// Options adjust a run. A nil *Options means defaults.
type Options struct {
	// AdminToken, if set, is an admin's token: verify also checks that it
	// is served by the admin API and the admin tools (and takes the names
	// of the admin tools tenants must not reach from its tools/list).
	// Empty: only refusals of tenant tokens are checked.
	AdminToken string
	// WriteTool, ReadTool, ListTool and DeleteTool name the tenant tools
	// markers are written, read, listed and deleted with. Empty WriteTool
	// and ReadTool: every put_/get_/list_/delete_ family of tools A is
	// served (put_document, get_document, ...; save_note, get_note, ...)
	// is used. ListTool and DeleteTool are optional.
	WriteTool, ReadTool, ListTool, DeleteTool string
	// Timeout bounds each request; 0 = 30s.
	Timeout time.Duration
	// Transport sends every request; nil = a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
}

// ErrInvalidTarget is returned by Run when the URL or a token is unusable.
var ErrInvalidTarget = errors.New("verify: invalid target")

// defaultTimeout bounds each request unless Options.Timeout says otherwise.
const defaultTimeout = 30 * time.Second

// cleanupTimeout bounds the cleanup, which runs even after ctx is done.
const cleanupTimeout = 30 * time.Second

// Run verifies the deployment whose MCP endpoint is mcpURL with tenant A's
// and tenant B's tokens. It returns an error only for an unusable target
// (wrapping ErrInvalidTarget) or, with the report so far, when ctx is
// cancelled; every finding, failures included, is a Check of the report.
func Run(ctx context.Context, mcpURL, tokenA, tokenB string, opts *Options) (*Report, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultTimeout
	}
	u, err := url.Parse(mcpURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: URL %q: want the MCP endpoint, e.g. https://mcp.example.com/mcp", ErrInvalidTarget, mcpURL)
	}
	tokenA, tokenB = strings.TrimSpace(tokenA), strings.TrimSpace(tokenB)
	switch {
	case tokenA == "" || tokenB == "":
		return nil, fmt.Errorf("%w: both tenants' tokens are required", ErrInvalidTarget)
	case tokenA == tokenB:
		return nil, fmt.Errorf("%w: token A and token B are the same token: give tokens of two different tenants", ErrInvalidTarget)
	}
	v := newRun(mcpURL, u, tokenA, tokenB, &o)
	defer v.close()
	defer func() {
		// Whatever happened, A's markers go: with a context of their own,
		// so that an interrupt still cleans up.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		v.cleanup(cctx)
		v.rep.RateLimitedSeconds = v.retry.waited().Seconds()
	}()
	steps := []func(context.Context){
		v.connect,
		v.writeMarkers,
		v.checkList,
		v.checkRead,
		v.checkSpoofArgs,
		v.checkSpoofHeaders,
		v.checkMalformed,
		v.checkOverwrite,
		v.checkDelete,
		v.checkHiddenTools,
		v.checkSessionReplay,
		v.checkStreams,
		v.checkTokens,
		v.checkAdmin,
		v.checkPublicEndpoints,
	}
	for _, step := range steps {
		if ctx.Err() != nil {
			v.rep.Interrupted = true
			return v.rep, ctx.Err()
		}
		step(ctx)
	}
	if ctx.Err() != nil {
		v.rep.Interrupted = true
		return v.rep, ctx.Err()
	}
	return v.rep, nil
}

// newRunID returns the run's id, which every marker key contains.
func newRunID() string {
	var b [5]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// randomHex returns n random bytes as hex.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// add records a check. The tokens never reach the report (an error may
// quote a URL with A's token in its query string).
func (v *run) add(id, attack string, st Status, format string, args ...any) {
	ev := fmt.Sprintf(format, args...)
	for tok, name := range map[string]string{v.tokA: "<token A>", v.tokB: "<token B>", v.opts.AdminToken: "<admin token>"} {
		if len(tok) >= 16 { // shorter ones are no credential worth hiding, and would mangle the text
			ev = strings.ReplaceAll(ev, tok, name)
		}
	}
	v.rep.Checks = append(v.rep.Checks, Check{ID: id, Attack: attack, Status: st, Evidence: ev})
}

// verdict records a check: a leak if the check or the scanner (B's
// replies for id) found one, else an error if requests failed, else a
// pass.
func (v *run) verdict(id, attack string, leaks, errs []string, pass string) {
	leaks = append(leaks, v.scan.hitsFor(id)...)
	switch {
	case len(leaks) > 0:
		v.add(id, attack, StatusLeak, "%s", summarize(leaks))
	case len(errs) > 0:
		v.add(id, attack, StatusError, "%s", summarize(errs))
	default:
		v.add(id, attack, StatusPass, "%s", pass)
	}
}

// summarize joins findings, at most three of them, saying how many more.
func summarize(items []string) string {
	const most = 3
	if len(items) <= most {
		return strings.Join(items, "; ")
	}
	return strings.Join(items[:most], "; ") + fmt.Sprintf("; and %d more", len(items)-most)
}
