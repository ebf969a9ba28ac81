# Sourced by scripts/test.sh. The PostgreSQL TLS test (vault/store/tls_test.go) starts its
# own throwaway cluster with initdb and pg_ctl (ssl=on, TLS 1.3, client-certificate auth)
# on a free loopback port and removes it afterwards. This only makes sure the server
# binaries are there (10-postgres.sh installs them) and tells the test where they are.
# As root the test runs the cluster as the postgres OS user (initdb refuses root).
pg_tls_bindir="${AUTHPIPE_TEST_PG_BINDIR:-}"
if [ -z "$pg_tls_bindir" ]; then
	pg_tls_initdb=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1)
	[ -n "$pg_tls_initdb" ] && pg_tls_bindir=$(dirname "$pg_tls_initdb")
fi
if [ -n "$pg_tls_bindir" ] && [ -x "$pg_tls_bindir/initdb" ] && [ -x "$pg_tls_bindir/pg_ctl" ] &&
	{ [ "$(id -u)" != 0 ] || id postgres >/dev/null 2>&1; }; then
	export AUTHPIPE_TEST_PG_BINDIR="$pg_tls_bindir"
	echo "== postgresql server binaries for the TLS test: $pg_tls_bindir"
elif [ "$CI" = true ]; then
	echo "FATAL: initdb/pg_ctl (and, as root, the postgres OS user) are needed for the PostgreSQL TLS test on CI" >&2
	exit 1
else
	echo "!! WARNING: no initdb/pg_ctl; the PostgreSQL TLS test will SKIP" >&2
fi
