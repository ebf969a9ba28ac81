package vault

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
)

// The sealed form of one secret field:
//
//	version (1) ‖ id length (1) ‖ DEK id (1..64, printable ASCII) ‖ nonce (12) ‖ AES-256-GCM ciphertext ‖ tag (16)
//
// The associated data (RFC 5116 §2.1) is the length-prefixed encoding (uint32 big-endian
// length before each part) of: the header (version ‖ id length ‖ id ‖ nonce), the
// workspace id, the owner id, the field name and the purpose. A ciphertext moved to
// another workspace, owner (connection or provider configuration), field or keyring
// therefore fails to authenticate, and so does any change to its own header.
const (
	// EnvelopeV1 is the only envelope version.
	EnvelopeV1 byte = 0x01
	// NonceSize is the GCM nonce size: 96 bits, random per seal (NIST SP 800-38D §8.2.2).
	NonceSize = 12
	// TagSize is the GCM tag size.
	TagSize = 16
	// MaxDEKIDLen bounds a DEK id, in bytes.
	MaxDEKIDLen = 64

	minEnvelopeLen = 2 + 1 + NonceSize + TagSize
)

var (
	// ErrMalformedEnvelope: the bytes are not a well-formed envelope.
	ErrMalformedEnvelope = errors.New("vault: malformed envelope")
	// ErrDecrypt: a sealed value cannot be opened (tampered, moved to another binding,
	// sealed under a key this keyring does not have or may not use). It carries no detail
	// on purpose; the keyring logs the reason.
	ErrDecrypt = errors.New("vault: decrypt failed")
	// ErrInvalidBinding: a Binding lacks its workspace, owner or field.
	ErrInvalidBinding = errors.New("vault: binding needs a workspace id, an owner id and a field name")
)

// Binding is where a sealed value belongs. Every part goes into the associated data.
type Binding struct {
	WorkspaceID string
	// OwnerID is the connection id for a credential and the provider configuration id
	// for a client secret.
	OwnerID string
	// Field names the sealed value (bindings.go has the constructor of each).
	Field string
	// Origins are the origins a sealed credential may be presented to (bindings.go); nil
	// for a value that is not bound to origins, which encodes as the three parts above
	// alone.
	Origins Origins
	// Context is what else the value was sealed for, when more than its owner decides where
	// it may act: a minted connection's configuration digest (store.Connection.
	// BindingContext: a GitHub App installation, a jwt_bearer subject). "" encodes nothing,
	// so the associated data of every value sealed without one is unchanged.
	Context string
}

func (b Binding) validate() error {
	if b.WorkspaceID == "" || b.OwnerID == "" || b.Field == "" {
		return ErrInvalidBinding
	}
	return nil
}

// Envelope is a parsed sealed value. Ciphertext aliases the parsed input.
type Envelope struct {
	Version    byte
	DEKID      string
	Nonce      [NonceSize]byte
	Ciphertext []byte // ciphertext ‖ tag
}

// Marshal encodes the envelope.
func (e Envelope) Marshal() []byte {
	out := make([]byte, 0, 2+len(e.DEKID)+NonceSize+len(e.Ciphertext))
	out = append(out, e.Version, byte(len(e.DEKID)))
	out = append(out, e.DEKID...)
	out = append(out, e.Nonce[:]...)
	return append(out, e.Ciphertext...)
}

// ParseEnvelope parses strictly: known version, id of 1..64 printable ASCII bytes, and
// room for a nonce and a tag. Errors wrap ErrMalformedEnvelope.
func ParseEnvelope(b []byte) (Envelope, error) {
	v, err := parseView(b)
	if err != nil {
		return Envelope{}, err
	}
	e := Envelope{Version: b[0], DEKID: string(v.id), Ciphertext: v.sealed}
	copy(e.Nonce[:], v.nonce)
	return e, nil
}

// envelopeView is an envelope parsed without copying (the hot path).
type envelopeView struct {
	header []byte // version ‖ idlen ‖ id ‖ nonce
	id     []byte
	nonce  []byte
	sealed []byte // ciphertext ‖ tag
}

func parseView(b []byte) (envelopeView, error) {
	if len(b) < minEnvelopeLen {
		return envelopeView{}, fmt.Errorf("%w: too short", ErrMalformedEnvelope)
	}
	if b[0] != EnvelopeV1 {
		return envelopeView{}, fmt.Errorf("%w: unknown version", ErrMalformedEnvelope)
	}
	n := int(b[1])
	if n < 1 || n > MaxDEKIDLen {
		return envelopeView{}, fmt.Errorf("%w: bad key id length", ErrMalformedEnvelope)
	}
	hdr := 2 + n + NonceSize
	if len(b) < hdr+TagSize {
		return envelopeView{}, fmt.Errorf("%w: too short", ErrMalformedEnvelope)
	}
	id := b[2 : 2+n]
	if !printableASCII(id) {
		return envelopeView{}, fmt.Errorf("%w: bad key id", ErrMalformedEnvelope)
	}
	return envelopeView{header: b[:hdr], id: id, nonce: b[2+n : hdr], sealed: b[hdr:]}, nil
}

func printableASCII[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func validDEKID(id string) bool {
	return len(id) >= 1 && len(id) <= MaxDEKIDLen && printableASCII(id)
}

// appendLP appends each part with a uint32 big-endian length prefix.
func appendLP[T string | []byte](dst []byte, parts ...T) []byte {
	for _, p := range parts {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(p)))
		dst = append(dst, p...)
	}
	return dst
}

func appendAAD(dst, header []byte, purpose Purpose, b Binding) []byte {
	dst = appendLP(dst, header)
	dst = appendLP(dst, b.WorkspaceID, b.OwnerID, b.Field, string(purpose))
	if b.Context != "" { // before the origins: its marker, unlike an origin, is never a URL
		dst = appendLP(dst, contextPart, b.Context)
	}
	if b.Origins != nil {
		dst = appendLP(dst, originsPart)
		dst = appendLP(dst, b.Origins...)
	}
	return dst
}

// SealEnvelope seals plaintext under aead (an AES-256-GCM instance of the DEK named
// dekID) for binding b and purpose, with a fresh random nonce.
func SealEnvelope(aead cipher.AEAD, dekID string, purpose Purpose, b Binding, plaintext []byte) ([]byte, error) {
	out, _, err := sealScratch(aead, dekID, purpose, b, plaintext, nil)
	return out, err
}

// OpenEnvelope opens a sealed value with aead, which the caller chose by the envelope's
// DEK id (see ParseEnvelope). Every failure wraps ErrDecrypt; a malformed envelope also
// wraps ErrMalformedEnvelope.
func OpenEnvelope(aead cipher.AEAD, purpose Purpose, b Binding, envelope []byte) ([]byte, error) {
	if err := b.validate(); err != nil {
		return nil, err
	}
	v, err := parseView(envelope)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDecrypt, err)
	}
	pt, _, err := openScratch(aead, v, purpose, b, nil)
	return pt, err
}

// sealScratch seals with scratch as the buffer for the associated data, and returns that
// buffer (possibly grown) so that the caller can reuse it.
func sealScratch(aead cipher.AEAD, dekID string, purpose Purpose, b Binding, plaintext, scratch []byte) (out, aad []byte, err error) {
	if err := b.validate(); err != nil {
		return nil, scratch, err
	}
	if !validDEKID(dekID) {
		return nil, scratch, fmt.Errorf("vault: invalid DEK id")
	}
	if aead.NonceSize() != NonceSize || aead.Overhead() != TagSize {
		return nil, scratch, fmt.Errorf("vault: the AEAD must be AES-GCM with a 96-bit nonce and a 128-bit tag")
	}
	hdr := 2 + len(dekID) + NonceSize
	out = make([]byte, hdr, hdr+len(plaintext)+TagSize)
	out[0], out[1] = EnvelopeV1, byte(len(dekID))
	copy(out[2:], dekID)
	nonce := out[2+len(dekID) : hdr]
	if _, err := rand.Read(nonce); err != nil {
		return nil, scratch, err
	}
	aad = appendAAD(scratch[:0], out[:hdr], purpose, b)
	return aead.Seal(out, nonce, plaintext, aad), aad, nil
}

// openScratch opens with scratch as the buffer for the associated data (see sealScratch).
func openScratch(aead cipher.AEAD, v envelopeView, purpose Purpose, b Binding, scratch []byte) (pt, aad []byte, err error) {
	if aead.NonceSize() != NonceSize || aead.Overhead() != TagSize {
		return nil, scratch, ErrDecrypt
	}
	aad = appendAAD(scratch[:0], v.header, purpose, b)
	pt, err = aead.Open(nil, v.nonce, v.sealed, aad)
	if err != nil {
		return nil, aad, ErrDecrypt
	}
	return pt, aad, nil
}
