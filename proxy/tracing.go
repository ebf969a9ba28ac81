package proxy

import (
	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/internal/metrics"
	"github.com/authpipe/authpipe-proxy/internal/tracing"
)

// traceRequest makes the server span of a request (internal/tracing): named by method and
// route template, continuing an inbound W3C traceparent (the caller is the operator's own
// application). With tracing off it costs one atomic load and allocates nothing.
func traceRequest(c *gin.Context) {
	if !tracing.Enabled() {
		c.Next()
		return
	}
	route := c.FullPath()
	if route == "" {
		route = metrics.Unmatched
	}
	ctx, span := tracing.ServerSpan(c.Request, route)
	c.Request = c.Request.WithContext(ctx)
	c.Next()
	tracing.EndServer(span, c.Writer.Status())
}
