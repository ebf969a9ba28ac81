# Sourced by scripts/test.sh. Makes the SoftHSM2 PKCS#11 module available for the
# kms/pkcs11 tests and exports AUTHPIPE_TEST_SOFTHSM_MODULE with its path. Installs the
# Debian package softhsm2 when the module is absent (root only). Idempotent: a second run
# finds the module and does nothing. The tests create their own token in a temporary
# directory (their own softhsm2.conf), so nothing here touches /var/lib/softhsm.
softhsm_module="${AUTHPIPE_TEST_SOFTHSM_MODULE:-/usr/lib/softhsm/libsofthsm2.so}"

ensure_softhsm() {
	[ -f "$softhsm_module" ] && command -v softhsm2-util >/dev/null 2>&1 && return 0
	if [ "$(id -u)" != 0 ]; then
		return 1
	fi
	echo "== installing softhsm2"
	(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2) >/dev/null || return 1
	[ -f "$softhsm_module" ] && command -v softhsm2-util >/dev/null 2>&1
}

if ensure_softhsm; then
	export AUTHPIPE_TEST_SOFTHSM_MODULE="$softhsm_module"
	echo "== softhsm2 ready: $softhsm_module"
elif [ "$CI" = true ]; then
	echo "FATAL: SoftHSM2 ($softhsm_module, softhsm2-util) could not be installed; CI requires it" >&2
	exit 1
else
	echo "!! WARNING: no SoftHSM2; PKCS#11 KEK tests will SKIP" >&2
fi
