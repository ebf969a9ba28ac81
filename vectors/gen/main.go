// Command gen writes the test vectors of docs/formats.md to testdata/vectors (run from the
// repository root: go run ./vectors/gen).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/authpipe/authpipe-proxy/vectors"
)

func main() {
	dir := filepath.Join("testdata", "vectors")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	files := vectors.Files()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), files[n], 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("wrote", filepath.Join(dir, n))
	}
}
