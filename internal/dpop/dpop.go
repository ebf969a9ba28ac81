// Package dpop parses and verifies DPoP proofs (RFC 9449) for API keys bound to a client
// key. A key created with a "dpop_jkt" (the RFC 7638 SHA-256 thumbprint of a public key)
// is accepted only with a DPoP header: a compact JWS with typ "dpop+jwt", an asymmetric
// alg, the public key in its jwk header (its thumbprint must be the bound one), and claims
// htm (the method), htu (the URL without query or fragment, as reached through
// AUTHPIPE_PUBLIC_URL), iat (within the window), jti (never seen before for this API key
// while the proof is acceptable, on any replica when a ReplayStore is set: replay.go) and
// ath (base64url SHA-256 of the API key). With server nonces on, the nonce claim must be
// one this server issued recently (DPoP-Nonce header, error use_dpop_nonce). Refusals are
// 401 with WWW-Authenticate: DPoP error="invalid_dpop_proof" (Challenge); a key with too
// many proofs in flight is refused with 429 rate_limited.
//
// The package knows nothing of HTTP servers or of where bindings and jtis are stored: the
// caller passes the request's method and URL, the presented key and the bound thumbprint,
// and the shared jti store as a ReplayStore.
package dpop

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/authpipe/authpipe-proxy/internal/problem"
)

const (
	defaultWindow = 60 * time.Second
	maxProofBytes = 8 << 10
	noncePeriod   = 5 * time.Minute
)

// algs are the asymmetric algorithms a proof may use; none and HS* never parse.
var algs = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.EdDSA, jose.RS256, jose.PS256}

var (
	// ErrInvalidProof is a refused proof; its detail says why.
	ErrInvalidProof = problem.New(http.StatusUnauthorized, "invalid_dpop_proof", "Invalid DPoP proof")
	// ErrUseNonce asks the client to retry with the nonce of the DPoP-Nonce header.
	ErrUseNonce = problem.New(http.StatusUnauthorized, "use_dpop_nonce", "A DPoP nonce is required")
)

// Proof is a parsed proof whose signature has been verified with its own jwk.
type Proof struct {
	JKT   string // RFC 7638 thumbprint of the jwk header, base64url
	JTI   string
	HTM   string
	HTU   string
	IAT   time.Time
	ATH   string
	Nonce string
}

type claims struct {
	JTI   string      `json:"jti"`
	HTM   string      `json:"htm"`
	HTU   string      `json:"htu"`
	IAT   json.Number `json:"iat"`
	ATH   string      `json:"ath"`
	Nonce string      `json:"nonce"`
}

// Parse checks a proof's form and signature (RFC 9449 section 4.3 steps 1-8 minus what
// needs the request): one compact JWS, typ dpop+jwt, an allowed asymmetric alg, a public
// jwk that verifies the signature, and the required claims present.
func Parse(raw string) (*Proof, error) {
	if raw == "" || len(raw) > maxProofBytes || strings.Count(raw, ".") != 2 {
		return nil, errors.New("not a compact JWS")
	}
	jws, err := jose.ParseSignedCompact(raw, algs)
	if err != nil {
		return nil, errors.New("not a JWS with an allowed algorithm")
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("exactly one signature is required")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "dpop+jwt" {
		return nil, errors.New("typ must be dpop+jwt")
	}
	jwk := h.JSONWebKey
	if jwk == nil || !jwk.Valid() || !jwk.IsPublic() {
		return nil, errors.New("the jwk header must hold a public key")
	}
	payload, err := jws.Verify(jwk.Key)
	if err != nil {
		return nil, errors.New("bad signature")
	}
	var cl claims
	dec := json.NewDecoder(strings.NewReader(string(payload)))
	dec.UseNumber()
	if err := dec.Decode(&cl); err != nil {
		return nil, errors.New("claims are not a JSON object")
	}
	if cl.JTI == "" || len(cl.JTI) > 256 || cl.HTM == "" || cl.HTU == "" || cl.IAT == "" {
		return nil, errors.New("jti, htm, htu and iat are required")
	}
	iat, err := cl.IAT.Int64()
	if err != nil {
		f, ferr := cl.IAT.Float64()
		if ferr != nil || f < 0 || f > 1e11 {
			return nil, errors.New("iat must be a number")
		}
		iat = int64(f)
	}
	if iat < 0 || iat > 1e11 {
		return nil, errors.New("iat out of range")
	}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, errors.New("cannot compute the jwk thumbprint")
	}
	return &Proof{JKT: base64.RawURLEncoding.EncodeToString(tp), JTI: cl.JTI, HTM: cl.HTM, HTU: cl.HTU,
		IAT: time.Unix(iat, 0), ATH: cl.ATH, Nonce: cl.Nonce}, nil
}

// Options configure a Verifier. The zero value is usable: a 60 s window, no server
// nonces, the system clock, a replay cache of this process only (replay.go).
type Options struct {
	// Window is how far a proof's iat may be from now (at most 10 minutes).
	Window time.Duration
	// Nonces makes proofs carry a server nonce (RFC 9449 section 8).
	Nonces bool
	// Now is the clock.
	Now func() time.Time
	// Replay, when set, holds the jtis for every replica (the deployment's database), so
	// a proof accepted by one replica is refused by all. Nil keeps them in this process.
	Replay ReplayStore
	// ReplayPerKey is how many proofs one API key may have in flight (accepted, not yet
	// expired) on this replica; default 100,000.
	ReplayPerKey int
	// ReplayMax bounds the jtis this process keeps without a ReplayStore; default 500,000.
	ReplayMax int
}

// Verifier checks proofs against a request; it owns the jti replay cache and the nonce
// key.
type Verifier struct {
	window   time.Duration
	nonces   bool
	now      func() time.Time
	nonceKey []byte
	replay   *replayCache
}

// Binding is what a proof is checked against besides the request: the API key presented
// (its id is the replay cache's and the quota's unit, the key itself is hashed for ath)
// and the thumbprint of the DPoP key it is bound to.
type Binding struct {
	KeyID  string
	APIKey string
	JKT    string
}

// New returns a Verifier with a fresh nonce key and an empty replay cache.
func New(o Options) (*Verifier, error) {
	if o.Window == 0 {
		o.Window = defaultWindow
	}
	if o.Window < 0 || o.Window > 10*time.Minute {
		return nil, errors.New("dpop: the window must be between 0 and 10 minutes")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	v := &Verifier{window: o.Window, nonces: o.Nonces, now: o.Now, nonceKey: make([]byte, 32),
		replay: newReplayCache(o.Window, o.ReplayPerKey, o.ReplayMax, o.Replay)}
	if _, err := rand.Read(v.nonceKey); err != nil {
		return nil, err
	}
	return v, nil
}

// Verify checks raw against the request (method, the URL it was sent to) and the
// presented key b. The error is ErrInvalidProof or ErrUseNonce, problem.ErrRateLimited
// when the key has too many proofs in flight, or the ReplayStore's error.
func (v *Verifier) Verify(ctx context.Context, raw, method, htu string, b Binding) error {
	p, err := Parse(raw)
	if err != nil {
		return ErrInvalidProof.WithDetail(err.Error())
	}
	if subtle.ConstantTimeCompare([]byte(p.JKT), []byte(b.JKT)) != 1 {
		return ErrInvalidProof.WithDetail("the proof is signed by another key than the one bound to this API key")
	}
	if p.HTM != method {
		return ErrInvalidProof.WithDetail("htm does not match the request method")
	}
	if !SameHTU(p.HTU, htu) {
		return ErrInvalidProof.WithDetail("htu does not match the request URL")
	}
	sum := sha256.Sum256([]byte(b.APIKey))
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	if p.ATH == "" || subtle.ConstantTimeCompare([]byte(p.ATH), []byte(want)) != 1 {
		return ErrInvalidProof.WithDetail("ath does not match the API key")
	}
	now := v.now()
	if d := now.Sub(p.IAT); d > v.window || d < -v.window {
		return ErrInvalidProof.WithDetail("iat is outside the accepted window")
	}
	if v.nonces && !v.validNonce(p.Nonce, now) {
		return ErrUseNonce.WithDetail("use the nonce in the DPoP-Nonce header")
	}
	// Accepted until iat + window (checked above): remembered until then.
	return v.replay.remember(ctx, b.KeyID, p.JTI, now, p.IAT.Add(v.window))
}

// Challenge is the WWW-Authenticate value that goes with a refusal from Verify.
func Challenge(err error) string {
	code := ErrInvalidProof.Code
	if errors.Is(err, ErrUseNonce) {
		code = ErrUseNonce.Code
	}
	return `DPoP error="` + code + `", algs="` + algNames + `"`
}

// algNames lists algs for the challenge's algs parameter.
var algNames = func() string {
	names := make([]string, len(algs))
	for i, a := range algs {
		names[i] = string(a)
	}
	return strings.Join(names, " ")
}()

// Nonce returns the current server nonce for the DPoP-Nonce header, or "" when server
// nonces are off. A nonce is the period number and an HMAC of it, so any replica with the
// key checks it without state (a replica has its own key: behind a load balancer without
// stickiness, a client re-fetches the nonce after use_dpop_nonce).
func (v *Verifier) Nonce() string {
	if !v.nonces {
		return ""
	}
	return v.nonceFor(v.now().Unix() / int64(noncePeriod/time.Second))
}

func (v *Verifier) nonceFor(period int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(period))
	m := hmac.New(sha256.New, v.nonceKey)
	m.Write(b[:])
	return base64.RawURLEncoding.EncodeToString(append(b[:], m.Sum(nil)[:16]...))
}

func (v *Verifier) validNonce(n string, now time.Time) bool {
	cur := now.Unix() / int64(noncePeriod/time.Second)
	for _, p := range []int64{cur, cur - 1} {
		if hmac.Equal([]byte(n), []byte(v.nonceFor(p))) {
			return true
		}
	}
	return false
}

// SameHTU compares htu claims after RFC 3986 syntax- and scheme-based normalisation
// (case of scheme and host, default ports, empty path), ignoring query and fragment.
func SameHTU(claim, want string) bool {
	a, ok1 := normalHTU(claim)
	b, ok2 := normalHTU(want)
	return ok1 && ok2 && a == b
}

func normalHTU(raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return "", false
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && scheme != "http" {
		return "", false
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if scheme == "https" && port == "443" || scheme == "http" && port == "80" {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, true
}

// ValidJKT reports whether s looks like a SHA-256 JWK thumbprint (43 base64url characters).
func ValidJKT(s string) bool {
	if len(s) != 43 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == sha256.Size
}
