package proxy

import (
	"log/slog"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/internal/problem"
)

// fail records err on the context for the error middleware and stops the chain.
func fail(c *gin.Context, err error) {
	_ = c.Error(err)
	c.Abort()
}

// errorMiddleware writes the one problem+json response for the first error of a request.
func errorMiddleware(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Next()
		if len(c.Errors) == 0 {
			return
		}
		p := problem.From(c.Errors[0].Err) // the one mapping (internal/problem)
		if p.Status >= 500 {
			// The cause goes to the log only; lower layers keep secrets out of errors.
			log.LogAttrs(c.Request.Context(), slog.LevelError, "request failed",
				slog.String("code", p.Code), slog.String("request_id", requestIDOf(c)),
				slog.Any("err", p.Unwrap()))
		}
		if c.Writer.Written() {
			return
		}
		if c.GetBool(browserKey) && prefersHTML(c.Request) { // browser_pages.go
			writePage(c, p)
			return
		}
		writeProblem(c, p)
	}
}

func writeProblem(c *gin.Context, p *problem.Problem) {
	if p.Status == http.StatusUnauthorized && c.Writer.Header().Get("WWW-Authenticate") == "" {
		c.Header("WWW-Authenticate", bearerChallenge(c.GetHeader("Authorization") != ""))
	}
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

// bearerChallenge is the RFC 6750 (section 3) challenge of a 401: with error="invalid_token"
// when a credential was presented (unknown, revoked, malformed and wrong-workspace keys
// alike), without an error code when none was. A DPoP refusal sets its own (dpop.go).
func bearerChallenge(presented bool) string {
	if presented {
		return `Bearer realm="authpipe", error="invalid_token"`
	}
	return `Bearer realm="authpipe"`
}
