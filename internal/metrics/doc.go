// Package metrics owns authpipe-proxy's Prometheus metrics: one registry per server (never
// the global default registry), the metric families, and the instrumentation of the
// lower layers (KEK calls through kms.Observe, the audit batch writer, the DEK caches, the provider
// catalog).
//
// No label can carry a secret or an unbounded value: routes are gin's route templates
// ("unmatched" otherwise), methods and status codes come from fixed sets, outcomes are
// stable problem codes from a fixed list, KMS backends are the six URI schemes, and a
// provider is named only when it is a catalog entry ("custom" otherwise). Connection,
// end-user, workspace and key ids never become labels.
package metrics
