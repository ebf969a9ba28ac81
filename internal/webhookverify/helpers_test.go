package webhookverify_test

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // the providers' own MAC
	"encoding/base64"
	"hash"
)

func hmacSHA1(secret string) hash.Hash { return hmac.New(sha1.New, []byte(secret)) }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
