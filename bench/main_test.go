package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDispatch(t *testing.T) {
	var out, errOut bytes.Buffer
	require.Equal(t, 2, run(context.Background(), nil, &out, &errOut), "no benchmark named")
	require.Contains(t, out.String(), "rotation")
	require.Equal(t, 2, run(context.Background(), []string{"nope"}, &out, &errOut))
	require.Contains(t, errOut.String(), `unknown benchmark "nope"`)
	require.Equal(t, 0, run(context.Background(), []string{"list"}, &out, &errOut))
}

// TestRotationBenchRuns runs the rotation benchmark at a toy size: every line is
// measured (the harness itself checks that each rotation moved every DEK).
func TestRotationBenchRuns(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"rotation", "-n", "20", "-batch", "7"}, &out, &errOut)
	require.Equal(t, 0, code, "stderr: %s", errOut.String())
	require.Contains(t, out.String(), "baseline: bare AES-256-GCM wrap")
	require.Contains(t, out.String(), "local: rotation")
	require.Contains(t, out.String(), "sqlite, CAS + audit per DEK")
	require.Regexp(t, `pkcs11 \(SoftHSM2\): rotation|SoftHSM2 skipped`, out.String())
}
