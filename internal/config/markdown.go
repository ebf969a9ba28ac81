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
- a plain-HTTP ` + "`AUTHPIPE_PUBLIC_URL`" + ` or ` + "`AUTHPIPE_CONTROL_PLANE_URL`" + `;
- an ` + "`AUTHPIPE_OUTBOUND_ALLOW_CIDRS`" + ` range that contains a loopback address.

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
`)
	return b.String()
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
