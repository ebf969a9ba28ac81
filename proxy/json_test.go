package proxy

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/authpipe/authpipe-proxy/vault/store"

	rq "github.com/stretchr/testify/require"
)

func TestTokenResponseJSON(t *testing.T) {
	at := time.Date(2026, 11, 23, 20, 1, 2, 345000000, time.UTC)
	whole := time.Date(2026, 11, 23, 20, 1, 2, 0, time.FixedZone("x", 3600))
	tests := []struct {
		name string
		r    tokenResponse
	}{
		{"oauth", tokenResponse{ConnectionID: "con_1", CredentialType: "oauth2", AccessToken: "ya29.a0-_~+/=",
			TokenType: "Bearer", ExpiresAt: &at, Scopes: []string{"read", "write"}}},
		{"api key, empty scopes", tokenResponse{ConnectionID: "con_2", CredentialType: "api_key", APIKey: "sk_live", Scopes: []string{}}},
		{"basic", tokenResponse{ConnectionID: "con_3", CredentialType: "basic", Username: "ann@example.com",
			Password: "p\"w<é>", Scopes: []string{}}},
		{"nil scopes, zone", tokenResponse{ConnectionID: "c", CredentialType: "oauth2", ExpiresAt: &whole}},
		{"escapes", tokenResponse{ConnectionID: "a\"b\\c\n\r\t\b\f\x00\x1f\x7f<>&", CredentialType: "é\u2028\u2029😀",
			AccessToken: "bad\xffutf8\xc3", Scopes: []string{"", "<script>"}}},
		{"metadata", tokenResponse{ConnectionID: "c", CredentialType: "oauth2", AccessToken: "t", Scopes: []string{},
			Metadata: rawJSON(store.JSONObject(map[string]string{"instance_url": "https://a.my.salesforce.com", "x": "<&>"}))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.Marshal(tt.r)
			rq.NoError(t, err)
			rq.Equal(t, string(want), string(tt.r.appendJSON(nil)))
		})
	}
}
