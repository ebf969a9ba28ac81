# Sourced by scripts/test.sh. Installs Debian's wrk, the HTTP load generator `go run ./bench
# external` drives the server with next to its own Go generator. Only the benchmark uses
# it: no test needs it, so a missing wrk is a warning, never a failure (CI included).
ensure_wrk() {
	command -v wrk >/dev/null 2>&1 && return 0
	[ "$(id -u)" = 0 ] || return 1
	command -v apt-get >/dev/null 2>&1 || return 1
	echo "== installing wrk"
	(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk ||
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)) >/dev/null 2>&1
	command -v wrk >/dev/null 2>&1
}

if ensure_wrk; then
	echo "== wrk ready ($(command -v wrk))"
else
	echo "!! wrk not installed: go run ./bench external will use its own generator only (no test needs wrk)" >&2
fi
true
