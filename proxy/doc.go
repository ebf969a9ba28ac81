// Package proxy is authpipe-proxy's HTTP API (gin): routes, middleware, handlers and the
// forwarding proxy. Start at routes.go; the hot path is handleToken in
// handlers_connections.go (API-key cache → one indexed read → open with a cached DEK →
// batched audit event).
//
// Errors are RFC 9457 problem details (internal/problem) written by one middleware.
// Every response carries the security headers of middleware.go. Applications
// authenticate with `Authorization: Bearer ap_…`; only an HMAC of a key is stored.
package proxy
