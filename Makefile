# The two commands a newcomer needs: `make run` and `make test`.
.PHONY: run test build lint bench-page-cache

run:
	go run ./cmd/surge serve --demo

test:
	bash scripts/test

build:
	go build -o bin/surge ./cmd/surge

lint:
	bash scripts/lint

bench-page-cache:
	bash bench/page-cache/run
