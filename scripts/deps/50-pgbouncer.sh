# Sourced by scripts/test.sh. Makes PgBouncer 1.x (Debian `pgbouncer`) listen on
# 127.0.0.1:6432 in transaction pooling mode in front of the PostgreSQL of 10-postgres.sh
# (every database, user postgres, trust), and exports AUTHPIPE_TEST_PGBOUNCER for the
# suite's PgBouncer pass (scripts/test.sh), which hands it to the tests as
# AUTHPIPE_TEST_PGBOUNCER_URL: the store and server tests then connect through it, while
# databases are still created and dropped directly. Idempotent: a PgBouncer already
# answering on the port is used as it is.
pgb_port="${AUTHPIPE_TEST_PGBOUNCER_PORT:-6432}"
pgb_dir=/var/tmp/authpipe-pgbouncer

pgb_ready() { command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p "$pgb_port" -d postgres -U postgres; }

ensure_pgbouncer() {
	[ -n "${AUTHPIPE_TEST_POSTGRES_URL:-}" ] || return 1 # no PostgreSQL behind it
	pgb_ready && return 0
	if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
		echo "== installing pgbouncer"
		[ "$(id -u)" = 0 ] || return 1
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer) >/dev/null || return 1
	fi
	local bin
	bin=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
	mkdir -p "$pgb_dir"
	printf '"postgres" ""\n' >"$pgb_dir/userlist.txt"
	# Transaction pooling, as production set-ups run it: a server connection is the client's
	# only for one transaction. Small pools that let go of idle server connections quickly,
	# since every test creates its own database (one pool each) on a shared server.
	cat >"$pgb_dir/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=5432
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pgb_port
unix_socket_dir =
auth_type = trust
auth_file = $pgb_dir/userlist.txt
pool_mode = transaction
max_client_conn = 2000
default_pool_size = 8
max_db_connections = 8
server_idle_timeout = 5
server_lifetime = 60
ignore_startup_parameters = extra_float_digits,options
logfile = $pgb_dir/pgbouncer.log
pidfile = $pgb_dir/pgbouncer.pid
INI
	if [ "$(id -u)" = 0 ]; then
		id postgres >/dev/null 2>&1 || return 1
		chown -R postgres "$pgb_dir"
		"$bin" -d -u postgres "$pgb_dir/pgbouncer.ini" >/dev/null 2>&1 || return 1
	else
		"$bin" -d "$pgb_dir/pgbouncer.ini" >/dev/null 2>&1 || return 1
	fi
	for _ in $(seq 1 20); do pgb_ready && return 0; sleep 0.5; done
	return 1
}

if ensure_pgbouncer; then
	# PgBouncer < 1.21 cannot carry named prepared statements across transactions: pgx's
	# default statement cache is replaced by one-round-trip unnamed statements (exec).
	export AUTHPIPE_TEST_PGBOUNCER="postgres://postgres@127.0.0.1:$pgb_port/postgres?sslmode=disable&default_query_exec_mode=exec"
	echo "== pgbouncer (transaction pooling) ready at 127.0.0.1:$pgb_port"
elif [ "$CI" = true ]; then
	echo "FATAL: PgBouncer could not be installed or started; CI requires it" >&2
	exit 1
else
	echo "!! WARNING: no PgBouncer; the PgBouncer pass of the PostgreSQL tests will SKIP" >&2
fi
