//go:build cgo

package pkcs11

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"

	p11 "github.com/miekg/pkcs11"

	"github.com/authpipe/authpipe-proxy/kms"
)

// GenerateKey creates, with C_GenerateKey on the token, the AES-256 key that uri names:
// a private token object that is sensitive, never extractable, not modifiable, and usable
// only to encrypt and decrypt. It fails with kms.ErrConfig when a key with that label
// (and id) already exists. The key material never exists outside the token.
func GenerateKey(ctx context.Context, uri string) (err error) {
	u, err := ParseURI(uri)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	pin, err := u.PIN()
	if err != nil {
		return err
	}
	mod, err := libraries.acquire(u.ModulePath)
	if err != nil {
		return err
	}
	defer libraries.release(mod)
	slot, err := libraries.findToken(mod, u.ModulePath, u.Token)
	if err != nil {
		return err
	}
	if err := checkMechanism(mod.ctx, slot, u.Token); err != nil {
		return err
	}
	login, err := libraries.login(mod, slot, u.Token, pin)
	if err != nil {
		return err
	}
	defer libraries.logout(mod, slot, login)

	s, err := mod.ctx.OpenSession(slot, p11.CKF_SERIAL_SESSION|p11.CKF_RW_SESSION)
	if err != nil {
		return opError("C_OpenSession (read-write)", err)
	}
	defer func() { _ = mod.ctx.CloseSession(s) }()

	existing, err := findObjects(mod.ctx, s, keyTemplate(u))
	if err != nil {
		return err
	}
	if len(existing) > 0 {
		return fmt.Errorf("%w: pkcs11: a secret key labelled %q%s already exists on token %q",
			kms.ErrConfig, u.Object, idSuffix(u), u.Token)
	}
	tmpl := []*p11.Attribute{
		p11.NewAttribute(p11.CKA_CLASS, p11.CKO_SECRET_KEY),
		p11.NewAttribute(p11.CKA_KEY_TYPE, p11.CKK_AES),
		p11.NewAttribute(p11.CKA_VALUE_LEN, keySize),
		p11.NewAttribute(p11.CKA_LABEL, u.Object),
		p11.NewAttribute(p11.CKA_TOKEN, true),
		p11.NewAttribute(p11.CKA_PRIVATE, true),
		p11.NewAttribute(p11.CKA_SENSITIVE, true),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, false),
		p11.NewAttribute(p11.CKA_MODIFIABLE, false),
		p11.NewAttribute(p11.CKA_ENCRYPT, true),
		p11.NewAttribute(p11.CKA_DECRYPT, true),
		p11.NewAttribute(p11.CKA_WRAP, false),
		p11.NewAttribute(p11.CKA_UNWRAP, false),
		p11.NewAttribute(p11.CKA_SIGN, false),
		p11.NewAttribute(p11.CKA_VERIFY, false),
		p11.NewAttribute(p11.CKA_DERIVE, false),
	}
	if len(u.ID) > 0 {
		tmpl = append(tmpl, p11.NewAttribute(p11.CKA_ID, u.ID))
	}
	mech := []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_KEY_GEN, nil)}
	if _, err := mod.ctx.GenerateKey(s, mech, tmpl); err != nil {
		return opError(fmt.Sprintf("C_GenerateKey on token %q", u.Token), err)
	}
	return nil
}

// checkMechanism makes sure the token can do CKM_AES_GCM with 256-bit keys.
func checkMechanism(ctx *p11.Ctx, slot uint, token string) error {
	info, err := ctx.GetMechanismInfo(slot, []*p11.Mechanism{p11.NewMechanism(p11.CKM_AES_GCM, nil)})
	if err != nil {
		return fmt.Errorf("%w: pkcs11: token %q does not offer CKM_AES_GCM: %w", kms.ErrConfig, token, err)
	}
	if info.Flags&p11.CKF_ENCRYPT == 0 || info.Flags&p11.CKF_DECRYPT == 0 || (info.MaxKeySize != 0 && info.MaxKeySize < keySize) {
		return fmt.Errorf("%w: pkcs11: token %q cannot encrypt and decrypt with CKM_AES_GCM and a 256-bit key",
			kms.ErrConfig, token)
	}
	return nil
}

// checkKey refuses a key that is not a sensitive, non-extractable AES-256 key allowed to
// encrypt and decrypt. It warns about a key that was once extractable or not sensitive
// (imported rather than generated on the token).
func checkKey(ctx *p11.Ctx, s p11.SessionHandle, h p11.ObjectHandle, u *URI, log *slog.Logger) error {
	attrs, err := ctx.GetAttributeValue(s, h, []*p11.Attribute{
		p11.NewAttribute(p11.CKA_KEY_TYPE, nil),
		p11.NewAttribute(p11.CKA_VALUE_LEN, nil),
		p11.NewAttribute(p11.CKA_SENSITIVE, nil),
		p11.NewAttribute(p11.CKA_EXTRACTABLE, nil),
		p11.NewAttribute(p11.CKA_ENCRYPT, nil),
		p11.NewAttribute(p11.CKA_DECRYPT, nil),
		p11.NewAttribute(p11.CKA_ALWAYS_SENSITIVE, nil),
		p11.NewAttribute(p11.CKA_NEVER_EXTRACTABLE, nil),
	})
	if err != nil {
		return opError(fmt.Sprintf("C_GetAttributeValue of key %q", u.Object), err)
	}
	v := map[uint][]byte{}
	for _, a := range attrs {
		v[a.Type] = a.Value
	}
	var problems []string
	if ulong(v[p11.CKA_KEY_TYPE]) != p11.CKK_AES {
		problems = append(problems, "it is not an AES key")
	}
	if n := ulong(v[p11.CKA_VALUE_LEN]); n != keySize {
		problems = append(problems, fmt.Sprintf("it is %d bits, not 256", n*8))
	}
	if !boolean(v[p11.CKA_SENSITIVE]) {
		problems = append(problems, "CKA_SENSITIVE is false")
	}
	if boolean(v[p11.CKA_EXTRACTABLE]) {
		problems = append(problems, "CKA_EXTRACTABLE is true")
	}
	if !boolean(v[p11.CKA_ENCRYPT]) || !boolean(v[p11.CKA_DECRYPT]) {
		problems = append(problems, "CKA_ENCRYPT or CKA_DECRYPT is false")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: pkcs11: key %q on token %q is unusable as a KEK: %v",
			kms.ErrConfig, u.Object, u.Token, problems)
	}
	if !boolean(v[p11.CKA_ALWAYS_SENSITIVE]) || !boolean(v[p11.CKA_NEVER_EXTRACTABLE]) {
		log.Warn("pkcs11: the KEK was imported or was once extractable; its material may exist outside the HSM",
			"token", u.Token, "object", u.Object)
	}
	return nil
}

// ulong decodes a CK_ULONG attribute value (native byte order, 4 or 8 bytes).
func ulong(b []byte) uint64 {
	switch len(b) {
	case 8:
		return binary.NativeEndian.Uint64(b)
	case 4:
		return uint64(binary.NativeEndian.Uint32(b))
	}
	return ^uint64(0)
}

// boolean decodes a CK_BBOOL attribute value.
func boolean(b []byte) bool { return len(b) == 1 && b[0] != 0 }
