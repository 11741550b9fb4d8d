# Common tasks. CI runs `make test` (see .ci/run).

GO ?= go

.PHONY: run test bench build

## run: run the whole hub in one process with the quickstart config
run:
	$(GO) run ./cmd/tessera run -c examples/quickstart/tessera.yaml

## test: every test, with the race detector
test:
	$(GO) test -race -count=1 -timeout 15m ./...

## bench: one iteration of each engine benchmark (a smoke test; `tessera bench` measures)
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./topology/ ./state/

## build: build ./tessera
build:
	$(GO) build -o tessera ./cmd/tessera
