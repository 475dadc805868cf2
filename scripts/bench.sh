#!/usr/bin/env bash
# The performance campaign of docs/benchmarks.md (issues 3, 4, 5 and 7).
#
# Builds switchyard and switchyard-load, starts servers on fresh data dirs
# (127.0.0.1, port picked by the kernel), and runs every measurement RUNS
# times, closed loop at -c 32 for -d 10s after -warmup 2s, each right after
# a run of the bare-HTTP baseline (-scenario bare) so every figure has the
# same-run bare figure beside it. Prints the machine, every run, and a table
# of medians; the raw lines stay in $BENCH_OUT (default: a new temp dir,
# kept; the data dirs are removed on exit).
#
#   scripts/bench.sh                      # everything, about 20 minutes on 2 cores
#   BENCH_ONLY=write,charge scripts/bench.sh
#
# Groups (BENCH_ONLY, comma-separated): fsync, write (gateway create with
# and without group commit, vault create), customers (flow 1, flow 4, get),
# charge (charge by customer_id, --simulator-latency 1ms), million (seed
# BENCH_SEED customers into one account, then reference/list/search).
# Knobs: BENCH_CLIENT (the load tool's -client: wire, or net/http as in the
# figures recorded before 3b75ad1), BENCH_C, BENCH_D, BENCH_WARMUP, BENCH_RUNS, BENCH_SEED, BENCH_DIR
# (where data dirs go: use the disk you want measured), BENCH_OUT,
# BENCH_WAIT_QUIET=1 (before each group, wait up to 10 min for the 1-minute
# load average to drop below 1.5), BENCH_KEEP=1 (keep the data dirs),
# BENCH_MILLION_DIR + BENCH_MILLION_KEY (measure an already seeded data dir
# and its account's secret key instead of seeding a fresh one).
#
# Everything listens on 127.0.0.1 only; every step is bounded by timeout;
# the servers this script starts are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

C=${BENCH_C:-32}
D=${BENCH_D:-10s}
W=${BENCH_WARMUP:-2s}
RUNS=${BENCH_RUNS:-3}
CLIENT=${BENCH_CLIENT:-wire}
SEED=${BENCH_SEED:-1000000}
ONLY=${BENCH_ONLY:-fsync,write,customers,charge,million}
WORK=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/switchyard-bench.XXXXXX")
OUT=${BENCH_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/switchyard-bench-out.XXXXXX")} # kept: runs.tsv, load.log
mkdir -p "$OUT"
RUNS_TSV=$OUT/runs.tsv
LOG=$OUT/load.log
: >"$RUNS_TSV"
: >"$LOG"

want() { [[ ",$ONLY," == *",$1,"* ]]; }

declare -A PID URL KEY GW
cleanup() {
	for name in "${!PID[@]}"; do
		kill -TERM "${PID[$name]}" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	if [ -z "${BENCH_KEEP:-}" ]; then
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT

echo "== build"
go build -o "$WORK/switchyard" ./cmd/switchyard
go build -o "$WORK/switchyard-load" ./cmd/switchyard-load
BIN=$WORK/switchyard
LOAD=$WORK/switchyard-load

echo "== machine"
echo "date:      $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "nproc:     $(nproc)"
echo "cpu:       $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "kernel:    $(uname -r)"
echo "go:        $(go version)"
echo "commit:    $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
echo "data dirs: $WORK ($(df -P "$WORK" | awk 'NR==2{print $1}'))"
echo "load:      $(cut -d' ' -f1-3 /proc/loadavg)"
echo "settings:  -c $C -d $D -warmup $W -client $CLIENT, $RUNS runs each, bare run right before each"

wait_quiet() {
	[ -n "${BENCH_WAIT_QUIET:-}" ] || return 0
	local i
	for i in $(seq 1 120); do
		awk '{exit !($1 < 1.5)}' /proc/loadavg && return 0
		sleep 5
	done
	echo "warning: load average still $(cut -d' ' -f1 /proc/loadavg) after 10 min; measuring anyway" >&2
}

# start_server NAME FLAGS...: a server on the data dir $WORK/NAME (or
# DIR[NAME]); fills PID, URL, KEY and GW for NAME from its start-up lines
# (a restart prints no keys: KEY and GW keep those of the first start).
declare -A DIR STARTS
start_server() {
	local name=$1
	shift
	local dir=${DIR[$name]:-$WORK/$name}
	STARTS[$name]=$((${STARTS[$name]:-0} + 1))
	local out=$WORK/$name.${STARTS[$name]}.out
	"$BIN" serve --listen 127.0.0.1:0 --data-dir "$dir" "$@" >"$out" 2>>"$WORK/$name.err" &
	PID[$name]=$!
	local i
	for i in $(seq 1 300); do
		if grep -q '^switchyard listening on ' "$out" 2>/dev/null; then
			URL[$name]=$(sed -n 's/^switchyard listening on //p' "$out" | tail -1)
			if grep -q '^secret key: ' "$out"; then
				KEY[$name]=$(sed -n 's/^secret key: //p' "$out")
				GW[$name]=$(sed -n 's/^gateway id: //p' "$out")
			fi
			echo "server $name: ${URL[$name]} (pid ${PID[$name]}) $*"
			return 0
		fi
		if ! kill -0 "${PID[$name]}" 2>/dev/null; then
			echo "server $name exited:" >&2
			cat "$WORK/$name.err" >&2
			exit 1
		fi
		sleep 0.1
	done
	echo "server $name: no listening line after 30s" >&2
	exit 1
}

stop_server() {
	local name=$1
	kill -TERM "${PID[$name]}" 2>/dev/null || true
	timeout 60 tail --pid="${PID[$name]}" -f /dev/null || true
	wait "${PID[$name]}" 2>/dev/null || true
	unset "PID[$name]"
}

field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }

# load ARGS...: one run of the load tool; prints its line, returns it in LINE.
LINE=
load() {
	LINE=$(timeout 180 "$LOAD" -client "$CLIENT" "$@" 2>>"$LOG") || {
		echo "load tool failed: $*" >&2
		tail -5 "$LOG" >&2
		exit 1
	}
	echo "$LINE" >>"$LOG"
}

# measure NAME ITER ARGS...: the bare baseline, then the measurement; one
# row in runs.tsv: name, iteration, rps, p50, p99, errors, bare rps,
# unfinished (requests unanswered when the run ended: in a closed loop up to
# -c always are; it tells something when rps is 0).
measure() {
	local name=$1 iter=$2
	shift 2
	load -scenario bare -c "$C" -d "$D" -warmup "$W"
	local bare
	bare=$(field rps "$LINE")
	load -c "$C" -d "$D" -warmup "$W" "$@"
	local rps p50 p99 errs unf
	rps=$(field rps "$LINE")
	unf=$(field unfinished "$LINE")
	unf=${unf:-0}
	p50=$(sed -n 's/.* p50=\([0-9.]*\)ms.*/\1/p' <<<"$LINE")
	p99=$(sed -n 's/.* p99=\([0-9.]*\)ms.*/\1/p' <<<"$LINE")
	errs=$(field errors "$LINE")
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$iter" "$rps" "$p50" "$p99" "$errs" "$bare" "$unf" >>"$RUNS_TSV"
	printf '  %-16s run %s: %9.1f/s  p50 %7.2fms  p99 %8.2fms  errors %s  unfinished %s  bare %9.1f/s  ratio %.3f\n' \
		"$name" "$iter" "$rps" "$p50" "$p99" "$errs" "$unf" "$bare" "$(awk -v a="$rps" -v b="$bare" 'BEGIN{print (b>0)?a/b:0}')"
}

if want fsync; then
	echo "== fsync rate (4 KiB write + fsync, one writer, under $WORK)"
	wait_quiet
	for i in $(seq 1 "$RUNS"); do
		load -scenario fsync -dir "$WORK" -d 5s -warmup 500ms
		echo "  $LINE"
		printf 'fsync\t%s\t%s\t%s\t%s\t0\t\n' "$i" "$(sed -n 's/.* fsyncs\/s=\([0-9.]*\).*/\1/p' <<<"$LINE")" \
			"$(sed -n 's/.* p50=\([0-9.]*\)ms.*/\1/p' <<<"$LINE")" "$(sed -n 's/.* p99=\([0-9.]*\)ms.*/\1/p' <<<"$LINE")" >>"$RUNS_TSV"
	done
fi

if want write; then
	echo "== issue 3/4: durable writes (gateway create with and without group commit, vault create)"
	start_server gc
	start_server nogc --group-commit=false
	wait_quiet
	for i in $(seq 1 "$RUNS"); do
		measure gateway-gc "$i" -scenario gateway-create -url "${URL[gc]}" -key "${KEY[gc]}"
		measure gateway-nogc "$i" -scenario gateway-create -url "${URL[nogc]}" -key "${KEY[nogc]}"
		measure vault "$i" -scenario vault-create -url "${URL[gc]}" -key "${KEY[gc]}"
	done
	stop_server gc
	stop_server nogc
fi

if want customers; then
	echo "== issue 5: customers (flow 1 with the Simulator gateway, flow 4, get by id)"
	start_server cust
	wait_quiet
	for i in $(seq 1 "$RUNS"); do
		measure flow1 "$i" -scenario customer-create-card -gateway "${GW[cust]}" -url "${URL[cust]}" -key "${KEY[cust]}"
		measure flow4 "$i" -scenario customer-create-vault -url "${URL[cust]}" -key "${KEY[cust]}"
		measure get "$i" -scenario customer-get -url "${URL[cust]}" -key "${KEY[cust]}"
	done
	stop_server cust
fi

if want charge; then
	echo "== issue 7: charge by customer_id (Simulator, --simulator-latency 1ms)"
	start_server charge --simulator-latency 1ms
	wait_quiet
	for i in $(seq 1 "$RUNS"); do
		measure charge "$i" -scenario charge-customer -url "${URL[charge]}" -key "${KEY[charge]}"
	done
	stop_server charge
fi

if want million; then
	if [ -n "${BENCH_MILLION_DIR:-}" ]; then
		# Re-measure a data dir seeded before (its account's secret key in
		# BENCH_MILLION_KEY) without seeding again.
		echo "== issue 5: the customers already in $BENCH_MILLION_DIR"
		DIR[million]=$BENCH_MILLION_DIR
		start_server million
		mkey=${BENCH_MILLION_KEY:?BENCH_MILLION_KEY is the secret key of the seeded account}
	else
		echo "== issue 5: $SEED customers in one account"
		start_server million
		mkey=${KEY[million]}
		echo "$mkey" >"$WORK/million.key"
		# The vault record is made over HTTP while the server runs; then the
		# server stops and the rows go straight into its file.
		timeout 1200 "$LOAD" -seed "$SEED" -data-dir "$WORK/million" -key "$mkey" -url "${URL[million]}" \
			>"$WORK/seed.out" 2>"$WORK/seed.err" &
		seedpid=$!
		for _ in $(seq 1 300); do
			grep -q 'waiting for the server' "$WORK/seed.err" 2>/dev/null && break
			kill -0 "$seedpid" 2>/dev/null || break
			sleep 0.1
		done
		stop_server million
		if ! wait "$seedpid"; then
			cat "$WORK/seed.err" >&2
			exit 1
		fi
		echo "  $(cat "$WORK/seed.out")"
		ls -l "$WORK/million/switchyard.db" | awk '{printf "  database file: %.0f MiB\n", $5/1048576}'
		start_server million
	fi
	wait_quiet
	for i in $(seq 1 "$RUNS"); do
		measure reference "$i" -scenario get -path "/v1/customers?reference=REF-{rand:$SEED}" -url "${URL[million]}" -key "$mkey"
		measure list100 "$i" -scenario get -path "/v1/customers?limit=100" -url "${URL[million]}" -key "$mkey"
		measure search-name "$i" -scenario get -path "/v1/customers?search=lovelace" -url "${URL[million]}" -key "$mkey"
		measure search-ref "$i" -scenario get -path "/v1/customers?search=ref-{rand:$SEED}" -url "${URL[million]}" -key "$mkey"
	done
	stop_server million
fi

echo "== medians of $RUNS runs (ratio = rps / bare rps of the same run, median of the per-run ratios)"
awk -F'\t' '
function median(s,   a, n, i, j, t) {
	n = split(substr(s, 2), a, " ")
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
{
	if (!($1 in seen)) { seen[$1] = 1; order[++k] = $1 }
	rps[$1] = rps[$1] " " $3; p50[$1] = p50[$1] " " $4; p99[$1] = p99[$1] " " $5; err[$1] += $6
	if ($7 != "") { bare[$1] = bare[$1] " " $7; ratio[$1] = ratio[$1] " " ($7 > 0 ? $3 / $7 : 0) }
	r[$1, $2] = $3
	iters[$1] = iters[$1] " " $2
}
END {
	printf "%-14s %10s %9s %9s %7s %10s %7s\n", "measurement", "req/s", "p50 ms", "p99 ms", "errors", "bare/s", "ratio"
	for (i = 1; i <= k; i++) {
		m = order[i]
		if (m in bare) printf "%-14s %10.1f %9.2f %9.2f %7d %10.1f %7.3f%s\n", m, median(rps[m]), median(p50[m]), median(p99[m]), err[m], median(bare[m]), median(ratio[m]), (median(rps[m]) == 0 ? "  (no answer within a run)" : "")
		else printf "%-14s %10.1f %9.2f %9.2f %7d %10s %7s\n", m, median(rps[m]), median(p50[m]), median(p99[m]), err[m], "-", "-"
	}
	print "(errors: total over the runs; a run in which no request was answered counts p50/p99 as 0)"
	# Ratios the targets name, per run, then their median.
	split("gateway-gc/gateway-nogc vault/gateway-gc", pairs, " ")
	for (p in pairs) {
		split(pairs[p], ab, "/")
		if (!(ab[1] in seen) || !(ab[2] in seen)) continue
		n = split(substr(iters[ab[1]], 2), it, " "); s = ""
		for (j = 1; j <= n; j++) if ((ab[2], it[j]) in r && r[ab[2], it[j]] > 0) s = s " " r[ab[1], it[j]] / r[ab[2], it[j]]
		if (s != "") printf "%-24s per run:%s  median %.3f\n", pairs[p], s, median(s)
	}
}' "$RUNS_TSV"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); raw runs: $RUNS_TSV"
