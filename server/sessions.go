package server

import (
	"sync"
	"time"

	"github.com/tenantmcp/tenantmcp/tenant"
)

// sessionTable binds stateful MCP sessions to the tenant and user that
// opened them, so a session id presented with anyone else's token is
// refused (as "session not found": it reveals nothing).
type sessionTable struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]sessionOwner
}

type sessionOwner struct {
	tenant   tenant.ID
	user     string
	lastSeen time.Time
}

const (
	sessionIdle = time.Hour
	maxSessions = 100_000
)

func newSessionTable(now func() time.Time) *sessionTable {
	return &sessionTable{now: now, m: make(map[string]sessionOwner)}
}

// owns reports whether sid was opened by this tenant and user, and keeps
// it alive.
func (t *sessionTable) owns(sid string, id tenant.ID, user string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok := t.m[sid]
	now := t.now()
	if !ok || now.Sub(o.lastSeen) > sessionIdle {
		delete(t.m, sid)
		return false
	}
	if o.tenant != id || o.user != user {
		return false
	}
	o.lastSeen = now
	t.m[sid] = o
	return true
}

func (t *sessionTable) bind(sid string, id tenant.ID, user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if len(t.m) >= maxSessions {
		for k, o := range t.m {
			if now.Sub(o.lastSeen) > sessionIdle {
				delete(t.m, k)
			}
		}
		for k := range t.m { // still full: drop arbitrary entries
			if len(t.m) < maxSessions {
				break
			}
			delete(t.m, k)
		}
	}
	t.m[sid] = sessionOwner{tenant: id, user: user, lastSeen: now}
}
