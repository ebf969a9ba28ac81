package oauthtest

// MTLSServer: an authorization server for mutual-TLS client authentication
// (tls_client_auth, RFC 8705 section 2.1). Its TLS listener asks every client for a
// certificate; the fosite server behind it authenticates a tls_client_auth client by the
// peer certificate alone: the chain must verify to the server's client CA for client
// authentication, and the leaf must carry the subject DN or SAN registered for the
// client_id (RFC 8705 section 2.1.2). No certificate, another CA's, a registered CA's
// with another name, or a client secret or assertion as well, is refused with
// invalid_client (several methods at once: invalid_request, RFC 6749 section 2.3). It
// serves the client credentials grant (RFC 6749 section 4.4) and introspection.

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/storage"

	"github.com/authpipe/authpipe-proxy/internal/tlsutil/tlstest"
)

// MTLSOptions configure an MTLSServer. Zero values get the defaults documented per field.
type MTLSOptions struct {
	ClientID string   // default "mtls-client"
	Scopes   []string // the client may ask for (default "read", "write")
	// SubjectDN is the registered tls_client_auth_subject_dn (RFC 4514, as Go's
	// pkix.Name.String prints it); default "CN=" + ClientID. SANDNS and SANURI register
	// tls_client_auth_san_dns / _san_uri instead (the first one set wins).
	SubjectDN, SANDNS, SANURI string
	// AccessTokenLifespan defaults to one hour.
	AccessTokenLifespan time.Duration
}

// MTLSServer is a running mutual-TLS authorization server.
type MTLSServer struct {
	URL string

	opts     MTLSOptions
	provider fosite.OAuth2Provider
	store    *storage.MemoryStore
	http     *httptest.Server
	serverCA *tlstest.CA // issued the listener's certificate (RootCAs)
	clientCA *tlstest.CA // the trust anchor of client certificates

	tokenCalls atomic.Int64
	mu         sync.Mutex
	reg        MTLSOptions         // the registration (SetRegistration)
	lastForm   map[string][]string // the last token request's form
	lastPeer   string              // the subject of the last token request's certificate ("" none)
}

// NewMTLS starts a server; it is closed when the test ends.
func NewMTLS(t testing.TB, opts MTLSOptions) *MTLSServer {
	t.Helper()
	if opts.ClientID == "" {
		opts.ClientID = "mtls-client"
	}
	if len(opts.Scopes) == 0 {
		opts.Scopes = []string{"read", "write"}
	}
	if opts.SubjectDN == "" && opts.SANDNS == "" && opts.SANURI == "" {
		opts.SubjectDN = "CN=" + opts.ClientID
	}
	if opts.AccessTokenLifespan == 0 {
		opts.AccessTokenLifespan = time.Hour
	}
	global := make([]byte, 32)
	if _, err := rand.Read(global); err != nil {
		t.Fatal(err)
	}
	s := &MTLSServer{opts: opts, reg: opts, serverCA: tlstest.NewCA(t, "mtls server CA"), clientCA: tlstest.NewCA(t, "mtls client CA")}
	st := storage.NewMemoryStore()
	s.store = st
	st.Clients[opts.ClientID] = &fosite.DefaultOpenIDConnectClient{
		DefaultClient: &fosite.DefaultClient{ID: opts.ClientID, GrantTypes: []string{"client_credentials"}, Scopes: opts.Scopes},
		// RFC 8705 section 2.1.1's registration value; the strategy below checks it.
		TokenEndpointAuthMethod: "tls_client_auth",
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/token", s.token)
	s.http = httptest.NewUnstartedServer(mux)
	s.http.TLS = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{s.serverCA.Server(t).TLS},
		// Ask, verify in the authenticator: a missing or wrong certificate is an OAuth
		// invalid_client, not a failed handshake (RFC 8705 section 2).
		ClientAuth: tls.RequestClientCert,
	}
	s.http.StartTLS()
	t.Cleanup(s.http.Close)
	s.URL = s.http.URL
	cfg := &fosite.Config{
		AccessTokenLifespan:          opts.AccessTokenLifespan,
		GlobalSecret:                 global,
		TokenURL:                     s.URL + "/token",
		ClientAuthenticationStrategy: s.authenticate,
	}
	s.provider = compose.Compose(cfg, st, compose.NewOAuth2HMACStrategy(cfg),
		compose.OAuth2ClientCredentialsGrantFactory, compose.OAuth2TokenIntrospectionFactory)
	return s
}

// TokenURL is the token endpoint.
func (s *MTLSServer) TokenURL() string { return s.URL + "/token" }

// ClientID is the registered tls_client_auth client.
func (s *MTLSServer) ClientID() string { return s.opts.ClientID }

// RootCAs verify the listener's certificate (issued for 127.0.0.1 and localhost), for
// outbound.Policy.RootCAs.
func (s *MTLSServer) RootCAs() *x509.CertPool { return s.serverCA.Pool() }

// RootCAFile writes the CA of the listener's certificate to a file of the test's temporary
// directory (for AUTHPIPE_OUTBOUND_CA_FILE) and returns its path.
func (s *MTLSServer) RootCAFile(t testing.TB) string {
	t.Helper()
	return s.serverCA.WriteFile(t, t.TempDir(), "mtls-server-ca")
}

// Client is a plain HTTP client that trusts the listener and presents no certificate.
func (s *MTLSServer) Client() *http.Client {
	return &http.Client{Timeout: 10 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: s.RootCAs()}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// ClientCertificate issues a certificate for client authentication with common name cn
// (and the given URI SANs) from the server's client CA, valid for an hour, and returns
// the PEM bundle a tls_client_auth client secret holds: the leaf, the CA, the PKCS #8 key.
func (s *MTLSServer) ClientCertificate(t testing.TB, cn string, uris ...string) []byte {
	t.Helper()
	return Bundle(s.clientCA.Client(t, cn, uris...))
}

// RegisteredCertificate is ClientCertificate for the registered subject (CN=ClientID
// unless SubjectDN, SANDNS or SANURI say otherwise, in which case use ClientCertificate).
func (s *MTLSServer) RegisteredCertificate(t testing.TB) []byte {
	t.Helper()
	return s.ClientCertificate(t, s.opts.ClientID)
}

// Bundle is a leaf's tls_client_auth PEM bundle: its chain, then its key.
func Bundle(l *tlstest.Leaf) []byte { return append(slices.Clone(l.CertPEM), l.KeyPEM...) }

// SetSubjectDN registers dn as the client's subject DN from now on (a certificate
// rotation at the provider: the old certificate is refused with invalid_client).
func (s *MTLSServer) SetSubjectDN(dn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reg.SubjectDN, s.reg.SANDNS, s.reg.SANURI = dn, "", ""
}

// TokenCalls counts requests to the token endpoint (refused ones too).
func (s *MTLSServer) TokenCalls() int64 { return s.tokenCalls.Load() }

// LastTokenForm is the form of the last token request.
func (s *MTLSServer) LastTokenForm() map[string][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastForm
}

// LastPeerSubject is the subject DN of the certificate the last token request came with
// ("" when it came with none).
func (s *MTLSServer) LastPeerSubject() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastPeer
}

// Active reports whether token is a valid access token of this server.
func (s *MTLSServer) Active(ctx context.Context, token string) bool {
	_, _, err := s.provider.IntrospectToken(ctx, token, fosite.AccessToken, new(fosite.DefaultSession))
	return err == nil
}

func (s *MTLSServer) token(w http.ResponseWriter, r *http.Request) {
	s.tokenCalls.Add(1)
	ctx := r.Context()
	peer := ""
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		peer = r.TLS.PeerCertificates[0].Subject.String()
	}
	if err := r.ParseForm(); err == nil {
		s.mu.Lock()
		s.lastForm, s.lastPeer = r.PostForm, peer
		s.mu.Unlock()
	}
	ar, err := s.provider.NewAccessRequest(ctx, r, new(fosite.DefaultSession))
	if err != nil {
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	for _, sc := range ar.GetRequestedScopes() {
		ar.GrantScope(sc)
	}
	resp, err := s.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		s.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	s.provider.WriteAccessResponse(ctx, w, ar, resp)
}

// authenticate is fosite's ClientAuthenticationStrategy: tls_client_auth by the peer
// certificate (RFC 8705 section 2.1).
func (s *MTLSServer) authenticate(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	if _, _, basic := r.BasicAuth(); basic || form.Get("client_secret") != "" || form.Get("client_assertion") != "" {
		return nil, fosite.ErrInvalidRequest.WithHint("A tls_client_auth client uses no other client authentication.")
	}
	id := form.Get("client_id")
	c, err := s.store.GetClient(ctx, id)
	if id == "" || err != nil {
		return nil, fosite.ErrInvalidClient.WithHint("Unknown client.")
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return nil, fosite.ErrInvalidClient.WithHint("No client certificate.")
	}
	leaf, inter := r.TLS.PeerCertificates[0], x509.NewCertPool()
	for _, c := range r.TLS.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: s.clientCA.Pool(), Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, fosite.ErrInvalidClient.WithHint("The client certificate does not verify.")
	}
	s.mu.Lock()
	reg := s.reg
	s.mu.Unlock()
	var ok bool
	switch {
	case reg.SubjectDN != "":
		ok = leaf.Subject.String() == reg.SubjectDN
	case reg.SANDNS != "":
		ok = slices.Contains(leaf.DNSNames, reg.SANDNS)
	case reg.SANURI != "":
		ok = slices.ContainsFunc(leaf.URIs, func(u *url.URL) bool { return u.String() == reg.SANURI })
	}
	if !ok {
		return nil, fosite.ErrInvalidClient.WithHint("The client certificate is not the one registered for this client.")
	}
	return c, nil
}
