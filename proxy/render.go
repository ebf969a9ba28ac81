package proxy

import (
	"errors"
	"log/slog"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// fail records err on the context for the error middleware and stops the chain.
func fail(c *gin.Context, err error) {
	_ = c.Error(err)
	c.Abort()
}

// toProblem maps lower layers' sentinels onto the API's problems, in one place.
func toProblem(err error) *problem.Problem {
	var p *problem.Problem
	switch {
	case errors.As(err, &p):
		return p
	case errors.Is(err, vault.ErrKMSUnavailable), errors.Is(err, kms.ErrUnavailable):
		return problem.ErrKMSUnavailable.WithCause(err)
	case errors.Is(err, store.ErrUnavailable):
		return problem.ErrDatabaseUnavailable.WithCause(err)
	case errors.Is(err, audit.ErrUnavailable):
		return problem.ErrAuditUnavailable.WithCause(err)
	case errors.Is(err, store.ErrNotFound):
		return problem.ErrNotFound.WithCause(err)
	case errors.Is(err, store.ErrConflict):
		return problem.ErrConflict.WithCause(err)
	}
	return problem.ErrInternal.WithCause(err)
}

// ProblemCode is the problem code err maps to (admin.WithErrorCode).
func ProblemCode(err error) string { return toProblem(err).Code }

// errorMiddleware writes the one problem+json response for the first error of a request.
func errorMiddleware(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Next()
		if len(c.Errors) == 0 {
			return
		}
		p := toProblem(c.Errors[0].Err)
		if p.Status >= 500 {
			// The cause goes to the log only; lower layers keep secrets out of errors.
			log.LogAttrs(c.Request.Context(), slog.LevelError, "request failed",
				slog.String("code", p.Code), slog.String("request_id", requestIDOf(c)),
				slog.Any("err", p.Unwrap()))
		}
		if c.Writer.Written() {
			return
		}
		writeProblem(c, p)
	}
}

func writeProblem(c *gin.Context, p *problem.Problem) {
	if p.RetryAfter() > 0 {
		c.Header("Retry-After", strconv.Itoa(p.RetryAfter()))
	}
	c.Header("Content-Type", problem.ContentType) // gin keeps a Content-Type already set
	body := *p
	if body.Code == problem.ErrInternal.Code {
		body.Detail = "" // never render an unknown error
	}
	c.JSON(body.Status, body)
}
