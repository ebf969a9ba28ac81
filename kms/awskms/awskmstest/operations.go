package awskmstest

// The KMS operations the server answers (Encrypt, Decrypt, DescribeKey, GenerateRandom),
// how a KeyId parameter resolves to a key, and the fake's own ciphertext blob format.

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// resolve finds the key a KeyId parameter names: key id, key ARN, alias/NAME or alias ARN.
func (s *Server) resolve(ref string) (*key, *kmsError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ref == "" {
		return nil, badRequest("ValidationException", "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null")
	}
	name := ref
	if rest, ok := strings.CutPrefix(ref, fmt.Sprintf("arn:aws:kms:%s:%s:", s.region, Account)); ok {
		name = rest
		if id, ok := strings.CutPrefix(rest, "key/"); ok {
			name = id
		}
	} else if strings.HasPrefix(ref, "arn:") {
		return nil, badRequest("NotFoundException", "Invalid arn %s", ref)
	}
	if strings.HasPrefix(name, "alias/") {
		id, ok := s.aliases[name]
		if !ok {
			return nil, badRequest("NotFoundException", "Alias %s is not found.", s.aliasARNLocked(name))
		}
		name = id
	}
	k, ok := s.keys[name]
	if !ok {
		return nil, badRequest("NotFoundException", "Key '%s' does not exist", ref)
	}
	return k, nil
}

func (s *Server) aliasARNLocked(alias string) string {
	return fmt.Sprintf("arn:aws:kms:%s:%s:%s", s.region, Account, alias)
}

func (s *Server) checkEnabled(k *key) *kmsError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !k.enabled {
		return badRequest("DisabledException", "%s is disabled.", k.ARN)
	}
	return nil
}

type encryptIn struct {
	KeyId               string
	Plaintext           []byte
	EncryptionContext   map[string]string
	EncryptionAlgorithm string
}

type encryptOut struct {
	CiphertextBlob      []byte
	KeyId               string
	EncryptionAlgorithm string
}

func (s *Server) encrypt(in *encryptIn) (*encryptOut, *kmsError) {
	k, kerr := s.resolve(in.KeyId)
	if kerr != nil {
		return nil, kerr
	}
	if n := len(in.Plaintext); n < 1 || n > maxPlaintext {
		return nil, badRequest("ValidationException", "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length between 1 and %d", maxPlaintext)
	}
	if in.EncryptionAlgorithm != "" && in.EncryptionAlgorithm != symmetricSpec {
		return nil, badRequest("InvalidKeyUsageException", "%s is not a valid encryption algorithm for this key", in.EncryptionAlgorithm)
	}
	if kerr := s.checkEnabled(k); kerr != nil {
		return nil, kerr
	}
	header := blobHeader(k.ID)
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, &kmsError{http.StatusInternalServerError, "KMSInternalException", "no randomness"}
	}
	blob := append(append(header, nonce...), k.aead.Seal(nil, nonce, in.Plaintext, associatedData(header, in.EncryptionContext))...)
	return &encryptOut{CiphertextBlob: blob, KeyId: k.ARN, EncryptionAlgorithm: symmetricSpec}, nil
}

type decryptIn struct {
	KeyId               string
	CiphertextBlob      []byte
	EncryptionContext   map[string]string
	EncryptionAlgorithm string
}

type decryptOut struct {
	Plaintext           []byte
	KeyId               string
	EncryptionAlgorithm string
}

func (s *Server) decrypt(in *decryptIn) (*decryptOut, *kmsError) {
	if len(in.CiphertextBlob) == 0 {
		return nil, badRequest("ValidationException", "1 validation error detected: Value at 'ciphertextBlob' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	invalid := badRequest("InvalidCiphertextException", "")
	blobKeyID, rest, ok := parseBlob(in.CiphertextBlob)
	if !ok {
		return nil, invalid
	}
	s.mu.Lock()
	k, found := s.keys[blobKeyID]
	s.mu.Unlock()
	if in.KeyId != "" {
		want, kerr := s.resolve(in.KeyId)
		if kerr != nil {
			return nil, kerr
		}
		if !found || want != k {
			return nil, badRequest("IncorrectKeyException", "The key ID in the request does not identify a KMS key that can perform this operation.")
		}
	} else if !found {
		return nil, invalid
	}
	if kerr := s.checkEnabled(k); kerr != nil {
		return nil, kerr
	}
	header := in.CiphertextBlob[:len(in.CiphertextBlob)-len(rest)]
	if len(rest) < nonceSize+k.aead.Overhead() {
		return nil, invalid
	}
	plain, err := k.aead.Open(nil, rest[:nonceSize], rest[nonceSize:], associatedData(header, in.EncryptionContext))
	if err != nil {
		return nil, invalid
	}
	return &decryptOut{Plaintext: plain, KeyId: k.ARN, EncryptionAlgorithm: symmetricSpec}, nil
}

type describeKeyIn struct{ KeyId string }

type keyMetadata struct {
	AWSAccountId          string
	KeyId                 string
	Arn                   string
	CreationDate          float64
	Enabled               bool
	Description           string
	KeyUsage              string
	KeyState              string
	Origin                string
	KeyManager            string
	KeySpec               string
	CustomerMasterKeySpec string
	EncryptionAlgorithms  []string
	MultiRegion           bool
}

type describeKeyOut struct{ KeyMetadata keyMetadata }

func (s *Server) describeKey(in *describeKeyIn) (*describeKeyOut, *kmsError) {
	k, kerr := s.resolve(in.KeyId)
	if kerr != nil {
		return nil, kerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	state := "Enabled"
	if !k.enabled {
		state = "Disabled"
	}
	return &describeKeyOut{KeyMetadata: keyMetadata{
		AWSAccountId: Account, KeyId: k.ID, Arn: k.ARN,
		CreationDate: float64(k.created.UnixMilli()) / 1000,
		Enabled:      k.enabled, KeyUsage: "ENCRYPT_DECRYPT", KeyState: state,
		Origin: "AWS_KMS", KeyManager: "CUSTOMER", KeySpec: symmetricSpec,
		CustomerMasterKeySpec: symmetricSpec, EncryptionAlgorithms: []string{symmetricSpec},
	}}, nil
}

type generateRandomIn struct{ NumberOfBytes int }

type generateRandomOut struct{ Plaintext []byte }

func (s *Server) generateRandom(in *generateRandomIn) (*generateRandomOut, *kmsError) {
	if in.NumberOfBytes < 1 || in.NumberOfBytes > 1024 {
		return nil, badRequest("ValidationException", "1 validation error detected: Value at 'numberOfBytes' failed to satisfy constraint: Member must have value between 1 and 1024")
	}
	b := make([]byte, in.NumberOfBytes)
	if _, err := rand.Read(b); err != nil {
		return nil, &kmsError{http.StatusInternalServerError, "KMSInternalException", "no randomness"}
	}
	return &generateRandomOut{Plaintext: b}, nil
}

// blobHeader is version ‖ len(key id) ‖ key id; the whole header is authenticated.
func blobHeader(keyID string) []byte {
	return append([]byte{blobVersion, byte(len(keyID))}, keyID...)
}

func parseBlob(blob []byte) (keyID string, rest []byte, ok bool) {
	if len(blob) < 2 || blob[0] != blobVersion || len(blob) < 2+int(blob[1]) {
		return "", nil, false
	}
	n := int(blob[1])
	return string(blob[2 : 2+n]), blob[2+n:], true
}

// associatedData is the blob header and the encryption context, sorted by key, every
// string length-prefixed, so that any change to either fails GCM authentication.
func associatedData(header []byte, ec map[string]string) []byte {
	var buf bytes.Buffer
	buf.Write(header)
	for _, k := range slices.Sorted(maps.Keys(ec)) {
		for _, s := range []string{k, ec[k]} {
			_ = binary.Write(&buf, binary.BigEndian, uint32(len(s)))
			buf.WriteString(s)
		}
	}
	return buf.Bytes()
}
