package proxy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// responseValidator checks real answers against docs/openapi.yaml: the operation the
// request matched must document the status (or a default), and the body must validate
// against the schema of its media type (JSON Schema 2020-12, as OpenAPI 3.1 uses).
type responseValidator struct {
	t        *testing.T
	root     map[string]any
	compiler *jsonschema.Compiler
	routes   []route
	checked  map[string]bool // "METHOD /template status"
	// mismatches counts bodies that failed their schema; expectMismatch turns the failure
	// off, to show the validator can fail.
	mismatches     int
	expectMismatch bool
}

type route struct {
	method, template string
	re               *regexp.Regexp
}

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

func newResponseValidator(t *testing.T) *responseValidator {
	t.Helper()
	raw, err := os.ReadFile(openAPIPath)
	require.NoError(t, err)
	var root map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &root))
	js, err := json.Marshal(root)
	require.NoError(t, err)
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	require.NoError(t, c.AddResource("mem://openapi.json", doc))
	v := &responseValidator{t: t, root: root, compiler: c, checked: map[string]bool{}}
	for p, item := range root["paths"].(map[string]any) {
		segs := strings.Split(p, "/")
		for i, s := range segs {
			switch {
			case s == "{path}" && i == len(segs)-1:
				segs[i] = ".*" // the forwarding route's rest of the path
			case pathParam.MatchString(s):
				segs[i] = "[^/]+"
			default:
				segs[i] = regexp.QuoteMeta(s)
			}
		}
		pattern := "^" + strings.Join(segs, "/") + "$"
		for m := range item.(map[string]any) {
			if contains(openAPIMethods, m) {
				v.routes = append(v.routes, route{strings.ToUpper(m), p, regexp.MustCompile(pattern)})
			}
		}
	}
	// Literal segments win over parameters (/v1/audit/verify before /v1/audit/{x}).
	sort.Slice(v.routes, func(i, j int) bool {
		return strings.Count(v.routes[i].template, "{") < strings.Count(v.routes[j].template, "{")
	})
	return v
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func pointerEscape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// check validates one answer to method path (without the query).
func (v *responseValidator) check(method, path string, r resp) {
	v.t.Helper()
	var rt *route
	for i := range v.routes {
		if v.routes[i].method == method && v.routes[i].re.MatchString(path) {
			rt = &v.routes[i]
			break
		}
	}
	require.NotNil(v.t, rt, "%s %s matches no documented operation", method, path)
	ptr := "/paths/" + pointerEscape(rt.template) + "/" + strings.ToLower(method) + "/responses"
	responses := v.root["paths"].(map[string]any)[rt.template].(map[string]any)[strings.ToLower(method)].(map[string]any)["responses"].(map[string]any)
	code := strconv.Itoa(r.Status)
	res, ok := responses[code]
	if !ok {
		res, ok = responses["default"]
		code = "default"
	}
	require.True(v.t, ok, "%s %s answered %d, which its operation does not document", method, rt.template, r.Status)
	ptr += "/" + code
	obj := res.(map[string]any)
	if ref, isRef := obj["$ref"].(string); isRef {
		ptr = strings.TrimPrefix(ref, "#")
		obj = resolveRef(v.root, ref).(map[string]any)
	}
	v.checked[fmt.Sprintf("%s %s %d", method, rt.template, r.Status)] = true
	content, _ := obj["content"].(map[string]any)
	if len(content) == 0 {
		require.Empty(v.t, strings.TrimSpace(r.Raw), "%s %s %d documents no body", method, rt.template, r.Status)
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	require.NoError(v.t, err, "%s %s %d: Content-Type %q", method, rt.template, r.Status, r.Header.Get("Content-Type"))
	if _, ok := content[mt]; !ok {
		v.t.Fatalf("%s %s %d answered %s; documented: %v", method, rt.template, r.Status, mt, keys(content))
	}
	if !strings.HasSuffix(mt, "json") {
		return
	}
	sch, err := v.compiler.Compile("mem://openapi.json#" + ptr + "/content/" + pointerEscape(mt) + "/schema")
	require.NoError(v.t, err)
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(r.Raw))
	require.NoError(v.t, err, "%s %s %d: not JSON", method, rt.template, r.Status)
	if err := sch.Validate(inst); err != nil {
		v.mismatches++
		if !v.expectMismatch {
			v.t.Errorf("%s %s %d: the body does not match docs/openapi.yaml:\n%v\nbody: %s", method, rt.template, r.Status, err, r.Raw)
		}
	}
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestRealResponsesMatchTheOpenAPIDocument drives the server through the main routes,
// successes and errors, and validates every answer against the document.
func TestRealResponsesMatchTheOpenAPIDocument(t *testing.T) {
	h := newHarness(t, "sqlite", nil)
	v := newResponseValidator(t)
	call := func(method, path, key string, body any) resp {
		t.Helper()
		r := h.do(method, path, key, body)
		p, _, _ := strings.Cut(path, "?")
		v.check(method, p, r)
		return r
	}
	admin := bootstrapKey
	writer := h.createKey("connections:write", "tokens:read", "providers:write")

	call("GET", "/healthz", "", nil)
	call("GET", "/readyz", "", nil)
	call("GET", "/v1/catalog", writer, nil)
	call("PUT", "/v1/providers/github", writer, map[string]any{"template": "github", "client_id": "Iv1.abc", "client_secret": "s3cr3t-value",
		"callback_urls": []string{"http://127.0.0.1:8080/v1/oauth/callback"}, "return_urls": []string{"http://127.0.0.1:3000/done"}})
	call("GET", "/v1/providers", writer, nil)
	call("GET", "/v1/providers/github", writer, nil)
	call("GET", "/v1/providers/nope", writer, nil)
	call("PUT", "/v1/providers/bad", writer, map[string]any{"auth_mode": "oauth2", "callback_urls": []string{"ftp://x"}})
	call("POST", "/v1/connect/sessions", writer, map[string]any{"provider": "github", "end_user_id": "user-42"})
	call("POST", "/v1/connect/sessions", writer, map[string]any{"provider": "github", "end_user_id": "user-42", "return_url": "https://evil.example/"})

	c := call("POST", "/v1/connections", writer, map[string]any{"provider": "stripe", "end_user_id": "user-42", "api_key": "sk_test_0123456789abcdef"})
	id := c.Body["id"].(string)
	call("POST", "/v1/connections", writer, map[string]any{"provider": "stripe"})
	call("GET", "/v1/connections?limit=10", writer, nil)
	call("GET", "/v1/connections/"+id, writer, nil)
	call("GET", "/v1/connections/"+id+"/token", writer, nil)
	call("GET", "/v1/connections/conn_doesnotexist/token", writer, nil)
	call("GET", "/v1/connections/"+id+"/token", "", nil)
	call("GET", "/v1/connections/"+id+"/token", "ap_"+strings.Repeat("x", 43), nil)
	call("POST", "/v1/api-keys", writer, map[string]any{"name": "x", "scopes": []string{"tokens:read"}})

	call("POST", "/v1/api-keys", admin, map[string]any{"name": "backend", "scopes": []string{"tokens:read"}})
	call("GET", "/v1/api-keys", admin, nil)
	call("POST", "/v1/workspaces", admin, map[string]any{"name": "acme"})
	call("GET", "/v1/workspaces", admin, nil)
	call("GET", "/v1/keys", admin, nil)
	call("GET", "/v1/deployment", admin, nil)
	call("PUT", "/v1/webhooks", admin, map[string]any{"url": "http://127.0.0.1:9/hooks"})
	call("GET", "/v1/end-users/user-42/export", admin, nil)

	call("DELETE", "/v1/connections/"+id, writer, nil)
	call("GET", "/v1/connections/"+id+"/token", writer, nil)
	h.app.Audit.Stop(t.Context()) // flush batched reads
	call("GET", "/v1/audit?limit=1000", admin, nil)
	call("GET", "/v1/audit/verify", admin, nil)

	require.GreaterOrEqual(t, len(v.checked), 30, "answers validated: %v", v.checked)
	require.Zero(t, v.mismatches)

	// The validator can fail: a token answer with a wrong type and a missing field.
	v.expectMismatch = true
	v.check("GET", "/v1/connections/conn_x/token", resp{Status: 200, Header: map[string][]string{"Content-Type": {"application/json"}},
		Raw: `{"connection_id":5,"credential_type":"oauth2"}`})
	require.Equal(t, 1, v.mismatches, "a wrong body was accepted")
}
