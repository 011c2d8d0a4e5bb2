#!/usr/bin/env bash
# The chat server, krill's (build/chat) and the BEAM's (bench/erlang/chat.erl),
# under the same loads from build/chat_load, run after run in alternation so
# that both see the same machine noise.
#
#   examples/chat/compare.sh [RUNS]        (default 3 runs of each, per load)
#
# Each load is a line of chat_load options in LOADS below (override with
# CHAT_LOADS, one load per line). Prints every RESULT line, then a table: the
# median delivered lines per second, p50 and p99 latency of each, and the
# ratios. Needs build/chat and build/chat_load (make chat) and erl/erlc
# (scripts/deps.sh bench); the servers listen on ports 5561 (krill) and 5562
# (BEAM). A connection is a descriptor on both sides: ulimit -n must allow
# 10,000 plus a few in each process (the soft limit is raised to the hard one).
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
cd "$here"
runs=${1:-3}
kport=5561
bport=5562
default_loads="--clients 1000 --rooms 10 --msgs 50000
--clients 10000 --rooms 100 --msgs 100000
--clients 1000 --rooms 10 --msgs 20000 --inflight 4"
loads=${CHAT_LOADS:-$default_loads}

[ -x build/chat ] && [ -x build/chat_load ] || { echo "compare.sh: make chat first" >&2; exit 2; }
command -v erlc >/dev/null || { echo "compare.sh: no erlc (scripts/deps.sh bench)" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)"
mkdir -p build/erlang
erlc -Wall -o build/erlang bench/erlang/chat.erl

tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT

build/chat --port "$kport" >"$tmp/krill.out" 2>"$tmp/krill.err" &
pids+=($!)
erl +S 2:2 +P 2000000 +Q 65536 -noshell -pa build/erlang -s chat main -extra --port "$bport" \
	>"$tmp/beam.out" 2>&1 &
pids+=($!)
for f in krill beam; do
	for _ in $(seq 100); do grep -q listening "$tmp/$f.out" 2>/dev/null && break; sleep 0.1; done
	grep -q listening "$tmp/$f.out" || { echo "compare.sh: the $f server did not start" >&2; exit 1; }
done

echo "# $(date -Iseconds), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), commit $(git rev-parse --short HEAD)"
while IFS= read -r load; do
	[ -n "$load" ] || continue
	for r in $(seq "$runs"); do
		for impl in krill beam; do
			port=$kport
			[ "$impl" = beam ] && port=$bport
			# shellcheck disable=SC2086 # a load is a list of options
			line=$(build/chat_load $load --port "$port" --impl "$impl" --timeout 900 |
				grep '^RESULT' || echo "RESULT FAILED impl=$impl $load")
			echo "$line" | tee -a "$tmp/results"
		done
	done
done <<<"$loads"

# The medians, per load and implementation.
echo
echo "| load | krill lines/s | BEAM lines/s | ratio | krill p50 / p99 ms | BEAM p50 / p99 ms |"
echo "|---|---|---|---|---|---|"
while IFS= read -r load; do
	[ -n "$load" ] || continue
	c=$(sed 's/.*--clients \([0-9]*\).*/\1/' <<<"$load")
	rm=$(sed 's/.*--rooms \([0-9]*\).*/\1/' <<<"$load")
	m=$(sed 's/.*--msgs \([0-9]*\).*/\1/' <<<"$load")
	inf=0
	[[ "$load" == *--inflight* ]] && inf=$(sed 's/.*--inflight \([0-9]*\).*/\1/' <<<"$load")
	med() { # impl field
		grep "impl=$1 clients=$c rooms=$rm msgs=$m " "$tmp/results" | grep " inflight=$inf " |
			sed "s/.* $2=\([^ ]*\).*/\1/" | sort -g |
			awk '{ a[NR] = $1 } END { if (NR) print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'
	}
	kr=$(med krill msgs_per_s) br=$(med beam msgs_per_s)
	ratio=$(awk -v k="$kr" -v b="$br" 'BEGIN { if (b > 0) printf "%.1fx", k / b; else print "-" }')
	ms() { awk -v v="$1" 'BEGIN { printf "%.1f", v / 1000 }'; }
	echo "| $load | ${kr:-failed} | ${br:-failed} | $ratio |" \
		"$(ms "$(med krill p50_us)") / $(ms "$(med krill p99_us)") |" \
		"$(ms "$(med beam p50_us)") / $(ms "$(med beam p99_us)") |"
done <<<"$loads"
