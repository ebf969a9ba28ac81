# The README's two commands are `make run` and `make test`.
.PHONY: run build test vet unit chart bench

run:
	go run ./cmd/authpipe-proxy serve

build:
	go build -o authpipe-proxy ./cmd/authpipe-proxy

# Everything CI runs: installs/starts what the tests need, vet, go test -race, chart checks.
test:
	bash scripts/test.sh

vet:
	go vet ./...

bench:
	go run ./bench
