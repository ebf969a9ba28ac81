//go:build cgo

package pkcs11

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	p11 "github.com/miekg/pkcs11"

	"github.com/authpipe/authpipe-proxy/kms"
)

// AES-GCM parameters (NIST SP 800-38D): 96-bit IV, 128-bit tag, 256-bit key.
const (
	ivSize   = 12
	tagSize  = 16
	keySize  = 32
	maxPlain = 1024 // a DEK is kms.DEKSize bytes; refuse to be used as a bulk cipher
)

// Backend is a KEK held in a PKCS#11 token. It is safe for concurrent use.
type Backend struct {
	id    string
	uri   *URI
	mod   *module
	slot  uint
	login *tokenLogin
	key   atomic.Uint64 // the key's p11.ObjectHandle; Ping may find it again after an outage
	pool  *sessionPool
	once  sync.Once
	heal  sync.Mutex // one recovery at a time
}

var _ kms.KEK = (*Backend)(nil)

// Open loads the module, finds the token by its label, logs in (once per token per
// process), finds the key by its label (and id) and checks that it is a sensitive,
// non-extractable AES-256 key usable for CKM_AES_GCM. Every configuration problem is a
// kms.ErrConfig that names what is wrong; no error contains the PIN.
func Open(ctx context.Context, uri string, opts Options) (*Backend, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, err
	}
	return open(ctx, u, opts)
}

func open(ctx context.Context, u *URI, opts Options) (_ *Backend, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log := opts.logger()
	pin, err := u.PIN()
	if err != nil {
		return nil, err
	}
	if u.PinFile != "" {
		if st, err := os.Stat(u.PinFile); err == nil && st.Mode().Perm()&0o007 != 0 {
			log.Warn("pkcs11: the PIN file is readable by others; chmod o-rwx it", "path", u.PinFile)
		}
	}
	mod, err := libraries.acquire(u.ModulePath)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			libraries.release(mod)
		}
	}()
	slot, err := libraries.findToken(mod, u.ModulePath, u.Token)
	if err != nil {
		return nil, err
	}
	if err := checkMechanism(mod.ctx, slot, u.Token); err != nil {
		return nil, err
	}
	login, err := libraries.login(mod, slot, u.Token, pin)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			libraries.logout(mod, slot, login)
		}
	}()
	b := &Backend{id: u.KEKID(), uri: u, mod: mod, slot: slot, login: login,
		pool: newSessionPool(mod.ctx, slot, u.maxSessions())}
	s, err := b.pool.get(ctx)
	if err != nil {
		return nil, err
	}
	key, err := findKey(mod.ctx, s, u)
	if err == nil {
		err = checkKey(mod.ctx, s, key, u, log)
	}
	b.key.Store(uint64(key))
	b.pool.put(s, err == nil)
	if err != nil {
		b.pool.close()
		return nil, err
	}
	return b, nil
}

// ID implements kms.KEK: "pkcs11:<token label>/<key label>[/<hex CKA_ID>]".
func (b *Backend) ID() string { return b.id }

// Wrap implements kms.KEK: IV ‖ CKM_AES_GCM(dek, aad) with a 128-bit tag.
func (b *Backend) Wrap(ctx context.Context, dek, aad []byte) (kms.WrappedKey, error) {
	if len(dek) == 0 || len(dek) > maxPlain {
		return kms.WrappedKey{}, fmt.Errorf("pkcs11: wrap: a data key of %d bytes (want 1 to %d)", len(dek), maxPlain)
	}
	iv := make([]byte, ivSize)
	if _, err := rand.Read(iv); err != nil {
		return kms.WrappedKey{}, err
	}
	s, err := b.pool.get(ctx)
	if err != nil {
		return kms.WrappedKey{}, err
	}
	out, err := b.encrypt(s, iv, dek, aad)
	b.pool.put(s, err == nil)
	if err != nil {
		return kms.WrappedKey{}, err
	}
	return kms.WrappedKey{KEKID: b.id, Ciphertext: out}, nil
}

func (b *Backend) encrypt(s p11.SessionHandle, iv, dek, aad []byte) ([]byte, error) {
	params := p11.NewGCMParams(iv, aad, tagSize*8)
	defer params.Free()
	mech := []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_GCM, params)}
	if err := b.mod.ctx.EncryptInit(s, mech, b.keyHandle()); err != nil {
		return nil, opError("C_EncryptInit", err)
	}
	ct, err := b.mod.ctx.Encrypt(s, dek)
	if err != nil {
		return nil, opError("C_Encrypt", err)
	}
	// Some HSMs write their own IV into the parameters; store the one actually used.
	used := params.IV()
	if len(used) != ivSize || len(ct) != len(dek)+tagSize {
		return nil, fmt.Errorf("pkcs11 C_Encrypt: unexpected CKM_AES_GCM output (IV %d bytes, ciphertext %d bytes)", len(used), len(ct))
	}
	out := make([]byte, 0, ivSize+len(ct))
	return append(append(out, used...), ct...), nil
}

// Unwrap implements kms.KEK. A tag that does not verify is kms.ErrDecrypt; the session
// stays usable, since C_Decrypt ends the operation on every failure.
func (b *Backend) Unwrap(ctx context.Context, w kms.WrappedKey, aad []byte) ([]byte, error) {
	if w.KEKID != b.id {
		return nil, fmt.Errorf("%w: %q (this key is %q)", kms.ErrUnknownKey, w.KEKID, b.id)
	}
	if len(w.Ciphertext) <= ivSize+tagSize || len(w.Ciphertext) > ivSize+maxPlain+tagSize {
		return nil, fmt.Errorf("%w: pkcs11: wrapped key of %d bytes", kms.ErrDecrypt, len(w.Ciphertext))
	}
	s, err := b.pool.get(ctx)
	if err != nil {
		return nil, err
	}
	dek, err := b.decrypt(s, w.Ciphertext[:ivSize], w.Ciphertext[ivSize:], aad)
	b.pool.put(s, err == nil || errors.Is(err, kms.ErrDecrypt))
	return dek, err
}

func (b *Backend) decrypt(s p11.SessionHandle, iv, ct, aad []byte) ([]byte, error) {
	params := p11.NewGCMParams(iv, aad, tagSize*8)
	defer params.Free()
	mech := []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_GCM, params)}
	if err := b.mod.ctx.DecryptInit(s, mech, b.keyHandle()); err != nil {
		return nil, opError("C_DecryptInit", err)
	}
	dek, err := b.mod.ctx.Decrypt(s, ct)
	if err != nil {
		return nil, decryptError(err)
	}
	if len(dek) != len(ct)-tagSize {
		clear(dek)
		return nil, fmt.Errorf("%w: pkcs11 C_Decrypt returned %d bytes for %d", kms.ErrDecrypt, len(dek), len(ct))
	}
	return dek, nil
}

func (b *Backend) keyHandle() p11.ObjectHandle { return p11.ObjectHandle(b.key.Load()) }

// Ping implements kms.KEK: it borrows a session, checks that the token still has the
// user logged in, and finds the key again. When that fails with kms.ErrUnavailable (the
// sessions and the login were lost: HSM restart, token re-inserted in the same slot), it
// logs in again, drops the stale idle sessions and finds the key again; it reports
// success only if the key is usable afterwards. Readiness probes call Ping, so a
// backend heals itself without a restart; until then Wrap and Unwrap fail closed.
func (b *Backend) Ping(ctx context.Context) error {
	err := b.check(ctx)
	if err == nil || !errors.Is(err, kms.ErrUnavailable) || ctx.Err() != nil || b.pool.closed() {
		return err
	}
	if rerr := b.recover(); rerr != nil {
		return fmt.Errorf("%w (recovery failed: %w)", err, rerr)
	}
	return b.check(ctx)
}

func (b *Backend) check(ctx context.Context) error {
	s, err := b.pool.get(ctx)
	if err != nil {
		return err
	}
	err = b.ping(s)
	b.pool.put(s, err == nil)
	return err
}

func (b *Backend) recover() error {
	b.heal.Lock()
	defer b.heal.Unlock()
	pin, err := b.uri.PIN()
	if err != nil {
		return err
	}
	if err := libraries.relogin(b.mod, b.slot, b.login, pin); err != nil {
		return err
	}
	b.pool.dropIdle()
	s, err := b.pool.get(context.Background())
	if err != nil {
		return err
	}
	key, err := findKey(b.mod.ctx, s, b.uri)
	b.pool.put(s, err == nil)
	if err != nil {
		return err
	}
	b.key.Store(uint64(key))
	return nil
}

func (b *Backend) ping(s p11.SessionHandle) error {
	info, err := b.mod.ctx.GetSessionInfo(s)
	if err != nil {
		return opError("C_GetSessionInfo", err)
	}
	if info.State != p11.CKS_RO_USER_FUNCTIONS && info.State != p11.CKS_RW_USER_FUNCTIONS {
		return fmt.Errorf("%w: pkcs11: token %q: the user is no longer logged in", kms.ErrUnavailable, b.uri.Token)
	}
	h, err := findKey(b.mod.ctx, s, b.uri)
	if err != nil {
		return fmt.Errorf("%w: %w", kms.ErrUnavailable, err)
	}
	if h != b.keyHandle() {
		return fmt.Errorf("%w: pkcs11: key %q on token %q changed handle", kms.ErrUnavailable, b.uri.Object, b.uri.Token)
	}
	return nil
}

// Close implements kms.KEK: it waits for running operations, closes the sessions, and
// drops this Backend's share of the login and the library.
func (b *Backend) Close() error {
	b.once.Do(func() {
		b.pool.close()
		libraries.logout(b.mod, b.slot, b.login)
		libraries.release(b.mod)
	})
	return nil
}

// keyTemplate is the search template for the key the URI names.
func keyTemplate(u *URI) []*p11.Attribute {
	t := []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
		p11.NewAttribute(p11.CKA_LABEL, u.Object),
	}
	if len(u.ID) > 0 {
		t = append(t, p11.NewAttribute(p11.CKA_ID, u.ID))
	}
	return t
}

// findKey returns the handle of the one secret key the URI names.
func findKey(ctx *p11.Ctx, s p11.SessionHandle, u *URI) (p11.ObjectHandle, error) {
	hs, err := findObjects(ctx, s, keyTemplate(u))
	if err != nil {
		return 0, err
	}
	switch len(hs) {
	case 1:
		return hs[0], nil
	case 0:
		return 0, fmt.Errorf("%w: pkcs11: no secret key labelled %q%s on token %q (create one with GenerateKey)",
			kms.ErrConfig, u.Object, idSuffix(u), u.Token)
	default:
		return 0, fmt.Errorf("%w: pkcs11: several secret keys labelled %q%s on token %q; add id=%%xx to the URI",
			kms.ErrConfig, u.Object, idSuffix(u), u.Token)
	}
}

func findObjects(ctx *p11.Ctx, s p11.SessionHandle, tmpl []*p11.Attribute) ([]p11.ObjectHandle, error) {
	if err := ctx.FindObjectsInit(s, tmpl); err != nil {
		return nil, opError("C_FindObjectsInit", err)
	}
	hs, _, err := ctx.FindObjects(s, 2)
	if ferr := ctx.FindObjectsFinal(s); err == nil && ferr != nil {
		err = ferr
	}
	if err != nil {
		return nil, opError("C_FindObjects", err)
	}
	return hs, nil
}

func idSuffix(u *URI) string {
	if len(u.ID) == 0 {
		return ""
	}
	return fmt.Sprintf(" with id %x", u.ID)
}
