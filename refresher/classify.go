package refresher

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/authpipe/authpipe-proxy/internal/jitter"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
)

// Class is how a failed refresh is treated.
type Class int

// Failure classes.
const (
	// ClassInvalidGrant: the provider refused the refresh token (RFC 6749 section 5.2).
	// After a re-read shows no other replica rotated it, the connection needs re-auth.
	ClassInvalidGrant Class = iota + 1
	// ClassRateLimited: HTTP 429; the provider's Retry-After is honoured.
	ClassRateLimited
	// ClassTransient: 5xx, timeouts, network errors, any other refusal: exponential
	// backoff with jitter, the current token is served while it is valid.
	ClassTransient
)

// Failure is a refresh call's failure reduced to what may be kept: an RFC 6749 error code
// (never the provider's text: oauth2.RetrieveError's Error() quotes the response body),
// the HTTP status, and a 429's Retry-After.
type Failure struct {
	Class      Class
	Code       string
	Status     int
	RetryAfter time.Duration
	cause      error // kept for errors.Is/As; its text is never shown
}

func (f *Failure) Error() string {
	return fmt.Sprintf("refresher: refresh failed: %s (HTTP %d)", f.Code, f.Status)
}

// Unwrap keeps the chain (a redacted outbound error, a context error) for errors.Is.
func (f *Failure) Unwrap() error { return f.cause }

// Classify turns the error of a refresh_token grant into a Failure.
func Classify(err error, now time.Time) *Failure {
	var f *Failure
	if errors.As(err, &f) {
		return f
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		out := &Failure{Class: ClassTransient, Code: oauthflow.ErrorCode(re.ErrorCode)}
		if re.Response != nil {
			out.Status = re.Response.StatusCode
		}
		switch {
		case re.ErrorCode == "invalid_grant":
			out.Class = ClassInvalidGrant
		case out.Status == http.StatusTooManyRequests:
			out.Class, out.Code = ClassRateLimited, "rate_limited"
			if re.Response != nil {
				out.RetryAfter = retryAfter(re.Response.Header.Get("Retry-After"), now)
			}
		case out.Status >= 500 && re.ErrorCode == "":
			out.Code = "provider_unavailable"
		}
		return out
	}
	code := "network_error"
	switch {
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		code = "timeout"
	case errors.Is(err, outbound.ErrUnsafeURL):
		code = "unsafe_url"
	}
	return &Failure{Class: ClassTransient, Code: code, cause: outbound.Redact(err)}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// retryAfter parses Retry-After (RFC 9110 section 10.2.3): delay-seconds or an HTTP date.
// It is capped at a day.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		d = time.Duration(min(n, 86400)) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), 24*time.Hour)
}

// backoff is the cooldown after the n-th consecutive transient failure (n ≥ 1):
// base·2^(n-1), capped at maxDelay, with ±20% jitter.
func backoff(n int, base, maxDelay time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	j := jitter.Duration(d/5 + 1)
	if jitter.Bool() {
		return d - j
	}
	return d + j
}

// refreshed is a provider's answer to a refresh_token grant.
type refreshed struct {
	AccessToken  vault.Secret
	RefreshToken vault.Secret // zero: the provider sent none (or the same one): keep the old
	TokenType    string
	ExpiresAt    *time.Time
	Scopes       []string
}

// callRefresh performs the refresh_token grant (RFC 6749 section 6) with x/oauth2 through
// hc (the outbound package's TokenClient: no redirects, SSRF-guarded), with the provider's
// token endpoint authentication set explicitly. A response without expires_in gets the
// catalog's assumed lifetime; without a new refresh token, the old one is kept.
func callRefresh(ctx context.Context, hc *http.Client, p oauthflow.Provider, cc oauthflow.ClientCredentials,
	refreshToken vault.Secret, now time.Time) (refreshed, error) {
	if p.TokenAuthMethod == "" {
		p.TokenAuthMethod = oauthflow.ClientSecretBasic
	}
	ep, err := p.Endpoint()
	if err != nil {
		return refreshed{}, err
	}
	ep.TokenURL = p.RefreshTokenURL()
	if cc.ClientSecret.IsZero() {
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	conf := oauth2.Config{ClientID: cc.ClientID, ClientSecret: cc.ClientSecret.Reveal(), Endpoint: ep}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, hc)
	tok, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken.Reveal()}).Token()
	if err != nil {
		return refreshed{}, Classify(err, now)
	}
	if tok.AccessToken == "" {
		return refreshed{}, &Failure{Class: ClassTransient, Code: "invalid_token_response"}
	}
	out := refreshed{AccessToken: vault.NewSecret(tok.AccessToken), TokenType: tok.Type()}
	if tok.RefreshToken != "" && tok.RefreshToken != refreshToken.Reveal() {
		out.RefreshToken = vault.NewSecret(tok.RefreshToken)
	}
	switch {
	case tok.ExpiresIn > 0:
		t := now.Add(time.Duration(tok.ExpiresIn) * time.Second).UTC()
		out.ExpiresAt = &t
	case p.AssumedExpiresIn > 0:
		t := now.Add(time.Duration(p.AssumedExpiresIn) * time.Second).UTC()
		out.ExpiresAt = &t
	}
	if s, ok := tok.Extra("scope").(string); ok && s != "" {
		out.Scopes = strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' })
	}
	return out, nil
}
