package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestForwardBenchRuns runs the forwarding benchmark briefly: both sides answer 200 with
// the upstream's body (hammer fails on any other answer).
func TestForwardBenchRuns(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"forward", "-c", "2", "-rounds", "1", "-duration", "300ms", "-size", "64"}, &out, &errOut)
	require.Equal(t, 0, code, "stderr: %s", errOut.String())
	require.Contains(t, out.String(), "baseline: the upstream called directly")
	require.Contains(t, out.String(), "GET /v1/proxy/{id}/... to the same upstream")
}
