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

// TestProvidersDoc fails when a generated section of docs/providers.md (the providers
// table, the webhook schemes table) differs from what the catalog declares (regenerate
// with -update; the text around the markers is kept).
func TestProvidersDoc(t *testing.T) {
	path := filepath.Join("..", "docs", "providers.md")
	cat, err := oauthflow.LoadCatalog()
	require.NoError(t, err)
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	doc := string(raw)
	sections := []struct{ begin, end, want string }{
		{oauthflow.ProvidersBegin, oauthflow.ProvidersEnd, oauthflow.ProvidersMarkdown(cat)},
		{oauthflow.WebhookSchemesBegin, oauthflow.WebhookSchemesEnd, oauthflow.WebhookSchemesMarkdown(cat)},
	}
	for _, s := range sections {
		i, j := strings.Index(doc, s.begin), strings.Index(doc, s.end)
		require.True(t, i >= 0 && j > i, "docs/providers.md lacks the markers %s", s.begin)
		if *update {
			doc = doc[:i] + s.want + doc[j+len(s.end):]
			require.NoError(t, os.WriteFile(path, []byte(doc), 0o644))
			j = i + len(s.want) - len(s.end)
		}
		require.Equal(t, s.want, doc[i:j+len(s.end)],
			"docs/providers.md is out of date; regenerate it with: go test ./oauthflow -run TestProvidersDoc -update")
	}
	providers, webhooks := sections[0].want, sections[1].want
	for _, p := range cat.All() {
		require.Contains(t, providers, "| ["+p.Name+"]("+p.DocsURL+") |", "every entry is a row linked to its documentation")
		if p.Webhook != nil {
			require.Contains(t, webhooks, "| ["+p.Name+"](")
		}
	}
}
