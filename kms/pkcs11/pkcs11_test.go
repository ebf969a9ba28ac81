//go:build cgo

package pkcs11

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	p11 "github.com/miekg/pkcs11"
	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/kmstest"
)

func TestConformance(t *testing.T) {
	uri := newKey(t, testToken)
	kmstest.Run(t, func(t *testing.T) kms.KEK {
		b, err := Open(testCtx(t), uri, Options{})
		require.NoError(t, err)
		return b
	})
}

func TestConformanceOneSession(t *testing.T) {
	// x-max-sessions=1: the 64 concurrent workers queue for the one session.
	uri := newKey(t, testToken, "x-max-sessions=1")
	kmstest.Run(t, func(t *testing.T) kms.KEK {
		b, err := Open(testCtx(t), uri, Options{})
		require.NoError(t, err)
		return b
	})
}

func TestWrapFormatIsIVCiphertextTag(t *testing.T) {
	needHSM(t)
	// An imported key with a known value (still sensitive and non-extractable) lets Go's
	// own AES-GCM check the wire format both ways: IV(12) ‖ ciphertext ‖ tag(16), AAD bound.
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	label := randomLabel(t)
	withSession(t, testToken, func(ctx *p11.Ctx, s p11.SessionHandle) {
		_, err := ctx.CreateObject(s, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
			p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
			p11.NewAttribute(p11.CKA_VALUE, key),
			p11.NewAttribute(p11.CKA_LABEL, label),
			p11.NewAttribute(p11.CKA_TOKEN, true),
			p11.NewAttribute(p11.CKA_PRIVATE, true),
			p11.NewAttribute(p11.CKA_SENSITIVE, true),
			p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
			p11.NewAttribute(p11.CKA_ENCRYPT, true),
			p11.NewAttribute(p11.CKA_DECRYPT, true),
		})
		require.NoError(t, err)
	})
	var logs bytes.Buffer
	var mu sync.Mutex
	b, err := Open(testCtx(t), keyURI(testToken, label), Options{
		Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	mu.Lock()
	require.Contains(t, logs.String(), "imported", "an imported key must be reported")
	mu.Unlock()

	block, err := aes.NewCipher(key)
	require.NoError(t, err)
	gcm, err := cipher.NewGCM(block)
	require.NoError(t, err)

	dek, aad := make([]byte, kms.DEKSize), []byte("ws_1|credentials")
	_, _ = rand.Read(dek)
	w, err := b.Wrap(testCtx(t), dek, aad)
	require.NoError(t, err)
	require.Len(t, w.Ciphertext, 12+kms.DEKSize+16)
	got, err := gcm.Open(nil, w.Ciphertext[:12], w.Ciphertext[12:], aad)
	require.NoError(t, err, "Go's AES-GCM cannot open the HSM's output as IV ‖ ct ‖ tag with the AAD")
	require.Equal(t, dek, got)
	_, err = gcm.Open(nil, w.Ciphertext[:12], w.Ciphertext[12:], []byte("ws_2|credentials"))
	require.Error(t, err, "the AAD was not bound")

	iv := make([]byte, 12)
	_, _ = rand.Read(iv)
	sealed := gcm.Seal(append([]byte{}, iv...), iv, dek, aad)
	got, err = b.Unwrap(testCtx(t), kms.WrappedKey{KEKID: b.ID(), Ciphertext: sealed}, aad)
	require.NoError(t, err)
	require.Equal(t, dek, got)

	_, err = b.Unwrap(testCtx(t), kms.WrappedKey{KEKID: b.ID(), Ciphertext: sealed}, []byte("ws_2|credentials"))
	t.Log("wrong AAD:", err)
	require.ErrorIs(t, err, kms.ErrDecrypt)
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestKeyNeverLeavesTheToken(t *testing.T) {
	uri := newKey(t, testToken)
	u, err := ParseURI(uri)
	require.NoError(t, err)
	withSession(t, testToken, func(ctx *p11.Ctx, s p11.SessionHandle) {
		h, err := findKey(ctx, s, u)
		require.NoError(t, err)

		_, err = ctx.GetAttributeValue(s, h, []*p11.Attribute{p11.NewAttribute(p11.CKA_VALUE, nil)})
		require.ErrorIs(t, err, p11.Error(p11.CKR_ATTRIBUTE_SENSITIVE), "CKA_VALUE was readable")

		attrs, err := ctx.GetAttributeValue(s, h, []*p11.Attribute{
			p11.NewAttribute(p11.CKA_SENSITIVE, nil),
			p11.NewAttribute(p11.CKA_EXTRACTABLE, nil),
			p11.NewAttribute(p11.CKA_ALWAYS_SENSITIVE, nil),
			p11.NewAttribute(p11.CKA_NEVER_EXTRACTABLE, nil),
			p11.NewAttribute(p11.CKA_TOKEN, nil),
			p11.NewAttribute(p11.CKA_PRIVATE, nil),
			p11.NewAttribute(p11.CKA_WRAP, nil),
			p11.NewAttribute(p11.CKA_VALUE_LEN, nil),
		})
		require.NoError(t, err)
		want := []bool{true, false, true, true, true, true, false}
		for i, w := range want {
			require.Equal(t, w, boolean(attrs[i].Value), "attribute 0x%x", attrs[i].Type)
		}
		require.EqualValues(t, 32, ulong(attrs[7].Value))

		// Nor can it be wrapped out under another key.
		wrapper, err := ctx.GenerateKey(s, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_GEN, nil)},
			[]*p11.Attribute{
				p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
				p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
				p11.NewAttribute(p11.CKA_VALUE_LEN, 32),
				p11.NewAttribute(p11.CKA_TOKEN, false),
				p11.NewAttribute(p11.CKA_WRAP, true),
			})
		require.NoError(t, err)
		_, err = ctx.WrapKey(s, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_WRAP, nil)}, wrapper, h)
		require.ErrorIs(t, err, p11.Error(p11.CKR_KEY_UNEXTRACTABLE), "the KEK could be wrapped out")
	})
}

func TestOpenErrorsAreClearAndHideThePIN(t *testing.T) {
	uri := newKey(t, testToken)
	u, err := ParseURI(uri)
	require.NoError(t, err)
	dir := t.TempDir()
	notALib := filepath.Join(dir, "not-a-library.so")
	require.NoError(t, os.WriteFile(notALib, []byte("not ELF"), 0o600))
	wrongPinFile := filepath.Join(dir, "wrong.pin")
	require.NoError(t, os.WriteFile(wrongPinFile, []byte(wrongUserPIN+"\n"), 0o600))

	with := func(f func(u *URI)) string {
		c := *u
		f(&c)
		return c.String()
	}
	tests := []struct {
		name string
		uri  string
		want []string // substrings of the error
	}{
		{name: "module missing", uri: with(func(u *URI) { u.ModulePath = "/nonexistent/libp11.so" }),
			want: []string{"module-path", "/nonexistent/libp11.so", "no such file"}},
		{name: "module not a library", uri: with(func(u *URI) { u.ModulePath = notALib }),
			want: []string{"cannot load it as a PKCS#11 library", notALib}},
		{name: "module is a directory", uri: with(func(u *URI) { u.ModulePath = dir }),
			want: []string{"is not a regular file"}},
		{name: "token label", uri: with(func(u *URI) { u.Token = "no-such-token" }),
			want: []string{`no token labelled "no-such-token"`, `"authpipe-test"`}},
		{name: "key label", uri: with(func(u *URI) { u.Object = "no-such-key" }),
			want: []string{`no secret key labelled "no-such-key" on token "authpipe-test"`}},
		{name: "key id", uri: with(func(u *URI) { u.ID = []byte{0xee} }),
			want: []string{"with id ee"}},
		// The wrong-PIN case logs in to its own token, so no other test's login is in the way.
		{name: "wrong PIN from file", uri: swapPIN(keyURI(pinToken, "any"), "pin-source="+pctEncode("file:"+wrongPinFile, isQueryChar)),
			want: []string{`login to token "authpipe-pin" refused: wrong PIN`, "CKR_PIN_INCORRECT"}},
		{name: "PIN file missing", uri: with(func(u *URI) { u.PinFile = filepath.Join(dir, "missing.pin") }),
			want: []string{"pin-source", "missing.pin"}},
		{name: "no PIN", uri: with(func(u *URI) { u.PinFile = "" }),
			want: []string{"pin-source=file:<path> (or pin-value) is required"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Open(testCtx(t), tc.uri, Options{})
			require.Nil(t, b)
			t.Log(err)
			require.ErrorIs(t, err, kms.ErrConfig)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
			require.NotContains(t, err.Error(), testUserPIN)
			require.NotContains(t, err.Error(), wrongUserPIN)
		})
	}

	t.Run("wrong pin-value", func(t *testing.T) {
		bad := swapPIN(keyURI(pinToken, "any"), "pin-value="+wrongUserPIN)
		_, err := Open(testCtx(t), bad, Options{})
		require.ErrorIs(t, err, kms.ErrConfig)
		require.ErrorContains(t, err, "wrong PIN")
		require.NotContains(t, err.Error(), wrongUserPIN)
	})

	t.Run("second login with another PIN", func(t *testing.T) {
		// The token is logged in already (by openKEK); a second URI with another PIN
		// must not ride on that login.
		openKEK(t, uri)
		bad := swapPIN(uri, "pin-value="+wrongUserPIN)
		_, err := Open(testCtx(t), bad, Options{})
		require.ErrorIs(t, err, kms.ErrConfig)
		require.ErrorContains(t, err, "PIN differs")
		require.NotContains(t, err.Error(), wrongUserPIN)
	})
}

// swapPIN replaces the test PIN file in uri with another PIN attribute.
func swapPIN(uri, attr string) string {
	return strings.Replace(uri, "pin-source="+pctEncode("file:"+hsm.pinFile, isQueryChar), attr, 1)
}

func TestOpenRefusesAnExtractableKey(t *testing.T) {
	needHSM(t)
	label := randomLabel(t)
	withSession(t, testToken, func(ctx *p11.Ctx, s p11.SessionHandle) {
		_, err := ctx.GenerateKey(s, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_GEN, nil)},
			[]*p11.Attribute{
				p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
				p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
				p11.NewAttribute(p11.CKA_VALUE_LEN, 32),
				p11.NewAttribute(p11.CKA_LABEL, label),
				p11.NewAttribute(p11.CKA_TOKEN, true),
				p11.NewAttribute(p11.CKA_PRIVATE, true),
				p11.NewAttribute(p11.CKA_SENSITIVE, false),
				p11.NewAttribute(p11.CKA_EXTRACTABLE, true),
				p11.NewAttribute(p11.CKA_ENCRYPT, true),
				p11.NewAttribute(p11.CKA_DECRYPT, true),
			})
		require.NoError(t, err)
	})
	_, err := Open(testCtx(t), keyURI(testToken, label), Options{})
	require.ErrorIs(t, err, kms.ErrConfig)
	require.ErrorContains(t, err, "CKA_SENSITIVE is false")
	require.ErrorContains(t, err, "CKA_EXTRACTABLE is true")
}

func TestGenerateKey(t *testing.T) {
	needHSM(t)
	label := randomLabel(t)
	one := keyURI(testToken, label)
	require.NoError(t, GenerateKey(testCtx(t), one))

	err := GenerateKey(testCtx(t), one)
	require.ErrorIs(t, err, kms.ErrConfig)
	require.ErrorContains(t, err, "already exists")

	// Same label, two ids: the label alone is ambiguous, label plus id is not.
	u, err := ParseURI(one)
	require.NoError(t, err)
	u.Object = randomLabel(t)
	u.ID = []byte{0x01}
	idOne := u.String()
	u.ID = []byte{0x02}
	idTwo := u.String()
	require.NoError(t, GenerateKey(testCtx(t), idOne))
	require.NoError(t, GenerateKey(testCtx(t), idTwo))
	u.ID = nil
	_, err = Open(testCtx(t), u.String(), Options{})
	require.ErrorIs(t, err, kms.ErrConfig)
	require.ErrorContains(t, err, "add id=%xx")

	a, b := openKEK(t, idOne), openKEK(t, idTwo)
	require.Equal(t, "pkcs11:"+testToken+"/"+u.Object+"/01", a.ID())
	require.NotEqual(t, a.ID(), b.ID())
	w, err := a.Wrap(testCtx(t), make([]byte, 32), nil)
	require.NoError(t, err)
	w.KEKID = b.ID()
	_, err = b.Unwrap(testCtx(t), w, nil)
	require.ErrorIs(t, err, kms.ErrDecrypt, "another key on the same token opened the wrapped DEK")

	err = GenerateKey(testCtx(t), keyURI("no-such-token", "x"))
	require.ErrorIs(t, err, kms.ErrConfig)
}

func TestTwoBackendsShareTheLogin(t *testing.T) {
	uriA, uriB := newKey(t, testToken), newKey(t, testToken)
	a, b := openKEK(t, uriA), openKEK(t, uriB)
	dek := make([]byte, 32)
	wa, err := a.Wrap(testCtx(t), dek, nil)
	require.NoError(t, err)
	require.NoError(t, b.Close()) // b's logout must not end a's login
	_, err = a.Unwrap(testCtx(t), wa, nil)
	require.NoError(t, err)
	require.NoError(t, a.Ping(testCtx(t)))
	_, err = b.Wrap(testCtx(t), dek, nil)
	require.ErrorIs(t, err, kms.ErrUnavailable, "a closed backend must refuse work")
	require.NoError(t, b.Close(), "Close is idempotent")
}

func TestSessionPoolWaitHonoursContext(t *testing.T) {
	b := openKEK(t, newKey(t, testToken, "x-max-sessions=1"))
	s, err := b.pool.get(testCtx(t))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = b.Wrap(ctx, make([]byte, 32), nil)
	require.ErrorIs(t, err, kms.ErrUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	b.pool.put(s, true)
	_, err = b.Wrap(testCtx(t), make([]byte, 32), nil)
	require.NoError(t, err)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	err = b.Ping(cancelled)
	require.ErrorIs(t, err, kms.ErrUnavailable)
	require.ErrorIs(t, err, context.Canceled)
}

func TestSessionsLostIsUnavailable(t *testing.T) {
	needHSM(t)
	uri := newKey(t, outageToken)
	b := openKEK(t, uri)
	w, err := b.Wrap(testCtx(t), make([]byte, 32), []byte("aad"))
	require.NoError(t, err)
	require.NoError(t, b.Ping(testCtx(t)))

	// What a token pulled out or an HSM restart looks like to the application: every
	// session (and with them the login) is gone.
	require.NoError(t, b.mod.ctx.CloseAllSessions(b.slot))
	for i := 0; i < 3; i++ { // the stale pooled session, then fresh ones without a login
		_, err = b.Unwrap(testCtx(t), w, []byte("aad"))
		require.ErrorIs(t, err, kms.ErrUnavailable, "attempt %d", i)
		require.False(t, errors.Is(err, kms.ErrDecrypt), "an outage must not look like a bad ciphertext")
		_, err = b.Wrap(testCtx(t), make([]byte, 32), nil)
		require.ErrorIs(t, err, kms.ErrUnavailable, "attempt %d", i)
	}

	// Ping (the readiness probe) logs in again and finds the key: the backend heals.
	require.NoError(t, b.Ping(testCtx(t)))
	got, err := b.Unwrap(testCtx(t), w, []byte("aad"))
	require.NoError(t, err)
	require.Equal(t, make([]byte, 32), got)
	_, err = b.Unwrap(testCtx(t), w, []byte("other"))
	require.ErrorIs(t, err, kms.ErrDecrypt)
}

func TestWrapRejectsBadInput(t *testing.T) {
	b := openKEK(t, newKey(t, testToken))
	_, err := b.Wrap(testCtx(t), nil, nil)
	require.Error(t, err)
	_, err = b.Wrap(testCtx(t), make([]byte, maxPlain+1), nil)
	require.Error(t, err)
	for _, n := range []int{0, 12, 28} {
		_, err = b.Unwrap(testCtx(t), kms.WrappedKey{KEKID: b.ID(), Ciphertext: make([]byte, n)}, nil)
		require.ErrorIs(t, err, kms.ErrDecrypt, "%d bytes", n)
	}
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		code        uint
		decrypt     bool // through decryptError rather than opError
		unavailable bool
		authFailed  bool
	}{
		{code: p11.CKR_DEVICE_ERROR, unavailable: true},
		{code: p11.CKR_DEVICE_REMOVED, unavailable: true},
		{code: p11.CKR_TOKEN_NOT_PRESENT, unavailable: true},
		{code: p11.CKR_SESSION_HANDLE_INVALID, unavailable: true},
		{code: p11.CKR_SESSION_CLOSED, unavailable: true},
		{code: p11.CKR_USER_NOT_LOGGED_IN, unavailable: true},
		{code: p11.CKR_ARGUMENTS_BAD},
		{code: p11.CKR_GENERAL_ERROR},
		{code: p11.CKR_GENERAL_ERROR, decrypt: true, authFailed: true},
		{code: p11.CKR_ENCRYPTED_DATA_INVALID, decrypt: true, authFailed: true},
		{code: p11.CKR_DEVICE_ERROR, decrypt: true, unavailable: true},
		{code: p11.CKR_SESSION_HANDLE_INVALID, decrypt: true, unavailable: true},
	}
	for _, tc := range tests {
		name := p11.Error(tc.code).Error()
		if tc.decrypt {
			name = "decrypt " + name
		}
		t.Run(name, func(t *testing.T) {
			err := opError("C_Op", p11.Error(tc.code))
			if tc.decrypt {
				err = decryptError(p11.Error(tc.code))
			}
			require.ErrorIs(t, err, p11.Error(tc.code), "the PKCS#11 code is kept in the chain")
			require.Equal(t, tc.unavailable, errors.Is(err, kms.ErrUnavailable))
			require.Equal(t, tc.authFailed, errors.Is(err, kms.ErrDecrypt))
		})
	}
}
