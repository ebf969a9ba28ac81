package main

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestGracefulShutdown: on SIGTERM /readyz turns 503 at once while the listener still
// serves (the drain delay, AUTHPIPE_SHUTDOWN_DELAY), a request in flight completes, and
// the process exits 0.
func TestGracefulShutdown(t *testing.T) {
	addr := freeAddr(t)
	cmd, logs := startServe(t, t.TempDir(), addr, "AUTHPIPE_SHUTDOWN_DELAY=4s")
	waitFor(t, "http://"+addr+"/readyz", 20*time.Second, 200)

	// A request in flight: its first bytes sent, the rest after the signal.
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n"))
	require.NoError(t, err)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	// waitFor fails on a refused connection too: the 503 is seen while the listener is open.
	waitFor(t, "http://"+addr+"/readyz", 4*time.Second, http.StatusServiceUnavailable)

	_, err = conn.Write([]byte("\r\n"))
	require.NoError(t, err)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err, "the request in flight got its answer")
	res.Body.Close()
	require.Equal(t, 200, res.StatusCode)

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, "exit status 0; logs: %s", logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("serve did not exit; logs: %s", logs.String())
	}
	require.True(t, strings.Contains(logs.String(), "draining"), logs.String())
	_, err = net.DialTimeout("tcp", addr, time.Second)
	require.Error(t, err, "the listener is closed")
}
