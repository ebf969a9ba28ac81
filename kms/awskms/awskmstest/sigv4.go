package awskmstest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	sigAlgorithm = "AWS4-HMAC-SHA256"
	amzDateFmt   = "20060102T150405Z"
	maxSkew      = 15 * time.Minute
)

// authError is an AWS authentication failure: its type and message.
type authError struct{ typ, msg string }

// verifySigV4 checks the request's AWS Signature Version 4 (header form) the way AWS
// does: credential scope, signed headers, payload hash, signing time, and the HMAC
// chain over the canonical request. Only POST / without a query is served here.
func (s *Server) verifySigV4(r *http.Request, body []byte, now time.Time) *authError {
	authz := r.Header.Get("Authorization")
	if authz == "" {
		return &authError{"MissingAuthenticationTokenException", "Missing Authentication Token"}
	}
	rest, ok := strings.CutPrefix(authz, sigAlgorithm+" ")
	if !ok {
		return &authError{"IncompleteSignatureException", "Unsupported signing algorithm"}
	}
	fields := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return &authError{"IncompleteSignatureException", "Malformed Authorization header"}
		}
		fields[k] = v
	}
	credential, signedHeaders, signature := fields["Credential"], fields["SignedHeaders"], fields["Signature"]
	if credential == "" || signedHeaders == "" || signature == "" {
		return &authError{"IncompleteSignatureException", "Authorization header lacks Credential, SignedHeaders or Signature"}
	}
	cred := strings.Split(credential, "/")
	if len(cred) != 5 || cred[4] != "aws4_request" {
		return &authError{"IncompleteSignatureException", "Malformed credential scope"}
	}
	if cred[0] != AccessKeyID {
		return &authError{"UnrecognizedClientException", "The security token included in the request is invalid."}
	}
	if cred[2] != s.region || cred[3] != "kms" {
		return &authError{"InvalidSignatureException", fmt.Sprintf("Credential should be scoped to region %s and service kms", s.region)}
	}
	amzDate := r.Header.Get("X-Amz-Date")
	signedAt, err := time.Parse(amzDateFmt, amzDate)
	if err != nil || signedAt.Format("20060102") != cred[1] {
		return &authError{"IncompleteSignatureException", "X-Amz-Date is missing or does not match the credential scope"}
	}
	if d := now.Sub(signedAt); d > maxSkew || d < -maxSkew {
		return &authError{"InvalidSignatureException", "Signature expired"}
	}
	names := strings.Split(signedHeaders, ";")
	if !slices.IsSorted(names) || !slices.Contains(names, "host") || !slices.Contains(names, "x-amz-target") || !slices.Contains(names, "x-amz-date") {
		return &authError{"InvalidSignatureException", "SignedHeaders must be sorted and cover host, x-amz-date and x-amz-target"}
	}

	var canon strings.Builder
	canon.WriteString(r.Method + "\n" + canonicalPath(r) + "\n" + r.URL.RawQuery + "\n")
	for _, name := range names {
		canon.WriteString(name + ":" + headerValue(r, name) + "\n")
	}
	payload := sha256.Sum256(body)
	canon.WriteString("\n" + signedHeaders + "\n" + hex.EncodeToString(payload[:]))
	canonHash := sha256.Sum256([]byte(canon.String()))
	scope := strings.Join(cred[1:], "/")
	toSign := sigAlgorithm + "\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(canonHash[:])

	key := []byte("AWS4" + SecretAccessKey)
	for _, part := range cred[1:] {
		key = hmacSHA256(key, part)
	}
	want := hex.EncodeToString(hmacSHA256(key, toSign))
	if !hmac.Equal([]byte(want), []byte(signature)) {
		return &authError{"InvalidSignatureException", "The request signature we calculated does not match the signature you provided."}
	}
	return nil
}

func canonicalPath(r *http.Request) string {
	if p := r.URL.EscapedPath(); p != "" {
		return p
	}
	return "/"
}

func headerValue(r *http.Request, name string) string {
	switch name {
	case "host":
		return r.Host
	case "content-length":
		return strconv.FormatInt(r.ContentLength, 10)
	}
	vals := slices.Clone(r.Header.Values(name))
	for i, v := range vals {
		vals[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(vals, ",")
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
