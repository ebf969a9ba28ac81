package proxy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

const openAPIPath = "../docs/openapi.yaml"

// pendingRoutes are operations documented in docs/openapi.yaml (from API.md) whose
// handlers have not landed yet. Each entry is a debt: remove it in the commit that
// registers the route. An entry that is registered, or not documented, fails the test,
// so the list can only shrink.
var pendingRoutes = []string{}

// openAPIMethods are the operations a path item of OpenAPI 3.1 can hold. A registered
// method outside these (CONNECT, from gin's Any) must be named in the path item's
// x-other-methods list.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

type openAPIDoc struct {
	root  map[string]any
	paths map[string]map[string]any
}

func loadOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	raw, err := os.ReadFile(openAPIPath)
	require.NoError(t, err)
	var root map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &root), "docs/openapi.yaml is not valid YAML")
	paths, ok := root["paths"].(map[string]any)
	require.True(t, ok, "paths must be a mapping")
	doc := openAPIDoc{root: root, paths: map[string]map[string]any{}}
	for p, item := range paths {
		m, ok := item.(map[string]any)
		require.True(t, ok, "path item %s must be a mapping", p)
		doc.paths[p] = m
	}
	return doc
}

// operations returns "METHOD /path" for every documented operation, with its object.
func (d openAPIDoc) operations() map[string]map[string]any {
	out := map[string]map[string]any{}
	for p, item := range d.paths {
		for _, m := range openAPIMethods {
			if op, ok := item[m].(map[string]any); ok {
				out[strings.ToUpper(m)+" "+p] = op
			}
		}
	}
	return out
}

var ginParam = regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)

// openAPIPathOf converts gin's ":param" and "*param" segments to "{param}".
func openAPIPathOf(ginPath string) string { return ginParam.ReplaceAllString(ginPath, "{$1}") }

func TestOpenAPIPathConversion(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/healthz", "/healthz"},
		{"/v1/connections/:id/token", "/v1/connections/{id}/token"},
		{"/v1/proxy/:connection_id/*path", "/v1/proxy/{connection_id}/{path}"},
	} {
		t.Run(tc.in, func(t *testing.T) { require.Equal(t, tc.want, openAPIPathOf(tc.in)) })
	}
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc := loadOpenAPI(t)
	v, _ := doc.root["openapi"].(string)
	require.Regexp(t, `^3\.1\.\d+$`, v, "openapi must be 3.1.x")
	info, _ := doc.root["info"].(map[string]any)
	require.NotEmpty(t, info["title"])
	require.NotEmpty(t, info["version"])
	schemes, _ := doc.root["components"].(map[string]any)["securitySchemes"].(map[string]any)
	require.Contains(t, schemes, "apiKey")

	ops := doc.operations()
	require.NotEmpty(t, ops)
	seenIDs := map[string]string{}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			responses, ok := op["responses"].(map[string]any)
			require.True(t, ok && len(responses) > 0, "every operation has responses")
			for code := range responses {
				if code == "default" {
					continue
				}
				n, err := strconv.Atoi(code)
				require.NoError(t, err, "response key %q", code)
				require.True(t, n >= 100 && n <= 599, "response key %q", code)
			}
			id, _ := op["operationId"].(string)
			require.NotEmpty(t, id)
			require.NotContains(t, seenIDs, id, "operationId %s also on %s", id, seenIDs[id])
			seenIDs[id] = name

			// Either explicitly public (security: []) or an x-required-scope that names
			// real scopes.
			if sec, ok := op["security"].([]any); ok && len(sec) == 0 {
				require.NotContains(t, op, "x-required-scope", "a public operation needs no scope")
				return
			}
			var scopes []string
			switch s := op["x-required-scope"].(type) {
			case string:
				scopes = []string{s}
			case []any:
				for _, e := range s {
					str, _ := e.(string)
					scopes = append(scopes, str)
				}
			default:
				t.Fatalf("an authenticated operation needs x-required-scope (string or list), got %T", s)
			}
			require.NotEmpty(t, scopes)
			for _, s := range scopes {
				require.True(t, s == "any" || slices.Contains(admin.AllScopes, s), "unknown scope %q", s)
			}
			if slices.Contains(scopes, "any") {
				require.Len(t, scopes, 1)
			}
			if _, has := responses["401"]; !has {
				t.Fatalf("an authenticated operation documents its 401")
			}
		})
	}

	t.Run("path parameters are declared", func(t *testing.T) {
		tmpl := regexp.MustCompile(`\{([^}]+)\}`)
		for p, item := range doc.paths {
			for _, m := range openAPIMethods {
				op, ok := item[m].(map[string]any)
				if !ok {
					continue
				}
				declared := map[string]bool{}
				for _, list := range []any{item["parameters"], op["parameters"]} {
					l, _ := list.([]any)
					for _, prm := range l {
						pm, _ := prm.(map[string]any)
						if ref, ok := pm["$ref"].(string); ok {
							pm, _ = resolveRef(doc.root, ref).(map[string]any)
						}
						if pm["in"] == "path" {
							require.Equal(t, true, pm["required"], "%s %s: path parameter %v must be required", m, p, pm["name"])
							declared[pm["name"].(string)] = true
						}
					}
				}
				for _, g := range tmpl.FindAllStringSubmatch(p, -1) {
					require.True(t, declared[g[1]], "%s %s: path parameter %s is not declared", m, p, g[1])
				}
			}
		}
	})

	t.Run("every $ref resolves", func(t *testing.T) {
		var walk func(any)
		walk = func(n any) {
			switch v := n.(type) {
			case map[string]any:
				if ref, ok := v["$ref"].(string); ok {
					require.NotNil(t, resolveRef(doc.root, ref), "unresolved $ref %s", ref)
				}
				for _, c := range v {
					walk(c)
				}
			case []any:
				for _, c := range v {
					walk(c)
				}
			}
		}
		walk(doc.root)
	})

	t.Run("every problem code the server defines is in ProblemCode", func(t *testing.T) {
		enum := resolveRef(doc.root, "#/components/schemas/ProblemCode").(map[string]any)["enum"].([]any)
		codes := problemCodesInSource(t, "../internal/problem", ".")
		require.Contains(t, codes, "kms_unavailable", "the scan finds the sentinels")
		for _, c := range codes {
			require.Contains(t, enum, c, "problem code %q is not listed in components.schemas.ProblemCode", c)
		}
		seen := map[any]bool{}
		for _, c := range enum {
			require.False(t, seen[c], "ProblemCode lists %q twice", c)
			seen[c] = true
		}
	})
}

// problemNew matches the definition of a problem code: problem.New(http.StatusX, "code", ...).
var problemNew = regexp.MustCompile(`New\(\s*http\.Status\w+,\s*"([a-z_]+)"`)

// problemCodesInSource returns the codes defined in the non-test Go files of dirs.
func problemCodesInSource(t *testing.T, dirs ...string) []string {
	t.Helper()
	var codes []string
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, err := os.ReadFile(f)
			require.NoError(t, err)
			for _, m := range problemNew.FindAllSubmatch(src, -1) {
				if !slices.Contains(codes, string(m[1])) {
					codes = append(codes, string(m[1]))
				}
			}
		}
	}
	return codes
}

// resolveRef follows a local JSON pointer ("#/a/b"), or returns nil.
func resolveRef(root map[string]any, ref string) any {
	if !strings.HasPrefix(ref, "#/") {
		return nil
	}
	var cur any = root
	for _, part := range strings.Split(ref[2:], "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// TestOpenAPICoversRoutes builds the real server (the app's own wiring) and compares the
// gin engine's routes with the document, both ways.
func TestOpenAPICoversRoutes(t *testing.T) {
	h := newHarness(t, store.SQLite, nil)
	doc := loadOpenAPI(t)
	documented := doc.operations()

	registered := map[string]bool{}
	for _, r := range h.app.Server.Routes() {
		p := openAPIPathOf(r.Path)
		if !slices.Contains(openAPIMethods, strings.ToLower(r.Method)) {
			// Not expressible in OpenAPI 3.1: the path item must name it.
			item := doc.paths[p]
			other, _ := item["x-other-methods"].([]any)
			require.Contains(t, other, r.Method, "%s %s is registered but not listed in the path item's x-other-methods", r.Method, p)
			continue
		}
		registered[r.Method+" "+p] = true
	}
	require.NotEmpty(t, registered)

	var undocumented, unregistered []string
	for op := range registered {
		if _, ok := documented[op]; !ok {
			undocumented = append(undocumented, op)
		}
	}
	for op := range documented {
		if !registered[op] && !slices.Contains(pendingRoutes, op) {
			unregistered = append(unregistered, op)
		}
	}
	sort.Strings(undocumented)
	sort.Strings(unregistered)
	require.Empty(t, undocumented, "routes registered in proxy/routes.go but missing from docs/openapi.yaml")
	require.Empty(t, unregistered, "operations in docs/openapi.yaml that the server does not register")

	for _, op := range pendingRoutes {
		require.Contains(t, documented, op, "pending route %s is not documented", op)
		require.False(t, registered[op], "%s is registered now: remove it from pendingRoutes", op)
	}
}
