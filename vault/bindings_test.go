package vault

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

// TestBindingsEncodeAsStored pins the associated data of every binding constructor to
// the literal Binding it stands for: values already stored were sealed under these bytes,
// so a constructor that encodes differently would leave them unopenable.
func TestBindingsEncodeAsStored(t *testing.T) {
	header := []byte{EnvelopeV1, 5, 'd', 'e', 'k', '_', '1'}
	for name, tc := range map[string]struct {
		got, stored Binding
	}{
		"access token":   {AccessTokenBinding("ws_1", "conn_1", nil), Binding{WorkspaceID: "ws_1", OwnerID: "conn_1", Field: "access_token"}},
		"refresh token":  {RefreshTokenBinding("ws_1", "conn_1", nil), Binding{WorkspaceID: "ws_1", OwnerID: "conn_1", Field: "refresh_token"}},
		"api key":        {APIKeyBinding("ws_1", "conn_1", nil), Binding{WorkspaceID: "ws_1", OwnerID: "conn_1", Field: "api_key"}},
		"grant secret":   {GrantSecretBinding("ws_1", "conn_1", nil), Binding{WorkspaceID: "ws_1", OwnerID: "conn_1", Field: "grant_secret"}},
		"pkce verifier":  {PKCEVerifierBinding("ws_1", "cs_1", nil), Binding{WorkspaceID: "ws_1", OwnerID: "cs_1", Field: "pkce_verifier"}},
		"client secret":  {ClientSecretBinding("ws_1", "prov_1", nil), Binding{WorkspaceID: "ws_1", OwnerID: "prov_1", Field: "client_secret"}},
		"webhook secret": {WebhookSecretBinding("ws_1"), Binding{WorkspaceID: "ws_1", OwnerID: "ws_1", Field: "webhook_secret"}},
		"provider webhook secret": {ProviderWebhookSecretBinding("ws_1", "conn_1"),
			Binding{WorkspaceID: "ws_1", OwnerID: "conn_1", Field: "provider_webhook_secret"}},
		"proxy key": {ProxyKeyBinding("pk_state_1"), Binding{WorkspaceID: "_system", OwnerID: "pk_state_1", Field: "key"}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := tc.got.validate(); err != nil {
				t.Fatalf("constructor yields an invalid binding: %v", err)
			}
			for _, purpose := range []Purpose{PurposeCredentials, PurposeClientSecrets} {
				got := appendAAD(nil, header, purpose, tc.got)
				want := appendAAD(nil, header, purpose, tc.stored)
				if !bytes.Equal(got, want) {
					t.Fatalf("%s: associated data %x, stored values use %x", purpose, got, want)
				}
			}
		})
	}
}

// lp is the length-prefixed encoding, written out here independently of appendLP.
func lp(parts ...string) []byte {
	var out []byte
	for _, p := range parts {
		out = binary.BigEndian.AppendUint32(out, uint32(len(p)))
		out = append(out, p...)
	}
	return out
}

// An unbound binding (a value stored before origin binding) encodes exactly as before:
// header, workspace, owner, field, purpose, nothing more; a bound one appends "origins"
// and each origin, so the two never collide, nor do two different sets of origins.
func TestOriginBindingAAD(t *testing.T) {
	header := []byte{EnvelopeV1, 5, 'd', 'e', 'k', '_', '1'}
	legacy := append(lp(string(header)), lp("ws_1", "conn_1", "access_token", string(PurposeCredentials))...)
	if got := appendAAD(nil, header, PurposeCredentials, AccessTokenBinding("ws_1", "conn_1", nil)); !bytes.Equal(got, legacy) {
		t.Fatalf("unbound binding: %x, stored values use %x", got, legacy)
	}
	o := NewOrigins("https://api.github.com/user", "https://GITHUB.com:443/login/oauth")
	want := append(append([]byte(nil), legacy...), lp("origins", "https://api.github.com:443", "https://github.com:443")...)
	if got := appendAAD(nil, header, PurposeCredentials, AccessTokenBinding("ws_1", "conn_1", o)); !bytes.Equal(got, want) {
		t.Fatalf("bound binding: %x, want %x", got, want)
	}
	seen := map[string]string{}
	for name, b := range map[string]Origins{"unbound": nil, "bound to nothing": NewOrigins(), "one": NewOrigins("https://a.example"),
		"other": NewOrigins("https://b.example"), "two": NewOrigins("https://a.example", "https://b.example"),
		"port": NewOrigins("https://a.example:8443")} {
		aad := string(appendAAD(nil, header, PurposeCredentials, AccessTokenBinding("ws_1", "conn_1", b)))
		if prev, dup := seen[aad]; dup {
			t.Fatalf("%s and %s encode alike", name, prev)
		}
		seen[aad] = name
	}
}

func TestNewOriginsCanonical(t *testing.T) {
	got := NewOrigins("https://B.example/x", "", "https://a.example:443/y?z", "http://a.example", "https://b.example:443/",
		"https://{shop}.example.com", "ftp://a.example", "not a url")
	want := Origins{"http://a.example:80", "https://a.example:443", "https://b.example:443"}
	if len(got) != len(want) {
		t.Fatalf("NewOrigins = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("NewOrigins = %q, want %q", got, want)
		}
	}
	if NewOrigins() == nil || !NewOrigins().Bound() {
		t.Fatal("a binding to no origin is still a binding")
	}
}

type recorder struct{ evs []audit.Event }

func (r *recorder) AppendEvents(_ context.Context, evs ...audit.Event) error {
	r.evs = append(r.evs, evs...)
	return nil
}

// The one check: the destination's origin must be in every binding the call carries; an
// unbound credential is refused too (fail closed until the binding migration binds it);
// each refusal is one credential.binding_refused event without a secret.
func TestCheckOrigin(t *testing.T) {
	ctx := context.Background()
	api, tok := NewOrigins("https://api.example.com"), NewOrigins("https://auth.example.com")
	use := Use{WorkspaceID: "ws_1", ConnectionID: "conn_1", Actor: "refresher", Purpose: UseRefresh}
	rec := &recorder{}
	if err := CheckOrigin(ctx, rec, use, "https://API.example.com:443/v1/x", api); err != nil {
		t.Fatalf("same origin refused: %v", err)
	}
	for name, tc := range map[string]struct {
		dest  string
		bound []Origins
	}{
		"other host":         {"https://evil.example/token", []Origins{api}},
		"other port":         {"https://api.example.com:8443/", []Origins{api}},
		"other scheme":       {"http://api.example.com/", []Origins{api}},
		"one binding of two": {"https://auth.example.com/token", []Origins{tok, api}},
		"unbound":            {"https://api.example.com/", []Origins{nil}},
		"bound to nothing":   {"https://api.example.com/", []Origins{NewOrigins()}},
		"no origin at all":   {"", []Origins{api}},
		"placeholder url":    {"https://{x}.example.com/", []Origins{api}},
	} {
		t.Run(name, func(t *testing.T) {
			n := len(rec.evs)
			err := CheckOrigin(ctx, rec, use, tc.dest, tc.bound...)
			if !errors.Is(err, ErrOriginNotBound) {
				t.Fatalf("not refused: %v", err)
			}
			if len(rec.evs) != n+1 || rec.evs[n].Type != audit.BindingRefused || rec.evs[n].ConnectionID != "conn_1" ||
				rec.evs[n].WorkspaceID != "ws_1" || rec.evs[n].Outcome != audit.Failure {
				t.Fatalf("audit: %+v", rec.evs[n:])
			}
		})
	}
}
