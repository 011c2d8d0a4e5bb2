#!/usr/bin/env bash
# krill's VM benchmarks side by side with the BEAM (what `make bench` runs).
#
#   scripts/bench.sh [BENCHMARK...]   pingpong pingpong-cross ring skynet spawn spawn-short fanin
#                                     (default: all of them)
#
# For each benchmark and each scheduler count (1, and all online CPUs) it runs
# build/krbench and the same benchmark on the BEAM (bench/erlang/, compiled
# into build/erlang) in alternation, run after run, so that both see the same
# machine noise; then prints a table per benchmark: the median of each
# implementation's headline figure and their ratio. Every RESULT line, under a
# header describing the machine, goes to one file per invocation under
# bench/results/. Without erl, krill runs alone and the tables say so.
#
# Environment:
#   KR_BENCH_RUNS=3        runs of each implementation per configuration
#   KR_BENCH_TIMEOUT=300   seconds before a run counts as hung (passed as --timeout)
#   KR_BENCH_OUT=FILE      where the RESULT lines go (default bench/results/DATE-HOST.txt)
#   KR_BENCH_ERL=erl       the BEAM to run; KR_BENCH_ERL=none runs krill alone
#
# Needs build/krbench (make build/krbench) and, for the BEAM, erlang-nox
# (scripts/deps.sh bench); `make bench` sees to both.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

runs=${KR_BENCH_RUNS:-3}
timeout_s=${KR_BENCH_TIMEOUT:-300}
erl=${KR_BENCH_ERL:-erl}
ncpu=$(nproc)
krbench=build/krbench
beam_dir=build/erlang

# name | krbench arguments | headline field | better (lower/higher) | what the figure is
# A second line with the same name adds a second row to that benchmark's table.
specs=(
	"pingpong|pingpong|p50_ns|lower|ping-pong round trip, both on one scheduler: p50, ns"
	"pingpong-cross|pingpong --cross|p50_ns|lower|ping-pong round trip across two schedulers: p50, ns"
	"pingpong-cross|pingpong --cross|rtt_mean_ns|lower|the same, mean round trip (which the tail weighs on), ns"
	"ring|ring|ns_per_msg|lower|ring of 1,000 processes, 1,000 laps: ns per message"
	"skynet|skynet|secs|lower|skynet, 1,111,111 processes: seconds"
	"spawn|spawn|spawn_per_s|higher|spawn 1,000,000 waiting processes: spawns per second"
	"spawn|spawn|bytes_per_proc|lower|the same: resident bytes per waiting process"
	"spawn-short|spawn --short|spawn_per_s|higher|spawn 1,000,000 short-lived processes: per second"
	"fanin|fanin|msgs_per_s|higher|fan-in, 100 senders x 100,000 messages: messages per second"
)

die() { echo "bench.sh: $*" >&2; exit 2; }

[ "$runs" -ge 1 ] 2>/dev/null || die "KR_BENCH_RUNS wants a number >= 1, not '$runs'"
[ -x "$krbench" ] || die "$krbench is missing: run make build/krbench (or make bench)"

# Which benchmarks: all, or those named on the command line.
all_names=$(printf '%s\n' "${specs[@]}" | cut -d'|' -f1 | uniq)
if [ $# -gt 0 ]; then
	for n in "$@"; do
		grep -qx -- "$n" <<<"$all_names" || die "no benchmark '$n' (have: $(tr '\n' ' ' <<<"$all_names"))"
	done
	names=("$@")
else
	mapfile -t names <<<"$all_names"
fi

# The BEAM, if there is one: compile the Erlang side every time (a second or
# two), so a stale build/erlang can never be measured.
have_beam=0
if [ "$erl" != none ] && command -v "$erl" >/dev/null && command -v erlc >/dev/null; then
	mkdir -p "$beam_dir"
	erlc -Wall -o "$beam_dir" bench/erlang/*.erl
	have_beam=1
elif [ "$erl" = none ]; then
	echo "bench.sh: KR_BENCH_ERL=none: running krill alone." >&2
else
	echo "bench.sh: no BEAM ($erl or erlc not found): running krill alone." >&2
	echo "          (scripts/deps.sh bench installs erlang-nox)" >&2
fi

# Scheduler counts: 1 and all; on a one-CPU machine they are the same.
scheds=(1)
[ "$ncpu" -gt 1 ] && scheds+=("$ncpu")
sched_label() { if [ "$1" -eq "$ncpu" ] && [ "$1" -gt 1 ]; then echo "$1 (all)"; else echo "$1"; fi; }

# --- the results file and its header ----------------------------------------

host=$(hostname -s 2>/dev/null || hostname)
out=${KR_BENCH_OUT:-bench/results/$(date +%Y-%m-%dT%H%M)-$host.txt}
mkdir -p "$(dirname "$out")"

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
[ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] && commit="$commit (with uncommitted changes)"
otp=absent
if [ "$have_beam" -eq 1 ]; then
	# OTP_VERSION holds the full version (25.2.3); otp_release only the major.
	otp=$("$erl" -noshell -eval '
		R = erlang:system_info(otp_release),
		F = filename:join([code:root_dir(), "releases", R, "OTP_VERSION"]),
		V = case file:read_file(F) of {ok, B} -> string:trim(B); _ -> R end,
		io:format("~s (erts ~s)", [V, erlang:system_info(version)]), halt().')
fi
{
	echo "# krill benchmarks side by side with the BEAM: scripts/bench.sh ${names[*]}"
	echo "# date:      $(date -Iseconds)"
	echo "# host:      $host"
	echo "# cpu:       ${cpu:-unknown}, $ncpu online CPUs ($(grep -c ^processor /proc/cpuinfo) present)"
	echo "# memory:    $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "# kernel:    $(uname -srm)"
	echo "# compiler:  $(${CC:-cc} --version | head -n1) (krbench: the Makefile's native flags, -O2)"
	echo "# OTP:       $otp"
	echo "# commit:    $commit"
	echo "# load:      $(cut -d' ' -f1-3 /proc/loadavg) at the start"
	echo "# runs:      $runs of each implementation per configuration, alternating krill and BEAM"
	echo "# krill:     $krbench BENCHMARK [options] --schedulers N --timeout $timeout_s"
	echo "# BEAM:      $erl +S N:N +P 2000000 -noshell -pa $beam_dir -s krbench main -extra BENCHMARK [options] --schedulers N --timeout $timeout_s"
} >"$out"

# --- running ------------------------------------------------------------------

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

declare -A vals   # "name|sched|impl|field" -> the values of the runs, space-separated
failures=0

# The krbench arguments of benchmark $1 (every spec line of one name has the same).
bench_args() { printf '%s\n' "${specs[@]}" | awk -F'|' -v n="$1" '$1 == n { print $2; exit }'; }
# The headline fields of benchmark $1.
bench_fields() { printf '%s\n' "${specs[@]}" | awk -F'|' -v n="$1" '$1 == n { print $3 }'; }

# Progress: how many runs in all, so each line can say how far along we are.
total=0
for n in "${names[@]}"; do
	for s in "${scheds[@]}"; do
		[[ "$(bench_args "$n")" == *--cross* && "$s" -lt 2 ]] && continue
		total=$((total + runs * (1 + have_beam)))
	done
done
done_runs=0

# run_one NAME SCHED IMPL RUN: one run, its RESULT line into $out, its headline
# figures into vals. A failure is reported and counted, never fatal: a long
# make bench should not lose the other benchmarks to one bad run.
run_one() {
	local n=$1 s=$2 impl=$3 r=$4
	local -a args cmd
	read -ra args <<<"$(bench_args "$n")"
	args+=(--schedulers "$s" --timeout "$timeout_s")
	if [ "$impl" = krill ]; then
		cmd=("$krbench" "${args[@]}")
	else
		# +P: skynet and spawn keep over a million processes alive; the BEAM's
		# default limit is 262,144.
		cmd=("$erl" +S "$s:$s" +P 2000000 -noshell -pa "$beam_dir" -s krbench main -extra "${args[@]}")
	fi
	done_runs=$((done_runs + 1))
	printf '  [%d/%d] run %d/%d %-5s ' "$done_runs" "$total" "$r" "$runs" "$impl"
	local t0 secs rc=0 hb
	t0=$(date +%s.%N)
	rm -f "$tmp/hb"
	# A run can take a minute or more (cross-scheduler ping-pong on a loaded
	# machine): every 15 s, say so, with the benchmark's own latest progress
	# note from its stderr.
	(
		after=0
		while sleep 15; do
			after=$((after + 15))
			touch "$tmp/hb" # first, so the line is ended even if killed mid-print
			printf '\n        still running after %d s: %s' "$after" "$(tail -n1 "$tmp/err" 2>/dev/null)"
		done
	) &
	hb=$!
	# The guard outlives --timeout a little: it only catches a run that hangs
	# before it could arm its own alarm.
	timeout -k 10 $((timeout_s + 30)) "${cmd[@]}" >"$tmp/out" 2>"$tmp/err" || rc=$?
	kill "$hb" 2>/dev/null || true
	wait "$hb" 2>/dev/null || true
	if [ -e "$tmp/hb" ]; then printf '\n        '; fi
	secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	local line
	line=$(grep '^RESULT ' "$tmp/out" || true)
	if [ "$rc" -ne 0 ] || [ "$(grep -c . <<<"$line")" -ne 1 ]; then
		printf 'FAILED (exit %d) after %s s: %s\n' "$rc" "$secs" "${cmd[*]}"
		tail -n 5 "$tmp/err" | sed 's/^/      /'
		failures=$((failures + 1))
		return 0
	fi
	echo "$line" >>"$out"
	local f v shown=""
	for f in $(bench_fields "$n"); do
		v=$(sed -n "s/.* $f=\([^ ]*\).*/\1/p" <<<"$line")
		vals["$n|$s|$impl|$f"]+=" $v"
		shown+="$f=$v "
	done
	printf '%s(%s s)\n' "$shown" "$secs"
}

echo "bench.sh: $total runs; RESULT lines go to $out"
for n in "${names[@]}"; do
	for s in "${scheds[@]}"; do
		[[ "$(bench_args "$n")" == *--cross* && "$s" -lt 2 ]] && continue
		echo "== $n, $(sched_label "$s") scheduler(s): krbench $(bench_args "$n") --schedulers $s"
		for r in $(seq "$runs"); do
			run_one "$n" "$s" krill "$r"
			if [ "$have_beam" -eq 1 ]; then run_one "$n" "$s" beam "$r"; fi
		done
	done
done

# --- the tables ---------------------------------------------------------------

# median VALUES...: the median, printed with enough digits for millions;
# nothing when there are no values (every run failed).
median() {
	[ $# -gt 0 ] || return 0
	printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 }
		END { if (NR == 0) exit; m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
		      printf "%.10g\n", m }'
}

# human VALUE FIELD: rates as 37.0 M or 560 k; other figures whole from 100
# up (130 ns, 4380 bytes), with three digits below (63.2 ns, 0.384 s).
human() {
	awk -v v="$1" -v f="$2" 'BEGIN {
		if (f ~ /_per_s$/ && v >= 1e6) printf "%.1f M", v / 1e6
		else if (f ~ /_per_s$/ && v >= 1e4) printf "%.0f k", v / 1e3
		else if (v >= 100) printf "%.0f", v
		else printf "%.3g", v }'
}

# cell VALUE FIELD: a table cell; an empty median means every run failed.
cell() { if [ -n "$1" ]; then human "$1" "$2"; else echo failed; fi; }

# ratio KRILL BEAM BETTER FIELD: "krill 5.1x faster", "BEAM 1.7x smaller" ...
ratio() {
	awk -v k="$1" -v b="$2" -v better="$3" -v f="$4" 'BEGIN {
		word = f ~ /bytes/ ? "smaller" : "faster"
		if (k <= 0 || b <= 0) { print "-"; exit }
		krill_wins = better == "lower" ? k < b : k > b
		r = k > b ? k / b : b / k
		if (r < 1.05) { printf "even (%.2fx)\n", r; exit }
		printf "%s %.1fx %s\n", krill_wins ? "krill" : "BEAM", r, word }'
}

tables() {
	local n s f better what line k b of="medians of $runs runs"
	[ "$runs" -eq 1 ] && of="one run"
	for n in "${names[@]}"; do
		while IFS='|' read -r _ _ f better what; do
			echo
			echo "$n: $what ($better is better; $of)"
			echo
			echo "| schedulers | krill | BEAM | ratio |"
			echo "|---|---|---|---|"
			for s in "${scheds[@]}"; do
				[[ "$(bench_args "$n")" == *--cross* && "$s" -lt 2 ]] && continue
				# shellcheck disable=SC2086 # the values are a space-separated list
				k=$(median ${vals["$n|$s|krill|$f"]:-})
				# shellcheck disable=SC2086
				b=$(median ${vals["$n|$s|beam|$f"]:-})
				line="| $(sched_label "$s") | $(cell "$k" "$f") |"
				if [ "$have_beam" -eq 0 ]; then
					line+=" (no BEAM) | - |"
				else
					line+=" $(cell "$b" "$f") |"
					if [ -n "$k" ] && [ -n "$b" ]; then line+=" $(ratio "$k" "$b" "$better" "$f") |"
					else line+=" - |"; fi
				fi
				echo "$line"
			done
		done < <(printf '%s\n' "${specs[@]}" | awk -F'|' -v n="$n" '$1 == n')
	done
}

tables | tee "$tmp/tables"
# The tables go into the results file too, as comments, so it stands alone.
sed 's/^/# /' "$tmp/tables" >>"$out"
echo
echo "bench.sh: RESULT lines and tables in $out"
if [ "$failures" -gt 0 ]; then
	echo "bench.sh: $failures run(s) FAILED (see above)" >&2
	exit 1
fi
