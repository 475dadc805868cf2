#!/usr/bin/env bash
# Issue 6's measurement (docs/benchmarks.md): flow-1 customer create through
# Switchyard on a local PostgreSQL with its durable defaults (fsync=on,
# synchronous_commit=on), 32 concurrent clients, through one node, and spread
# over two nodes on the same machine and database (one load generator whose
# workers alternate between the nodes). Each measurement starts on
# a fresh database (the rate falls as the tables grow), the order of the two
# alternates from run to run, and each run follows a bare-HTTP run of the
# load tool, so every figure has its same-run baseline.
#
#   scripts/bench-postgres.sh            # BENCH_RUNS=3 BENCH_D=10s BENCH_C=32
#   SWITCHYARD_DB_MAX_CONNS=8 scripts/bench-postgres.sh   # another pool size per node
#   BENCH_CLIENT=net/http scripts/bench-postgres.sh       # the load tool's old client
#
# Needs the Debian PostgreSQL server binaries (apt-get install postgresql);
# runs its own throwaway cluster as the postgres user on 127.0.0.1 and
# removes it on exit. Everything listens on 127.0.0.1 only and every step is
# bounded.
set -euo pipefail
cd "$(dirname "$0")/.."

C=${BENCH_C:-32}
D=${BENCH_D:-10s}
W=${BENCH_WARMUP:-2s}
RUNS=${BENCH_RUNS:-3}
CLIENT=${BENCH_CLIENT:-wire} # the load tool's -client (net/http: as before 3b75ad1)

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$bindir/initdb" ] || { echo "no PostgreSQL server binaries: apt-get install postgresql" >&2; exit 1; }

WORK=$(mktemp -d /tmp/switchyard-pgbench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	# the nodes' distinct error lines, if any, for the record
	cat "$WORK"/a.err "$WORK"/b.err 2>/dev/null | grep -o 'err="[^"]*"' | sort | uniq -c | sort -rn | head -5 >&2 || true
	wait 2>/dev/null || true
	[ -f "$WORK/pg/postmaster.pid" ] && runuser -u postgres -- "$bindir/pg_ctl" -D "$WORK/pg" -m fast stop >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

echo "== build"
go build -o "$WORK/switchyard" ./cmd/switchyard
go build -o "$WORK/switchyard-load" ./cmd/switchyard-load

echo "== PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') (fsync=on, synchronous_commit=on)"
mkdir -p "$WORK/pg" "$WORK/sock" "$WORK/pglog"
chown postgres "$WORK/pg" "$WORK/sock" "$WORK/pglog"
runuser -u postgres -- "$bindir/initdb" -D "$WORK/pg" -A trust -U postgres >/dev/null
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
runuser -u postgres -- "$bindir/pg_ctl" -D "$WORK/pg" -l "$WORK/pglog/pg.log" -w -t 60 start -o \
	"-c listen_addresses=127.0.0.1 -p $PORT -k $WORK/sock -c fsync=on -c synchronous_commit=on -c max_connections=200 -c shared_buffers=256MB" >/dev/null
DBBASE="postgres://postgres@127.0.0.1:$PORT"
printf 'v1:%s\n' "$(head -c 32 /dev/urandom | base64)" >"$WORK/master.key"
chmod 600 "$WORK/master.key"

# Every measurement gets a database of its own: the rate falls as the tables
# grow, so one node and two nodes must start from the same empty tables.
NDB=0
fresh_db() { # → sets DB
	NDB=$((NDB + 1))
	runuser -u postgres -- "$bindir/psql" -h 127.0.0.1 -p "$PORT" -U postgres -qc "CREATE DATABASE sy$NDB" >/dev/null
	DB="$DBBASE/sy$NDB?sslmode=disable"
}
start_node() { # name → sets ADDR_<name>, and KEY/GW from the node that made the sandbox
	local name=$1 out=$WORK/$1.out
	"$WORK/switchyard" serve --listen 127.0.0.1:0 --database-url "$DB" --master-key-file "$WORK/master.key" \
		--log-level warn >"$out" 2>>"$WORK/$name.err" &
	PIDS+=($!)
	eval "PID_$name=$!"
	for _ in $(seq 300); do grep -q '^switchyard listening on ' "$out" && break; sleep 0.1; done
	grep -q '^switchyard listening on ' "$out" || { cat "$WORK/$name.err" >&2; exit 1; }
	eval "ADDR_$name=$(sed -n 's/^switchyard listening on http:\/\///p' "$out")"
	if grep -q '^secret key: ' "$out"; then
		KEY=$(sed -n 's/^secret key: //p' "$out")
		GW=$(sed -n 's/^gateway id: //p' "$out")
	fi
}
stop_nodes() {
	for n in "$@"; do eval "kill -TERM \$PID_$n; wait \$PID_$n 2>/dev/null || true"; done
}

load() { # url concurrency → prints "rps p99ms"
	"$WORK/switchyard-load" -client "$CLIENT" -url "$1" -key "$KEY" -gateway "$GW" -scenario customer-create-card -c "$2" -d "$D" -warmup "$W" -json |
		python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.0f %.2f %d" % (r["rps"], r["p99_ms"], r["errors"]))'
}
bare() {
	"$WORK/switchyard-load" -client "$CLIENT" -scenario bare -c "$C" -d "$D" -warmup "$W" -json | python3 -c 'import json,sys; print("%.0f" % json.load(sys.stdin)["rps"])'
}

echo "client: $CLIENT"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), kernel $(uname -r)"
printf '%-4s %-10s %-22s %-22s %-10s\n' run bare_rps one_node_rps/p99/err two_nodes_rps/p99/err two/one
one() { # → "rps p99 errors" of one node with all C clients, on a fresh database
	fresh_db
	start_node a
	load "http://$ADDR_a" "$C"
	stop_nodes a
}
two() { # → the same C clients over two nodes on one fresh database: one load
	# generator, its workers spread over both nodes as a load balancer would
	# spread connections, so both measurements carry the same client cost
	fresh_db
	start_node a
	start_node b
	load "http://$ADDR_a,http://$ADDR_b" "$C"
	stop_nodes a b
}
for i in $(seq "$RUNS"); do
	b=$(bare)
	# alternate which goes first, so neither always runs on a warmer machine
	if [ $((i % 2)) = 1 ]; then
		one >"$WORK/one"
		two >"$WORK/two"
	else
		two >"$WORK/two"
		one >"$WORK/one"
	fi
	read -r one p99one e1 <"$WORK/one"
	read -r two p99two e2 <"$WORK/two"
	printf '%-4s %-10s %-22s %-22s %-10s\n' "$i" "$b" "$one/$p99one/$e1" "$two/$p99two/$e2" "$(python3 -c "print(round($two/$one, 2))")"
done
