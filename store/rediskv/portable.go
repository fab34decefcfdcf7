package rediskv

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// PartName is the one part an Export writes: JSON Lines, one Record per
// key of the tenant, in SCAN order. A key may appear twice when Redis
// rehashes during the scan; Import keeps the later line.
const PartName = "kv.jsonl"

// Record is one line of PartName.
type Record struct {
	// Key is the tenant's key, without namespace and tenant id.
	Key string `json:"key"`
	// Value is the stored value (base64 in JSON).
	Value []byte `json:"value"`
	// TTLMillis is the time to live the key had left at export time, in
	// milliseconds; 0 means no expiry. Import sets it again from the
	// moment of the import.
	TTLMillis int64 `json:"ttl_ms,omitempty"`
}

// ErrNotPortable is returned by Export for a key under the tenant's
// namespace that Import could not restore: not a string, a name that is
// not a valid key, or a value larger than store.MaxValueSize. Such keys
// were written by other means than this package; rename or remove them.
var ErrNotPortable = errors.New("rediskv: key cannot be exported")

var _ store.Portable = (*Store)(nil)

// batchBytes bounds the values one pipeline of Export or Import carries,
// and so the memory they use; a single larger value goes alone.
const batchBytes = 4 << 20

// Export writes every key under the tenant's namespace, with its value
// and remaining TTL, to part PartName; a tenant without keys writes no
// part. Keys are read in SCAN batches and values in pipelines of at most
// batchBytes, so memory use does not grow with the tenant. Redis has no
// snapshot across keys: a key written while Export runs may be in it
// with its old or new value, or not at all, so suspend the tenant first
// for a consistent export.
func (s *Store) Export(ctx context.Context, id tenant.ID, w store.PartWriter) error {
	if s.closed.Load() {
		return ErrClosed
	}
	e := &exporter{w: w}
	base := s.base(id)
	err := s.scanNamespace(ctx, base, func(ctx context.Context, c redis.Cmdable, keys []string) error {
		return s.exportBatch(ctx, c, id, keys, e)
	})
	if err == nil {
		err = e.close()
	} else {
		e.close()
	}
	if err != nil {
		return fmt.Errorf("rediskv: export tenant %s: %w", id, err)
	}
	return nil
}

// exporter writes records to the part, creating it with the first one.
// Cluster masters are scanned concurrently, hence the lock.
type exporter struct {
	w   store.PartWriter
	mu  sync.Mutex
	pw  io.WriteCloser
	buf *bufio.Writer
	enc *json.Encoder
}

func (e *exporter) write(recs []Record) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pw == nil && len(recs) > 0 {
		pw, err := e.w.Create(PartName)
		if err != nil {
			return fmt.Errorf("create part %s: %w", PartName, err)
		}
		e.pw, e.buf = pw, bufio.NewWriter(pw)
		e.enc = json.NewEncoder(e.buf)
	}
	for i := range recs {
		if err := e.enc.Encode(&recs[i]); err != nil {
			return fmt.Errorf("write part %s: %w", PartName, err)
		}
	}
	return nil
}

func (e *exporter) close() error {
	if e.pw == nil {
		return nil
	}
	err := e.buf.Flush()
	if cerr := e.pw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close part %s: %w", PartName, err)
	}
	return nil
}

// exportBatch reads one SCAN batch: the sizes first (which also finds
// keys that are not strings), then values and TTLs in pipelines bounded
// by batchBytes.
func (s *Store) exportBatch(ctx context.Context, c redis.Cmdable, id tenant.ID, keys []string, e *exporter) error {
	base := s.base(id)
	lens := make([]*redis.IntCmd, len(keys))
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			lens[i] = p.StrLen(ctx, k)
		}
		return nil
	})
	for i, l := range lens {
		key := keys[i][len(base):]
		if redis.HasErrorPrefix(l.Err(), "WRONGTYPE") {
			return fmt.Errorf("%w: %q is not a string", ErrNotPortable, key)
		}
		if l.Err() != nil {
			return l.Err()
		}
		if err := store.ValidateKey(key); err != nil {
			return fmt.Errorf("%w: %w", ErrNotPortable, err)
		}
		if l.Val() > store.MaxValueSize {
			return fmt.Errorf("%w: %q holds %d bytes, at most %d", ErrNotPortable, key, l.Val(), store.MaxValueSize)
		}
	}
	if err != nil {
		return err
	}
	for start := 0; start < len(keys); {
		end, size := start, int64(0)
		for end < len(keys) && (end == start || size+lens[end].Val() <= batchBytes) {
			size += lens[end].Val()
			end++
		}
		recs, err := s.readValues(ctx, c, base, keys[start:end])
		if err != nil {
			return err
		}
		if err := e.write(recs); err != nil {
			return err
		}
		start = end
	}
	return nil
}

// readValues GETs keys with their PTTL in one pipeline; keys deleted
// since the SCAN are left out.
func (s *Store) readValues(ctx context.Context, c redis.Cmdable, base string, keys []string) ([]Record, error) {
	gets := make([]*redis.StringCmd, len(keys))
	ttls := make([]*redis.DurationCmd, len(keys))
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			gets[i] = p.Get(ctx, k)
			ttls[i] = p.PTTL(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	recs := make([]Record, 0, len(keys))
	for i, k := range keys {
		v, err := gets[i].Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("get %q: %w", k[len(base):], err)
		}
		if len(v) > store.MaxValueSize {
			return nil, fmt.Errorf("%w: %q grew beyond %d bytes", ErrNotPortable, k[len(base):], store.MaxValueSize)
		}
		r := Record{Key: k[len(base):], Value: v}
		switch ttl := ttls[i].Val(); {
		case ttl == -2:
			continue // expired or deleted between GET and PTTL
		case ttl > 0:
			r.TTLMillis = max(ttl.Milliseconds(), 1)
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// Import restores the keys of part PartName under tenant id, with their
// TTLs counted from now, in pipelines of at most batchBytes of values.
// The tenant's namespace must hold no key, else store.ErrNotEmpty. Redis
// has no transaction across pipelines: if anything fails, Import purges
// the namespace again before it returns, which is right because it was
// empty. Writes to the same tenant must not run meanwhile.
func (s *Store) Import(ctx context.Context, id tenant.ID, r store.PartReader) error {
	if s.closed.Load() {
		return ErrClosed
	}
	names := r.Names()
	for i, n := range names {
		if n != PartName || i > 0 {
			return fmt.Errorf("rediskv: import tenant %s: unknown part %q (an export of this backend has only %q)", id, n, PartName)
		}
	}
	if err := s.checkEmpty(ctx, id); err != nil || len(names) == 0 {
		return err
	}
	if err := s.importPart(ctx, id, r); err != nil {
		if perr := s.Purge(context.WithoutCancel(ctx), id); perr != nil {
			err = errors.Join(err, fmt.Errorf("remove the partial import: %w", perr))
		}
		return fmt.Errorf("rediskv: import tenant %s: %w", id, err)
	}
	return nil
}

// errFound stops a scan at the first key.
var errFound = errors.New("found a key")

func (s *Store) checkEmpty(ctx context.Context, id tenant.ID) error {
	err := s.scanNamespace(ctx, s.base(id), func(context.Context, redis.Cmdable, []string) error { return errFound })
	switch {
	case errors.Is(err, errFound):
		return fmt.Errorf("%w (tenant %s has keys)", store.ErrNotEmpty, id)
	case err != nil:
		return fmt.Errorf("rediskv: import tenant %s: %w", id, err)
	}
	return nil
}

func (s *Store) importPart(ctx context.Context, id tenant.ID, r store.PartReader) error {
	rc, err := r.Open(PartName)
	if err != nil {
		return fmt.Errorf("open part %s: %w", PartName, err)
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	dec.DisallowUnknownFields()
	var batch []Record
	size := 0
	for n := 1; ; n++ {
		var rec Record
		err := dec.Decode(&rec)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("part %s, record %d: %w", PartName, n, err)
		}
		if err := store.ValidateKey(rec.Key); err != nil {
			return fmt.Errorf("part %s, record %d: %w", PartName, n, err)
		}
		if len(rec.Value) > store.MaxValueSize {
			return fmt.Errorf("part %s, record %d (%q): %w", PartName, n, rec.Key, store.ErrTooLarge)
		}
		if rec.TTLMillis < 0 {
			return fmt.Errorf("part %s, record %d (%q): negative ttl_ms %d", PartName, n, rec.Key, rec.TTLMillis)
		}
		if size+len(rec.Value) > batchBytes && len(batch) > 0 {
			if err := s.write(ctx, id, batch); err != nil {
				return err
			}
			batch, size = batch[:0], 0
		}
		batch = append(batch, rec)
		size += len(rec.Value)
	}
	return s.write(ctx, id, batch)
}

// write SETs records in one pipeline.
func (s *Store) write(ctx context.Context, id tenant.ID, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, r := range recs {
			p.Set(ctx, s.base(id)+r.Key, r.Value, time.Duration(r.TTLMillis)*time.Millisecond)
		}
		return nil
	})
	return err
}

// Purge deletes every key under the tenant's namespace, whatever its
// type or name, by SCAN and a pipeline of UNLINKs per batch (each key
// its own command, so it works on a cluster too). Keys written while
// Purge runs may survive it; a purge that failed simply runs again.
func (s *Store) Purge(ctx context.Context, id tenant.ID) error {
	if s.closed.Load() {
		return ErrClosed
	}
	err := s.scanNamespace(ctx, s.base(id), func(ctx context.Context, c redis.Cmdable, keys []string) error {
		_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				p.Unlink(ctx, k)
			}
			return nil
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("rediskv: purge tenant %s: %w", id, err)
	}
	return nil
}

// scanNamespace calls fn with each SCAN batch of keys that start with
// prefix (matched with every glob metacharacter escaped, then checked
// again with strings.HasPrefix), on the client that holds them: every
// master of a cluster, possibly concurrently. An error from fn stops the
// scan. List, Export, Import and Purge all scan through it.
func (s *Store) scanNamespace(ctx context.Context, prefix string, fn func(ctx context.Context, c redis.Cmdable, keys []string) error) error {
	pattern := escapeGlob(prefix) + "*"
	scan := func(ctx context.Context, c redis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, pattern, scanCount).Result()
			if err != nil {
				return err
			}
			mine := keys[:0]
			for _, k := range keys {
				if strings.HasPrefix(k, prefix) {
					mine = append(mine, k)
				}
			}
			if len(mine) > 0 {
				if err := fn(ctx, c, mine); err != nil {
					return err
				}
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
	}
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return scan(ctx, c) })
	}
	return scan(ctx, s.client)
}
