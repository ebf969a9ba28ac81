package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// workspace freeze / unfreeze call admin.FreezeWorkspace and say what the workspace is now.
func TestWorkspaceFreezeCommand(t *testing.T) {
	dir := t.TempDir()
	_, stderr, code := cli(t, dir, nil, "migrate")
	require.Equal(t, 0, code, stderr)
	stdout, stderr, code := cli(t, dir, nil, "workspace", "freeze", "ws_default")
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `^ws_default: frozen since \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n$`, stdout)
	stdout, stderr, code = cli(t, dir, nil, "workspace", "unfreeze", "ws_default")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "ws_default: not frozen\n", stdout)
	_, stderr, code = cli(t, dir, nil, "workspace", "freeze", "ws_nope")
	require.NotEqual(t, 0, code)
	require.NotEmpty(t, stderr)
}
