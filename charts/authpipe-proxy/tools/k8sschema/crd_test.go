package main

import (
	"encoding/json"
	"testing"
)

const testCRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
spec:
  group: example.com
  names: {kind: Widget}
  versions:
    - name: v1
      served: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            apiVersion: {type: string}
            kind: {type: string}
            spec:
              type: object
              properties:
                size: {type: integer, description: dropped}
                extra:
                  type: object
                  x-kubernetes-preserve-unknown-fields: true
                  properties:
                    known: {type: string}
    - name: v0
      served: false
      schema:
        openAPIV3Schema: {type: object}
`

func TestConvertCRDIsStrictWherePruned(t *testing.T) {
	files, err := convertCRD([]byte(testCRD))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 {
		t.Fatalf("want only the served version, got %d files", len(files))
	}
	body, ok := files["example.com/v1/widget.json"]
	if !ok {
		t.Fatalf("no example.com/v1/widget.json in %v", files)
	}
	var s struct {
		Properties struct {
			APIVersion struct{ Enum []string } `json:"apiVersion"`
			Kind       struct{ Enum []string } `json:"kind"`
			Spec       struct {
				AdditionalProperties any `json:"additionalProperties"`
				Properties           struct {
					Size  map[string]any `json:"size"`
					Extra map[string]any `json:"extra"`
				} `json:"properties"`
			} `json:"spec"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	if got := s.Properties.APIVersion.Enum; len(got) != 1 || got[0] != "example.com/v1" {
		t.Errorf("apiVersion not pinned: %v", got)
	}
	if got := s.Properties.Kind.Enum; len(got) != 1 || got[0] != "Widget" {
		t.Errorf("kind not pinned: %v", got)
	}
	if s.Properties.Spec.AdditionalProperties != false {
		t.Errorf("spec is not strict: additionalProperties = %v", s.Properties.Spec.AdditionalProperties)
	}
	if _, set := s.Properties.Spec.Properties.Extra["additionalProperties"]; set {
		t.Error("a preserve-unknown-fields object was made strict")
	}
	if _, kept := s.Properties.Spec.Properties.Size["description"]; kept {
		t.Error("descriptions are kept")
	}
	if _, err := convertCRD([]byte("kind: ConfigMap")); err == nil {
		t.Error("a non-CRD document was accepted")
	}
}
