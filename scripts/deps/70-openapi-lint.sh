# Sourced by scripts/test.sh. Installs the pinned OpenAPI linter (Redocly CLI, from the npm
# registry, exactly as tools/openapi-lint/package-lock.json records it) and exports
# AUTHPIPE_OPENAPI_LINT with its path. Idempotent: `npm ci` runs again only when the lock
# file changed since the last install.
openapi_lint_dir="$PWD/tools/openapi-lint"
openapi_lint_bin="$openapi_lint_dir/node_modules/.bin/redocly"

ensure_openapi_lint() {
	command -v npm >/dev/null 2>&1 || return 1
	local stamp="$openapi_lint_dir/node_modules/.lock-sha256"
	local want
	want=$(sha256sum "$openapi_lint_dir/package-lock.json" | cut -d' ' -f1)
	if [ -x "$openapi_lint_bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
		return 0
	fi
	echo "== installing the OpenAPI linter (npm ci in tools/openapi-lint)"
	(cd "$openapi_lint_dir" && npm ci --no-audit --no-fund --ignore-scripts >/dev/null 2>&1) || return 1
	echo "$want" >"$stamp"
	[ -x "$openapi_lint_bin" ]
}

if ensure_openapi_lint; then
	export AUTHPIPE_OPENAPI_LINT="$openapi_lint_bin"
	echo "== OpenAPI linter ready: $("$openapi_lint_bin" --version 2>/dev/null)"
elif [ "$CI" = true ]; then
	echo "FATAL: the OpenAPI linter could not be installed (npm ci in tools/openapi-lint); CI requires it" >&2
	exit 1
else
	echo "!! WARNING: no OpenAPI linter (npm missing or offline); docs/openapi.yaml is NOT linted" >&2
fi
