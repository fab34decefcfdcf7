//go:build ignore

// govulncheck-filter reads `govulncheck -format json` on standard input and
// decides: it prints one line per vulnerability found (reachable from our
// code, in an imported package, or only in a required module) and exits 1
// if any reachable one is not in the allow file. Used by scripts/govulncheck:
//
//	govulncheck -format json ./... | go run scripts/govulncheck-filter.go -allow scripts/govulncheck.allow -scan .
//
// The allow file has one entry a line, "GO-YYYY-NNNN reason" (the reason
// is required); '#' starts a comment. An entry whose vulnerability is no
// longer found is reported, so the file does not outlive its reasons.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

type message struct {
	OSV     *osvEntry   `json:"osv"`
	Finding *finding    `json:"finding"`
	Config  *scanConfig `json:"config"`
}

type scanConfig struct {
	DB             string `json:"db"`
	DBLastModified string `json:"db_last_modified"`
	GoVersion      string `json:"go_version"`
	ScannerVersion string `json:"scanner_version"`
}

type osvEntry struct {
	ID      string `json:"id"`
	Summary string `json:"summary"`
}

type finding struct {
	OSV          string  `json:"osv"`
	FixedVersion string  `json:"fixed_version"`
	Trace        []frame `json:"trace"`
}

type frame struct {
	Module   string `json:"module"`
	Version  string `json:"version"`
	Package  string `json:"package"`
	Function string `json:"function"`
	Receiver string `json:"receiver"`
	Position *struct {
		Filename string `json:"filename"`
		Line     int    `json:"line"`
	} `json:"position"`
}

// level of a finding: how close to our code the vulnerable symbol is.
type level int

const (
	inModule  level = iota + 1 // a required module has it; no imported package does
	inPackage                  // an imported package has it; our code does not call it
	called                     // our code calls the vulnerable symbol
)

func (l level) String() string {
	return [...]string{inModule: "module only", inPackage: "imported, not called", called: "CALLED"}[l]
}

type vuln struct {
	id, summary   string
	lvl           level
	module, fixed string
	where         string // our code's frame closest to the vulnerable call
}

func main() {
	allowPath := flag.String("allow", "", "allow file (GO-ID reason per line)")
	scan := flag.String("scan", ".", "what was scanned (for the messages)")
	flag.Parse()
	allowed, err := readAllow(*allowPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "govulncheck-filter:", err)
		os.Exit(2)
	}
	vulns, cfg, err := read(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "govulncheck-filter: reading govulncheck's JSON:", err)
		os.Exit(2)
	}
	if cfg == nil {
		fmt.Fprintln(os.Stderr, "govulncheck-filter: no govulncheck output (did the scan run?)")
		os.Exit(2)
	}
	fmt.Printf("%s: govulncheck %s, %s, database %s (last modified %s)\n", *scan, cfg.ScannerVersion, cfg.GoVersion, cfg.DB, cfg.DBLastModified)
	failed := 0
	for _, v := range vulns {
		verdict := ""
		switch {
		case v.lvl == called && allowed[v.id] != "":
			verdict = "allowed: " + allowed[v.id]
		case v.lvl == called:
			verdict = "FAIL"
			failed++
		}
		fixed := v.fixed
		if fixed == "" {
			fixed = "no fixed version"
		} else {
			fixed = "fixed in " + fixed
		}
		fmt.Printf("  %-14s %-21s %s (%s): %s", v.id, v.lvl, v.module, fixed, v.summary)
		if v.where != "" {
			fmt.Printf("; called from %s", v.where)
		}
		if verdict != "" {
			fmt.Printf(" — %s", verdict)
		}
		fmt.Println()
	}
	found := map[string]bool{}
	for _, v := range vulns {
		found[v.id] = true
	}
	for id := range allowed {
		if !found[id] {
			fmt.Printf("  %s is in the allow file but was not found in %s: remove it once no scanned module needs it\n", id, *scan)
		}
	}
	if failed > 0 {
		fmt.Printf("%s: %d vulnerabilities reachable from our code: upgrade the module (or the Go toolchain for stdlib), or, where no fix exists, mitigate and add the id with the reason to the allow file\n", *scan, failed)
		os.Exit(1)
	}
	fmt.Printf("%s: no reachable vulnerability outside the allow file (%d found in all, %d reachable)\n", *scan, len(vulns), countCalled(vulns))
}

func countCalled(vs []vuln) int {
	n := 0
	for _, v := range vs {
		if v.lvl == called {
			n++
		}
	}
	return n
}

// read decodes the stream of JSON messages govulncheck writes.
func read(r io.Reader) ([]vuln, *scanConfig, error) {
	dec := json.NewDecoder(r)
	summaries := map[string]string{}
	byID := map[string]*vuln{}
	var cfg *scanConfig
	for {
		var m message
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		switch {
		case m.Config != nil:
			cfg = m.Config
		case m.OSV != nil:
			summaries[m.OSV.ID] = m.OSV.Summary
		case m.Finding != nil && len(m.Finding.Trace) > 0:
			f := m.Finding
			top := f.Trace[0]
			l := inModule
			switch {
			case top.Function != "":
				l = called
			case top.Package != "":
				l = inPackage
			}
			v := byID[f.OSV]
			if v == nil {
				v = &vuln{id: f.OSV, module: top.Module + "@" + top.Version, fixed: f.FixedVersion}
				byID[f.OSV] = v
			}
			if l > v.lvl {
				v.lvl = l
				if l == called {
					v.where = ourFrame(f.Trace)
				}
			}
		}
	}
	var out []vuln
	for _, v := range byID {
		v.summary = summaries[v.id]
		out = append(out, *v)
	}
	slices.SortFunc(out, func(a, b vuln) int {
		if a.lvl != b.lvl {
			return int(b.lvl - a.lvl)
		}
		return strings.Compare(a.id, b.id)
	})
	return out, cfg, nil
}

// ourFrame is the last frame of the trace (the caller in the scanned
// module), as "pkg.Func (file:line)".
func ourFrame(tr []frame) string {
	f := tr[len(tr)-1]
	name := f.Function
	if f.Receiver != "" {
		name = f.Receiver + "." + name
	}
	s := f.Package + "." + name
	if f.Position != nil {
		s += fmt.Sprintf(" (%s:%d)", f.Position.Filename, f.Position.Line)
	}
	return s
}

// readAllow reads the allow file; every entry needs a reason.
func readAllow(path string) (map[string]string, error) {
	allowed := map[string]string{}
	if path == "" {
		return allowed, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		id, reason, _ := strings.Cut(strings.TrimSpace(line), " ")
		if id == "" {
			continue
		}
		if !strings.HasPrefix(id, "GO-") || strings.TrimSpace(reason) == "" {
			return nil, fmt.Errorf("%s:%d: want \"GO-YYYY-NNNN reason\", got %q", path, n, sc.Text())
		}
		allowed[id] = strings.TrimSpace(reason)
	}
	return allowed, sc.Err()
}
