package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/ratelimit"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
)

// BenchmarkNoisyNeighbour: a quiet tenant sends one tools/call at a time
// and measures its own latency (reported as quiet-p50-µs and
// quiet-p99-µs), alone and while a noisy tenant hammers the same server
// over real HTTP connections: far over its rate limit, at its concurrency
// cap with slow calls, with bodies over the size limit, with arguments
// over the argument limit, and with JSON nested far too deep. The noisy
// tenant's requests per second and the share refused are reported too.
// It reports; it never fails on a figure.
//
//	go test -run '^$' -bench NoisyNeighbour -benchtime 3000x ./server
func BenchmarkNoisyNeighbour(b *testing.B) {
	huge := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + strings.Repeat("x", 2<<20) + `"}}}`
	bigArgs := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"` + strings.Repeat("x", 300<<10) + `"}}}`
	deep := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x","n":` + strings.Repeat("[", 200<<10) + strings.Repeat("]", 200<<10) + `}}}`
	slow := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nap","arguments":{"millis":20}}}`
	for _, sc := range []struct {
		name    string
		workers int
		body    string // "" = none: the quiet tenant alone
		limited bool   // the noisy tenant has a small rate limit (else only the other limits apply)
	}{
		{"alone", 0, "", false},
		{"noisy=rate-limited", 8, echoCall, true},
		{"noisy=concurrency-cap", 32, slow, false},
		{"noisy=huge-bodies", 4, huge, false},
		{"noisy=big-arguments", 4, bigArgs, false},
		{"noisy=deep-json", 4, deep, false},
	} {
		b.Run(sc.name, func(b *testing.B) {
			nb := newNoisyBench(b)
			noisy := nb.noisy
			if sc.limited {
				noisy = nb.limited
			}
			var sent, refused atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for range sc.workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
					defer c.CloseIdleConnections()
					for {
						select {
						case <-stop:
							return
						default:
						}
						code, err := nb.post(c, noisy, sc.body)
						sent.Add(1)
						if err != nil || code != 200 { // errRefusedResult too
							refused.Add(1)
						}
					}
				}()
			}
			quiet := &http.Client{Transport: &http.Transport{}}
			defer quiet.CloseIdleConnections()
			if code, err := nb.post(quiet, nb.quiet, echoCall); err != nil || code != 200 {
				b.Fatalf("quiet warm-up: %d %v", code, err)
			}
			lat := make([]time.Duration, 0, b.N)
			began := time.Now()
			b.ResetTimer()
			for b.Loop() {
				t0 := time.Now()
				code, err := nb.post(quiet, nb.quiet, echoCall)
				lat = append(lat, time.Since(t0))
				if err != nil || code != 200 {
					b.Fatalf("quiet tenant refused: %d %v", code, err)
				}
			}
			b.StopTimer()
			elapsed := time.Since(began)
			close(stop)
			wg.Wait()
			slices.Sort(lat)
			us := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) }
			b.ReportMetric(us(0.50), "quiet-p50-µs")
			b.ReportMetric(us(0.99), "quiet-p99-µs")
			if n := sent.Load(); n > 0 {
				b.ReportMetric(float64(n)/elapsed.Seconds(), "noisy-req/s")
				b.ReportMetric(100*float64(refused.Load())/float64(n), "noisy-refused-%")
			}
		})
	}
}

// noisyBench is a server on a loopback listener with a quiet and a noisy
// tenant, configured as `tenantmcp serve` is by default except for the
// noisy tenant's own rate limit.
type noisyBench struct {
	url, quiet, noisy, limited string
}

func newNoisyBench(b *testing.B) *noisyBench {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	resource := "http://" + ln.Addr().String() + "/mcp"
	key, _ := auth.GenerateDevKey()
	iss, _ := auth.NewDevIssuer("http://127.0.0.1/dev", key)
	v, err := auth.NewVerifier(context.Background(), &auth.Options{Issuer: iss.Issuer(), Audience: resource, JWKS: iss.JWKS(), Claims: auth.DevClaimMap()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(v.Close)
	reg := registry.New(registry.NewMemoryStore(), nil)
	ctx := context.Background()
	if _, err := reg.Add(ctx, registry.Tenant{Issuer: iss.Issuer(), ExternalID: "quiet"}); err != nil {
		b.Fatal(err)
	}
	// The rate-limited noisy tenant's budget: 600 requests a minute,
	// bursts of 20. The other noisy tenant has the (huge) default.
	for _, t := range []registry.Tenant{{ExternalID: "noisy"}, {ExternalID: "limited", RateLimit: 600, RateBurst: 20}} {
		t.Issuer = iss.Issuer()
		if _, err := reg.Add(ctx, t); err != nil {
			b.Fatal(err)
		}
	}
	limiter := ratelimit.NewMemory(nil)
	b.Cleanup(func() { limiter.Close() })
	srv, err := server.New(server.Options{
		ResourceURL:            resource,
		Verifier:               v,
		Registry:               reg,
		Limiter:                limiter,
		DefaultLimit:           ratelimit.Limit{PerMinute: 1 << 30, Burst: 1 << 20},
		MaxConcurrentPerTenant: 8,
		Tools: []server.Tool{
			server.NewTool("echo", "echo", func(ctx context.Context, in echoIn) (string, error) { return in.Text, nil }),
			server.NewTool("nap", "sleeps", func(ctx context.Context, in struct {
				Millis int `json:"millis"`
			}) (string, error) {
				time.Sleep(time.Duration(in.Millis) * time.Millisecond)
				return "rested", nil
			}),
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(sctx, ln, 5*time.Second) }()
	b.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			b.Errorf("Serve: %v", err)
		}
	})
	token := func(org string) string {
		tok, err := iss.Mint(auth.TokenRequest{Audience: resource, TenantID: org, UserID: "u"})
		if err != nil {
			b.Fatal(err)
		}
		return "Bearer " + tok
	}
	return &noisyBench{url: resource, quiet: token("quiet"), noisy: token("noisy"), limited: token("limited")}
}

// errRefusedResult is a tool call answered with a refusal as its result
// (arguments too large), which comes with status 200.
var errRefusedResult = errors.New("tool call refused")

func (nb *noisyBench) post(c *http.Client, authz, body string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, nb.url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", authz)
	resp, err := c.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && bytes.Contains(b, []byte(`"isError":true`)) {
		err = errRefusedResult
	}
	return resp.StatusCode, err
}
