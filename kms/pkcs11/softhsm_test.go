//go:build cgo

package pkcs11

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	p11 "github.com/miekg/pkcs11"
	"github.com/stretchr/testify/require"
)

// The SoftHSM2 tokens the tests use. SoftHSM2 reads SOFTHSM2_CONF once, at C_Initialize,
// so TestMain points it at a throw-away token directory for the whole package (t.Setenv
// would forbid t.Parallel). Each test makes its own keys with random labels; the tests
// that break a login or a session get a token of their own.
const (
	testToken    = "authpipe-test"   // shared by most tests
	pinToken     = "authpipe-pin"    // wrong-PIN logins only
	outageToken  = "authpipe-outage" // sessions closed behind the backend's back
	testSOPIN    = "1234"
	testUserPIN  = "5678"
	wrongUserPIN = "W0ng-P1n-9731"
)

// softHSM is the package's SoftHSM2 set-up; it is written once in TestMain, before any
// test runs, and only read afterwards.
type softHSM struct {
	module  string
	pinFile string
	skip    string // why there is no SoftHSM2, when there is none
}

var hsm softHSM

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	module := os.Getenv("AUTHPIPE_TEST_SOFTHSM_MODULE")
	if module == "" {
		module = softhsmLib
	}
	if _, err := os.Stat(module); err != nil {
		hsm.skip = fmt.Sprintf("no SoftHSM2 module at %s (run scripts/deps/20-softhsm.sh or apt-get install softhsm2): %v", module, err)
		return m.Run()
	}
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		hsm.skip = "softhsm2-util not found (apt-get install softhsm2)"
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "authpipe-softhsm-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := setUpSoftHSM(dir, util); err != nil {
		fmt.Fprintln(os.Stderr, "SoftHSM2 set-up failed:", err)
		return 1
	}
	hsm.module, hsm.pinFile = module, filepath.Join(dir, "user.pin")
	return m.Run()
}

func setUpSoftHSM(dir, util string) error {
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		return err
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	content := "directories.tokendir = " + tokens + "\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n"
	if err := os.WriteFile(conf, []byte(content), 0o600); err != nil {
		return err
	}
	if err := os.Setenv("SOFTHSM2_CONF", conf); err != nil {
		return err
	}
	for _, label := range []string{testToken, pinToken, outageToken} {
		out, err := exec.Command(util, "--init-token", "--free", "--label", label,
			"--so-pin", testSOPIN, "--pin", testUserPIN).CombinedOutput()
		if err != nil {
			return fmt.Errorf("softhsm2-util --init-token %s: %w: %s", label, err, out)
		}
	}
	return os.WriteFile(filepath.Join(dir, "user.pin"), []byte(testUserPIN+"\n"), 0o600)
}

// needHSM fails the test on CI and skips it, loudly, elsewhere when SoftHSM2 is missing.
func needHSM(t testing.TB) {
	t.Helper()
	if hsm.skip == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI requires SoftHSM2: %s", hsm.skip)
	}
	t.Skipf("!!! SKIPPING PKCS#11 TEST: %s", hsm.skip)
}

// keyURI is the URI of a key labelled object on token, logging in with the PIN file.
func keyURI(token, object string, extra ...string) string {
	u := URI{Token: token, Object: object, ModulePath: hsm.module, PinFile: hsm.pinFile}
	s := u.String()
	for _, e := range extra {
		s += "&" + e
	}
	return s
}

// The tests of this package do not run in parallel: SoftHSM2's file object store answers
// CKR_GENERAL_ERROR now and then when one session creates a token object while others
// work on the same token (seen under load). Concurrency is still tested where it matters,
// by the conformance suite's 64 goroutines wrapping and unwrapping under one key.

// newKey generates a fresh key with a random label on token and returns its URI.
func newKey(t testing.TB, token string, extra ...string) string {
	t.Helper()
	needHSM(t)
	uri := keyURI(token, randomLabel(t), extra...)
	require.NoError(t, GenerateKey(testCtx(t), uri))
	return uri
}

func openKEK(t testing.TB, uri string) *Backend {
	t.Helper()
	b, err := Open(testCtx(t), uri, Options{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, b.Close()) })
	return b
}

func randomLabel(t testing.TB) string {
	b := make([]byte, 6)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return "kek-" + hex.EncodeToString(b)
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// withSession runs fn with a raw logged-in PKCS#11 session on token, through the same
// process-wide library handle and login the backend uses.
func withSession(t *testing.T, token string, fn func(ctx *p11.Ctx, s p11.SessionHandle)) {
	t.Helper()
	mod, err := libraries.acquire(hsm.module)
	require.NoError(t, err)
	defer libraries.release(mod)
	slot, err := libraries.findToken(mod, hsm.module, token)
	require.NoError(t, err)
	login, err := libraries.login(mod, slot, token, testUserPIN)
	require.NoError(t, err)
	defer libraries.logout(mod, slot, login)
	s, err := mod.ctx.OpenSession(slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	require.NoError(t, err)
	defer func() { _ = mod.ctx.CloseSession(s) }()
	fn(mod.ctx, s)
}
