package proxy

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/internal/ids"
)

// A connect session id authenticates itself like a state does (connect_state.go), so that
// GET /v1/connect/{session}, which carries no API key, refuses a guessed or forged id
// without a database query: cs_ followed by the base32 of
//
//	128 random bits ‖ the state key's fingerprint (4 bytes) ‖ the first 96 bits of
//	HMAC-SHA256(state key, sessionIDLabel ‖ random ‖ fingerprint)
//
// 52 characters after the prefix: still an opaque prefixed id (API.md), the session's
// primary key and its audit actor. The fingerprint (the first 4 bytes of SHA-256 of the
// key's kid) names the key in 4 bytes instead of the kid's 20-odd characters; the key is
// picked by it from the keys this replica has loaded (KeySet.Verifiers never re-reads the
// set because of an id) and no other key is tried. Ids are MAC'd with the published state
// key, so every replica knows it before the id reaches one; an id outlives its key only
// if the session outlives the key's 15 verify-only minutes, and a session lasts 10.
const sessionIDLabel = "authpipe-proxy connect session id v1"

const (
	sessionIDRandom = 16
	sessionIDFP     = 4
	sessionIDTag    = 12
	sessionIDBytes  = sessionIDRandom + sessionIDFP + sessionIDTag
	// legacySessionIDLen is the length after the prefix of an ids.New session id (16
	// random bytes), made before session ids carried a MAC.
	legacySessionIDLen = 26
)

// kidFingerprint is the first 4 bytes of SHA-256(kid).
func kidFingerprint(kid string) [sessionIDFP]byte {
	sum := sha256.Sum256([]byte(kid))
	return [sessionIDFP]byte(sum[:sessionIDFP])
}

func sessionIDTagOf(k *admin.Key, body []byte) []byte {
	return k.MAC([]byte(sessionIDLabel), body)[:sessionIDTag]
}

// NewSessionID makes a connect session id MAC'd with the published state key.
func (fk *flowKeys) NewSessionID(ctx context.Context) (string, error) {
	k, err := fk.state.Published(ctx, stateKeyPublishDelay)
	if err != nil {
		return "", fmt.Errorf("proxy: state key: %w", err)
	}
	return makeSessionID(k)
}

// makeSessionID makes a connect session id MAC'd with k.
func makeSessionID(k *admin.Key) (string, error) {
	raw := make([]byte, sessionIDBytes)
	if _, err := rand.Read(raw[:sessionIDRandom]); err != nil {
		return "", fmt.Errorf("proxy: session id: %w", err)
	}
	fp := kidFingerprint(k.KID())
	copy(raw[sessionIDRandom:], fp[:])
	copy(raw[sessionIDRandom+sessionIDFP:], sessionIDTagOf(k, raw[:sessionIDRandom+sessionIDFP]))
	out := make([]byte, ids.EncodedLen(sessionIDBytes))
	ids.Encode(out, raw)
	return ids.ConnectSession + "_" + string(out), nil
}

// parseSessionID takes a session id apart: the sessionIDBytes of a MAC'd id, or legacy
// for the canonical 16-byte id of an earlier version; ok is false for anything else.
func parseSessionID(id string) (raw []byte, legacy, ok bool) {
	rest, ok := strings.CutPrefix(id, ids.ConnectSession+"_")
	if !ok {
		return nil, false, false
	}
	switch len(rest) {
	case legacySessionIDLen:
		_, ok = ids.DecodeCanonical(rest)
		return nil, ok, ok
	case ids.EncodedLen(sessionIDBytes):
		raw, ok = ids.DecodeCanonical(rest)
		return raw, false, ok && len(raw) == sessionIDBytes
	}
	return nil, false, false
}

// CheckSessionID reports whether a connect session id may be looked up: its MAC holds
// under the loaded state key its fingerprint names. A session id made before ids carried
// a MAC passes for legacyStateWindow after this replica started (a link handed out during
// an upgrade still works). It never reads the database because of the id; an error means
// the state key set could not be loaded at all.
func (fk *flowKeys) CheckSessionID(ctx context.Context, id string) (bool, error) {
	raw, legacy, ok := parseSessionID(id)
	switch {
	case !ok:
		return false, nil
	case legacy:
		return fk.inLegacyWindow(), nil
	}
	keys, err := fk.state.Verifiers(ctx)
	if err != nil {
		return false, fmt.Errorf("proxy: state key: %w", err)
	}
	fp := [sessionIDFP]byte(raw[sessionIDRandom : sessionIDRandom+sessionIDFP])
	for _, k := range keys {
		if kidFingerprint(k.KID()) == fp { // the key it names, and no other
			return hmac.Equal(sessionIDTagOf(k, raw[:sessionIDRandom+sessionIDFP]), raw[sessionIDRandom+sessionIDFP:]), nil
		}
	}
	return false, nil
}
