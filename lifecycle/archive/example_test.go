package archive_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"strings"

	"github.com/tenantmcp/tenantmcp/lifecycle/archive"
)

func Example() {
	var file bytes.Buffer // an *os.File in real use
	w := archive.NewWriter(&file, archive.Meta{
		Tenant:   json.RawMessage(`{"id":"abcdefghijklmnopqrstuvwxyz","name":"Acme"}`),
		Strategy: "sqlite",
	}, nil)
	// A backend's Export writes its parts into its section.
	blobs := w.Section("blobs")
	for name, body := range map[string]string{"notes/q3.md": "# Q3\n"} {
		pw, _ := blobs.Create(name)
		io.WriteString(pw, body)
		pw.Close()
	}
	w.Count("blobs", "objects", 1)
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	_, sum := w.Sum()

	// Restore: verify everything, then hand each backend its section.
	a, err := archive.Open(&file, os.TempDir(), &archive.OpenOptions{SHA256: sum})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	parts := a.Section("blobs")
	for _, name := range parts.Names() {
		rc, _ := parts.Open(name)
		b, _ := io.ReadAll(rc)
		rc.Close()
		fmt.Printf("%s: %q\n", name, b)
	}
	m := a.Manifest()
	fmt.Println(m.Strategy, m.Sections[0].Counts["objects"], m.Parts[0].SHA256[:12])
	// Output:
	// notes/q3.md: "# Q3\n"
	// sqlite 1 304d74138a38
}

func ExampleOpen_corrupt() {
	var file bytes.Buffer
	w := archive.NewWriter(&file, archive.Meta{Tenant: json.RawMessage(`{"id":"x"}`), Strategy: "rls"}, nil)
	pw, _ := w.Section("blobs").Create("scans/2026-11.png")
	io.Copy(pw, io.LimitReader(rand.NewChaCha8([32]byte{}), 100_000)) // does not compress
	pw.Close()
	w.Close()

	// Lose the second half of the file, as a broken upload would.
	cut := bytes.NewReader(file.Bytes()[:file.Len()/2])
	_, err := archive.Open(cut, os.TempDir(), nil)
	fmt.Println(err)
	var pe *archive.PartError
	fmt.Println(errors.Is(err, archive.ErrCorrupt), errors.As(err, &pe) && pe.Name == "scans/2026-11.png")
	// Output:
	// archive: part blobs/scans/2026-11.png: cut short or damaged: unexpected EOF
	// true true
}

func ExampleDirStore() {
	dir, _ := os.MkdirTemp("", "archives")
	defer os.RemoveAll(dir)
	archives, err := archive.OpenDir(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer archives.Close()
	ctx := context.Background()
	archives.Put(ctx, "abcdefghijklmnopqrstuvwxyz/20261127T100000Z.tar.gz", strings.NewReader("..."))
	names, _ := archives.List(ctx, "abcdefghijklmnopqrstuvwxyz/")
	fmt.Println(names)
	// Output: [abcdefghijklmnopqrstuvwxyz/20261127T100000Z.tar.gz]
}
