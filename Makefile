# The README's two commands are `make run` and `make test`.
.PHONY: run build image test vet unit chart bench

# Build metadata for internal/buildinfo (authpipe-proxy --version, authpipe_build_info, the
# control-plane User-Agent) and the image's OCI labels.
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
REVISION   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
BUILDINFO  := github.com/authpipe/authpipe-proxy/internal/buildinfo
LDFLAGS    := -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).revision=$(REVISION) -X $(BUILDINFO).date=$(BUILD_DATE)

run:
	go run ./cmd/authpipe-proxy serve

build:
	go build -ldflags "$(LDFLAGS)" -o authpipe-proxy ./cmd/authpipe-proxy

image:
	docker build --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
		--build-arg BUILD_DATE=$(BUILD_DATE) -t authpipe-proxy:$(VERSION) .

# Everything CI runs: installs/starts what the tests need, vet, go test -race, chart checks.
test:
	bash scripts/test.sh

vet:
	go vet ./...

bench:
	go run ./bench
