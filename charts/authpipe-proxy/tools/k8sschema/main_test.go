package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

const tinySwagger = `{
  "swagger": "2.0",
  "definitions": {
    "io.k8s.api.apps.v1.Deployment": {
      "description": "dropped",
      "type": "object",
      "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "spec": {"$ref": "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"}
      },
      "x-kubernetes-group-version-kind": [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    },
    "io.k8s.api.apps.v1.DeploymentSpec": {
      "type": "object",
      "required": ["selector"],
      "properties": {
        "replicas": {"type": "integer", "format": "int32"},
        "selector": {"type": "object", "additionalProperties": {"type": "string"}},
        "maxSurge": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"}
      }
    },
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string"},
    "io.k8s.api.core.v1.Unrelated": {"type": "object", "properties": {"a": {"type": "string"}}},
    "io.k8s.api.core.v1.Service": {
      "type": "object",
      "properties": {"kind": {"type": "string"}},
      "x-kubernetes-group-version-kind": [{"group": "", "kind": "Service", "version": "v1"}]
    }
  }
}`

func TestConvert(t *testing.T) {
	files, err := convert([]byte(tinySwagger))
	require.NoError(t, err)
	require.Len(t, files, 2)
	require.Contains(t, files, "apps/v1/deployment.json")
	require.Contains(t, files, "v1/v1/service.json", "the core group is named by its version, as kubeconform's {{ .Group }} does")

	var dep map[string]any
	require.NoError(t, json.Unmarshal(files["apps/v1/deployment.json"], &dep))
	require.Equal(t, false, dep["additionalProperties"])
	require.NotContains(t, dep, "description")
	require.NotContains(t, dep, "x-kubernetes-group-version-kind")

	props := dep["properties"].(map[string]any)
	require.Equal(t, []any{"apps/v1"}, props["apiVersion"].(map[string]any)["enum"])
	require.Equal(t, []any{"Deployment"}, props["kind"].(map[string]any)["enum"])

	defs := dep["definitions"].(map[string]any)
	require.Len(t, defs, 2, "only the reachable definitions are copied")
	spec := defs["io.k8s.api.apps.v1.DeploymentSpec"].(map[string]any)
	require.Equal(t, false, spec["additionalProperties"])
	require.Equal(t, []any{"selector"}, spec["required"])
	selector := spec["properties"].(map[string]any)["selector"].(map[string]any)
	require.Equal(t, map[string]any{"type": "string"}, selector["additionalProperties"], "maps keep their value schema")
	ios := defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"].(map[string]any)
	require.Len(t, ios["oneOf"], 2)
}

func TestConvertRejects(t *testing.T) {
	tests := []struct {
		name string
		doc  string
	}{
		{"not json", `{`},
		{"openapi v3", `{"openapi": "3.0.0", "components": {}}`},
		{"no kinds", `{"swagger": "2.0", "definitions": {"a": {"type": "object"}}}`},
		{"dangling ref", `{"swagger": "2.0", "definitions": {"a": {"type": "object",
			"properties": {"b": {"$ref": "#/definitions/missing"}},
			"x-kubernetes-group-version-kind": [{"group": "", "kind": "A", "version": "v1"}]}}}`},
		{"remote ref", `{"swagger": "2.0", "definitions": {"a": {"type": "object",
			"properties": {"b": {"$ref": "https://example.com/x.json"}},
			"x-kubernetes-group-version-kind": [{"group": "", "kind": "A", "version": "v1"}]}}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := convert([]byte(tc.doc))
			require.Error(t, err)
		})
	}
}

func TestRunWritesFiles(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "swagger.json")
	require.NoError(t, os.WriteFile(in, []byte(tinySwagger), 0o600))
	out := filepath.Join(dir, "schemas")
	n, err := runSwagger(in, out)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	_, err = os.Stat(filepath.Join(out, "apps", "v1", "deployment.json"))
	require.NoError(t, err)
}
