package main

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestVersionShowsTheDeploymentID: the id generated at the first start is the one
// GET /v1/deployment and `authpipe-proxy version` show, and it survives a restart.
func TestVersionShowsTheDeploymentID(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	key := "ap_" + strings.Repeat("d", 43)
	deployment := func() string {
		req, _ := http.NewRequest("GET", "http://"+addr+"/v1/deployment", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		var body struct {
			DeploymentID string `json:"deployment_id"`
		}
		require.Equal(t, 200, res.StatusCode)
		require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
		require.Regexp(t, `^dep_[a-z2-7]{26}$`, body.DeploymentID)
		return body.DeploymentID
	}
	version := func() string {
		cmd := exec.Command(binary, "version")
		cmd.Dir = dir
		cmd.Env = cleanEnv()
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		return string(out)
	}
	cmd, _ := startServe(t, dir, addr, "AUTHPIPE_BOOTSTRAP_API_KEY="+key)
	waitFor(t, "http://"+addr+"/readyz", 10*time.Second, 200)
	id := deployment()
	require.Contains(t, version(), "deployment: "+id, "shown while serving")
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	_, _ = cmd.Process.Wait()
	require.Contains(t, version(), "deployment: "+id, "shown while stopped")

	startServe(t, dir, addr)
	waitFor(t, "http://"+addr+"/readyz", 10*time.Second, 200)
	require.Equal(t, id, deployment(), "stable across a restart")
}
