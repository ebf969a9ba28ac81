package config_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/config"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md from config.Markdown()")

// TestConfigDocs fails when the committed reference differs from what Settings generates.
func TestConfigDocs(t *testing.T) {
	path := filepath.Join("..", "..", filepath.FromSlash(config.DocsPath))
	want := config.Markdown()
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
	}
	got, err := os.ReadFile(path)
	require.NoError(t, err, "%s is missing; regenerate it with: go test ./internal/config -run TestConfigDocs -update", config.DocsPath)
	require.Equal(t, want, string(got),
		"%s is out of date; regenerate it with: go test ./internal/config -run TestConfigDocs -update", config.DocsPath)
}

func TestMarkdownListsEverySetting(t *testing.T) {
	md := config.Markdown()
	for _, s := range config.Settings() {
		require.Contains(t, md, "| `"+s.Name+"` | `--"+s.Flag)
	}
	require.Contains(t, md, "go test ./internal/config -run TestConfigDocs -update")
}
