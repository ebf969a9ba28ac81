//go:build cgo

package pkcs11

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	p11 "github.com/miekg/pkcs11"

	"github.com/authpipe/authpipe-proxy/kms"
)

// libraries is the one deliberate package-level variable of this package. PKCS#11 state is
// process-wide, not per caller: a library may be C_Initialize'd once per process,
// C_Finalize ends every session of every user of it, and login state is shared by all
// sessions an application has on a token. Two Backends (current and previous KEK, or the
// credential and client-secret KEKs on one HSM) must therefore share one initialized
// library and one login, which only a process-wide registry can arrange.
var libraries = &registry{modules: map[string]*module{}}

type registry struct {
	mu      sync.Mutex
	modules map[string]*module // by the library's resolved path
}

// module is one loaded PKCS#11 library.
type module struct {
	path        string
	ctx         *p11.Ctx
	refs        int
	initialized bool
	owned       bool // we called C_Initialize, so we call C_Finalize
	logins      map[uint]*tokenLogin
}

// tokenLogin is the user login on one token, held by a session that stays open while any
// Backend uses the token (login state ends when an application's last session closes).
type tokenLogin struct {
	label   string
	session p11.SessionHandle
	salt    [16]byte
	pinSum  [32]byte // SHA-256(salt ‖ PIN): tells a second caller's PIN apart without keeping it
	refs    int
}

// acquire loads (once) and initializes the library at path.
func (r *registry) acquire(path string) (*module, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: pkcs11 module-path: %w", kms.ErrConfig, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: pkcs11 module-path %s is not a regular file", kms.ErrConfig, path)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("%w: pkcs11 module-path: %w", kms.ErrConfig, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.modules[real]
	if m == nil {
		ctx := p11.New(real)
		if ctx == nil {
			return nil, fmt.Errorf("%w: pkcs11 module-path %s: cannot load it as a PKCS#11 library (dlopen or C_GetFunctionList failed)",
				kms.ErrConfig, path)
		}
		// The library stays loaded for the life of the process once it has been loaded:
		// unloading and reloading libraries that link OpenSSL (SoftHSM2 does) is unsafe.
		m = &module{path: real, ctx: ctx, logins: map[uint]*tokenLogin{}}
		r.modules[real] = m
	}
	if !m.initialized {
		err := m.ctx.Initialize()
		switch {
		case err == nil:
			m.owned = true
		case isCode(err, p11.CKR_CRYPTOKI_ALREADY_INITIALIZED):
			m.owned = false // someone else in this process initialized it; they finalize it
		default:
			return nil, fmt.Errorf("%w: pkcs11 module %s: C_Initialize: %w", kms.ErrConfig, path, err)
		}
		m.initialized = true
	}
	m.refs++
	return m, nil
}

// release drops a reference; the last one finalizes the library.
func (r *registry) release(m *module) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m.refs--
	if m.refs > 0 {
		return
	}
	m.refs = 0
	if m.owned {
		_ = m.ctx.Finalize()
	}
	m.initialized, m.owned = false, false
	clear(m.logins)
}

// findToken returns the slot holding the initialized token labelled label.
func (r *registry) findToken(m *module, modulePath, label string) (uint, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	slots, err := m.ctx.GetSlotList(true)
	if err != nil {
		return 0, opError("C_GetSlotList", err)
	}
	var found []uint
	var labels []string
	for _, slot := range slots {
		info, err := m.ctx.GetTokenInfo(slot)
		if err != nil || info.Flags&p11.CKF_TOKEN_INITIALIZED == 0 {
			continue
		}
		labels = append(labels, fmt.Sprintf("%q", info.Label))
		if info.Label == label {
			found = append(found, slot)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		slices.Sort(labels)
		have := "none"
		if len(labels) > 0 {
			have = strings.Join(labels, ", ")
		}
		return 0, fmt.Errorf("%w: pkcs11: no token labelled %q in module %s (initialized tokens: %s)",
			kms.ErrConfig, label, modulePath, have)
	default:
		return 0, fmt.Errorf("%w: pkcs11: %d tokens are labelled %q in module %s; token labels must be unique",
			kms.ErrConfig, len(found), label, modulePath)
	}
}

// login logs the user in to the token in slot once per process, or checks that pin is the
// PIN the existing login used.
func (r *registry) login(m *module, slot uint, label, pin string) (*tokenLogin, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l := m.logins[slot]; l != nil {
		sum := pinSum(l.salt, pin)
		if subtle.ConstantTimeCompare(sum[:], l.pinSum[:]) != 1 {
			return nil, fmt.Errorf("%w: pkcs11: login to token %q refused: the PIN differs from the one this process is logged in with",
				kms.ErrConfig, label)
		}
		l.refs++
		return l, nil
	}
	s, err := m.ctx.OpenSession(slot, p11.CKF_SERIAL_SESSION)
	if err != nil {
		return nil, opError("C_OpenSession", err)
	}
	err = m.ctx.Login(s, p11.CKU_USER, pin)
	switch {
	case err == nil, isCode(err, p11.CKR_USER_ALREADY_LOGGED_IN):
	case isCode(err, p11.CKR_PIN_INCORRECT), isCode(err, p11.CKR_PIN_INVALID), isCode(err, p11.CKR_PIN_LEN_RANGE):
		_ = m.ctx.CloseSession(s)
		return nil, fmt.Errorf("%w: pkcs11: login to token %q refused: wrong PIN (%w)", kms.ErrConfig, label, err)
	case isCode(err, p11.CKR_PIN_LOCKED), isCode(err, p11.CKR_PIN_EXPIRED):
		_ = m.ctx.CloseSession(s)
		return nil, fmt.Errorf("%w: pkcs11: login to token %q refused: the user PIN is locked or expired (%w)", kms.ErrConfig, label, err)
	default:
		_ = m.ctx.CloseSession(s)
		return nil, opError(fmt.Sprintf("C_Login to token %q", label), err)
	}
	l := &tokenLogin{label: label, session: s, refs: 1}
	if _, err := rand.Read(l.salt[:]); err != nil {
		_ = m.ctx.CloseSession(s)
		return nil, err
	}
	l.pinSum = pinSum(l.salt, pin)
	m.logins[slot] = l
	return l, nil
}

// relogin replaces a login whose session was lost (HSM restart, token re-inserted):
// it opens a new session and logs in again with pin, which must be the PIN of the login.
func (r *registry) relogin(m *module, slot uint, l *tokenLogin, pin string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !m.initialized || m.logins[slot] != l {
		return fmt.Errorf("%w: pkcs11: token %q is no longer in use", kms.ErrUnavailable, l.label)
	}
	sum := pinSum(l.salt, pin)
	if subtle.ConstantTimeCompare(sum[:], l.pinSum[:]) != 1 {
		return fmt.Errorf("%w: pkcs11: the PIN of token %q changed; restart with the new PIN", kms.ErrConfig, l.label)
	}
	if info, err := m.ctx.GetSessionInfo(l.session); err == nil &&
		(info.State == p11.CKS_RO_USER_FUNCTIONS || info.State == p11.CKS_RW_USER_FUNCTIONS) {
		return nil // still logged in: another Backend on this token healed it
	}
	_ = m.ctx.CloseSession(l.session)
	s, err := m.ctx.OpenSession(slot, p11.CKF_SERIAL_SESSION)
	if err != nil {
		return opError("C_OpenSession", err)
	}
	if err := m.ctx.Login(s, p11.CKU_USER, pin); err != nil && !isCode(err, p11.CKR_USER_ALREADY_LOGGED_IN) {
		_ = m.ctx.CloseSession(s)
		return opError(fmt.Sprintf("C_Login to token %q", l.label), err)
	}
	l.session = s
	return nil
}

// logout drops a reference to a login; the last one logs out and closes its session.
func (r *registry) logout(m *module, slot uint, l *tokenLogin) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l.refs--
	if l.refs > 0 || m.logins[slot] != l {
		return
	}
	_ = m.ctx.Logout(l.session)
	_ = m.ctx.CloseSession(l.session)
	delete(m.logins, slot)
}

func pinSum(salt [16]byte, pin string) [32]byte {
	h := sha256.New()
	h.Write(salt[:])
	h.Write([]byte(pin))
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func isCode(err error, code uint) bool {
	var e p11.Error
	return errors.As(err, &e) && uint(e) == code
}
