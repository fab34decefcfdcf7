package testenv

import (
	"bytes"
	"cmp"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// PostgresBinDir is where PrivatePostgres looks for initdb and pg_ctl
// (Debian's layout); TENANTMCP_TEST_PG_BIN overrides it.
const PostgresBinDir = "/usr/lib/postgresql/15/bin"

// Cluster is a PostgreSQL server of a test's own, which the test may stop
// and restart (the shared test server must never be).
type Cluster struct {
	bin, dir, data string
	port           int
}

// PrivatePostgres initialises and starts a PostgreSQL cluster for the test
// alone, listening on a free port of 127.0.0.1 with trust authentication,
// and removes it when the test ends. It runs initdb and pg_ctl as the
// postgres user (runuser), so it needs root. Without root, runuser, the
// postgres user or the binaries it skips the test saying how to run it
// (fails it when CI=true).
func PrivatePostgres(t testing.TB) *Cluster {
	t.Helper()
	bin := cmp.Or(os.Getenv("TENANTMCP_TEST_PG_BIN"), PostgresBinDir)
	missing := func(why string) {
		t.Helper()
		if inCI() {
			t.Fatalf("a private PostgreSQL is required when CI=true: %s", why)
		}
		t.Skipf("no private PostgreSQL: %s (run as root with PostgreSQL 15 installed, or set TENANTMCP_TEST_PG_BIN; CI=true makes this a failure)", why)
	}
	if os.Geteuid() != 0 {
		missing("starting a PostgreSQL of the test's own needs root (to run it as the postgres user)")
	}
	for _, name := range []string{"initdb", "pg_ctl"} {
		if _, err := os.Stat(filepath.Join(bin, name)); err != nil {
			missing(err.Error())
		}
	}
	if _, err := exec.LookPath("runuser"); err != nil {
		missing(err.Error())
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		missing(err.Error())
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	// Not t.TempDir: its parents are root's and closed to the postgres user.
	dir, err := os.MkdirTemp("", "tmcp-pg-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	c := &Cluster{bin: bin, dir: dir, data: filepath.Join(dir, "data"), port: freePort(t)}
	t.Cleanup(func() {
		c.pgctl("stop", "-m", "immediate") // may already be stopped
		os.RemoveAll(dir)
	})
	if out, err := c.asPostgres(filepath.Join(bin, "initdb"), "-D", c.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50", c.port, dir)
	if out, err := c.pgctl("start", "-o", opts, "-l", filepath.Join(dir, "log")); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		t.Fatalf("pg_ctl start: %v\n%s\n%s", err, out, log)
	}
	return c
}

// AdminDSN is the superuser DSN of the cluster's postgres database.
func (c *Cluster) AdminDSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// Addr is the cluster's host:port.
func (c *Cluster) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)) }

// Restart restarts the server with pg_ctl restart -m mode ("fast": clients
// are disconnected and transactions rolled back; "immediate": the server
// quits without a shutdown checkpoint and recovers on start), waiting until
// it accepts connections again.
func (c *Cluster) Restart(t testing.TB, mode string) {
	t.Helper()
	if out, err := c.pgctl("restart", "-m", mode, "-l", filepath.Join(c.dir, "log")); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		t.Fatalf("pg_ctl restart -m %s: %v\n%s\n%s", mode, err, out, tail(log, 2000))
	}
}

func (c *Cluster) pgctl(args ...string) ([]byte, error) {
	return c.asPostgres(filepath.Join(c.bin, "pg_ctl"), append([]string{"-D", c.data, "-w", "-t", "60"}, args...)...)
}

func (c *Cluster) asPostgres(name string, args ...string) ([]byte, error) {
	cmd := exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
	cmd.Dir = c.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// The server pg_ctl starts must not keep Wait waiting on the output
	// pipe (it writes to the log file; this is a backstop).
	cmd.WaitDelay = time.Second
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.Bytes(), err
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		<-done
		return out.Bytes(), fmt.Errorf("%s %s: no answer after 2 minutes", filepath.Base(name), strings.Join(args, " "))
	}
}

// freePort is a TCP port of 127.0.0.1 free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
