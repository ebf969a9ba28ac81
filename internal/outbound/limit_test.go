package outbound

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReadLimited(t *testing.T) {
	tests := []struct {
		size, limit int64
		ok          bool
	}{
		{0, 0, true}, {1, 0, false}, {10, 10, true}, {11, 10, false}, {1 << 20, 1 << 20, true}, {1<<20 + 1, 1 << 20, false},
	}
	for _, tc := range tests {
		t.Run(strconv.FormatInt(tc.size, 10)+"/"+strconv.FormatInt(tc.limit, 10), func(t *testing.T) {
			b, err := ReadLimited(bytes.NewReader(make([]byte, tc.size)), tc.limit)
			if tc.ok {
				require.NoError(t, err)
				require.Len(t, b, int(tc.size))
			} else {
				require.ErrorIs(t, err, ErrResponseTooLarge)
				require.Nil(t, b)
			}
		})
	}
	_, err := ReadLimited(strings.NewReader("x"), -1)
	require.Error(t, err)
}

func TestResponseCap(t *testing.T) {
	const limit = 1024
	srv := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if r.URL.Query().Get("chunked") == "1" {
			// Flush first so no Content-Length is sent.
			w.(http.Flusher).Flush()
		} else {
			w.Header().Set("Content-Length", strconv.Itoa(n))
		}
		_, _ = w.Write(bytes.Repeat([]byte("a"), n))
	})
	var events atomic.Int32
	c := newClient(t, Policy{AllowCIDRs: loopbackAllow, MaxResponseBytes: limit},
		WithMetrics(func(e Event) {
			if e.Kind == EventResponseTooLarge {
				events.Add(1)
			}
		}))
	tests := []struct {
		name    string
		n       int
		chunked bool
		ok      bool
	}{
		{"at limit", limit, false, true},
		{"at limit chunked", limit, true, true},
		{"over limit by content-length", limit + 1, false, false},
		{"over limit chunked", 4 * limit, true, false},
		{"one over chunked", limit + 1, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url := srv.URL + "/?n=" + strconv.Itoa(tc.n)
			if tc.chunked {
				url += "&chunked=1"
			}
			for _, hc := range []*http.Client{c.TokenClient(), c.ForwardClient()} {
				resp, err := get(t, hc, url)
				if err == nil {
					var body []byte
					body, err = io.ReadAll(resp.Body)
					if tc.ok {
						require.NoError(t, err)
						require.Len(t, body, tc.n)
						continue
					}
					require.LessOrEqual(t, len(body), limit)
				}
				require.False(t, tc.ok, "unexpected error %v", err)
				require.ErrorIs(t, err, ErrResponseTooLarge)
			}
		})
	}
	require.EqualValues(t, 6, events.Load())

	unlimited := newClient(t, Policy{AllowCIDRs: loopbackAllow, MaxResponseBytes: NoResponseLimit})
	resp, err := get(t, unlimited.ForwardClient(), srv.URL+"/?chunked=1&n="+strconv.Itoa(4*limit))
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Len(t, body, 4*limit)

	def := newClient(t, Policy{AllowCIDRs: loopbackAllow})
	_, err = get(t, def.TokenClient(), srv.URL+"/?n="+strconv.Itoa(DefaultMaxResponseBytes+1))
	require.ErrorIs(t, err, ErrResponseTooLarge, "1 MiB default cap")
}
