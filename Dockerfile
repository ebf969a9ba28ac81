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
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz (see charts/authpipe-proxy).
#
# The images listen on 0.0.0.0:8080 and keep the binary's default profile, dev, which
# refuses a non-loopback listen address: the container exits 2 on its first start with one
# line that says what to set. Run it with AUTHPIPE_PROFILE=production (and its PostgreSQL
# AUTHPIPE_DATABASE_URL, KMS-backed AUTHPIPE_KEK_URI and AUTHPIPE_CLIENT_SECRET_KEK_URI,
# https AUTHPIPE_PUBLIC_URL: docs/configuration.md), as the Helm chart does, or, for a
# throwaway dev container, with AUTHPIPE_DEV_ALLOW_NETWORK_LISTEN=true.

ARG GO_VERSION=1.26

# ---- build stages -------------------------------------------------------------------------
FROM golang:${GO_VERSION}-bookworm AS source
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .

# Static: no libc, runs on distroless/static.
FROM source AS build
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/authpipe-proxy ./cmd/authpipe-proxy

# cgo: links glibc and dlopen()s the PKCS#11 module named in the KEK URI.
FROM source AS build-cgo
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=1 go build -trimpath -ldflags "-s -w" -o /out/authpipe-proxy ./cmd/authpipe-proxy

# ---- pkcs11: cgo build on debian-slim (same Debian release as the builder's glibc) ---------
FROM debian:bookworm-slim AS pkcs11
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /home/nonroot && chown 65532:65532 /home/nonroot
COPY --from=build-cgo /out/authpipe-proxy /authpipe-proxy
ENV AUTHPIPE_LISTEN_ADDR=0.0.0.0:8080
WORKDIR /home/nonroot
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/authpipe-proxy"]
CMD ["serve"]

# ---- static: the default target (last stage) ----------------------------------------------
FROM gcr.io/distroless/static-debian12:nonroot AS static
COPY --from=build /out/authpipe-proxy /authpipe-proxy
ENV AUTHPIPE_LISTEN_ADDR=0.0.0.0:8080
WORKDIR /home/nonroot
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/authpipe-proxy"]
CMD ["serve"]
