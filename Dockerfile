# syntax=docker/dockerfile:1
#
# Two images from one file:
#   docker build -t authpipe-proxy:0.1.0 .                          static, the default target
#   docker build --target pkcs11 -t authpipe-proxy:0.1.0-pkcs11 .   cgo build for PKCS#11 HSMs
#
# The default image is a static binary (CGO_ENABLED=0) on distroless/static: the binary and
# CA certificates only. Without cgo the PKCS#11 KEK backend reports itself unavailable; the
# `pkcs11` target builds with cgo against glibc and runs on debian-slim, where an HSM vendor's
# module (and the libraries it needs) can be added in a derived image.
# HEALTHCHECK runs `authpipe-proxy probe` (GET the local /readyz; distroless has no curl);
# Kubernetes ignores it and probes /healthz and /readyz itself (see charts/authpipe-proxy).
#
# Build metadata: the version, revision and date are build arguments that reach the binary
# (internal/buildinfo, through -ldflags -X: `authpipe-proxy --version`, authpipe_build_info,
# the control-plane User-Agent) and the OCI labels. `make image` passes them from git:
#   docker build --build-arg VERSION=v0.2.0 --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg BUILD_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) -t authpipe-proxy:v0.2.0 .
#
# Base images: pin them by digest for a release (GO_IMAGE, STATIC_IMAGE, DEBIAN_IMAGE take
# name:tag@sha256:…); scripts/pin-base-images.sh resolves the current digests of the tags
# below and rewrites these defaults (it needs registry access).
#
# The images listen on 0.0.0.0:8080 and keep the binary's default profile, dev, which
# refuses a non-loopback listen address: the container exits 2 on its first start with one
# line that says what to set. Run it with AUTHPIPE_PROFILE=production (and its PostgreSQL
# AUTHPIPE_DATABASE_URL, KMS-backed AUTHPIPE_KEK_URI and AUTHPIPE_CLIENT_SECRET_KEK_URI,
# https AUTHPIPE_PUBLIC_URL: docs/configuration.md), as the Helm chart does, or, for a
# throwaway dev container, with AUTHPIPE_DEV_ALLOW_NETWORK_LISTEN=true.

ARG GO_IMAGE=golang:1.26-bookworm
ARG STATIC_IMAGE=gcr.io/distroless/static-debian12:nonroot
ARG DEBIAN_IMAGE=debian:bookworm-slim
ARG VERSION=devel
ARG REVISION=unknown
ARG BUILD_DATE=unknown

# ---- build stages -------------------------------------------------------------------------
FROM ${GO_IMAGE} AS source
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .

# Static: no libc, runs on distroless/static.
FROM source AS build
ARG VERSION
ARG REVISION
ARG BUILD_DATE
ENV BUILDINFO_LDFLAGS="-X github.com/authpipe/authpipe-proxy/internal/buildinfo.version=${VERSION} -X github.com/authpipe/authpipe-proxy/internal/buildinfo.revision=${REVISION} -X github.com/authpipe/authpipe-proxy/internal/buildinfo.date=${BUILD_DATE}"
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w ${BUILDINFO_LDFLAGS}" -o /out/authpipe-proxy ./cmd/authpipe-proxy

# cgo: links glibc and dlopen()s the PKCS#11 module named in the KEK URI.
FROM source AS build-cgo
ARG VERSION
ARG REVISION
ARG BUILD_DATE
ENV BUILDINFO_LDFLAGS="-X github.com/authpipe/authpipe-proxy/internal/buildinfo.version=${VERSION} -X github.com/authpipe/authpipe-proxy/internal/buildinfo.revision=${REVISION} -X github.com/authpipe/authpipe-proxy/internal/buildinfo.date=${BUILD_DATE}"
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=1 go build -trimpath -ldflags "-s -w ${BUILDINFO_LDFLAGS}" -o /out/authpipe-proxy ./cmd/authpipe-proxy

# ---- pkcs11: cgo build on debian-slim (same Debian release as the builder's glibc) ---------
FROM ${DEBIAN_IMAGE} AS pkcs11
ARG VERSION
ARG REVISION
ARG BUILD_DATE
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /home/nonroot && chown 65532:65532 /home/nonroot
COPY --from=build-cgo /out/authpipe-proxy /authpipe-proxy
ENV AUTHPIPE_LISTEN_ADDR=0.0.0.0:8080
WORKDIR /home/nonroot
USER 65532:65532
EXPOSE 8080
LABEL org.opencontainers.image.title="authpipe-proxy" \
      org.opencontainers.image.description="Self-hosted data plane that holds third-party credentials for your application's end users" \
      org.opencontainers.image.source="https://github.com/authpipe/authpipe-proxy" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${BUILD_DATE}"
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["/authpipe-proxy", "probe"]
ENTRYPOINT ["/authpipe-proxy"]
CMD ["serve"]

# ---- static: the default target (last stage) ----------------------------------------------
FROM ${STATIC_IMAGE} AS static
ARG VERSION
ARG REVISION
ARG BUILD_DATE
COPY --from=build /out/authpipe-proxy /authpipe-proxy
ENV AUTHPIPE_LISTEN_ADDR=0.0.0.0:8080
WORKDIR /home/nonroot
USER 65532:65532
EXPOSE 8080
LABEL org.opencontainers.image.title="authpipe-proxy" \
      org.opencontainers.image.description="Self-hosted data plane that holds third-party credentials for your application's end users" \
      org.opencontainers.image.source="https://github.com/authpipe/authpipe-proxy" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${BUILD_DATE}"
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["/authpipe-proxy", "probe"]
ENTRYPOINT ["/authpipe-proxy"]
CMD ["serve"]
