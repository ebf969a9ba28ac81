package vectors_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/webhooksig"
	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/local"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vectors"
)

var dir = filepath.Join("..", "testdata", "vectors")

func load(t *testing.T, name string, v any) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, name))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, v))
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

// The committed files are exactly what the generator makes: a change to a format (or to
// the generator) must come with regenerated vectors (go run ./vectors/gen).
func TestCommittedVectorsAreGenerated(t *testing.T) {
	files := vectors.Files()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, len(files), "testdata/vectors holds exactly the generated files")
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		require.True(t, bytes.Equal(want, got), "%s differs from the generator's output: run go run ./vectors/gen", name)
	}
}

func gcmOf(t *testing.T, key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	require.NoError(t, err)
	a, err := cipher.NewGCM(block)
	require.NoError(t, err)
	return a
}

// The vault opens every valid envelope (whose AAD the generator built from the
// specification) and refuses every invalid one for the stated reason.
func TestEnvelopeVectors(t *testing.T) {
	var f vectors.EnvelopeFile
	load(t, "envelope.json", &f)
	aead := gcmOf(t, unhex(t, f.DEK))
	for _, c := range f.Valid {
		env := unhex(t, c.Envelope)
		pt, err := vault.OpenEnvelope(aead, vault.Purpose(c.Purpose), c.Binding.Vault(), env)
		require.NoError(t, err, c.Name)
		require.Equal(t, c.Plaintext, string(pt), c.Name)
		p, err := vault.ParseEnvelope(env)
		require.NoError(t, err)
		require.Equal(t, f.DEKID, p.DEKID)
		require.Equal(t, c.Nonce, hex.EncodeToString(p.Nonce[:]))
	}
	require.GreaterOrEqual(t, len(f.Invalid), 10)
	for _, c := range f.Invalid {
		_, err := vault.OpenEnvelope(aead, vault.Purpose(c.Purpose), c.Binding.Vault(), unhex(t, c.Envelope))
		require.ErrorIs(t, err, vault.ErrDecrypt, c.Name)
		_, perr := vault.ParseEnvelope(unhex(t, c.Envelope))
		require.Equal(t, c.Error == "malformed", errors.Is(perr, vault.ErrMalformedEnvelope), c.Name)
	}
}

func TestWrappedDEKVectors(t *testing.T) {
	var f vectors.WrappedFile
	load(t, "wrapped_dek.json", &f)
	kek, err := local.New(unhex(t, f.KEK))
	require.NoError(t, err)
	require.Equal(t, f.KEKID, kek.ID())
	for _, c := range append(f.Valid, f.Invalid...) {
		aad := vault.WrapAAD(c.WorkspaceID, vault.Purpose(c.Purpose), c.DEKID)
		require.Equal(t, c.AAD, hex.EncodeToString(aad), "%s: the vault's wrap AAD", c.Name)
		dek, err := kek.Unwrap(context.Background(), kms.WrappedKey{KEKID: kek.ID(), Ciphertext: unhex(t, c.Wrapped)}, aad)
		if c.Error == "" {
			require.NoError(t, err, c.Name)
			require.Equal(t, c.DEK, hex.EncodeToString(dek), c.Name)
		} else {
			require.Error(t, err, c.Name)
		}
	}
}

func TestAuditChainVectors(t *testing.T) {
	var f vectors.ChainFile
	load(t, "audit_chain.json", &f)
	require.Equal(t, audit.GenesisHash, f.Genesis)
	for _, c := range f.Chains {
		v := audit.NewVerifier()
		for _, je := range c.Events {
			e, err := je.Event()
			require.NoError(t, err)
			v.Add(e)
		}
		if c.Head != nil {
			v.CheckHead(c.Head.Seq, c.Head.Hash, c.Head.ID)
		}
		ok, _, _, firstBad := v.Result()
		require.Equal(t, c.OK, ok, c.Name)
		require.Equal(t, c.FirstBad, firstBad, c.Name)
	}
}

func TestCheckpointVectors(t *testing.T) {
	var f vectors.CheckpointFile
	load(t, "checkpoint.json", &f)
	s, err := audit.NewSigner(unhex(t, f.Seed))
	require.NoError(t, err)
	require.Equal(t, f.KeyID, s.KeyID())
	require.Equal(t, f.Message, hex.EncodeToString(vectors.CheckpointMessage(f.Valid[0].Checkpoint)))
	for _, c := range f.Valid {
		require.NoError(t, c.Checkpoint.Verify(c.Trusted...), c.Name)
	}
	for _, c := range f.Invalid {
		err := c.Checkpoint.Verify(c.Trusted...)
		want := map[string]error{"parse": audit.ErrCheckpointParse, "signature": audit.ErrBadCheckpoint, "untrusted": audit.ErrUntrustedKey}[c.Error]
		require.ErrorIs(t, err, want, c.Name)
	}
}

func TestWebhookVectors(t *testing.T) {
	var f vectors.WebhookFile
	load(t, "webhook.json", &f)
	now := time.Unix(f.Now, 0)
	for _, c := range f.Cases {
		require.Equal(t, c.KeyID, webhooksig.KID([]byte(c.Secret)), c.Name)
		err := webhooksig.Verify([]byte(c.Secret), c.Header, []byte(c.Body), now, time.Duration(f.Tolerance)*time.Second)
		require.Equal(t, c.OK, err == nil, "%s: %v", c.Name, err)
	}
}

func TestStateVectors(t *testing.T) {
	var f vectors.StateFile
	load(t, "state.json", &f)
	key := unhex(t, f.Key)
	for _, c := range f.Cases {
		require.Equal(t, c.OK, oauthflow.VerifyState(key, c.State), c.Name)
		if c.OK {
			kid, err := oauthflow.StateKeyID(c.State)
			require.NoError(t, err)
			require.Equal(t, f.KeyID, kid)
			require.Equal(t, c.Hash, hex.EncodeToString(oauthflow.HashState(c.State)))
		}
	}
}

func TestBrowserBindingVectors(t *testing.T) {
	var f vectors.BindingFile
	load(t, "browser_binding.json", &f)
	key := unhex(t, f.Key)
	for _, c := range f.Cases {
		require.True(t, oauthflow.VerifyBinding(key, c.SessionID, c.Nonce, unhex(t, c.MAC)), c.SessionID)
		require.False(t, oauthflow.VerifyBinding(key, c.SessionID+"x", c.Nonce, unhex(t, c.MAC)))
	}
}

// Session ids and API-key hashes are made by unexported code (proxy, admin); their
// vectors are checked here against the specification and by the Python verifier.
func TestAPIKeyHashVectors(t *testing.T) {
	var f vectors.HashFile
	load(t, "apikey_hash.json", &f)
	for _, c := range f.Cases {
		m := hmac.New(sha256.New, unhex(t, f.Material))
		m.Write([]byte(c.APIKey))
		require.Equal(t, c.Hash, hex.EncodeToString(m.Sum(nil)))
	}
}

// The Python verifier (standard library only) agrees with every vector: proof that
// docs/formats.md is enough to verify without the Go code.
func TestPythonVerifierAgrees(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("python3 is required on CI for the independent vector verifier")
		}
		t.Skip("!! python3 not found: the independent vector verifier did NOT run")
	}
	out, err := exec.Command(py, filepath.Join("..", "tools", "verify_vectors.py"), dir).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "all vectors agree")
	require.False(t, strings.Contains(string(out), "FAIL"), string(out))

	// It can fail: a checkpoint whose signature was re-made by another key and claims the
	// trusted kid, and a chain event edited, each in a copy of the vectors.
	for file, edit := range map[string]func(string) string{
		"checkpoint.json":  func(s string) string { return strings.Replace(s, `"seq": 5`, `"seq": 4`, 1) },
		"audit_chain.json": func(s string) string { return strings.Replace(s, `\"count\":412`, `\"count\":413`, 1) },
	} {
		tmp := t.TempDir()
		for name, body := range vectors.Files() {
			if name == file {
				edited := edit(string(body))
				require.NotEqual(t, string(body), edited, "the edit of %s applies", file)
				body = []byte(edited)
			}
			require.NoError(t, os.WriteFile(filepath.Join(tmp, name), body, 0o644))
		}
		out, err := exec.Command(py, filepath.Join("..", "tools", "verify_vectors.py"), tmp).CombinedOutput()
		require.Error(t, err, "%s edited: %s", file, out)
		require.Contains(t, string(out), "FAIL")
	}
}
