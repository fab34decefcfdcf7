package console

import (
	"fmt"
	"testing"
	"time"
)

func TestSessionTableBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	tab := newSessions(3, 2, clock)
	add := func(id string, admin bool, age, ttl time.Duration) {
		tab.add(&session{id: id, admin: admin, created: now.Add(-age), expires: now.Add(-age + ttl)})
	}
	add("old-admin", true, 3*time.Hour, 8*time.Hour)
	add("expired", true, 9*time.Hour, 8*time.Hour)
	add("no-access", false, time.Minute, 8*time.Hour)
	add("new", true, 0, 8*time.Hour) // full: the expired one goes
	if tab.get("expired") != nil || tab.get("old-admin") == nil || tab.get("no-access") == nil {
		t.Fatal("the expired session should have gone first")
	}
	add("newer", true, 0, 8*time.Hour) // full: the one without admin access goes
	if tab.get("no-access") != nil || tab.get("old-admin") == nil {
		t.Fatal("the session without admin access should have gone next")
	}
	add("newest", true, 0, 8*time.Hour) // full: the oldest goes
	if tab.get("old-admin") != nil || tab.get("new") == nil || tab.get("newest") == nil {
		t.Fatal("the oldest session should have gone")
	}
	if n := tab.len(); n != 3 {
		t.Fatalf("%d sessions, want 3", n)
	}

	// Sign-ins in progress: bounded, used once, expiring.
	for i := range 3 {
		tab.startSignIn(&signInAttempt{state: fmt.Sprint("s", i), created: now.Add(time.Duration(i) * time.Second)})
	}
	if tab.finishSignIn("s0") != nil {
		t.Error("the oldest sign-in should have been dropped")
	}
	if tab.finishSignIn("s2") == nil || tab.finishSignIn("s2") != nil {
		t.Error("a sign-in is finished once")
	}
	now = now.Add(SignInTimeout + 2*time.Second)
	if tab.finishSignIn("s1") != nil {
		t.Error("an expired sign-in was accepted")
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"/console/audit?tenant=x": "/console/audit?tenant=x",
		"//evil.example/":         "/console/tenants",
		"https://evil.example/":   "/console/tenants",
		"/mcp":                    "/console/tenants",
		"/console/\\evil":         "/console/tenants",
		"":                        "/console/tenants",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
