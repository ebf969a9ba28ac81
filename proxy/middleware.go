package proxy

import (
	"errors"
	"log/slog"
	"net/http"
	"net/netip"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/problem"
)

// MaxBodyBytes is the largest request body the API reads (API.md: 1 MiB).
const MaxBodyBytes = 1 << 20

const (
	ctxRequest = "authpipe.request"
	ctxBody    = "authpipe.body"
)

// securityHeaderKeys and securityHeaderValues are the headers every response carries
// (API.md). Cache-Control: no-store is on everything: almost every response can carry a
// credential or a one-time URL. The keys are canonical, so they go into the header map
// without canonicalisation.
var (
	securityHeaderKeys = [...]string{"Strict-Transport-Security", "X-Content-Type-Options", "X-Frame-Options",
		"Referrer-Policy", "Cache-Control", "Content-Security-Policy"}
	securityHeaderValues = [len(securityHeaderKeys)]string{"max-age=63072000; includeSubDomains", "nosniff", "DENY",
		"no-referrer", "no-store", "default-src 'none'; frame-ancestors 'none'"}
)

// request is what the middleware chain learns about one request, in one allocation under
// one context key (not a boxed context value per fact): its id, the client address, the
// authenticated principal and what a token read served. headers backs the values of the
// response headers every request carries (the security headers and X-Request-Id); each is
// sliced with capacity 1, so a later Add or Set never writes into another header's value.
type request struct {
	id        string
	clientIP  netip.Addr
	principal admin.Principal
	authed    bool
	credType  string
	headers   [len(securityHeaderKeys) + 1]string
}

// requestOf returns the request's state; stampRequest, the first middleware after
// recovery, sets it. Before that (or in a handler test without it) it is a blank one.
func requestOf(c *gin.Context) *request {
	if v, ok := c.Get(ctxRequest); ok {
		if r, ok := v.(*request); ok {
			return r
		}
	}
	return &request{}
}

// requestIDOf returns the request's id ("" before stampRequest ran).
func requestIDOf(c *gin.Context) string { return requestOf(c).id }

// stampRequest assigns every request its state and an id (a caller-supplied one is kept
// only if it is a short token of safe characters, so it cannot inject into logs), and sets
// the headers every response carries.
func stampRequest(c *gin.Context) {
	r := &request{id: c.GetHeader("X-Request-Id")}
	if !safeToken(r.id, 64) {
		r.id = ids.Random(12)
	}
	c.Set(ctxRequest, r)
	h := c.Writer.Header()
	n := copy(r.headers[:], securityHeaderValues[:])
	for i, k := range securityHeaderKeys {
		h[k] = r.headers[i : i+1 : i+1]
	}
	r.headers[n] = r.id
	h["X-Request-Id"] = r.headers[n : n+1 : n+1]
	c.Next()
}

func safeToken(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' || ch == '.') {
			return false
		}
	}
	return true
}

// isTooLarge reports whether a body read failed on the size limit.
func isTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// recovery turns a panic into a 500 without echoing the panic value to the client or the
// log (a panic value can hold anything the handler held).
func recovery(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				if err, ok := r.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(r)
				}
				log.Error("handler panicked", "request_id", requestIDOf(c), "route", c.FullPath())
				if !c.Writer.Written() {
					writeProblem(c, problem.ErrInternal)
				}
				c.Abort()
			}
		}()
		c.Next()
	}
}
