package controlplane_test

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/vault"
)

// boundaryTypes are every exported type of types.go that crosses to or from the control
// plane. TestBoundaryTypesAreListed keeps this list complete.
var boundaryTypes = []any{
	controlplane.Event{}, controlplane.Count{}, controlplane.ConfigDocument{}, controlplane.WorkspaceConfig{},
	controlplane.ProviderConfigDoc{}, controlplane.SignedConfig{}, controlplane.AuditCheckpoint{}, controlplane.Anomaly{},
}

// enumTypes are named string types whose values come from a fixed set of constants.
var enumTypes = map[reflect.Type]bool{
	reflect.TypeFor[controlplane.EventType]():   true,
	reflect.TypeFor[controlplane.Status]():      true,
	reflect.TypeFor[controlplane.ErrorCode]():   true,
	reflect.TypeFor[controlplane.Health]():      true,
	reflect.TypeFor[controlplane.AnomalyKind](): true,
}

// boundedStrings are the plain string fields allowed, each with the reason its content is
// bounded (and the check that bounds it at run time).
var boundedStrings = map[string]string{
	"Event.ID":                           "opaque id, idRE",
	"Event.WorkspaceID":                  "opaque id, idRE",
	"Event.ConnectionID":                 "opaque id, idRE",
	"Event.Provider":                     "provider key, providerKeyRE",
	"Event.Version":                      "build version, versionRE",
	"Event.DeploymentID":                 "deployment id, deploymentRE",
	"ConfigDocument.Audience":            "must equal this deployment's id (deploymentRE), checked in pull.go",
	"Count.WorkspaceID":                  "opaque id, idRE",
	"Count.Provider":                     "provider key, providerKeyRE",
	"WorkspaceConfig.WorkspaceID":        "opaque id, idRE",
	"ProviderConfigDoc.Key":              "provider key, providerKeyRE",
	"ProviderConfigDoc.Template":         "catalog name, providerKeyRE",
	"ProviderConfigDoc.AuthMode":         "enum oauth2|api_key",
	"ProviderConfigDoc.ClientID":         "public OAuth client id (RFC 6749 §2.2), ≤ 256 printable",
	"ProviderConfigDoc.Scopes":           "RFC 6749 scope-tokens, scopeRE",
	"ProviderConfigDoc.CallbackURLs":     "URL without query, checkQuerylessURL",
	"ProviderConfigDoc.ReturnURLs":       "URL without query, checkQuerylessURL",
	"ProviderConfigDoc.AuthorizationURL": "URL without query, checkQuerylessURL",
	"ProviderConfigDoc.TokenURL":         "URL without query, checkQuerylessURL",
	"ProviderConfigDoc.RefreshURL":       "URL without query, checkQuerylessURL",
	"ProviderConfigDoc.RevocationURL":    "URL without query, checkQuerylessURL",
	"ProviderConfigDoc.Issuer":           "URL without query, checkQuerylessURL",
	"ProviderConfigDoc.APIBaseURL":       "URL without query, checkQuerylessURL",
	"ProviderConfigDoc.HealthCheckURL":   "URL without query, checkQuerylessURL",
	"SignedConfig.KeyID":                 "must equal KeyIDOf(the pinned key), checked in pull.go",
	"AuditCheckpoint.Hash":               "hex SHA-256 of the chain head, chainHashRE",
	"AuditCheckpoint.EventID":            "opaque id, idRE",
	"AuditCheckpoint.KeyID":              "checkpoint key id, ckptKIDRE",
	"AuditCheckpoint.PublicKey":          "base64url Ed25519 public key, b64KeyRE",
	"AuditCheckpoint.Signature":          "base64url Ed25519 signature, b64SigRE",
	"Anomaly.APIKeyID":                   "opaque API key id (apk_…), idRE; never the key",
}

// reviewedNames are fields whose names look like a secret's but are not one: each is in
// boundedStrings or is a signed blob, with the reason.
var reviewedNames = map[string]string{
	"Event.ErrorCode":                    "enum ErrorCode, never provider text",
	"ProviderConfigDoc.Key":              "the provider's key in the workspace (a name), not key material",
	"ProviderConfigDoc.TokenURL":         "an endpoint URL without query",
	"SignedConfig.KeyID":                 "the id (hash prefix) of a public key",
	"SignedConfig.Payload":               "the signed ConfigDocument, itself walked here",
	"SignedConfig.Signature":             "an Ed25519 signature, public by design",
	"ProviderConfigDoc.AuthorizationURL": "an endpoint URL without query",
	"AuditCheckpoint.KeyID":              "the id of the checkpoint signing key, not key material",
	"AuditCheckpoint.PublicKey":          "an Ed25519 public key, published for verification",
	"Anomaly.APIKeyID":                   "the id of an API key (apk_…), not the key",
}

var suspicious = regexp.MustCompile(`(?i)token|secret|key|passw|code|state|verifier|body|cookie|credential|auth(?:orization)?header|query`)

// boundaryProblems walks a type recursively (structs, slices, arrays, maps, pointers) and
// reports a vault.Secret anywhere, a field named like a secret that nobody reviewed, a
// free-form string not documented as bounded, an interface or func (which could hold
// anything), an unexported field, or a byte slice other than the signed payload and its
// signature.
func boundaryProblems(v any) []string {
	secretT := reflect.TypeFor[vault.Secret]()
	timeT := reflect.TypeFor[time.Time]()
	allowedBytes := map[string]bool{"SignedConfig.Payload": true, "SignedConfig.Signature": true}
	var walk func(path string, typ reflect.Type, field string) []string
	walk = func(path string, typ reflect.Type, field string) []string {
		switch {
		case typ == secretT:
			return []string{path + ": is a vault.Secret"}
		case typ == timeT, enumTypes[typ]:
			return nil
		}
		switch typ.Kind() {
		case reflect.Slice, reflect.Array, reflect.Pointer:
			if typ.Kind() == reflect.Slice && typ.Elem().Kind() == reflect.Uint8 {
				if allowedBytes[field] {
					return nil
				}
				return []string{path + ": raw bytes"}
			}
			return walk(path+"[]", typ.Elem(), field)
		case reflect.Map:
			return append(walk(path+"{key}", typ.Key(), field), walk(path+"{}", typ.Elem(), field)...)
		case reflect.Interface, reflect.Func, reflect.Chan, reflect.UnsafePointer:
			return []string{path + ": " + typ.Kind().String() + " could carry anything"}
		case reflect.String:
			if _, ok := boundedStrings[field]; !ok {
				return []string{path + ": free-form string not documented as bounded"}
			}
			return nil
		case reflect.Struct:
			var bad []string
			for i := range typ.NumField() {
				f := typ.Field(i)
				name := typ.Name() + "." + f.Name
				if !f.IsExported() {
					bad = append(bad, path+"."+f.Name+": unexported field")
					continue
				}
				if suspicious.MatchString(f.Name) || suspicious.MatchString(f.Tag.Get("json")) {
					if _, ok := reviewedNames[name]; !ok {
						bad = append(bad, path+"."+f.Name+": named like a secret")
					}
				}
				bad = append(bad, walk(path+"."+f.Name, f.Type, name)...)
			}
			return bad
		}
		return nil // numbers and bools
	}
	typ := reflect.TypeOf(v)
	return walk(typ.Name(), typ, "")
}

func TestBoundaryTypes(t *testing.T) {
	for _, v := range boundaryTypes {
		t.Run(reflect.TypeOf(v).Name(), func(t *testing.T) {
			require.Empty(t, boundaryProblems(v))
		})
	}
}

// TestBoundaryWalkerCatchesLeaks proves the walker refuses what it must.
func TestBoundaryWalkerCatchesLeaks(t *testing.T) {
	type note struct{ Note string }
	type nested struct{ Creds map[string][]*vault.Secret }
	type named struct{ RefreshToken int }
	type tagged struct {
		N int `json:"auth_code"`
	}
	type anything struct{ Extra any }
	type raw struct{ Blob []byte }
	type hidden struct{ n int }
	for _, v := range []any{note{}, nested{}, named{}, tagged{}, anything{}, raw{}, hidden{n: 1}} {
		t.Run(reflect.TypeOf(v).Name(), func(t *testing.T) {
			require.NotEmpty(t, boundaryProblems(v))
		})
	}
}

// TestBoundaryTypesAreListed fails when types.go declares an exported struct type that
// boundaryTypes does not list.
func TestBoundaryTypesAreListed(t *testing.T) {
	listed := map[string]bool{}
	for _, v := range boundaryTypes {
		listed[reflect.TypeOf(v).Name()] = true
	}
	src := mustRead(t, "types.go")
	for _, m := range regexp.MustCompile(`(?m)^type ([A-Z]\w*) struct`).FindAllStringSubmatch(src, -1) {
		require.True(t, listed[m[1]], "types.go declares %s: add it to boundaryTypes", m[1])
	}
	require.False(t, strings.Contains(src, `"github.com/authpipe/authpipe-proxy/vault`), "types.go must not import the vault")
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

func TestProviderConfigDocRefusesURLsWithQueries(t *testing.T) {
	ok := controlplane.ProviderConfigDoc{Key: "github", Template: "github", ClientID: "Iv1.abc",
		Scopes: []string{"repo", "read:user"}, CallbackURLs: []string{"https://app.example.com/cb"},
		TokenURL: "https://github.com/login/oauth/access_token"}
	require.NoError(t, ok.Validate())
	for _, mode := range []string{"api_key", "basic", "oauth2_client_credentials", "jwt_bearer", "github_app"} {
		p := ok
		p.AuthMode = mode
		require.NoError(t, p.Validate(), "every auth mode of the API may be configured (the providers service checks its rules)")
	}
	for name, mut := range map[string]func(*controlplane.ProviderConfigDoc){
		"token url query":    func(p *controlplane.ProviderConfigDoc) { p.TokenURL = "https://x.example/t?client_secret=s" },
		"empty query":        func(p *controlplane.ProviderConfigDoc) { p.TokenURL = "https://x.example/t?" },
		"fragment":           func(p *controlplane.ProviderConfigDoc) { p.AuthorizationURL = "https://x.example/a#frag" },
		"userinfo":           func(p *controlplane.ProviderConfigDoc) { p.APIBaseURL = "https://u:p@x.example/" },
		"callback query":     func(p *controlplane.ProviderConfigDoc) { p.CallbackURLs = []string{"https://a.example/cb?code=1"} },
		"return query":       func(p *controlplane.ProviderConfigDoc) { p.ReturnURLs = []string{"https://a.example/r?state=1"} },
		"relative":           func(p *controlplane.ProviderConfigDoc) { p.HealthCheckURL = "/health" },
		"scheme":             func(p *controlplane.ProviderConfigDoc) { p.Issuer = "javascript:alert(1)" },
		"key":                func(p *controlplane.ProviderConfigDoc) { p.Key = "GitHub" },
		"auth mode":          func(p *controlplane.ProviderConfigDoc) { p.AuthMode = "saml" },
		"client id space":    func(p *controlplane.ProviderConfigDoc) { p.ClientID = "a b" },
		"scope with quote":   func(p *controlplane.ProviderConfigDoc) { p.Scopes = []string{`a"b`} },
		"client id too long": func(p *controlplane.ProviderConfigDoc) { p.ClientID = strings.Repeat("a", 257) },
	} {
		t.Run(name, func(t *testing.T) {
			p := ok
			p.Scopes = append([]string(nil), ok.Scopes...)
			mut(&p)
			require.Error(t, p.Validate())
			doc := controlplane.ConfigDocument{Version: 1, Workspaces: []controlplane.WorkspaceConfig{{WorkspaceID: "ws_default",
				Providers: []controlplane.ProviderConfigDoc{p}}}}
			require.Error(t, doc.Validate())
		})
	}
}

func TestEventValidate(t *testing.T) {
	at := time.Now()
	good := controlplane.Event{ID: "cpe_abc", Type: controlplane.EventConnectionRefreshFailed, At: at, WorkspaceID: "ws_default",
		ConnectionID: "conn_abc234", Provider: "google", Status: controlplane.StatusNeedsReauth, ErrorCode: controlplane.ErrorInvalidGrant}
	require.NoError(t, good.Validate())
	require.NoError(t, controlplane.Event{ID: "cpe_a", Type: controlplane.EventHeartbeat, At: at, Version: "v1.2.3", Health: controlplane.HealthOK}.Validate())
	for name, mut := range map[string]func(*controlplane.Event){
		"free-text error code": func(e *controlplane.Event) { e.ErrorCode = "invalid_grant: token ya29.abc expired" },
		"unknown type":         func(e *controlplane.Event) { e.Type = "token.read" },
		"provider with space":  func(e *controlplane.Event) { e.Provider = "google oauth" },
		"connection id text":   func(e *controlplane.Event) { e.ConnectionID = "ya29.a0AfH6SMB" },
		"status":               func(e *controlplane.Event) { e.Status = "revoke_pending" },
		"no id":                func(e *controlplane.Event) { e.ID = "" },
		"no time":              func(e *controlplane.Event) { e.At = time.Time{} },
		"version on event":     func(e *controlplane.Event) { e.Version = "1" },
		"version text": func(e *controlplane.Event) {
			e.Type, e.ConnectionID, e.Version = controlplane.EventHeartbeat, "", "sk_live abc"
		},
		"counts negative": func(e *controlplane.Event) {
			e.Type, e.ConnectionID = controlplane.EventCounts, ""
			e.Counts = []controlplane.Count{{WorkspaceID: "ws_default", Provider: "x", Status: controlplane.StatusActive, N: -1}}
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := good
			mut(&e)
			require.Error(t, e.Validate())
		})
	}
}

func TestAuditCheckpointEventValidate(t *testing.T) {
	cp := &controlplane.AuditCheckpoint{Seq: 7, Hash: strings.Repeat("ab", 32), EventID: "evt_abc234",
		At: time.Now(), KeyID: "ck_abc", PublicKey: strings.Repeat("A", 43), Signature: strings.Repeat("B", 86)}
	good := controlplane.Event{ID: "cpe_a", Type: controlplane.EventAuditCheckpoint, At: time.Now(),
		WorkspaceID: "ws_default", Checkpoint: cp}
	require.NoError(t, good.Validate())
	for name, mut := range map[string]func(e *controlplane.Event, c *controlplane.AuditCheckpoint){
		"no checkpoint":         func(e *controlplane.Event, _ *controlplane.AuditCheckpoint) { e.Checkpoint = nil },
		"checkpoint on another": func(e *controlplane.Event, _ *controlplane.AuditCheckpoint) { e.Type = controlplane.EventCounts },
		"hash text": func(_ *controlplane.Event, c *controlplane.AuditCheckpoint) {
			c.Hash = "sk_live_" + strings.Repeat("a", 56)
		},
		"signature text": func(_ *controlplane.Event, c *controlplane.AuditCheckpoint) {
			c.Signature = "ya29." + strings.Repeat("x", 81)
		},
		"key text": func(_ *controlplane.Event, c *controlplane.AuditCheckpoint) {
			c.PublicKey = "ap_" + strings.Repeat("x", 40) + "="
		},
		"connection id": func(e *controlplane.Event, _ *controlplane.AuditCheckpoint) { e.ConnectionID = "conn_abc" },
	} {
		t.Run(name, func(t *testing.T) {
			e, c := good, *cp
			e.Checkpoint = &c
			mut(&e, &c)
			require.Error(t, e.Validate())
		})
	}
}

// security.anomaly carries the finding's kind, an API key id or a provider key, counts and
// the window: nothing else passes.
func TestSecurityAnomalyEventValidate(t *testing.T) {
	good := controlplane.Event{ID: "cpe_a", Type: controlplane.EventSecurityAnomaly, At: time.Now(), WorkspaceID: "ws_default",
		Anomaly: &controlplane.Anomaly{Kind: controlplane.AnomalyKeyConnections, APIKeyID: "apk_abc234", Count: 3000, Baseline: 3,
			WindowSeconds: 60}}
	require.NoError(t, good.Validate())
	storm := controlplane.Event{ID: "cpe_b", Type: controlplane.EventSecurityAnomaly, At: time.Now(), WorkspaceID: "ws_default",
		ConnectionID: "conn_abc234", Provider: "google", Anomaly: &controlplane.Anomaly{Kind: controlplane.AnomalyRefreshStorm, Count: 40}}
	require.NoError(t, storm.Validate())
	for name, mut := range map[string]func(e *controlplane.Event, a *controlplane.Anomaly){
		"no anomaly":         func(e *controlplane.Event, _ *controlplane.Anomaly) { e.Anomaly = nil },
		"unknown kind":       func(_ *controlplane.Event, a *controlplane.Anomaly) { a.Kind = "203.0.113.9" },
		"key in the key id":  func(_ *controlplane.Event, a *controlplane.Anomaly) { a.APIKeyID = "ap_0123456789abcdefghij_-AB" },
		"negative count":     func(_ *controlplane.Event, a *controlplane.Anomaly) { a.Count = -1 },
		"anomaly on another": func(e *controlplane.Event, _ *controlplane.Anomaly) { e.Type = controlplane.EventConnectionRefreshed },
		"no workspace":       func(e *controlplane.Event, _ *controlplane.Anomaly) { e.WorkspaceID = "" },
		"error code":         func(e *controlplane.Event, _ *controlplane.Anomaly) { e.ErrorCode = controlplane.ErrorUnknown },
	} {
		t.Run(name, func(t *testing.T) {
			e, a := good, *good.Anomaly
			e.Anomaly = &a
			mut(&e, &a)
			require.Error(t, e.Validate())
		})
	}
}
