package rediskv_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/rediskv"
	"github.com/tenantmcp/tenantmcp/store/storetest"
	"github.com/tenantmcp/tenantmcp/tenant"
)

func TestPortable(t *testing.T) {
	t.Parallel()
	storetest.RunPortable(t, func(t *testing.T) (store.Backend, store.Portable) {
		s, _, _ := setup(t)
		return s, s
	})
}

func exportRecords(t *testing.T, s *rediskv.Store, id tenant.ID) []rediskv.Record {
	t.Helper()
	parts := &storetest.MemoryParts{}
	if err := s.Export(context.Background(), id, parts); err != nil {
		t.Fatal(err)
	}
	b, _ := parts.Part(rediskv.PartName)
	var recs []rediskv.Record
	for line := range strings.Lines(string(b)) {
		var r rediskv.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	return recs
}

func TestPortableTTL(t *testing.T) {
	t.Parallel()
	s, c, ns := setup(t)
	ctx := context.Background()
	id, dst := tenant.NewID(), tenant.NewID()
	if err := c.Set(ctx, ns+string(id)+"/session", "s", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, id, "forever", []byte("f")); err != nil {
		t.Fatal(err)
	}
	recs := exportRecords(t, s, id)
	slices.SortFunc(recs, func(a, b rediskv.Record) int { return strings.Compare(a.Key, b.Key) })
	if len(recs) != 2 || recs[0].Key != "forever" || recs[0].TTLMillis != 0 ||
		recs[1].Key != "session" || recs[1].TTLMillis <= 0 || recs[1].TTLMillis > time.Hour.Milliseconds() {
		t.Fatalf("records = %+v", recs)
	}
	parts := &storetest.MemoryParts{}
	if err := s.Export(ctx, id, parts); err != nil {
		t.Fatal(err)
	}
	if err := s.Import(ctx, dst, parts); err != nil {
		t.Fatal(err)
	}
	if ttl := c.PTTL(ctx, ns+string(dst)+"/session").Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("restored TTL = %v, want (0, 1h]", ttl)
	}
	if ttl := c.PTTL(ctx, ns+string(dst)+"/forever").Val(); ttl != -1 {
		t.Fatalf("restored key without expiry has TTL %v", ttl)
	}
}

// Export refuses keys Import could not restore; Purge removes every key
// of the namespace whatever its type, and nothing near it.
func TestPortableForeignKeys(t *testing.T) {
	t.Parallel()
	s, c, ns := setup(t)
	ctx := context.Background()
	id := tenant.NewID()
	if err := s.Put(ctx, id, "ok", []byte("v")); err != nil {
		t.Fatal(err)
	}
	mine := ns + string(id) + "/"
	if err := c.HSet(ctx, mine+"hash", "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	err := s.Export(ctx, id, &storetest.MemoryParts{})
	if !errors.Is(err, rediskv.ErrNotPortable) || !strings.Contains(err.Error(), `"hash"`) {
		t.Fatalf("Export with a hash: err = %v, want ErrNotPortable naming it", err)
	}
	c.Del(ctx, mine+"hash")
	c.Set(ctx, mine+"a//b", "v", 0)
	if err := s.Export(ctx, id, &storetest.MemoryParts{}); !errors.Is(err, rediskv.ErrNotPortable) {
		t.Fatalf("Export with an invalid key: err = %v, want ErrNotPortable", err)
	}
	c.HSet(ctx, mine+"hash", "f", "v")
	near := []string{ns + string(id), ns + string(id) + "x/k", "other:" + string(id) + "/k", ns + "x" + string(id) + "/k"}
	for _, k := range near {
		if err := c.Set(ctx, k, "foreign", 0).Err(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Del(context.Background(), k) })
	}
	if err := s.Purge(ctx, id); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Exists(ctx, mine+"ok", mine+"hash", mine+"a//b").Result(); err != nil || n != 0 {
		t.Fatalf("%d keys of the tenant left after Purge (%v)", n, err)
	}
	for _, k := range near {
		if v, err := c.Get(ctx, k).Result(); err != nil || v != "foreign" {
			t.Fatalf("key %q near the namespace after Purge: %q %v", k, v, err)
		}
	}
}

func TestImportRefusesBadRecords(t *testing.T) {
	t.Parallel()
	s, _, _ := setup(t)
	ctx := context.Background()
	good := `{"key":"a","value":"dg=="}` + "\n"
	for name, content := range map[string]string{
		"not JSON":      good + "not json\n",
		"unknown field": good + `{"key":"b","value":"","extra":1}` + "\n",
		"invalid key":   good + `{"key":"../b","value":""}` + "\n",
		"bad base64":    good + `{"key":"b","value":"!!"}` + "\n",
		"negative TTL":  good + `{"key":"b","value":"","ttl_ms":-5}` + "\n",
		"truncated":     good + `{"key":"b","val`,
	} {
		parts := &storetest.MemoryParts{}
		w, _ := parts.Create(rediskv.PartName)
		w.Write([]byte(content))
		w.Close()
		id := tenant.NewID()
		if err := s.Import(ctx, id, parts); err == nil || errors.Is(err, store.ErrNotEmpty) {
			t.Errorf("%s: Import err = %v, want a refusal", name, err)
		}
		if keys, err := s.List(ctx, id, ""); err != nil || len(keys) != 0 {
			t.Errorf("%s: keys after a refused Import: %q %v", name, keys, err)
		}
	}
}
