#!/usr/bin/env bash
# Pin the Dockerfile's base images by digest: resolves the current digest of each
# GO_IMAGE / STATIC_IMAGE / DEBIAN_IMAGE tag (the multi-arch index) and rewrites the ARG
# default to name:tag@sha256:…. Needs registry access and `docker buildx` or `crane`.
# Run it for a release and commit the result; re-run it to take base-image fixes.
set -euo pipefail
cd "$(dirname "$0")/.."
digest() {
	if command -v crane >/dev/null; then
		crane digest "$1"
	else
		docker buildx imagetools inspect "$1" --format '{{json .Manifest.Digest}}' | tr -d '"'
	fi
}
for arg in GO_IMAGE STATIC_IMAGE DEBIAN_IMAGE; do
	ref=$(sed -n "s/^ARG $arg=//p" Dockerfile)
	tag=${ref%@*}
	d=$(digest "$tag")
	[[ $d == sha256:* ]] || { echo "no digest for $tag" >&2; exit 1; }
	sed -i "s|^ARG $arg=.*|ARG $arg=$tag@$d|" Dockerfile
	echo "$arg=$tag@$d"
done
