# Sourced by scripts/test.sh. Builds the browser SDK (sdk/js) for its Chromium tests
# (proxy/sdk_js_browser_test.go) and exports AUTHPIPE_TEST_SDK_JS with the built module's
# directory. Installs Debian's nodejs and npm when absent (root only), then the SDK's
# pinned toolchain from its lockfile (npm ci, only when the lockfile changed since the last
# install), then compiles it with tsc, and bundles the React hook's test page (React
# bundled for the test only) with esbuild into sdk/js/dist-test. Idempotent: a second run reinstalls nothing.
ensure_node() {
	command -v node >/dev/null && command -v npm >/dev/null && return 0
	[ "$(id -u)" = 0 ] || return 1
	echo "== installing nodejs and npm"
	(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm) >/dev/null || return 1
	command -v node >/dev/null && command -v npm >/dev/null
}

build_sdk_js() {
	(
		cd sdk/js || exit 1
		stamp=node_modules/.authpipe-lock
		if ! cmp -s package-lock.json "$stamp" 2>/dev/null; then
			npm ci --no-audit --no-fund --loglevel=error >/dev/null && cp package-lock.json "$stamp"
		fi &&
			npx --no-install tsc -p tsconfig.json &&
			npm run --silent build:test
	)
}

if ensure_node && build_sdk_js; then
	export AUTHPIPE_TEST_SDK_JS="$PWD/sdk/js/dist"
	echo "== sdk/js built: $AUTHPIPE_TEST_SDK_JS"
elif [ "$CI" = true ]; then
	echo "FATAL: the browser SDK (sdk/js) could not be built; CI requires it" >&2
	exit 1
else
	echo "!! WARNING: no Node.js or the sdk/js build failed; the browser SDK's Chromium tests will SKIP" >&2
fi
