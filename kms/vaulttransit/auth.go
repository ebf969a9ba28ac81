package vaulttransit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/authpipe/authpipe-proxy/kms"
)

// The environment this backend reads (through the LookupEnv option, os.LookupEnv by
// default). VAULT_ADDR is not read: the address is the URI's.
const (
	EnvToken            = "VAULT_TOKEN"
	EnvRoleID           = "VAULT_ROLE_ID"
	EnvSecretID         = "VAULT_SECRET_ID"
	EnvAppRoleMount     = "VAULT_APPROLE_MOUNT" // default "approle"
	EnvK8sRole          = "VAULT_K8S_ROLE"
	EnvK8sMount         = "VAULT_K8S_MOUNT"      // default "kubernetes"
	EnvK8sTokenPath     = "VAULT_K8S_TOKEN_PATH" // default DefaultK8sTokenPath
	EnvNamespace        = "VAULT_NAMESPACE"      // must agree with the URI's namespace if set
	EnvCACert           = api.EnvVaultCACert
	EnvCACertBytes      = api.EnvVaultCACertBytes
	EnvCAPath           = api.EnvVaultCAPath
	EnvClientCert       = api.EnvVaultClientCert
	EnvClientKey        = api.EnvVaultClientKey
	EnvTLSServerName    = api.EnvVaultTLSServerName
	EnvSkipVerify       = api.EnvVaultSkipVerify // refused when true
	DefaultK8sTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"
)

// LookupEnv has the signature of os.LookupEnv.
type LookupEnv func(key string) (string, bool)

// authMethod is how the backend gets a Vault token: a static one, or a login that is
// repeated when the token nears the end of its TTL or Vault answers 403.
type authMethod interface {
	// name is for messages ("token", "approle", "kubernetes").
	name() string
	// login returns the login path and body; nil for a static token.
	loginRequest() (path string, body map[string]any, err error)
}

type staticToken struct{}

func (staticToken) name() string                                  { return "token" }
func (staticToken) loginRequest() (string, map[string]any, error) { return "", nil, nil }

type appRole struct{ mount, roleID, secretID string }

func (appRole) name() string { return "approle" }
func (a appRole) loginRequest() (string, map[string]any, error) {
	return "auth/" + a.mount + "/login", map[string]any{"role_id": a.roleID, "secret_id": a.secretID}, nil
}

type kubernetes struct{ mount, role, tokenPath string }

func (kubernetes) name() string { return "kubernetes" }

// loginRequest re-reads the service account token every time: projected tokens rotate.
func (k kubernetes) loginRequest() (string, map[string]any, error) {
	f, err := os.Open(k.tokenPath)
	if err != nil {
		return "", nil, fmt.Errorf("%w: kubernetes service account token: %w", kms.ErrUnavailable, err)
	}
	defer f.Close()
	jwt, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return "", nil, fmt.Errorf("%w: kubernetes service account token: %w", kms.ErrUnavailable, err)
	}
	s := strings.TrimSpace(string(jwt))
	if s == "" {
		return "", nil, fmt.Errorf("%w: kubernetes service account token file %s is empty", kms.ErrUnavailable, k.tokenPath)
	}
	return "auth/" + k.mount + "/login", map[string]any{"role": k.role, "jwt": s}, nil
}

// envConfig is what the environment says about auth and TLS.
type envConfig struct {
	method authMethod
	token  string // for staticToken only
	tls    api.TLSConfig
}

// readEnv validates the VAULT_* environment. Exactly one auth method must be configured:
// two would leave it to this code to guess which the operator meant.
func readEnv(lookup LookupEnv, t Target) (envConfig, error) {
	get := func(k string) string {
		v, _ := lookup(k)
		return strings.TrimSpace(v)
	}
	bad := func(format string, args ...any) (envConfig, error) {
		return envConfig{}, fmt.Errorf("%w: vault-transit: "+format, append([]any{kms.ErrConfig}, args...)...)
	}
	var ec envConfig

	if v := get(EnvSkipVerify); v != "" {
		skip, err := strconv.ParseBool(v)
		if err != nil {
			return bad("%s=%q is not a boolean", EnvSkipVerify, v)
		}
		if skip {
			return bad("%s=true is refused: TLS to Vault is always verified (set %s to trust a private CA, or use ?tls=false for a plain-HTTP dev server)",
				EnvSkipVerify, EnvCACert)
		}
	}
	if ns := strings.Trim(get(EnvNamespace), "/"); ns != "" && ns != t.Namespace {
		return bad("%s=%q but the URI names namespace %q; put the namespace in the URI (?namespace=) so the KEK id records it",
			EnvNamespace, ns, t.Namespace)
	}

	var methods []string
	if tok := get(EnvToken); tok != "" {
		methods = append(methods, EnvToken)
		ec.method, ec.token = staticToken{}, tok
	}
	if roleID, secretID := get(EnvRoleID), get(EnvSecretID); roleID != "" || secretID != "" {
		if roleID == "" || secretID == "" {
			return bad("AppRole needs both %s and %s", EnvRoleID, EnvSecretID)
		}
		methods = append(methods, "AppRole ("+EnvRoleID+")")
		ec.method = appRole{mount: orDefault(get(EnvAppRoleMount), "approle"), roleID: roleID, secretID: secretID}
	}
	if role := get(EnvK8sRole); role != "" {
		methods = append(methods, "Kubernetes ("+EnvK8sRole+")")
		ec.method = kubernetes{
			mount:     orDefault(get(EnvK8sMount), "kubernetes"),
			role:      role,
			tokenPath: orDefault(get(EnvK8sTokenPath), DefaultK8sTokenPath),
		}
	}
	switch len(methods) {
	case 0:
		return bad("no Vault credentials: set %s, or %s and %s, or %s", EnvToken, EnvRoleID, EnvSecretID, EnvK8sRole)
	case 1:
	default:
		return bad("several Vault auth methods configured (%s); set exactly one", strings.Join(methods, ", "))
	}
	for _, m := range []string{get(EnvAppRoleMount), get(EnvK8sMount)} {
		for _, s := range strings.Split(m, "/") {
			if m != "" && !segment.MatchString(s) {
				return bad("bad auth mount %q", m)
			}
		}
	}

	ec.tls = api.TLSConfig{
		CACert:        get(EnvCACert),
		CACertBytes:   []byte(get(EnvCACertBytes)),
		CAPath:        get(EnvCAPath),
		ClientCert:    get(EnvClientCert),
		ClientKey:     get(EnvClientKey),
		TLSServerName: get(EnvTLSServerName),
	}
	if len(ec.tls.CACertBytes) == 0 {
		ec.tls.CACertBytes = nil
	}
	return ec, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// login runs the auth method's login and installs the token. Callers hold b.authMu.
func (b *Backend) login(ctx context.Context) error {
	path, body, err := b.auth.loginRequest()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	secret, err := b.loginClient.Logical().WriteWithContext(ctx, path, body)
	if err != nil {
		return b.classify("login ("+b.auth.name()+")", err)
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return fmt.Errorf("%w: vault-transit %s: %s login returned no token", kms.ErrUnavailable, b.id, b.auth.name())
	}
	b.client.SetToken(secret.Auth.ClientToken)
	b.tokenGen++
	b.refreshAt = time.Time{}
	if ttl := time.Duration(secret.Auth.LeaseDuration) * time.Second; ttl > 0 {
		// Log in again after two thirds of the TTL, well before Vault expires the token.
		b.refreshAt = b.now().Add(ttl * 2 / 3)
	}
	b.log.InfoContext(ctx, "vault-transit: logged in", "kek", b.id, "method", b.auth.name(),
		"ttl", time.Duration(secret.Auth.LeaseDuration)*time.Second)
	return nil
}

// ensureToken logs in when the method needs it and the token is missing or near expiry.
// It returns the token generation the caller's request will run with.
func (b *Backend) ensureToken(ctx context.Context) (uint64, error) {
	if _, static := b.auth.(staticToken); static {
		return 0, nil
	}
	b.authMu.Lock()
	defer b.authMu.Unlock()
	if b.tokenGen == 0 || (!b.refreshAt.IsZero() && !b.now().Before(b.refreshAt)) {
		if err := b.login(ctx); err != nil {
			return 0, err
		}
	}
	return b.tokenGen, nil
}

// relogin logs in again after a 403, unless another goroutine already has since gen.
// It reports whether a retry with a new token makes sense.
func (b *Backend) relogin(ctx context.Context, gen uint64) (bool, error) {
	if _, static := b.auth.(staticToken); static {
		return false, nil
	}
	b.authMu.Lock()
	defer b.authMu.Unlock()
	if b.tokenGen != gen {
		return true, nil
	}
	if err := b.login(ctx); err != nil {
		return false, err
	}
	return true, nil
}

var errNoSecret = errors.New("empty response")
