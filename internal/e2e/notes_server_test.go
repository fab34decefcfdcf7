package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/tenanttest"
)

// moduleRoot is where the README's commands run from.
const moduleRoot = "../.."

// goBuild builds the command pkg (e.g. "./cmd/tenantmcp") into dir as name,
// from the module root as a user would, and returns the binary's path.
func goBuild(t *testing.T, dir, name, pkg string) string {
	t.Helper()
	bin := filepath.Join(dir, name)
	build := exec.Command("go", "build", "-o", bin, pkg)
	build.Dir = moduleRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// TestNotesServer builds examples/notes-server as a user would and runs
// its dev command: the printed tokens carry the scope the notes tools
// require (acme saves a note), tenants stay apart (globex cannot read it
// and lists none), the printed commands run as printed, and SIGINT stops
// the server with status 0.
func TestNotesServer(t *testing.T) {
	dir := t.TempDir()
	bin := goBuild(t, dir, "notes-server", "./examples/notes-server")
	addr, data := freeAddr(t), filepath.Join(dir, "data")
	dev := startProcess(t, exec.Command(bin, "dev", "--addr", addr, "--data", data))
	out, url := dev.stdout.String(), "http://"+addr+"/mcp"
	toks := devTokens(t, out)

	acme := tenanttest.Dial(t, url, toks["acme"], "")
	globex := tenanttest.Dial(t, url, toks["globex"], "")
	if res := acme.Call(t, "save_note", map[string]any{"key": "plan", "text": "acme secret"}); res.IsError {
		t.Fatalf("acme save_note: %s", res.Text)
	}
	res, err := globex.CallErr(context.Background(), "get_note", map[string]any{"key": "plan"})
	if err == nil && (!res.IsError || strings.Contains(res.Text, "acme secret")) {
		t.Fatalf("globex reads acme's note: %+v", res)
	}
	if res := globex.Call(t, "list_notes", nil); res.IsError || strings.Contains(res.Text, "plan") || !strings.Contains(res.Text, `"keys":[]`) {
		t.Fatalf("globex list_notes: %+v", res)
	}

	// The binary is not on PATH: the printed commands name it by its path,
	// and run as printed.
	line := printed(t, out, "More tokens:")
	if want := bin + " token --data " + data + " --tenant globex --user carol"; line != want {
		t.Fatalf("dev prints %q, want %q", line, want)
	}
	fields := strings.Fields(line)
	tok, err := exec.Command(fields[0], fields[1:]...).Output()
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	carol := tenanttest.Dial(t, url, strings.TrimSpace(string(tok)), "")
	if res := carol.Call(t, "save_note", map[string]any{"key": "carol", "text": "globex only"}); res.IsError {
		t.Fatalf("save_note with the token of %q: %s", line, res.Text)
	}

	t.Run("printed inspector command", func(t *testing.T) {
		inspector(t) // installed in tools/inspector, where npx finds the pinned release offline
		m := regexp.MustCompile(`(?m)^  call save_note:\n    (npx .*)$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("dev prints no save_note call:\n%s", out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		sh := exec.CommandContext(ctx, "sh", "-c", m[1])
		sh.Dir = filepath.Join(moduleRoot, "tools", "inspector")
		sh.Env = append(os.Environ(), "HOME="+t.TempDir(), "NO_COLOR=1", "npm_config_update_notifier=false")
		got, err := sh.CombinedOutput()
		if err != nil || !strings.Contains(string(got), "saved for Acme Corporation") {
			t.Fatalf("%s: %v\n%s", m[1], err, got)
		}
	})

	if code := dev.interrupt(t); code != 0 {
		t.Fatalf("notes-server dev exited %d on SIGINT:\n%s", code, dev.stderr)
	}
}

// TestNotesServerGoRun: started with go run, dev prints commands that use
// go run too, and they run as printed from the module root (where the
// README's "go run ./examples/notes-server dev" runs).
func TestNotesServerGoRun(t *testing.T) {
	addr, data := freeAddr(t), t.TempDir()
	cmd := exec.Command("go", "run", "./examples/notes-server", "dev", "--addr", addr, "--data", data)
	cmd.Dir = moduleRoot
	dev := startProcess(t, cmd)
	line := printed(t, dev.stdout.String(), "More tokens:")
	if want := "go run ./examples/notes-server token --data " + data + " --tenant globex --user carol"; line != want {
		t.Fatalf("dev prints %q, want %q", line, want)
	}
	fields := strings.Fields(line)
	token := exec.Command(fields[0], fields[1:]...)
	token.Dir = moduleRoot
	tok, err := token.Output()
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	c := tenanttest.Dial(t, "http://"+addr+"/mcp", strings.TrimSpace(string(tok)), "")
	if res := c.Call(t, "save_note", map[string]any{"key": "k", "text": "v"}); res.IsError {
		t.Fatalf("save_note: %s", res.Text)
	}
	// go run itself exits 1 when interrupted, whatever its program does;
	// notes-server reports any error of its own on stderr.
	dev.interrupt(t)
	if strings.Contains(dev.stderr.String(), "notes-server: ") {
		t.Fatalf("go run ./examples/notes-server dev failed on SIGINT:\n%s", dev.stderr)
	}
}

// process is a command started by startProcess.
type process struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
}

// startProcess starts cmd in a process group of its own and waits until
// it prints "Stop with Ctrl-C".
func startProcess(t *testing.T, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	})
	deadline := time.After(2 * time.Minute)
	for !strings.Contains(p.stdout.String(), "Stop with Ctrl-C") {
		select {
		case <-p.done:
			t.Fatalf("%v exited before ready:\n%s\n%s", cmd.Args, p.stdout, p.stderr)
		case <-deadline:
			t.Fatalf("%v not ready:\n%s\n%s", cmd.Args, p.stdout, p.stderr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return p
}

// interrupt sends SIGINT to the process group, as Ctrl-C in a terminal
// does, and returns the exit status.
func (p *process) interrupt(t *testing.T) int {
	t.Helper()
	if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(30 * time.Second):
		t.Fatalf("%v did not stop within 30s of SIGINT", p.cmd.Args)
		return -1
	}
}

// syncBuffer collects output written while the test reads it.
type syncBuffer = testenv.SyncBuffer

var tokenRE = regexp.MustCompile(`(?m)^Tenant "(\w+)".*\n  token: (\S+)$`)

// devTokens extracts the token dev printed for each demo tenant.
func devTokens(t *testing.T, out string) map[string]string {
	t.Helper()
	toks := map[string]string{}
	for _, m := range tokenRE.FindAllStringSubmatch(out, -1) {
		toks[m[1]] = m[2]
	}
	if toks["acme"] == "" || toks["globex"] == "" {
		t.Fatalf("dev printed no tokens for acme and globex:\n%s", out)
	}
	return toks
}

// printed returns the command dev printed after label.
func printed(t *testing.T, out, label string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, label); ok {
			return strings.TrimSpace(rest)
		}
	}
	t.Fatalf("dev printed no %q line:\n%s", label, out)
	return ""
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
