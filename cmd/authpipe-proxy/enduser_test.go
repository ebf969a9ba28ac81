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

	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// TestEndUserEraseAndExport: `end-user export` and `end-user erase` work for every id that
// creation accepts, however awkward in a path or on a command line.
func TestEndUserEraseAndExport(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			dir := t.TempDir()
			key := "ap_" + strings.Repeat("e", 43)
			env := []string{"AUTHPIPE_BOOTSTRAP_API_KEY=" + key, "AUTHPIPE_DATABASE_URL=" + storetest.URL(t, dialect)}
			ids := []string{"tenant/42", "-starts-with-dash", "50%off", "with space", "ünïcødé", "..", strings.Repeat("x", 256)}

			addr := freeAddr(t)
			cmd, _ := startServe(t, dir, addr, env...)
			waitFor(t, "http://"+addr+"/readyz", 20*time.Second, 200)
			conns := map[string]string{}
			for _, id := range append(ids, "bystander") {
				body, err := json.Marshal(map[string]string{"provider": "stripe", "end_user_id": id, "api_key": "sk_test_cli_enduser_0123"})
				require.NoError(t, err)
				req, _ := http.NewRequest("POST", "http://"+addr+"/v1/connections", strings.NewReader(string(body)))
				req.Header.Set("Authorization", "Bearer "+key)
				res, err := http.DefaultClient.Do(req)
				require.NoError(t, err)
				var c struct{ ID string }
				require.NoError(t, json.NewDecoder(res.Body).Decode(&c))
				res.Body.Close()
				require.Equal(t, 201, res.StatusCode, id)
				conns[id] = c.ID
			}
			require.NoError(t, cmd.Process.Signal(os.Interrupt))
			_, _ = cmd.Process.Wait()

			run := func(args ...string) (string, error) {
				c := exec.Command(binary, args...)
				c.Dir = dir
				c.Env = cleanEnv(env...)
				out, err := c.CombinedOutput()
				return string(out), err
			}
			type export struct {
				EndUserID   string `json:"end_user_id"`
				Connections []struct{ ID string }
			}
			exported := func(id string) export {
				t.Helper()
				out, err := run("end-user", "export", "--", id)
				require.NoError(t, err, out)
				var e export
				require.NoError(t, json.Unmarshal([]byte(out), &e), out)
				require.Equal(t, id, e.EndUserID)
				return e
			}
			for _, id := range ids {
				e := exported(id)
				require.Len(t, e.Connections, 1, id)
				require.Equal(t, conns[id], e.Connections[0].ID)
				out, err := run("end-user", "erase", "--", id)
				require.NoError(t, err, out)
				require.Equal(t, "erased 1 connection(s) of the end user in workspace ws_default\n", out)
				require.Empty(t, exported(id).Connections, id)
			}
			out, err := run("end-user", "export", "--workspace", "ws_default", "bystander")
			require.NoError(t, err, out)
			require.Contains(t, out, conns["bystander"], "other end users are untouched")

			out, err = run("end-user", "erase", strings.Repeat("x", 257))
			require.Error(t, err)
			require.Equal(t, 2, err.(*exec.ExitError).ExitCode(), out)
			out, err = run("end-user", "forget", "x")
			require.Error(t, err)
			require.Equal(t, 2, err.(*exec.ExitError).ExitCode(), out)
		})
	}
}
