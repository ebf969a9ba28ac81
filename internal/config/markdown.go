package config

import (
	"fmt"
	"strings"
)

// DocsPath is where Markdown's output is committed, relative to the module root.
const DocsPath = "docs/configuration.md"

// Markdown renders the configuration reference (docs/configuration.md) from Settings.
func Markdown() string {
	var b strings.Builder
	b.WriteString(`# Configuration reference

<!-- Generated from internal/config/settings.go. Do not edit: run
     go test ./internal/config -run TestConfigDocs -update -->

` + "`authpipe-proxy serve`" + ` reads every setting from an environment variable. The same
setting can be given in a YAML file named with ` + "`--config FILE`" + ` (keys are the variable
names, ` + "`AUTHPIPE_LISTEN_ADDR: 127.0.0.1:9090`" + `, or their short form, ` + "`listen_addr:`" + `;
an unknown key is an error; a list may be a YAML sequence) and as a flag
(` + "`--listen-addr 127.0.0.1:9090`" + `).

Precedence: **flag > environment > file > default**. An empty value counts as not given,
except for ` + "`AUTHPIPE_OUTBOUND_ALLOW_CIDRS`" + `, where set but empty means none.
Surrounding blanks are trimmed. Durations use Go syntax (` + "`720h`, `10m`, `30s`" + `).

Secrets can come from files (a Kubernetes Secret volume, a CSI driver, a Vault agent):
` + "`AUTHPIPE_DATABASE_URL_FILE`, `AUTHPIPE_DATABASE_LISTEN_URL_FILE`, `AUTHPIPE_BOOTSTRAP_API_KEY_FILE`" + ` and
` + "`AUTHPIPE_CONTROL_PLANE_TOKEN_FILE`" + ` name a file whose content (blanks and the final
newline trimmed) is the value. Setting both a variable and its ` + "`_FILE`" + ` variant is an error
that names both. An ` + "`AUTHPIPE_*`" + ` variable that is no setting (a typo) is reported as a
warning at start-up and by ` + "`authpipe-proxy config check`" + `, with the nearest setting's name.

A setting that is malformed, or unsafe for the profile, stops start-up with exit status 2
and one line naming every variable at fault and what is wrong with it. No secret
(the bootstrap API key, the control-plane token, a password in the database URL)
ever appears in that line or in the start-up log.

| variable | flag | YAML key | default | description |
|---|---|---|---|---|
`)
	for _, s := range Settings() {
		def := "none"
		if s.Default != "" {
			def = "`" + s.Default + "`"
			if s.DevOnlyDefault {
				def += " in dev; none in production"
			}
		}
		flagArg := " VALUE"
		if s.Bool {
			flagArg = ""
		}
		desc := s.Description
		if s.Secret {
			desc += " Secret: never shown or logged."
		}
		if s.FromFile {
			desc += " Or `" + s.Name + FileSuffix + "`: a file holding it."
		}
		fmt.Fprintf(&b, "| `%s` | `--%s%s` | `%s` | %s | %s |\n",
			s.Name, s.Flag, flagArg, s.Key, cell(def), cell(desc))
	}
	b.WriteString(`
## The production profile

` + "`AUTHPIPE_PROFILE=production`" + ` refuses to start with:

- a SQLite ` + "`AUTHPIPE_DATABASE_URL`" + `;
- a PostgreSQL URL without TLS (` + "`sslmode`" + ` missing, ` + "`disable`, `allow` or `prefer`" + `), unless
  ` + "`AUTHPIPE_DATABASE_ALLOW_PLAINTEXT=true`" + `;
- a ` + "`local://`" + ` KEK (a key in a plain file) as ` + "`AUTHPIPE_KEK_URI`" + ` or
  ` + "`AUTHPIPE_CLIENT_SECRET_KEK_URI`" + ` (a previous KEK may still be local, to migrate away from it);
- a ` + "`vault-transit://…?tls=false`" + ` KEK, current or previous;
- a ` + "`gcpkms://…?endpoint=http://…`" + ` or ` + "`azurekv://…?endpoint=…`" + ` KEK (local test servers);
- a plain-HTTP ` + "`AUTHPIPE_PUBLIC_URL`" + ` or ` + "`AUTHPIPE_CONTROL_PLANE_URL`" + `;
- an ` + "`AUTHPIPE_OUTBOUND_ALLOW_CIDRS`" + ` range that contains a loopback address.

## Behind PgBouncer

` + "`AUTHPIPE_DATABASE_URL`" + ` may point at a PgBouncer in transaction pooling mode (` + "`pool_mode = transaction`" + `),
in front of one PostgreSQL database. The test suite runs the store and server tests through
one (` + "`scripts/deps/50-pgbouncer.sh`" + `). Three things differ from a direct connection:

- **Prepared statements.** A server connection belongs to the client for one transaction
  only, so pgx's default cache of named prepared statements breaks. Add
  ` + "`default_query_exec_mode=exec`" + ` to the URL (unnamed statements, still one round trip),
  or run PgBouncer 1.21 or later with ` + "`max_prepared_statements`" + ` set above zero. For example
  ` + "`postgres://authpipe@pgbouncer:6432/authpipe?sslmode=verify-full&default_query_exec_mode=exec`" + `.
- **` + "`LISTEN`" + `.** The hot path's connection cache hears about other replicas' writes through
  ` + "`LISTEN`/`NOTIFY`" + `, which needs a session of its own. Set ` + "`AUTHPIPE_DATABASE_LISTEN_URL`" + ` to a
  direct connection to the same database (one connection per replica, used for nothing
  else). Without it, the listener notices that ` + "`LISTEN`" + ` through the pooler delivers nothing
  (it sends itself a probe through the pool and it never arrives), logs a warning naming
  the setting, and the cache falls back to its TTL: another replica's change (a revoked or
  reconnected credential) may be served for up to 1 s. ` + "`/readyz`" + ` says which:
  ` + "`\"cache_invalidation\": \"listen\"`" + `, ` + "`\"ttl\"`" + `, ` + "`\"process\"`" + ` (SQLite) or ` + "`\"none\"`" + ` (the
  listener is not connected; every read goes to the database). It is never a reason to be
  unready.
- **Session state.** Nothing else depends on a session: the refresh leases are rows locked
  in a transaction (` + "`FOR UPDATE SKIP LOCKED`" + `), settings are ` + "`SET LOCAL`" + `, and no advisory lock
  is held across transactions. Migrations (` + "`authpipe-proxy migrate`" + `, or at start-up) run
  through the pooler too.

## When PostgreSQL restarts

A restart or fail-over (fast or immediate shutdown) never stops the server. While the
database is down, requests that need it answer ` + "`503 database_unavailable`" + ` within seconds,
the connection cache is off (its listener is gone), ` + "`/readyz`" + ` answers 503; an acknowledged
write (a ` + "`201`" + `) was committed and is there afterwards. When the database is back, the pool
reconnects on the next request and reads resume at once (within a second in
` + "`TestPostgresRestartUnderLoad`" + `); the listener reconnects with a backoff of at most 5 s. A
refresh whose provider answer arrives while the database is down keeps the new tokens in
memory and retries its commit for up to the refresh lease (2 min): a provider that rotates
refresh tokens has already retired the stored one, so dropping the answer would leave the
connection ` + "`needs_reauth`" + ` at its next refresh. Only an outage longer than the lease, or the
process dying in that window, loses such an answer.

## The dev profile on the network

The dev profile (the default) refuses an ` + "`AUTHPIPE_LISTEN_ADDR`" + ` that is not loopback
(` + "`localhost`" + `, ` + "`127.0.0.0/8`" + `, ` + "`::1`" + `): its SQLite database, generated local KEK,
loopback outbound ranges and plain-HTTP URLs are only safe when nothing but the host can
reach the server. Run the production profile on the network, or set
` + "`AUTHPIPE_DEV_ALLOW_NETWORK_LISTEN=true`" + ` to run dev there anyway (a throwaway container,
say). The container image listens on ` + "`0.0.0.0:8080`" + `, so it needs one or the other.

Every profile refuses the same KEK for credentials and client secrets, a bootstrap key
that is not ` + "`ap_`" + ` and at least 32 URL-safe characters, a listen address that is not
host:port, a non-positive duration, a retention above ` + "`720h`" + `, only one of the TLS
certificate and key, and only one of the control-plane URL and token.
` + kekBackendsMarkdown + tracingMarkdown)
	return b.String()
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// tracingMarkdown documents the OpenTelemetry variables (internal/tracing.Setup).
const tracingMarkdown = `
## Tracing (OpenTelemetry)

Tracing is off unless the standard OpenTelemetry variables configure an exporter; they are
not ` + "`AUTHPIPE_*`" + ` settings (no flag, no YAML key). Spans go over OTLP/HTTP (protobuf):

| variable | effect |
|---|---|
| ` + "`OTEL_EXPORTER_OTLP_ENDPOINT`" + ` or ` + "`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`" + ` | set: tracing on (` + "`http://collector:4318`" + `; the traces one is the full URL, ` + "`…/v1/traces`" + `) |
| ` + "`OTEL_TRACES_EXPORTER`" + ` | ` + "`otlp`" + ` on (default endpoint ` + "`localhost:4318`" + `), ` + "`none`" + ` off; anything else stops start-up |
| ` + "`OTEL_SDK_DISABLED=true`" + ` | off, whatever else is set |
| ` + "`OTEL_EXPORTER_OTLP_PROTOCOL`" + `, ` + "`…_TRACES_PROTOCOL`" + ` | only ` + "`http/protobuf`" + ` (the default); ` + "`grpc`" + ` stops start-up |
| ` + "`OTEL_EXPORTER_OTLP_HEADERS`" + `, ` + "`…_TIMEOUT`" + `, ` + "`…_COMPRESSION`" + `, ` + "`…_CERTIFICATE`" + `, ` + "`…_CLIENT_CERTIFICATE`" + `, ` + "`…_CLIENT_KEY`" + ` | the exporter's, as the OpenTelemetry specification defines them |
| ` + "`OTEL_TRACES_SAMPLER`" + `, ` + "`OTEL_TRACES_SAMPLER_ARG`" + ` | sampling (default ` + "`parentbased_always_on`" + `; ` + "`parentbased_traceidratio`" + ` with ` + "`0.1`" + ` keeps a tenth) |
| ` + "`OTEL_SERVICE_NAME`" + `, ` + "`OTEL_RESOURCE_ATTRIBUTES`" + ` | the resource (default ` + "`service.name=authpipe-proxy`" + `) |

What the spans are and what they never carry: [observability.md](observability.md).
`
