#!/usr/bin/env bash
# The whole test suite, as the README shows it: vet, staticcheck (pinned in
# go.mod as a tool), then every test under the race detector.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== go vet"
go vet ./...
echo "== staticcheck"
go tool staticcheck ./...
echo "== go test -race"
# -race everywhere: the writer goroutine, idempotency, token use and the
# HTTP server are where goroutines meet, and the suite stays well inside
# CI's budget on two cores.
go test -race -count=1 -timeout 20m ./...
