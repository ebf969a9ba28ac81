// Package outbound owns the one HTTP client through which authpipe-proxy talks to the
// outside world: OAuth token exchange, refresh and revocation (RFC 6749 §4.1.3, §6,
// RFC 7009), provider health checks, the forwarding proxy and the control-plane client.
// No other package builds an http.Transport.
//
// # Threat model
//
// Every URL this client dials was written by a tenant (a custom provider's token_url,
// revocation_url or api_base_url) or comes back from a provider (a redirect). An attacker
// who controls one of them wants the proxy to reach something only the proxy can reach:
//
//   - SSRF: loopback admin ports, RFC 1918 / RFC 4193 networks, cloud metadata at
//     169.254.169.254, CGNAT space, and the same addresses spelled as decimal (2130706433),
//     octal (0177.0.0.1), hex (0x7f.1), short (127.1), IPv4-mapped IPv6 ([::ffff:127.0.0.1]),
//     NAT64 (64:ff9b::a00:1), 6to4 or Teredo literals. CheckURL refuses these at
//     configuration time; numeric hosts that are not canonical dotted quads are refused
//     outright, because Go, glibc and browsers disagree about what they mean.
//   - DNS rebinding: a name that resolves to a public address when checked and to a private
//     one when used. The check therefore happens at dial time, on the addresses the dialer
//     is about to connect to: the dialer resolves once, refuses the name if any answer is
//     unsafe, and connects to the checked IP literal, never to the name again.
//     net.Dialer.Control re-checks the socket address as a second line.
//   - Redirect credential leaks: a token endpoint answering 307 would make a client re-send
//     the client secret and authorization code to the Location. TokenClient never follows
//     redirects; ForwardClient follows at most three, and only within the same origin
//     (scheme, host, port) and under the path of the provider's api_base_url
//     (WithRedirectScope), so the forwarded credential never leaves the upstream, nor the
//     tenant of a multi-tenant host scoped by path, it was meant for.
//   - Oversized or slow answers: every phase has a timeout and every body is capped
//     (ErrResponseTooLarge).
//   - Interception: TLS 1.3 by default (1.2 only for a destination that opts in), normal
//     chain verification always, and optional SPKI pins (RFC 7469 pin format) checked after
//     it, never instead of it (ErrPinMismatch, never retried).
//
// Operators who run providers on private networks list those ranges in
// Policy.AllowCIDRs (AUTHPIPE_OUTBOUND_ALLOW_CIDRS).
//
// # Why HTTP_PROXY is ignored
//
// The transport sets Proxy to nil. With a proxy from the environment the proxy, not this
// process, resolves and connects, so the dial-time address check would inspect only the
// proxy's address and every SSRF defence above would be void; the proxy would also see
// token requests in clear for http URLs. An environment variable is also an easy way for a
// compromised sidecar or a careless deployment to reroute credentials. Egress proxies, if
// wanted, belong in the network layer.
//
// # Errors
//
// Errors returned by an *http.Client are *url.Error values whose message contains the
// request URL with its query. Pass them through Redact before logging or returning them.
// Use errors.Is with ErrUnsafeURL, ErrPinMismatch, ErrResponseTooLarge and
// ErrTooManyRedirects to classify them.
package outbound
