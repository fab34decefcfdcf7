package auth

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
)

func key(i int) tokenKey {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(i))
	return sha256.Sum256(b[:])
}

func TestTokenCacheIsBounded(t *testing.T) {
	t.Parallel()
	for _, size := range []int{1, 100, 255, 256, 1000} {
		c := newTokenCache(size)
		id := &Identity{}
		for i := range 2 * size {
			k := key(i)
			c.put(&k, id, 1000, 0)
		}
		if n := c.len(); n > size+len(c.shards)-1 {
			t.Errorf("size %d: cache holds %d entries after %d inserts", size, n, 2*size)
		}
		// The newest entry is always present.
		k := key(2*size - 1)
		if _, ok := c.get(&k, 0); !ok {
			t.Errorf("size %d: the entry just put is missing", size)
		}
	}
}

func TestTokenCachePrefersExpiredVictims(t *testing.T) {
	t.Parallel()
	c := newTokenCache(4)
	live, dead := &Identity{UserID: "live"}, &Identity{UserID: "dead"}
	for i := range 3 {
		k := key(i)
		c.put(&k, live, 1000, 0)
	}
	k := key(3)
	c.put(&k, dead, 10, 0)
	// Full at now=50 with one expired entry: it is the one evicted.
	k = key(4)
	c.put(&k, live, 1000, 50)
	for i := range 3 {
		k := key(i)
		if _, ok := c.get(&k, 50); !ok {
			t.Errorf("live entry %d was evicted while an expired one was present", i)
		}
	}
}

func TestTokenCacheExpiry(t *testing.T) {
	t.Parallel()
	c := newTokenCache(10)
	k := key(1)
	c.put(&k, &Identity{}, 100, 0)
	if _, ok := c.get(&k, 99); !ok {
		t.Error("entry missing before its deadline")
	}
	if _, ok := c.get(&k, 100); ok {
		t.Error("entry served at its deadline")
	}
}

// TestTokenCacheBoundIsGlobal: a cache of N holds N distinct tokens even
// though they hash unevenly over the shards (a per-shard cap evicted from
// the fuller shards while the cache as a whole had room).
func TestTokenCacheBoundIsGlobal(t *testing.T) {
	t.Parallel()
	const size = 10000
	c := newTokenCache(size)
	id := &Identity{}
	for i := range size {
		k := key(i)
		c.put(&k, id, 1000, 0)
	}
	for i := range size {
		k := key(i)
		if _, ok := c.get(&k, 0); !ok {
			t.Fatalf("token %d of %d evicted from a cache of %d", i, size, size)
		}
	}
	if n := c.len(); n != size || c.n.Load() != size {
		t.Fatalf("len %d, counter %d, want %d", n, c.n.Load(), size)
	}
	// Re-putting an existing key does not change the count.
	k := key(0)
	c.put(&k, id, 2000, 0)
	if c.n.Load() != size {
		t.Fatalf("counter %d after re-put", c.n.Load())
	}
}
