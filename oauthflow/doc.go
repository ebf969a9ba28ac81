// Package oauthflow runs the OAuth 2.0 authorization code flow on behalf of an
// application's end users (RFC 6749 section 4.1) and owns everything about it that is not
// storage:
//
//   - the provider catalog: the built-in templates in catalog/*.yaml (endpoints, scopes,
//     client authentication, PKCE support, RFC 9207 issuer) and the rules a provider
//     configuration must satisfy (catalog.go);
//   - the exact-match allowlists of callback and return URLs (allowlist.go): strict
//     syntax so that Go's URL parser and a browser's can never disagree, then byte-for-byte
//     comparison, with no prefix, suffix or normalising match (RFC 9700 section 4.1);
//   - PKCE with the S256 method only (RFC 7636, pkce.go);
//   - authorization URLs, single-use state, callback validation including the
//     authorization server's issuer identifier (RFC 9207), code exchange, refresh
//     (RFC 6749 section 6) and revocation (RFC 7009), through golang.org/x/oauth2;
//   - the connect flows as a service (Flows, flows.go): creating, starting and completing
//     a connect session, which the HTTP layer only parses and renders.
//
// The package stores nothing itself: connect sessions, state and tokens go through the
// store interfaces declared next to the code that consumes them, and the vault seals
// every secret. Nothing here puts a token, code, state, verifier or client secret into an
// error string or a log line.
package oauthflow
