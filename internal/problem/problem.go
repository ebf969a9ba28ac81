// Package problem is the one error type of the HTTP boundary: RFC 9457 problem details
// (application/problem+json) with a stable machine-readable code, modelled on fosite's
// RFC6749Error. Sentinels carry the code and status; With… helpers return copies. Unknown
// errors become a 500 with a generic detail: nothing from an unknown error (which may
// quote a provider's body or a SQL parameter) reaches a client.
package problem

import (
	"context"
	"errors"
	"net"
	"net/http"
)

// TypeBase prefixes every problem type URI.
const TypeBase = "https://authpipe.dev/problems/"

// ContentType is the media type of a problem response.
const ContentType = "application/problem+json"

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail,omitempty"`
	// Errors lists field-level problems of a validation failure.
	Errors []FieldError `json:"errors,omitempty"`

	retryAfter int   // seconds; sets Retry-After when > 0
	cause      error // never rendered
}

// FieldError names one invalid field.
type FieldError struct {
	Field  string `json:"field"`
	Detail string `json:"detail"`
}

// New returns a problem with a code, status and title.
func New(status int, code, title string) *Problem {
	return &Problem{Type: TypeBase + code, Title: title, Status: status, Code: code}
}

func (p *Problem) Error() string {
	if p.Detail != "" {
		return p.Code + ": " + p.Detail
	}
	return p.Code
}

// Unwrap returns the cause (kept for logs and errors.Is, never rendered).
func (p *Problem) Unwrap() error { return p.cause }

// Is matches problems by code, so errors.Is(err, problem.ErrNotFound) works on copies.
func (p *Problem) Is(target error) bool {
	t, ok := target.(*Problem)
	return ok && t.Code == p.Code
}

// WithDetail returns a copy with a detail. The detail must never contain a secret or a
// provider's response text.
func (p *Problem) WithDetail(detail string) *Problem {
	c := *p
	c.Detail = detail
	return &c
}

// WithCause returns a copy that wraps err for logging and errors.Is.
func (p *Problem) WithCause(err error) *Problem {
	c := *p
	c.cause = err
	return &c
}

// WithField returns a copy with one more field error.
func (p *Problem) WithField(field, detail string) *Problem {
	c := *p
	c.Errors = append(append([]FieldError(nil), p.Errors...), FieldError{Field: field, Detail: detail})
	return &c
}

// WithRetryAfter returns a copy that tells the client when to retry.
func (p *Problem) WithRetryAfter(seconds int) *Problem {
	c := *p
	c.retryAfter = seconds
	return &c
}

// RetryAfter returns the Retry-After seconds, or 0.
func (p *Problem) RetryAfter() int { return p.retryAfter }

// The stable codes of the API.
var (
	ErrBadRequest              = New(http.StatusBadRequest, "bad_request", "Bad request")
	ErrInvalidRequest          = New(http.StatusBadRequest, "invalid_request", "Invalid request")
	ErrInvalidCallbackURL      = New(http.StatusBadRequest, "invalid_callback_url", "Invalid callback URL")
	ErrInvalidReturnURL        = New(http.StatusBadRequest, "invalid_return_url", "Invalid return URL")
	ErrUnsafeURL               = New(http.StatusBadRequest, "unsafe_url", "URL points at a private address")
	ErrInvalidState            = New(http.StatusBadRequest, "invalid_state", "Invalid or expired state")
	ErrIssuerMismatch          = New(http.StatusBadRequest, "issuer_mismatch", "Issuer mismatch")
	ErrClientSecretRequired    = New(http.StatusBadRequest, "client_secret_required", "Client secret required")
	ErrTokenInURL              = New(http.StatusBadRequest, "token_in_url", "Credentials must not be sent in the URL; use the Authorization header")
	ErrInvalidPath             = New(http.StatusBadRequest, "invalid_path", "Path leaves the provider's API base URL")
	ErrNoAPIBaseURL            = New(http.StatusBadRequest, "no_api_base_url", "The provider has no usable api_base_url")
	ErrInvalidConnectionConfig = New(http.StatusBadRequest, "invalid_connection_config",
		"A connection_config value is missing or invalid")
	// ErrInvalidCredential: the provider refused the credential a machine connection was
	// created with (its client, its service-account key); the detail names the provider's
	// error code, nothing was stored.
	ErrInvalidCredential   = New(http.StatusBadRequest, "invalid_credential", "The provider refused the credential")
	ErrUnauthorized        = New(http.StatusUnauthorized, "unauthorized", "Unauthorized")
	ErrInvalidSignature    = New(http.StatusUnauthorized, "invalid_signature", "Webhook signature invalid")
	ErrForbidden           = New(http.StatusForbidden, "forbidden", "Forbidden")
	ErrNotFound            = New(http.StatusNotFound, "not_found", "Not found")
	ErrMethodNotAllowed    = New(http.StatusMethodNotAllowed, "method_not_allowed", "Method not allowed")
	ErrConflict            = New(http.StatusConflict, "conflict", "Conflict")
	ErrNeedsReauth         = New(http.StatusConflict, "needs_reauth", "The connection needs to be re-authorized")
	ErrAlreadyImported     = New(http.StatusConflict, "already_imported", "A connection with this external_id exists")
	ErrNoNextClientSecret  = New(http.StatusConflict, "no_next_client_secret", "The provider has no next client secret")
	ErrNoWebhookEndpoint   = New(http.StatusConflict, "webhook_endpoint_missing", "The workspace has no webhook endpoint to relay to")
	ErrOriginChanged       = New(http.StatusConflict, "origin_changed", "The destination is not an origin the credential is bound to")
	ErrDisconnected        = New(http.StatusGone, "disconnected", "The connection is disconnected")
	ErrWorkspaceFrozen     = New(http.StatusLocked, "workspace_frozen", "The workspace is frozen: its credentials are not served until it is unfrozen")
	ErrPayloadTooLarge     = New(http.StatusRequestEntityTooLarge, "payload_too_large", "Request body too large")
	ErrUnsupportedMedia    = New(http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/json")
	ErrRateLimited         = New(http.StatusTooManyRequests, "rate_limited", "Too many requests")
	ErrInternal            = New(http.StatusInternalServerError, "internal", "Internal error")
	ErrBadGateway          = New(http.StatusBadGateway, "bad_gateway", "Provider error")
	ErrUnsafeURLUpstream   = New(http.StatusBadGateway, "unsafe_url", "Destination resolves to a private address")
	ErrDatabaseUnavailable = New(http.StatusServiceUnavailable, "database_unavailable", "Database unavailable")
	ErrKMSUnavailable      = New(http.StatusServiceUnavailable, "kms_unavailable", "Key management service unavailable")
	ErrAuditUnavailable    = New(http.StatusServiceUnavailable, "audit_unavailable", "Audit log unavailable")
	ErrRefreshUnavailable  = New(http.StatusServiceUnavailable, "refresh_unavailable", "Token refresh unavailable")
	ErrGatewayTimeout      = New(http.StatusGatewayTimeout, "gateway_timeout", "Provider did not answer in time")
)

// ErrNarrowingRefused: a GitHub App installation does not grant the repositories or
// permissions a narrowed token read asks for (GitHub answered 422).
var ErrNarrowingRefused = New(http.StatusUnprocessableEntity, "narrowing_refused",
	"The installation does not grant the repositories or permissions asked for")

// sentinel is a lower layer's error value that carries the problem it means at the HTTP
// boundary, as fosite's RFC6749Error sentinels carry theirs: errors.Is compares the value
// itself (store.ErrNotFound is not any not_found), errors.As finds the problem.
type sentinel struct {
	msg string
	p   *Problem
}

func (e *sentinel) Error() string { return e.msg }
func (e *sentinel) Unwrap() error { return e.p }

// Sentinel returns a new error value whose message is msg and whose problem is p. Lower
// layers declare their sentinels with it (store.ErrNotFound, refresher.ErrNeedsReauth,
// kms.ErrUnavailable, ...), so the mapping to codes and statuses is written where the
// error is, once, and From needs no list of packages.
func Sentinel(p *Problem, msg string) error { return &sentinel{msg: msg, p: p} }

// From is the one mapping of an error to the problem the client sees:
//   - a problem anywhere in the chain (directly, or carried by a Sentinel) is returned,
//     keeping err as the cause for the log;
//   - a request body over its limit is 413;
//   - anything else is a 500 whose cause is kept for the log only.
func From(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		if p == err {
			return p
		}
		return p.WithCause(err)
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return ErrPayloadTooLarge.WithCause(err)
	}
	return ErrInternal.WithCause(err)
}

// Upstream maps the failure of a call to a provider (forwarding): a problem in the chain
// as From does, a timeout 504, a cancelled request or any other transport failure 502. The
// caller passes an error already stripped of the URL (outbound.Redact).
func Upstream(err error) *Problem {
	var p *Problem
	var ne net.Error
	switch {
	case errors.As(err, &p):
		return From(err)
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ErrGatewayTimeout.WithCause(err)
	case errors.Is(err, context.Canceled):
		return ErrBadGateway.WithDetail("the request was cancelled").WithCause(err)
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return ErrPayloadTooLarge.WithCause(err)
	}
	return ErrBadGateway.WithDetail("the provider could not be reached").WithCause(err)
}
