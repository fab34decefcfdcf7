package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/audit/sqliteaudit"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/examples/documents"
	"github.com/tenantmcp/tenantmcp/ratelimit"
	"github.com/tenantmcp/tenantmcp/registry"
	regsqlite "github.com/tenantmcp/tenantmcp/registry/sqlitestore"
	"github.com/tenantmcp/tenantmcp/server"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/fsblob"
	docsqlite "github.com/tenantmcp/tenantmcp/store/sqlitestore"
)

// benchScopes are the scopes in every bench token (tenanttest's default).
var benchScopes = []string{"read:tools", "execute:tools"}

// benchLimit is far above anything one tenant can send here: the limiter
// runs its full GCRA check on every request but never refuses.
var benchLimit = ratelimit.Limit{PerMinute: 600_000_000, Burst: 10_000_000}

// tmcpConfig is what differs between the tenantmcp variants.
type tmcpConfig struct {
	base       string // http://127.0.0.1:port
	tenants    int
	tokenCache int // auth.Options.CacheSize; 0 = default
	regCache   int // registry.Options.MaxEntries; 0 = default
	reg        registry.Store
	stores     *store.Set
	// seed, if set, runs once per registered tenant (e.g. to store the
	// document get_document reads).
	seed func(ctx context.Context, rec *registry.Tenant) error
	// audit, if set, turns the audit trail on: a writer with the default
	// options over this store, checkpoints signed with a fresh Ed25519
	// key. The caller closes the store after tmcp.Close.
	audit audit.Store
	// auditBatch is the writer's BatchSize (0 = the default).
	auditBatch int
}

// tmcp is one assembled tenantmcp server with its tenants' tokens.
type tmcp struct {
	handler  http.Handler
	tokens   []string           // tokens[i] is a token for tenant i
	recs     []*registry.Tenant // recs[i] is tenant i's record
	verifier *auth.Verifier
	limiter  *ratelimit.Memory
	audit    *audit.Writer     // nil without the audit trail
	auditPub ed25519.PublicKey // verifies audit's checkpoints
}

// auditCloseTimeout bounds the drain of the audit queue at Close.
const auditCloseTimeout = time.Minute

// Close stops the server's parts; the audit writer first drains its queue
// and writes final checkpoints (its store stays open: the caller's).
func (t *tmcp) Close() {
	t.closeAudit()
	t.verifier.Close()
	t.limiter.Close()
}

// closeAudit drains and closes the audit writer, if any. It returns the
// same result every time.
func (t *tmcp) closeAudit() error {
	if t.audit == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), auditCloseTimeout)
	defer cancel()
	return t.audit.Close(ctx)
}

// newTmcp assembles the full request path the way app does for
// a deployment with the development issuer: a JWT verifier over the dev
// issuer's JWKS (ES256), the registry over c.reg, an in-memory GCRA rate
// limiter, the documents tools plus echo, and with c.audit the audit
// trail. It registers c.tenants tenants (external ids bench-0 ...
// bench-<n-1>) and mints one token per tenant.
func newTmcp(ctx context.Context, c tmcpConfig) (*tmcp, error) {
	key, err := auth.GenerateDevKey()
	if err != nil {
		return nil, err
	}
	iss, err := auth.NewDevIssuer(c.base+"/dev", key)
	if err != nil {
		return nil, err
	}
	resource := c.base + "/mcp"
	v, err := auth.NewVerifier(ctx, &auth.Options{
		Issuer:     iss.Issuer(),
		Audience:   resource,
		JWKS:       iss.JWKS(),
		Claims:     auth.DevClaimMap(),
		CacheSize:  c.tokenCache,
		DropClaims: true, // as the server assembled by the CLI does
	})
	if err != nil {
		return nil, err
	}
	reg := registry.New(c.reg, &registry.Options{MaxEntries: c.regCache})
	lim := ratelimit.NewMemory(nil)
	t := &tmcp{verifier: v, limiter: lim}
	if c.audit != nil {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Close()
			return nil, err
		}
		w, err := audit.NewWriter(c.audit, priv, &audit.WriterOptions{BatchSize: c.auditBatch})
		if err != nil {
			t.Close()
			return nil, err
		}
		t.audit, t.auditPub = w, pub
	}
	srv, err := server.New(server.Options{
		ResourceURL:  resource,
		Verifier:     v,
		Registry:     reg,
		Metadata:     auth.ResourceMetadata{AuthorizationServers: []string{iss.Issuer()}},
		Limiter:      lim,
		DefaultLimit: benchLimit,
		Stores:       c.stores,
		Tools:        append([]server.Tool{echoTool()}, documents.Tools()...),
		Routes:       map[string]http.Handler{"GET /dev/jwks.json": iss},
		Audit:        t.audit,
	})
	if err != nil {
		t.Close()
		return nil, err
	}
	t.handler = srv
	t.tokens = make([]string, c.tenants)
	t.recs = make([]*registry.Tenant, c.tenants)
	// Register and mint in parallel: registration is store-bound, minting
	// CPU-bound, and 10,000 tenants should not take long to set up.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				ext := fmt.Sprintf("bench-%d", i)
				rec, err := reg.Add(ctx, registry.Tenant{Issuer: iss.Issuer(), ExternalID: ext, Name: "Bench " + ext, Status: registry.StatusActive})
				if err == nil {
					t.recs[i] = rec
				}
				if err == nil && c.seed != nil {
					err = c.seed(ctx, rec)
				}
				if err == nil {
					t.tokens[i], err = iss.Mint(auth.TokenRequest{Audience: resource, TenantID: ext, UserID: fmt.Sprintf("user-%d", i), Scopes: benchScopes})
				}
				if err != nil {
					select {
					case errs <- fmt.Errorf("register tenant %s: %w", ext, err):
					default:
					}
				}
			}
		})
	}
	for i := range c.tenants {
		if len(errs) > 0 {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		t.Close()
		return nil, err
	default:
	}
	return t, nil
}

// embedded is (d)'s and (g)'s storage: the embedded default of
// `tenantmcp dev`, an SQLite registry and an SQLite file per tenant (plus
// filesystem blobs), and for (g) the SQLite audit store, audit.db.
type embedded struct {
	reg   *regsqlite.Store
	docs  *docsqlite.Store
	blobs *fsblob.Store
	audit *sqliteaudit.Store // nil unless opened withAudit
}

// openEmbedded opens the storage in dir (created if need be).
func openEmbedded(dir string, withAudit bool) (*embedded, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	reg, err := regsqlite.Open(filepath.Join(dir, "registry.db"), nil)
	if err != nil {
		return nil, err
	}
	docs, err := docsqlite.Open(filepath.Join(dir, "tenants"), nil)
	if err != nil {
		reg.Close()
		return nil, err
	}
	blobs, err := fsblob.Open(filepath.Join(dir, "blobs"), nil)
	if err != nil {
		reg.Close()
		docs.Close()
		return nil, err
	}
	e := &embedded{reg: reg, docs: docs, blobs: blobs}
	if withAudit {
		if e.audit, err = sqliteaudit.Open(filepath.Join(dir, "audit.db"), nil); err != nil {
			e.Close()
			return nil, err
		}
	}
	return e, nil
}

func (e *embedded) set() *store.Set { return &store.Set{Docs: e.docs, SQL: e.docs, Blobs: e.blobs} }

// auditStore is the audit store as tmcpConfig.audit wants it: nil (off)
// when none was opened.
func (e *embedded) auditStore() audit.Store {
	if e.audit == nil {
		return nil
	}
	return e.audit
}

// Close closes the stores; close the audit writer (tmcp.Close) first.
func (e *embedded) Close() {
	e.blobs.Close()
	e.docs.Close()
	e.reg.Close()
	if e.audit != nil {
		e.audit.Close()
	}
}
