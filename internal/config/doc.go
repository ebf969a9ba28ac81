// Package config owns authpipe-proxy's run-time configuration: one declarative table of
// settings (Settings) drives the environment variables, the command-line flags, the
// optional YAML file given with --config, the defaults, the start-up log line and the
// generated reference in docs/configuration.md.
//
// Precedence is flag > environment > file > default. Load parses and then validates;
// Validate is pure (it reads no file and changes nothing) and reports every problem at
// once as a *ValidationError whose Error() is a single line naming each variable. No
// message, String, LogValue or %+v output ever carries a secret: the bootstrap API key
// and the control-plane token are secret.Secret values, and the password of a database
// URL (RFC 3986 userinfo, or a password query parameter) is redacted wherever it is shown.
//
// Profiles: "dev" (the default) creates local files and allows loopback outbound calls;
// "production" refuses SQLite, a local KEK in a plain file, plain-HTTP public and
// control-plane URLs, loopback outbound ranges, a PostgreSQL connection without TLS and a
// Vault Transit KEK over plain HTTP.
package config
