// Command k8sschema turns a Kubernetes OpenAPI v2 document (swagger.json) into the strict,
// standalone JSON schemas kubeconform reads from a local directory, so the chart checks
// validate rendered manifests without reaching the internet.
//
// For every definition that carries x-kubernetes-group-version-kind it writes
// <out>/<group or "v1">/<version>/<lower-case kind>.json, matching kubeconform's
// -schema-location template '<out>/{{ .Group }}/{{ .ResourceAPIVersion }}/{{ .ResourceKind }}.json'.
// Each file is self-contained (the definitions it references are copied into it) and
// strict: every object with declared properties gets additionalProperties: false, so an
// unknown or misspelt field fails validation. IntOrString and Quantity accept both their
// JSON forms, as the API server does. Descriptions and x-kubernetes-* extensions are
// dropped to keep the files small.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

const refPrefix = "#/definitions/"

// gvk is one entry of x-kubernetes-group-version-kind.
type gvk struct {
	Group   string `json:"group"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
}

func main() {
	in := flag.String("in", "", "OpenAPI v2 document (swagger.json) to read")
	crd := flag.Bool("crd", false, "read CustomResourceDefinition YAML files (the arguments) instead of -in")
	out := flag.String("out", "", "directory to write the schemas into")
	flag.Parse()
	if *out == "" || (*in == "") == !*crd || (*crd && flag.NArg() == 0) {
		fmt.Fprintln(os.Stderr, "usage: k8sschema -in swagger.json -out DIR | k8sschema -crd -out DIR CRD.yaml...")
		os.Exit(2)
	}
	run := func() (int, error) { return runSwagger(*in, *out) }
	if *crd {
		run = func() (int, error) { return runCRDs(flag.Args(), *out) }
	}
	n, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "k8sschema:", err)
		os.Exit(1)
	}
	fmt.Printf("k8sschema: wrote %d schemas to %s\n", n, *out)
}

func runSwagger(in, out string) (int, error) {
	raw, err := os.ReadFile(in)
	if err != nil {
		return 0, fmt.Errorf("read OpenAPI document: %w", err)
	}
	files, err := convert(raw)
	if err != nil {
		return 0, err
	}
	return write(files, out)
}

// write puts each schema at out/rel.
func write(files map[string][]byte, out string) (int, error) {
	for rel, body := range files {
		path := filepath.Join(out, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return 0, fmt.Errorf("create schema directory: %w", err)
		}
		if err := os.WriteFile(path, body, 0o644); err != nil {
			return 0, fmt.Errorf("write schema: %w", err)
		}
	}
	return len(files), nil
}

// convert maps each kind's relative schema path to its JSON schema.
func convert(raw []byte) (map[string][]byte, error) {
	var doc struct {
		Swagger     string                    `json:"swagger"`
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("parse OpenAPI document: %w", err)
	}
	if !strings.HasPrefix(doc.Swagger, "2.") || len(doc.Definitions) == 0 {
		return nil, errors.New("not an OpenAPI v2 document with definitions")
	}

	defs := make(map[string]any, len(doc.Definitions))
	for name, def := range doc.Definitions {
		defs[name] = strictify(special(name, def))
	}

	files := make(map[string][]byte)
	names := make([]string, 0, len(doc.Definitions))
	for name := range doc.Definitions {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		kinds, err := kindsOf(doc.Definitions[name])
		if err != nil {
			return nil, fmt.Errorf("definition %s: %w", name, err)
		}
		for _, k := range kinds {
			rel, body, err := kindSchema(name, k, defs)
			if err != nil {
				return nil, fmt.Errorf("definition %s: %w", name, err)
			}
			if _, dup := files[rel]; dup {
				continue // the same kind under an alias definition: first (sorted) wins
			}
			files[rel] = body
		}
	}
	if len(files) == 0 {
		return nil, errors.New("no definition carries x-kubernetes-group-version-kind")
	}
	return files, nil
}

func kindsOf(def map[string]any) ([]gvk, error) {
	ext, ok := def["x-kubernetes-group-version-kind"]
	if !ok {
		return nil, nil
	}
	b, err := json.Marshal(ext)
	if err != nil {
		return nil, fmt.Errorf("encode group-version-kind: %w", err)
	}
	var kinds []gvk
	if err := json.Unmarshal(b, &kinds); err != nil {
		return nil, fmt.Errorf("decode group-version-kind: %w", err)
	}
	return kinds, nil
}

// kindSchema builds the standalone schema of one kind: the definition itself at the root,
// apiVersion and kind pinned, and every definition it reaches copied under "definitions".
func kindSchema(name string, k gvk, defs map[string]any) (string, []byte, error) {
	rootDef, ok := defs[name].(map[string]any)
	if !ok {
		return "", nil, errors.New("definition is not an object")
	}
	root := make(map[string]any, len(rootDef)+2)
	for key, v := range rootDef {
		root[key] = v
	}
	apiVersion := k.Version
	dir := k.Version
	if k.Group != "" {
		apiVersion = k.Group + "/" + k.Version
		dir = k.Group
	}
	if props, ok := root["properties"].(map[string]any); ok {
		pinned := make(map[string]any, len(props))
		for key, v := range props {
			pinned[key] = v
		}
		if _, ok := pinned["apiVersion"]; ok {
			pinned["apiVersion"] = map[string]any{"type": "string", "enum": []any{apiVersion}}
		}
		if _, ok := pinned["kind"]; ok {
			pinned["kind"] = map[string]any{"type": "string", "enum": []any{k.Kind}}
		}
		root["properties"] = pinned
	}

	reached := map[string]any{}
	if err := collect(rootDef, defs, reached); err != nil {
		return "", nil, err
	}
	if len(reached) > 0 {
		root["definitions"] = reached
	}
	root["$schema"] = "http://json-schema.org/draft-04/schema#"
	body, err := json.Marshal(root)
	if err != nil {
		return "", nil, fmt.Errorf("encode schema: %w", err)
	}
	rel := dir + "/" + k.Version + "/" + strings.ToLower(k.Kind) + ".json"
	return rel, body, nil
}

// collect adds every definition reachable from node to reached.
func collect(node any, defs, reached map[string]any) error {
	switch n := node.(type) {
	case map[string]any:
		if ref, ok := n["$ref"].(string); ok {
			target, found := strings.CutPrefix(ref, refPrefix)
			if !found {
				return fmt.Errorf("unsupported $ref %q", ref)
			}
			if _, seen := reached[target]; !seen {
				def, ok := defs[target]
				if !ok {
					return fmt.Errorf("dangling $ref %q", ref)
				}
				reached[target] = def
				if err := collect(def, defs, reached); err != nil {
					return err
				}
			}
		}
		for _, v := range n {
			if err := collect(v, defs, reached); err != nil {
				return err
			}
		}
	case []any:
		for _, v := range n {
			if err := collect(v, defs, reached); err != nil {
				return err
			}
		}
	}
	return nil
}

// special replaces the definitions whose JSON form the OpenAPI type does not describe.
func special(name string, def map[string]any) map[string]any {
	switch name {
	case "io.k8s.apimachinery.pkg.util.intstr.IntOrString":
		return intOrString()
	case "io.k8s.apimachinery.pkg.api.resource.Quantity":
		return map[string]any{"oneOf": []any{
			map[string]any{"type": "string"},
			map[string]any{"type": "number"},
		}}
	}
	return def
}

func intOrString() map[string]any {
	return map[string]any{"oneOf": []any{
		map[string]any{"type": "string"},
		map[string]any{"type": "integer"},
	}}
}

// strictify returns a copy of a schema node with descriptions and extensions removed,
// int-or-string formats expanded and additionalProperties: false on every object that
// declares its properties.
func strictify(node any) any {
	switch n := node.(type) {
	case map[string]any:
		if n["format"] == "int-or-string" {
			return intOrString()
		}
		out := make(map[string]any, len(n)+1)
		for key, v := range n {
			if key == "description" || strings.HasPrefix(key, "x-kubernetes-") {
				continue
			}
			switch key {
			case "properties", "definitions", "patternProperties":
				// maps of name to schema: keep the names, convert the schemas
				if m, ok := v.(map[string]any); ok {
					conv := make(map[string]any, len(m))
					for name, s := range m {
						conv[name] = strictify(s)
					}
					out[key] = conv
					continue
				}
			case "enum", "required", "default", "example":
				out[key] = v
				continue
			}
			out[key] = strictify(v)
		}
		if _, hasProps := out["properties"]; hasProps && n["x-kubernetes-preserve-unknown-fields"] != true {
			if _, set := out["additionalProperties"]; !set {
				out["additionalProperties"] = false
			}
		}
		return out
	case []any:
		out := make([]any, len(n))
		for i, v := range n {
			out[i] = strictify(v)
		}
		return out
	default:
		return node
	}
}
