package rediskv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// ErrClosed is returned by every method called after Close.
var ErrClosed = errors.New("rediskv: store is closed")

// DefaultNamespace is the key prefix used when Options.Namespace is empty.
const DefaultNamespace = "tenantmcp:"

// scanCount is the COUNT hint for each SCAN step.
const scanCount = 1000

// Options configure a Store. A nil *Options means all defaults.
type Options struct {
	// Namespace is put in front of every Redis key, so one Redis can serve
	// several deployments (and tests). Empty means DefaultNamespace.
	Namespace string
	// Logger receives debug records. Nil discards them.
	Logger *slog.Logger
}

// Store keeps tenant id's value for key at the Redis key
// <Namespace><id>/<key>. It implements store.Backend and is safe for
// concurrent use.
type Store struct {
	client redis.UniversalClient
	ns     string
	log    *slog.Logger
	owned  bool // Open created the client; Close closes it
	closed atomic.Bool
	once   sync.Once
}

var _ store.Backend = (*Store)(nil)

// New returns a Store over client. The caller keeps ownership of client:
// Close does not close it. For a *redis.ClusterClient, List scans every
// master.
func New(client redis.UniversalClient, o *Options) *Store {
	if o == nil {
		o = &Options{}
	}
	s := &Store{client: client, ns: o.Namespace, log: o.Logger}
	if s.ns == "" {
		s.ns = DefaultNamespace
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Open connects to the Redis at url (redis://[user:password@]host:port/db
// or rediss:// for TLS), checks it answers PING within 5 seconds, and
// returns a Store that closes the connection on Close.
func Open(url string, o *Options) (*Store, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("rediskv: parse Redis URL: %w", err)
	}
	c := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("rediskv: Redis at %s does not answer PING (check address, password and TLS): %w", opts.Addr, err)
	}
	s := New(c, o)
	s.owned = true
	return s, nil
}

// Close marks the Store closed and closes the client if Open created it.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.owned {
		return s.client.Close()
	}
	return nil
}

// base is the tenant's namespace. Tenant ids have one fixed length, so no
// tenant's namespace is a prefix of another's.
func (s *Store) base(id tenant.ID) string { return s.ns + string(id) + "/" }

// Get returns the value under key, or store.ErrNotFound.
func (s *Store) Get(ctx context.Context, id tenant.ID, key string) ([]byte, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	v, err := s.client.Get(ctx, s.base(id)+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("rediskv: get %q: %w", key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

// Put stores value under key (SET, no expiry).
func (s *Store) Put(ctx context.Context, id tenant.ID, key string, value []byte) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.client.Set(ctx, s.base(id)+key, value, 0).Err(); err != nil {
		return fmt.Errorf("rediskv: put %q: %w", key, err)
	}
	return nil
}

// Delete removes key, or returns store.ErrNotFound.
func (s *Store) Delete(ctx context.Context, id tenant.ID, key string) error {
	if s.closed.Load() {
		return ErrClosed
	}
	n, err := s.client.Del(ctx, s.base(id)+key).Result()
	if err != nil {
		return fmt.Errorf("rediskv: delete %q: %w", key, err)
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// List returns the tenant's keys that start with prefix, sorted. It uses
// SCAN with a MATCH pattern built from the escaped namespace (never KEYS),
// and checks every returned key against the namespace again.
func (s *Store) List(ctx context.Context, id tenant.ID, prefix string) ([]string, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	base := s.base(id)
	seen := map[string]struct{}{}
	var mu sync.Mutex
	err := s.scanNamespace(ctx, base+prefix, func(_ context.Context, _ redis.Cmdable, keys []string) error {
		mu.Lock()
		defer mu.Unlock()
		for _, k := range keys {
			seen[k[len(base):]] = struct{}{}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rediskv: list %q: %w", prefix, err)
	}
	// SCAN may return a key more than once; the set removes duplicates.
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, nil
}

// escapeGlob escapes Redis glob metacharacters so s matches only itself.
func escapeGlob(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
