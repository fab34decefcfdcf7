package notes_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeSnippets: every code block of the README introduced by
// <!-- snippet: FILE NAME --> is exactly the region between
// "// snippet:start NAME" and "// snippet:end" of FILE, so the README's code
// is code that compiles and runs in CI.
func TestReadmeSnippets(t *testing.T) {
	root := filepath.Join("..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile("(?s)<!-- snippet: (\\S+) (\\S+) -->\n```go\n(.*?)```")
	matches := re.FindAllStringSubmatch(string(readme), -1)
	if len(matches) < 2 {
		t.Fatalf("README has %d snippets, want at least the tool and its isolation test", len(matches))
	}
	for _, m := range matches {
		file, name, block := m[1], m[2], m[3]
		src, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Errorf("snippet %s %s: %v", file, name, err)
			continue
		}
		region, ok := snippet(string(src), name)
		if !ok {
			t.Errorf("%s has no region %q (// snippet:start %s … // snippet:end)", file, name, name)
			continue
		}
		if strings.TrimSpace(region) != strings.TrimSpace(block) {
			t.Errorf("README snippet %s %s differs from the file:\n--- README\n%s\n--- %s\n%s", file, name, block, file, region)
		}
	}
}

func snippet(src, name string) (string, bool) {
	_, rest, ok := strings.Cut(src, "// snippet:start "+name+"\n")
	if !ok {
		return "", false
	}
	region, _, ok := strings.Cut(rest, "// snippet:end")
	return region, ok
}
