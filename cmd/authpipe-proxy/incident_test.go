package main

import (
	"regexp"
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

// incident rotate calls refresher.Incidents through the app; a dry run records nothing, a
// run prints its incident id and can be resumed with it.
func TestIncidentRotateCommand(t *testing.T) {
	dir := t.TempDir()
	stdout, stderr, code := cli(t, dir, nil, "incident", "rotate", "--api-key", "apk_leaked", "--since", "1h", "--dry-run")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "would rotate (dry run): 0 connections, 0 revoked, 0 refreshed\n", stdout)
	stdout, stderr, code = cli(t, dir, nil, "incident", "rotate", "--all", "--output", "json")
	require.Equal(t, 0, code, stderr)
	m := regexp.MustCompile(`"incident_id":"(inc_[a-z0-9]+)"`).FindStringSubmatch(stdout)
	require.NotNil(t, m, stdout)
	stdout, stderr, code = cli(t, dir, nil, "incident", "rotate", "--incident", m[1])
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "incident: "+m[1]+"\nrotated: 0 connections, 0 revoked, 0 refreshed\n", stdout)
	_, stderr, code = cli(t, dir, nil, "incident", "rotate", "--incident", "inc_nope")
	require.NotEqual(t, 0, code)
	require.Contains(t, stderr, "not_found")
}
