package oauthflow_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/oauthflow"
)

var update = flag.Bool("update", false, "rewrite the generated sections of docs/providers.md from the catalog")

// TestProvidersDoc fails when the webhook schemes table of docs/providers.md differs from
// what the catalog declares (regenerate with -update; the text around the markers is kept).
func TestProvidersDoc(t *testing.T) {
	path := filepath.Join("..", "docs", "providers.md")
	cat, err := oauthflow.LoadCatalog()
	require.NoError(t, err)
	want := oauthflow.WebhookSchemesMarkdown(cat)
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	doc := string(raw)
	i, j := strings.Index(doc, oauthflow.WebhookSchemesBegin), strings.Index(doc, oauthflow.WebhookSchemesEnd)
	require.True(t, i >= 0 && j > i, "docs/providers.md lacks the webhook schemes markers")
	if *update {
		doc = doc[:i] + want + doc[j+len(oauthflow.WebhookSchemesEnd):]
		require.NoError(t, os.WriteFile(path, []byte(doc), 0o644))
	}
	require.Equal(t, want, doc[i:j+len(oauthflow.WebhookSchemesEnd)],
		"docs/providers.md is out of date; regenerate it with: go test ./oauthflow -run TestProvidersDoc -update")
	for _, p := range cat.All() {
		if p.Webhook != nil {
			require.Contains(t, want, "| ["+p.Name+"](")
		}
	}
}
