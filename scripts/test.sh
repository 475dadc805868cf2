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
# The HTTP, store and command-line suites again on PostgreSQL: apitest opens
# a fresh database per test from internal/pgtest's throwaway cluster. Without
# -race (the run above covers the same code under the race detector, and this
# keeps CI short). Runs when the PostgreSQL server binaries are installed, and
# always under CI, where pgtest fails instead of skipping without them.
if [ -n "${CI:-}" ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "== go test on PostgreSQL"
  SWITCHYARD_TEST_DB=postgres go test -count=1 -timeout 20m ./internal/httpapi/ ./internal/store/... ./internal/app/
fi
