package proxy

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
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// DPoP-bound API keys (RFC 9449). A key created with a "dpop_jkt" (the RFC 7638 SHA-256
// thumbprint of a public key) is accepted only with a DPoP header: a compact JWS with typ
// "dpop+jwt", an asymmetric alg, the public key in its jwk header (its thumbprint must be
// the bound one), and claims htm (the method), htu (the URL without query or fragment, as
// reached through AUTHPIPE_PUBLIC_URL), iat (within the window), jti (never seen before in
// the window) and ath (base64url SHA-256 of the API key). With server nonces on, the nonce
// claim must be one this server issued recently (DPoP-Nonce header, error use_dpop_nonce).
// Refusals are 401 with WWW-Authenticate: DPoP error="invalid_dpop_proof".

const (
	dpopDefaultWindow = 60 * time.Second
	dpopMaxProofBytes = 8 << 10
	dpopReplayMax     = 200_000
	dpopNoncePeriod   = 5 * time.Minute
)

// dpopAlgs are the asymmetric algorithms a proof may use; none and HS* never parse.
var dpopAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.EdDSA, jose.RS256, jose.PS256}

var (
	errInvalidDPoP = problem.New(http.StatusUnauthorized, "invalid_dpop_proof", "Invalid DPoP proof")
	errUseNonce    = problem.New(http.StatusUnauthorized, "use_dpop_nonce", "A DPoP nonce is required")
)

// dpopProof is a parsed proof whose signature has been verified with its own jwk.
type dpopProof struct {
	JKT   string // RFC 7638 thumbprint of the jwk header, base64url
	JTI   string
	HTM   string
	HTU   string
	IAT   time.Time
	ATH   string
	Nonce string
}

type dpopClaims struct {
	JTI   string      `json:"jti"`
	HTM   string      `json:"htm"`
	HTU   string      `json:"htu"`
	IAT   json.Number `json:"iat"`
	ATH   string      `json:"ath"`
	Nonce string      `json:"nonce"`
}

// parseDPoPProof checks a proof's form and signature (RFC 9449 section 4.3 steps 1-8 minus
// what needs the request): one compact JWS, typ dpop+jwt, an allowed asymmetric alg, a
// public jwk that verifies the signature, and the required claims present.
func parseDPoPProof(raw string) (*dpopProof, error) {
	if raw == "" || len(raw) > dpopMaxProofBytes || strings.Count(raw, ".") != 2 {
		return nil, errors.New("not a compact JWS")
	}
	jws, err := jose.ParseSignedCompact(raw, dpopAlgs)
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
	var cl dpopClaims
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
	return &dpopProof{JKT: base64.RawURLEncoding.EncodeToString(tp), JTI: cl.JTI, HTM: cl.HTM, HTU: cl.HTU,
		IAT: time.Unix(iat, 0), ATH: cl.ATH, Nonce: cl.Nonce}, nil
}

type dpopOptions struct {
	window time.Duration
	nonces bool
	now    func() time.Time
}

// dpopVerifier checks proofs against a request; it owns the jti replay cache and the
// nonce key.
type dpopVerifier struct {
	window   time.Duration
	nonces   bool
	now      func() time.Time
	nonceKey []byte

	mu   sync.Mutex
	seen map[string]time.Time // jkt|jti → when it may be forgotten
}

func newDPoPVerifier(o dpopOptions) (*dpopVerifier, error) {
	if o.window == 0 {
		o.window = dpopDefaultWindow
	}
	if o.window < 0 || o.window > 10*time.Minute {
		return nil, errors.New("proxy: the DPoP window must be between 0 and 10 minutes")
	}
	if o.now == nil {
		o.now = time.Now
	}
	v := &dpopVerifier{window: o.window, nonces: o.nonces, now: o.now, seen: map[string]time.Time{},
		nonceKey: make([]byte, 32)}
	if _, err := rand.Read(v.nonceKey); err != nil {
		return nil, err
	}
	return v, nil
}

// verify checks raw against the request (method, the URL it was sent to) and the
// presented key, for a key bound to jkt. The error is errInvalidDPoP or errUseNonce.
func (v *dpopVerifier) verify(raw, method, htu, apiKey, jkt string) error {
	p, err := parseDPoPProof(raw)
	if err != nil {
		return errInvalidDPoP.WithDetail(err.Error())
	}
	if subtle.ConstantTimeCompare([]byte(p.JKT), []byte(jkt)) != 1 {
		return errInvalidDPoP.WithDetail("the proof is signed by another key than the one bound to this API key")
	}
	if p.HTM != method {
		return errInvalidDPoP.WithDetail("htm does not match the request method")
	}
	if !sameHTU(p.HTU, htu) {
		return errInvalidDPoP.WithDetail("htu does not match the request URL")
	}
	sum := sha256.Sum256([]byte(apiKey))
	want := base64.RawURLEncoding.EncodeToString(sum[:])
	if p.ATH == "" || subtle.ConstantTimeCompare([]byte(p.ATH), []byte(want)) != 1 {
		return errInvalidDPoP.WithDetail("ath does not match the API key")
	}
	now := v.now()
	if d := now.Sub(p.IAT); d > v.window || d < -v.window {
		return errInvalidDPoP.WithDetail("iat is outside the accepted window")
	}
	if v.nonces && !v.validNonce(p.Nonce, now) {
		return errUseNonce.WithDetail("use the nonce in the DPoP-Nonce header")
	}
	return v.remember(p.JKT+"|"+p.JTI, now)
}

// remember records a jti until its proof can no longer be accepted; a repeat is refused.
// When the cache is full of live entries it fails closed.
func (v *dpopVerifier) remember(id string, now time.Time) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if exp, ok := v.seen[id]; ok && now.Before(exp) {
		return errInvalidDPoP.WithDetail("the proof's jti was used before")
	}
	if len(v.seen) >= dpopReplayMax {
		for k, exp := range v.seen {
			if !now.Before(exp) {
				delete(v.seen, k)
			}
		}
		if len(v.seen) >= dpopReplayMax {
			return errInvalidDPoP.WithDetail("too many proofs in flight; retry shortly")
		}
	}
	// iat may be up to window in the future, and is accepted until window after: keep the
	// jti for twice the window from now.
	v.seen[id] = now.Add(2 * v.window)
	return nil
}

// nonce returns the current server nonce: the period number and an HMAC of it, so any
// replica with the key checks it without state (a replica has its own key: behind a load
// balancer without stickiness, a client re-fetches the nonce after use_dpop_nonce).
func (v *dpopVerifier) nonce(now time.Time) string {
	return v.nonceFor(now.Unix() / int64(dpopNoncePeriod/time.Second))
}

func (v *dpopVerifier) nonceFor(period int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(period))
	m := hmac.New(sha256.New, v.nonceKey)
	m.Write(b[:])
	return base64.RawURLEncoding.EncodeToString(append(b[:], m.Sum(nil)[:16]...))
}

func (v *dpopVerifier) validNonce(n string, now time.Time) bool {
	cur := now.Unix() / int64(dpopNoncePeriod/time.Second)
	for _, p := range []int64{cur, cur - 1} {
		if hmac.Equal([]byte(n), []byte(v.nonceFor(p))) {
			return true
		}
	}
	return false
}

// sameHTU compares htu claims after RFC 3986 syntax- and scheme-based normalisation
// (case of scheme and host, default ports, empty path), ignoring query and fragment.
func sameHTU(claim, want string) bool {
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

// jktCache remembers each API key's DPoP binding (immutable once the key exists), so the
// hot path reads it from the database once per key and replica.
type jktCache struct {
	max int
	mu  sync.RWMutex
	m   map[string]string
}

func newJKTCache(max int) *jktCache { return &jktCache{max: max, m: map[string]string{}} }

func (c *jktCache) get(ctx context.Context, st *store.Store, keyID string) (string, error) {
	c.mu.RLock()
	jkt, ok := c.m[keyID]
	c.mu.RUnlock()
	if ok {
		return jkt, nil
	}
	jkt, err := st.APIKeyDPoPJKT(ctx, keyID)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[keyID] = jkt
	c.mu.Unlock()
	return jkt, nil
}

// checkDPoP runs after authenticate: a key bound to a DPoP key needs a valid proof.
// Keys without a binding pass untouched.
func (s *Server) checkDPoP(c *gin.Context) {
	p, ok := principalOf(c)
	if !ok {
		c.Next()
		return
	}
	jkt, err := s.edge.jkts.get(c.Request.Context(), s.store, p.KeyID)
	if err != nil {
		fail(c, err)
		return
	}
	if jkt == "" {
		c.Next()
		return
	}
	v := s.edge.dpop
	if v.nonces {
		c.Header("DPoP-Nonce", v.nonce(v.now()))
	}
	proofs := c.Request.Header.Values("DPoP")
	raw, _ := presentedKey(c.GetHeader("Authorization"))
	var verr error
	if len(proofs) != 1 {
		verr = errInvalidDPoP.WithDetail("exactly one DPoP header is required")
	} else {
		verr = v.verify(proofs[0], c.Request.Method, s.cfg.PublicURL+c.Request.URL.EscapedPath(), raw, jkt)
	}
	if verr != nil {
		code := errInvalidDPoP.Code
		if errors.Is(verr, errUseNonce) {
			code = errUseNonce.Code
		}
		c.Header("WWW-Authenticate", `DPoP error="`+code+`", algs="ES256 ES384 EdDSA RS256 PS256"`)
		fail(c, verr)
		return
	}
	c.Next()
}

// presentedKey returns the key of an Authorization header with the Bearer or DPoP scheme.
func presentedKey(h string) (string, bool) {
	if k, ok := bearer(h); ok {
		return k, true
	}
	const prefix = "DPoP "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(h[len(prefix):]), true
}

// validJKT reports whether s looks like a SHA-256 JWK thumbprint (43 base64url characters).
func validJKT(s string) bool {
	if len(s) != 43 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == sha256.Size
}
