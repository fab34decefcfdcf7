package fsblob_test

import (
	"testing"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/fsblob"
	"github.com/tenantmcp/tenantmcp/store/storetest"
)

func TestPortable(t *testing.T) {
	t.Parallel()
	storetest.RunPortable(t, func(t *testing.T) (store.Backend, store.Portable) {
		s, err := fsblob.Open(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s, s
	})
}
