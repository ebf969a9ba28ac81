# Sourced by scripts/test.sh. Makes a PostgreSQL server reachable on 127.0.0.1:5432 (user
# postgres, trust auth) and exports AUTHPIPE_TEST_POSTGRES_URL for the store tests.
# Installs the Debian package and starts a cluster when none is there.
pg_url="${AUTHPIPE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}"

pg_ready() { command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432; }

ensure_postgres() {
	pg_ready && return 0
	if ! command -v pg_ctlcluster >/dev/null 2>&1; then
		echo "== installing postgresql"
		if [ "$(id -u)" = 0 ]; then
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null || return 1
		else
			return 1
		fi
	fi
	local ver
	ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
	if [ -z "$ver" ]; then
		ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
		pg_createcluster "$ver" main >/dev/null || return 1
	fi
	local conf="/etc/postgresql/$ver/main"
	# Trust auth on loopback for the throwaway test user, as the tests expect.
	if ! grep -q '^host all all 127.0.0.1/32 trust' "$conf/pg_hba.conf" 2>/dev/null; then
		sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$conf/pg_hba.conf" || true
	fi
	pg_ctlcluster --skip-systemctl-redirect "$ver" main start >/dev/null 2>&1 || pg_ctlcluster "$ver" main start || true
	for _ in $(seq 1 30); do pg_ready && return 0; sleep 1; done
	return 1
}

if ensure_postgres; then
	export AUTHPIPE_TEST_POSTGRES_URL="$pg_url"
	echo "== postgresql ready at 127.0.0.1:5432"
elif [ "$CI" = true ]; then
	echo "FATAL: PostgreSQL could not be installed or started; CI requires it" >&2
	exit 1
else
	echo "!! WARNING: no PostgreSQL; PostgreSQL store tests will SKIP" >&2
fi
