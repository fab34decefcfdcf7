package config

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated parts of docs/configuration.md")

const docsPath = "../docs/configuration.md"

// generated blocks of docs/configuration.md: marker name → content.
func generatedBlocks() map[string]string {
	return map[string]string{"KEYS": keysMarkdown(), "PRESETS": presetsMarkdown()}
}

func keysMarkdown() string {
	var b strings.Builder
	keys := Keys()
	for _, s := range sectionDocs {
		fmt.Fprintf(&b, "### `[%s]`\n\n%s\n\n", s.path, s.doc)
		b.WriteString("| Key | Type | Default | Environment variable | Meaning |\n")
		b.WriteString("|---|---|---|---|---|\n")
		for _, k := range keys {
			if keyByPath[k.Name].section() != s.path {
				continue
			}
			fmt.Fprintf(&b, "| `%s` | %s | `%s` | `%s` | %s |\n",
				k.Name, k.Type, k.Default, k.Env, strings.ReplaceAll(k.Doc, "|", `\|`))
		}
		b.WriteString("\n")
	}
	return b.String()
}

func presetsMarkdown() string {
	var b strings.Builder
	b.WriteString("| Preset | Tenant id claim | Tenant name claim | User claim | Scope claims | Audience checked against | Required claims |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	code := func(s string) string {
		if s == "" {
			return "—"
		}
		return "`" + s + "`"
	}
	for _, p := range Presets() {
		tenant := code(p.TenantClaim)
		if p.TenantClaim == "" {
			tenant = "— (set `tenant_claim`)"
		}
		var scopes []string
		for _, s := range p.ScopeClaims {
			scopes = append(scopes, code(s))
		}
		var required []string
		for _, name := range slices.Sorted(maps.Keys(p.RequiredClaims)) {
			required = append(required, code(name+"="+p.RequiredClaims[name]))
		}
		if len(required) == 0 {
			required = []string{"—"}
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s | %s |\n", p.Provider, tenant, code(p.TenantNameClaim),
			code(p.UserClaim), strings.Join(scopes, ", "), code(p.AudienceClaim), strings.Join(required, ", "))
	}
	return b.String()
}

func replaceBlock(doc, name, content string) (string, bool) {
	begin := "<!-- BEGIN GENERATED " + name + " -->\n"
	end := "<!-- END GENERATED " + name + " -->"
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i < 0 || j < i {
		return doc, false
	}
	return doc[:i+len(begin)] + content + doc[j:], true
}

// TestDocsGenerated keeps the key and preset tables of
// docs/configuration.md equal to the key table. Run
// `go test ./config -run TestDocs -update` after changing a key.
func TestDocsGenerated(t *testing.T) {
	data, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	want := doc
	for name, content := range generatedBlocks() {
		var ok bool
		if want, ok = replaceBlock(want, name, content); !ok {
			t.Fatalf("docs/configuration.md lacks the GENERATED %s markers", name)
		}
	}
	if want == doc {
		return
	}
	if *update {
		if err := os.WriteFile(docsPath, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("docs/configuration.md is out of date with the key table: run go test ./config -run TestDocs -update")
}

// TestDocsMentionEveryKey checks the reference names every key and every
// environment variable.
func TestDocsMentionEveryKey(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, k := range Keys() {
		if !strings.Contains(doc, "`"+k.Name+"`") {
			t.Errorf("docs do not mention key %s", k.Name)
		}
		if !strings.Contains(doc, "`"+k.Env+"`") {
			t.Errorf("docs do not mention %s", k.Env)
		}
	}
	for _, s := range sectionDocs {
		if !strings.Contains(doc, "[`"+s.path+"`]") && !strings.Contains(doc, "`["+s.path+"]`") {
			t.Errorf("docs do not mention section [%s]", s.path)
		}
	}
	for _, iso := range Isolations {
		if !strings.Contains(doc, "`"+iso+"`") {
			t.Errorf("docs do not mention isolation %s", iso)
		}
	}
}

var tomlBlock = regexp.MustCompile("(?s)(<!-- (invalid|env: [^>]*?) -->\\n)?```toml\\n(.*?)```")

// TestDocsExamplesLoad parses every TOML example in the reference: each must
// load and validate, with the variables of a preceding <!-- env: K=V ... -->
// comment, unless marked <!-- invalid -->, when it must fail.
func TestDocsExamplesLoad(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	blocks := tomlBlock.FindAllStringSubmatch(string(data), -1)
	if len(blocks) < 8 {
		t.Fatalf("only %d toml examples found", len(blocks))
	}
	for i, m := range blocks {
		mark, src := m[2], m[3]
		var env []string
		if rest, ok := strings.CutPrefix(mark, "env: "); ok {
			env = strings.Fields(rest)
		}
		_, err := Parse([]byte(src), env)
		switch {
		case mark == "invalid":
			if err == nil {
				t.Errorf("example %d is marked invalid but loads:\n%s", i+1, src)
			}
		case err != nil:
			t.Errorf("example %d does not load: %v\n%s", i+1, err, src)
		}
	}
}
