# Sourced by scripts/test.sh. Makes headless Chromium available for the browser test of
# the OAuth connect flow (proxy/browser_test.go, driven with chromedp) and exports
# AUTHPIPE_TEST_CHROMIUM with its path. Installs the Debian package chromium when it is
# absent (root only). Idempotent: a second run finds the binary and does nothing.
chromium_bin="${AUTHPIPE_TEST_CHROMIUM:-/usr/bin/chromium}"

ensure_chromium() {
	[ -x "$chromium_bin" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		return 1
	fi
	echo "== installing chromium"
	(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) >/dev/null || return 1
	[ -x "$chromium_bin" ]
}

if ensure_chromium; then
	export AUTHPIPE_TEST_CHROMIUM="$chromium_bin"
	echo "== chromium ready: $chromium_bin"
elif [ "$CI" = true ]; then
	echo "FATAL: Chromium ($chromium_bin) could not be installed; CI requires it" >&2
	exit 1
else
	echo "!! WARNING: no Chromium; the browser test of the connect flow will SKIP" >&2
fi
