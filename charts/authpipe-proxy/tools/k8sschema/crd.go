package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// runCRDs writes the schema of every served version of each CustomResourceDefinition file.
func runCRDs(paths []string, out string) (int, error) {
	files := map[string][]byte{}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			return 0, fmt.Errorf("read CRD: %w", err)
		}
		got, err := convertCRD(raw)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", p, err)
		}
		for rel, body := range got {
			files[rel] = body
		}
	}
	return write(files, out)
}

// convertCRD maps <group>/<version>/<kind>.json to the strict schema of each version of one
// CustomResourceDefinition: its openAPIV3Schema with apiVersion and kind pinned, and
// additionalProperties: false wherever properties are declared and unknown fields are not
// preserved (x-kubernetes-preserve-unknown-fields), as the API server prunes them.
func convertCRD(raw []byte) (map[string][]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("parse CRD: %w", err)
	}
	// YAML decodes into map[string]any already; round-trip through JSON for plain types.
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode CRD: %w", err)
	}
	var crd struct {
		Kind string `json:"kind"`
		Spec struct {
			Group string `json:"group"`
			Names struct {
				Kind string `json:"kind"`
			} `json:"names"`
			Versions []struct {
				Name   string `json:"name"`
				Served bool   `json:"served"`
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(b, &crd); err != nil {
		return nil, fmt.Errorf("decode CRD: %w", err)
	}
	if crd.Kind != "CustomResourceDefinition" || crd.Spec.Group == "" || crd.Spec.Names.Kind == "" {
		return nil, errors.New("not a CustomResourceDefinition")
	}
	files := map[string][]byte{}
	for _, v := range crd.Spec.Versions {
		if !v.Served || v.Schema.OpenAPIV3Schema == nil {
			continue
		}
		root, ok := strictify(v.Schema.OpenAPIV3Schema).(map[string]any)
		if !ok {
			return nil, errors.New("schema is not an object")
		}
		props, _ := root["properties"].(map[string]any)
		if props == nil {
			props = map[string]any{}
		}
		props["apiVersion"] = map[string]any{"type": "string", "enum": []any{crd.Spec.Group + "/" + v.Name}}
		props["kind"] = map[string]any{"type": "string", "enum": []any{crd.Spec.Names.Kind}}
		root["properties"] = props
		root["$schema"] = "http://json-schema.org/draft-04/schema#"
		body, err := json.Marshal(root)
		if err != nil {
			return nil, fmt.Errorf("encode schema: %w", err)
		}
		files[crd.Spec.Group+"/"+v.Name+"/"+strings.ToLower(crd.Spec.Names.Kind)+".json"] = body
	}
	if len(files) == 0 {
		return nil, errors.New("no served version has a schema")
	}
	return files, nil
}
