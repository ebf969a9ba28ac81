package refresher_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// binary is authpipe-proxy built with the failpoints tag (TestMain).
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "authpipe-refresher-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "authpipe-proxy")
	if out, err := exec.Command("go", "build", "-tags", "failpoints", "-o", binary, "../cmd/authpipe-proxy").CombinedOutput(); err != nil {
		panic("build: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

const e2eBootstrap = "ap_refresherE2EbootstrapKEYxxxxxxxxxxxxxxxxx"

// replica is one `authpipe-proxy serve` process.
type replica struct {
	url  string
	addr string
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{}
	code int
}

type cluster struct {
	t      *testing.T
	dir    string
	dbURL  string
	public string
	as     *oauthtest.Server
	app    *httptest.Server
	reps   []*replica
	key    string // tokens:read
	db     *store.Store
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

func (cl *cluster) start(addr string, extra ...string) *replica {
	cl.t.Helper()
	r := &replica{addr: addr, url: "http://" + addr, logs: &syncBuffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(binary, "serve")
	r.cmd.Dir = cl.dir
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AUTHPIPE_") {
			env = append(env, kv)
		}
	}
	r.cmd.Env = append(env,
		"AUTHPIPE_LISTEN_ADDR="+addr,
		"AUTHPIPE_PUBLIC_URL="+cl.public,
		"AUTHPIPE_DATABASE_URL="+cl.dbURL,
		"AUTHPIPE_KEK_URI=local://"+filepath.Join(cl.dir, "kek.key"),
		"AUTHPIPE_CLIENT_SECRET_KEK_URI=local://"+filepath.Join(cl.dir, "cs-kek.key"),
		"AUTHPIPE_BOOTSTRAP_API_KEY="+e2eBootstrap,
		"AUTHPIPE_REFRESH_SCHEDULE=@every 1s",
		"AUTHPIPE_FAILPOINT_LEASE_TTL=3s",
		"AUTHPIPE_LOG_LEVEL=warn")
	r.cmd.Env = append(r.cmd.Env, extra...)
	r.cmd.Stderr = r.logs
	require.NoError(cl.t, r.cmd.Start())
	go func() {
		err := r.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.code = ee.ExitCode()
		}
		close(r.done)
	}()
	cl.t.Cleanup(func() { _ = r.cmd.Process.Kill(); <-r.done })
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(r.url + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return r
			}
		}
		select {
		case <-r.done:
			cl.t.Fatalf("replica exited at start-up (%d): %s", r.code, r.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			cl.t.Fatalf("replica not ready: %s", r.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (cl *cluster) do(base, method, path, key string, body any) (int, map[string]any) {
	cl.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("Authorization", "Bearer "+key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(cl.t, err)
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

// newCluster starts the provider and the first replica on a fresh PostgreSQL database and
// configures the provider.
func newCluster(t *testing.T) *cluster {
	cl := &cluster{t: t, dir: t.TempDir(), dbURL: storetest.URL(t, store.Postgres)}
	first := freeAddr(t)
	cl.public = "http://" + first
	cl.app = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }))
	t.Cleanup(cl.app.Close)
	cl.as = oauthtest.New(t, oauthtest.Options{AutoLogin: true, RedirectURIs: []string{cl.public + "/v1/oauth/callback"}})
	cl.reps = append(cl.reps, cl.start(first))
	code, body := cl.do(cl.public, "PUT", "/v1/providers/fosite", e2eBootstrap, map[string]any{
		"display_name": "Fosite", "auth_mode": "oauth2", "client_id": cl.as.ClientID(), "client_secret": cl.as.ClientSecret(),
		"scopes": []string{"read"}, "callback_urls": []string{cl.public + "/v1/oauth/callback"}, "return_urls": []string{cl.app.URL + "/done"},
		"authorization_url": cl.as.AuthorizationURL(), "token_url": serialTokenURL(t, cl.as), "issuer": cl.as.Issuer(),
		"token_auth_method": "client_secret_basic",
	})
	require.Equal(t, 200, code, "%v", body)
	code, body = cl.do(cl.public, "POST", "/v1/api-keys", e2eBootstrap, map[string]any{"name": "app", "scopes": []string{"tokens:read", "connections:write"}})
	require.Equal(t, 201, code, "%v", body)
	cl.key = body["key"].(string)
	db, err := store.Open(context.Background(), cl.dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	cl.db = db
	return cl
}

// connect runs the connect flow through the first replica with a cookie-keeping browser.
func (cl *cluster) connect() string {
	cl.t.Helper()
	code, body := cl.do(cl.public, "POST", "/v1/connect/sessions", cl.key, map[string]any{"provider": "fosite", "end_user_id": "u-" + fmt.Sprint(time.Now().UnixNano())})
	require.Equal(cl.t, 201, code, "%v", body)
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	res, err := oauthtest.StartConnect(browser, body["connect_url"].(string), "") // the connect page, then its form
	require.NoError(cl.t, err)
	res.Body.Close()
	id := res.Request.URL.Query().Get("connection_id")
	require.NotEmpty(cl.t, id, "flow ended at %s", res.Request.URL)
	return id
}

type tokenResp struct {
	AccessToken string    `json:"access_token"`
	ExpiresAt   time.Time `json:"expires_at"`
}

func (cl *cluster) token(base, id string, minValidity int) (int, tokenResp, string) {
	req, _ := http.NewRequest("GET", fmt.Sprintf("%s/v1/connections/%s/token?min_validity=%d", base, id, minValidity), nil)
	req.Header.Set("Authorization", "Bearer "+cl.key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, tokenResp{}, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var tr tokenResp
	_ = json.Unmarshal(b, &tr)
	return res.StatusCode, tr, string(b)
}

func (cl *cluster) count(q string, args ...any) int64 {
	var n int64
	require.NoError(cl.t, cl.db.DB().Raw(q, args...).Scan(&n).Error)
	return n
}

// Three `authpipe-proxy serve` processes on one PostgreSQL, hammered at once with a
// min_validity that forces a refresh whenever one is allowed, against a provider that
// rotates refresh tokens and revokes the whole grant when a retired one is presented:
// zero invalid_grant, zero needs_reauth, every provider call committed, every token handed
// out valid at the provider (or replaced by a newer one since).
func TestReplicasRefreshExactlyOnce(t *testing.T) {
	cl := newCluster(t)
	cl.reps = append(cl.reps, cl.start(freeAddr(t)), cl.start(freeAddr(t)))
	var conns []string
	for range 3 {
		conns = append(conns, cl.connect())
	}
	base := cl.as.TokenCalls()
	var ok, superseded, bad atomic.Int64
	var mu sync.Mutex
	var failures []string
	stop := time.Now().Add(4 * time.Second)
	var wg sync.WaitGroup
	for i := range 9 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep := cl.reps[i%3]
			for n := 0; time.Now().Before(stop); n++ {
				id := conns[(i+n)%len(conns)]
				code, tr, body := cl.token(rep.url, id, 3700) // more than the token's lifetime
				if code != 200 {
					mu.Lock()
					if len(failures) < 5 {
						failures = append(failures, fmt.Sprintf("%d %s", code, body))
					}
					mu.Unlock()
					continue
				}
				if cl.as.Active(context.Background(), tr.AccessToken) {
					ok.Add(1)
					continue
				}
				// Replaced since: the provider revoked it when another replica refreshed, whose
				// commit may still be on its way (the provider answers before the commit).
				replaced := false
				for try := 0; try < 40 && !replaced; try++ {
					var exp time.Time
					require.NoError(t, cl.db.DB().Raw(`SELECT expires_at FROM connections WHERE id = ?`, id).Scan(&exp).Error)
					if replaced = exp.After(tr.ExpiresAt); !replaced {
						time.Sleep(50 * time.Millisecond)
					}
				}
				if replaced {
					superseded.Add(1)
				} else {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	require.Empty(t, failures)
	require.Zero(t, bad.Load(), "a served token was not valid at the provider")
	calls := cl.as.TokenCalls() - base
	require.Greater(t, calls, int64(2*len(conns)), "min_validity forced refreshes")
	require.EqualValues(t, calls, cl.count(`SELECT COUNT(*) FROM audit_events WHERE type = 'token.refresh' AND outcome = 'success'`),
		"every provider call committed exactly once: no replica burnt a refresh token")
	require.Zero(t, cl.count(`SELECT COUNT(*) FROM audit_events WHERE type = 'token.refresh' AND outcome = 'failure'`))
	require.Zero(t, cl.count(`SELECT COUNT(*) FROM connections WHERE status <> 'active'`))
	for _, rep := range cl.reps {
		require.NotContains(t, rep.logs.String(), cl.as.ClientSecret())
	}
	t.Logf("%d tokens valid, %d superseded in flight, %d refreshes by 3 replicas", ok.Load(), superseded.Load(), calls)
}

// A replica killed after the provider answered but before the commit: after restart the
// connection is marked needs_reauth (the provider retired the old refresh token, which is
// the one still stored) and nothing retries it. A replica killed just after its commit:
// the committed token is served and valid, nothing is lost.
func TestCrashBeforeAndAfterCommit(t *testing.T) {
	cl := newCluster(t)
	lost := cl.connect()
	kept := cl.connect()

	crash := func(failpoint, id string) {
		rep := cl.start(freeAddr(t), "AUTHPIPE_FAILPOINT="+failpoint)
		code, _, _ := cl.token(rep.url, id, 3700)
		require.Zero(t, code, "the request died with the process")
		select {
		case <-rep.done:
		case <-time.After(10 * time.Second):
			t.Fatal("the failpoint did not kill the replica")
		}
		require.Equal(t, 3, rep.code, rep.logs.String())
	}

	crash("after_provider", lost)
	require.EqualValues(t, 1, cl.count(`SELECT COUNT(*) FROM refresh_state WHERE connection_id = ? AND lease_holder <> ''`, lost),
		"the dead replica's lease is still there")
	// Restarted (the first replica never had the failpoint): once the lease has run out the
	// stored, retired refresh token meets the provider's reuse detection.
	deadline := time.Now().Add(15 * time.Second)
	var code int
	var body string
	for time.Now().Before(deadline) {
		code, _, body = cl.token(cl.public, lost, 3700)
		if code == http.StatusConflict {
			break
		}
		require.Contains(t, []int{200, 503}, code, body)
		time.Sleep(200 * time.Millisecond)
	}
	require.Equal(t, http.StatusConflict, code, body)
	require.Contains(t, body, "needs_reauth")
	require.EqualValues(t, 1, cl.count(`SELECT COUNT(*) FROM audit_events WHERE connection_id = ? AND type = 'token.refresh' AND error_code = 'invalid_grant'`, lost))
	calls := cl.as.TokenCalls()
	time.Sleep(2500 * time.Millisecond) // two sweeps
	for range 3 {
		code, _, _ = cl.token(cl.public, lost, 3700)
		require.Equal(t, http.StatusConflict, code)
	}
	require.Equal(t, calls, cl.as.TokenCalls(), "nothing loops on a needs_reauth connection")

	crash("after_commit", kept)
	code, tr, body := cl.token(cl.public, kept, 0)
	require.Equal(t, 200, code, body)
	require.True(t, cl.as.Active(context.Background(), tr.AccessToken), "the committed token survived the crash")
	require.EqualValues(t, 1, cl.count(`SELECT COUNT(*) FROM audit_events WHERE connection_id = ? AND type = 'token.refresh' AND outcome = 'success'`, kept))
	require.Zero(t, cl.count(`SELECT COUNT(*) FROM refresh_state WHERE connection_id = ? AND lease_holder <> ''`, kept))
	code, _, body = cl.token(cl.public, kept, 3700)
	require.Equal(t, 200, code, body, "and it refreshes on from there")
	require.Equal(t, store.StatusActive, connStatus(t, cl, kept))
}

func connStatus(t *testing.T, cl *cluster, id string) string {
	var s string
	require.NoError(t, cl.db.DB().Raw(`SELECT status FROM connections WHERE id = ?`, id).Scan(&s).Error)
	return s
}

// syncBuffer is a bytes.Buffer the child's stderr copier and the test may use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
