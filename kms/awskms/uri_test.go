package awskms_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/awskms"
)

const (
	keyID    = "1234abcd-12ab-34cd-56ef-1234567890ab"
	keyARN   = "arn:aws:kms:us-east-2:111122223333:key/" + keyID
	aliasARN = "arn:aws:kms:eu-west-1:111122223333:alias/authpipe/prod-credentials"
)

func TestParseURI(t *testing.T) {
	good := []struct {
		name, uri string
		want      awskms.Config
	}{
		{"key id", "awskms://" + keyID, awskms.Config{Key: keyID}},
		{"multi-region key id", "awskms://mrk-1234abcd12ab34cd56ef1234567890ab?region=us-west-2",
			awskms.Config{Key: "mrk-1234abcd12ab34cd56ef1234567890ab", Region: "us-west-2"}},
		{"alias", "awskms://alias/authpipe_kek-1?region=eu-west-3", awskms.Config{Key: "alias/authpipe_kek-1", Region: "eu-west-3"}},
		{"key ARN: region from the ARN", "awskms://" + keyARN, awskms.Config{Key: keyARN, Region: "us-east-2"}},
		{"alias ARN with nested name", "awskms://" + aliasARN, awskms.Config{Key: aliasARN, Region: "eu-west-1"}},
		{"ARN with agreeing region", "awskms://" + keyARN + "?region=us-east-2", awskms.Config{Key: keyARN, Region: "us-east-2"}},
		{"GovCloud partition", "awskms://arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/" + keyID,
			awskms.Config{Key: "arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/" + keyID, Region: "us-gov-west-1"}},
		{"VPC endpoint", "awskms://" + keyARN + "?endpoint=https://vpce-0abc-kms.us-east-2.vpce.amazonaws.com",
			awskms.Config{Key: keyARN, Region: "us-east-2", Endpoint: "https://vpce-0abc-kms.us-east-2.vpce.amazonaws.com"}},
		{"local test endpoint", "awskms://alias/x?region=us-east-1&endpoint=http://127.0.0.1:4566",
			awskms.Config{Key: "alias/x", Region: "us-east-1", Endpoint: "http://127.0.0.1:4566"}},
		{"escaped endpoint", "awskms://alias/x?region=us-east-1&endpoint=http%3A%2F%2Flocalhost%3A8080",
			awskms.Config{Key: "alias/x", Region: "us-east-1", Endpoint: "http://localhost:8080"}},
		{"IPv6 loopback", "awskms://alias/x?endpoint=http://[::1]:9000", awskms.Config{Key: "alias/x", Endpoint: "http://[::1]:9000"}},
	}
	for _, tc := range good {
		t.Run(tc.name, func(t *testing.T) {
			got, err := awskms.ParseURI(tc.uri)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}

	bad := map[string]string{
		"empty":                  "",
		"other scheme":           "local:///tmp/k",
		"one slash":              "awskms:/" + keyID,
		"no key":                 "awskms://",
		"no key, query":          "awskms://?region=us-east-1",
		"space in key":           "awskms://my key",
		"alias without a name":   "awskms://alias/",
		"alias with a dot":       "awskms://alias/a.b",
		"key path":               "awskms://keys/" + keyID,
		"fragment":               "awskms://" + keyID + "#x",
		"ARN of another service": "awskms://arn:aws:s3:us-east-1:111122223333:key/" + keyID,
		"ARN without region":     "awskms://arn:aws:kms::111122223333:key/" + keyID,
		"ARN short account":      "awskms://arn:aws:kms:us-east-1:1111:key/" + keyID,
		"ARN bad resource":       "awskms://arn:aws:kms:us-east-1:111122223333:secret/" + keyID,
		"ARN empty key":          "awskms://arn:aws:kms:us-east-1:111122223333:key/",
		"ARN too few parts":      "awskms://arn:aws:kms:us-east-1",
		"ARN region conflict":    "awskms://" + keyARN + "?region=us-west-2",
		"unknown parameter":      "awskms://" + keyID + "?profile=prod",
		"repeated region":        "awskms://" + keyID + "?region=us-east-1&region=us-east-1",
		"empty region":           "awskms://" + keyID + "?region=",
		"upper-case region":      "awskms://" + keyID + "?region=US-EAST-1",
		"bad query escape":       "awskms://" + keyID + "?region=%zz",
		"plain http off-host":    "awskms://" + keyID + "?endpoint=http://kms.internal:80",
		"endpoint without host":  "awskms://" + keyID + "?endpoint=https://",
		"endpoint relative":      "awskms://" + keyID + "?endpoint=/kms",
		"endpoint other scheme":  "awskms://" + keyID + "?endpoint=ftp://127.0.0.1",
		"endpoint credentials":   "awskms://" + keyID + "?endpoint=https://u:p@kms.example.com",
		"endpoint query":         "awskms://" + keyID + "?endpoint=https://kms.example.com/%3Fa=b",
		"endpoint path":          "awskms://" + keyID + "?endpoint=https://kms.example.com/kms",
		"key too long":           "awskms://alias/" + strings.Repeat("a", 2100),
	}
	for name, uri := range bad {
		t.Run("rejects "+name, func(t *testing.T) {
			_, err := awskms.ParseURI(uri)
			require.ErrorIs(t, err, kms.ErrConfig)
		})
	}
}

func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"awskms://" + keyID, "awskms://alias/a/b?region=us-east-1", "awskms://" + keyARN, "awskms://" + aliasARN + "?region=eu-west-1",
		"awskms://alias/x?endpoint=http://127.0.0.1:1&region=x", "awskms://arn:aws:kms:a:111122223333:key/", "awskms://?#",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		cfg, err := awskms.ParseURI(uri)
		if err != nil {
			require.ErrorIs(t, err, kms.ErrConfig)
			return
		}
		require.NotEmpty(t, cfg.Key)
		require.NotContains(t, cfg.Key, "?")
		require.NotContains(t, cfg.Key, "#")
		require.True(t, strings.HasPrefix(uri, "awskms://"+cfg.Key))
		if cfg.Endpoint != "" {
			require.True(t, strings.HasPrefix(cfg.Endpoint, "https://") || strings.HasPrefix(cfg.Endpoint, "http://"))
		}
		// What was parsed parses again to the same thing (the URI is canonicalisable).
		q := url.Values{}
		if cfg.Region != "" {
			q.Set("region", cfg.Region)
		}
		if cfg.Endpoint != "" {
			q.Set("endpoint", cfg.Endpoint)
		}
		again := "awskms://" + cfg.Key
		if len(q) > 0 {
			again += "?" + q.Encode()
		}
		cfg2, err := awskms.ParseURI(again)
		require.NoError(t, err)
		require.Equal(t, cfg, cfg2)
	})
}
