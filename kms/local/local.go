// Package local is the development KEK: a 256-bit AES key in a file on local disk.
//
// URI: local:///absolute/path or local://./relative/path. The file holds the key in
// base64. It must not be readable by group or others. With Options.Create (the dev
// profile) a missing file is generated from crypto/rand with mode 0600. The production
// profile refuses this backend (see internal/config): a key on the same disk as the
// ciphertext protects nothing against someone who can read that disk.
package local

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/authpipe/authpipe-proxy/kms"
)

// Scheme is the URI scheme of this backend.
const Scheme = "local"

const nonceSize = 12

// KEK is an AES-256-GCM key held in process memory.
type KEK struct {
	id   string
	aead cipher.AEAD
}

var _ kms.KEK = (*KEK)(nil)

// Options control Open.
type Options struct {
	// Create generates the key file when it does not exist (dev profile only).
	Create bool
}

// PathFromURI returns the file path a local:// URI names.
func PathFromURI(uri string) (string, error) {
	rest, ok := strings.CutPrefix(uri, Scheme+"://")
	if !ok || rest == "" {
		return "", fmt.Errorf("%w: %q is not a local:// URI with a path", kms.ErrConfig, uri)
	}
	if strings.ContainsAny(rest, "?#") {
		return "", fmt.Errorf("%w: local:// URIs take no query or fragment", kms.ErrConfig)
	}
	return filepath.Clean(rest), nil
}

// Open loads (or, with Options.Create, creates) the key file that uri names.
func Open(uri string, opts Options) (*KEK, error) {
	path, err := PathFromURI(uri)
	if err != nil {
		return nil, err
	}
	key, err := readKey(path)
	if errors.Is(err, fs.ErrNotExist) && opts.Create {
		key, err = createKey(path)
	}
	if err != nil {
		return nil, err
	}
	return New(key)
}

// New returns a KEK over a 32-byte key (for tests and for Open).
func New(key []byte) (*KEK, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("%w: local key must be 32 bytes, got %d", kms.ErrConfig, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", kms.ErrConfig, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", kms.ErrConfig, err)
	}
	// The id is a domain-separated hash of the key: it tells keys apart without
	// revealing anything usable about them.
	sum := sha256.Sum256(append([]byte("authpipe local kek id\x00"), key...))
	return &KEK{id: "local:" + hex.EncodeToString(sum[:8]), aead: aead}, nil
}

func readKey(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: key file %s is readable by group or others (mode %04o); chmod 600 it",
			kms.ErrConfig, path, st.Mode().Perm())
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil || len(key) != 32 {
		return nil, fmt.Errorf("%w: key file %s does not hold a base64 256-bit key", kms.ErrConfig, path)
	}
	return key, nil
}

func createKey(path string) ([]byte, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("%w: %w", kms.ErrConfig, err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	// O_EXCL: two processes starting at once must not each write their own key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return readKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", kms.ErrConfig, err)
	}
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("%w: %w", kms.ErrConfig, werr)
	}
	return key, nil
}

// ID implements kms.KEK.
func (k *KEK) ID() string { return k.id }

// Wrap implements kms.KEK: nonce ‖ AES-256-GCM(dek, aad).
func (k *KEK) Wrap(_ context.Context, dek, aad []byte) (kms.WrappedKey, error) {
	nonce := make([]byte, nonceSize, nonceSize+len(dek)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return kms.WrappedKey{}, err
	}
	return kms.WrappedKey{KEKID: k.id, Ciphertext: k.aead.Seal(nonce, nonce, dek, aad)}, nil
}

// Unwrap implements kms.KEK.
func (k *KEK) Unwrap(_ context.Context, w kms.WrappedKey, aad []byte) ([]byte, error) {
	if w.KEKID != k.id {
		return nil, fmt.Errorf("%w: %q", kms.ErrUnknownKey, w.KEKID)
	}
	if len(w.Ciphertext) < nonceSize+k.aead.Overhead() {
		return nil, fmt.Errorf("%w: wrapped key too short", kms.ErrDecrypt)
	}
	dek, err := k.aead.Open(nil, w.Ciphertext[:nonceSize], w.Ciphertext[nonceSize:], aad)
	if err != nil {
		return nil, kms.ErrDecrypt
	}
	return dek, nil
}

// Ping implements kms.KEK; a key in memory is always there.
func (k *KEK) Ping(context.Context) error { return nil }

// Close implements kms.KEK.
func (k *KEK) Close() error { return nil }
