#!/usr/bin/env bash
# krill's benchmarks side by side with the BEAM (what `make bench` runs).
#
#   scripts/bench.sh [BENCHMARK...]   default: the whole suite below
#
# For each benchmark and each scheduler count (1, and all online CPUs) it runs
# build/krbench and the same benchmark on the BEAM (bench/erlang/, compiled
# into build/erlang) in alternation, run after run, so that both see the same
# machine noise. Every RESULT line, under a header describing the machine,
# goes to one file per invocation under bench/results/; then
# scripts/bench-page.sh turns that file into tables of medians and ratios
# (printed here, and appended to the file as comments) and, after a run of the
# whole suite, regenerates docs/BENCHMARKS.md and its plots from the latest
# whole run of each kind of host in bench/results/ (bench-page.sh --all: one
# section per CPU model, this run in its model's). Without erl,
# krill runs alone and the tables say so. The header names the CPU model
# (the host kind the page groups runs by); after the timed runs, if valgrind
# is there, scripts/instructions.sh counts the instructions per operation of
# pingpong, ring and call (those of them that ran) into the same file.
#
# Environment:
#   KR_BENCH_RUNS=3        runs of each implementation per configuration
#   KR_BENCH_TIMEOUT=300   seconds before a run counts as hung (passed as --timeout)
#   KR_BENCH_OUT=FILE      where the results go (default bench/results/DATE-HOST.txt)
#   KR_BENCH_ERL=erl       the BEAM to run; KR_BENCH_ERL=none runs krill alone
#   KR_BENCH_PAGE=FILE     the page to regenerate (default docs/BENCHMARKS.md, only
#                          after the whole suite); KR_BENCH_PAGE=none never does. A
#                          run that is not the whole suite, or whose results are not
#                          in bench/results/, makes a page of itself alone
#
# Needs build/krbench (make build/krbench), build/krnode for the dist_
# benchmarks, and, for the BEAM and the plots,
# erlang-nox and gnuplot-nox (scripts/deps.sh bench); `make bench` sees to all.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

runs=${KR_BENCH_RUNS:-3}
timeout_s=${KR_BENCH_TIMEOUT:-300}
erl=${KR_BENCH_ERL:-erl}
ncpu=$(nproc)
krbench=build/krbench
beam_dir=build/erlang

# The suite, one line per figure shown:
#   name | krbench arguments | schedulers | against | their arguments | field | better | what
# schedulers: "1,all" (one, and all online CPUs), "all", or "-" (not a VM
# benchmark: no --schedulers). against: "beam" (bench/erlang/ with the
# arguments given, "=" for krbench's), "ucontext" (ctx prints that line
# itself) or "pipe" (host_call prints that line itself). better: lower, higher, or "-" for a figure that has no ratio.
# Further lines of one name add rows to its table: only their last three
# fields count. The dist_ benchmarks start a second node themselves (krill's
# default peer is build/krnode, the BEAM's another erl; --peer beam makes
# krill's an erl too), so "=" compares krill-to-krill with BEAM-to-BEAM,
# and --peer beam krill-to-BEAM with BEAM-to-BEAM. --cdf gets a file from this script, and the last run's
# distribution goes into the results file for the CDF plots.
suite=(
	"ctx|ctx|-|ucontext|-|ns_per_switch|lower|one context switch, krill's against glibc's swapcontext: ns"
	"pingpong|pingpong --cdf|1,all|beam|=|p50_ns|lower|ping-pong round trip, both on one scheduler: p50, ns"
	"pingpong|||||p99_ns|lower|the same: p99, ns"
	"pingpong-hibernate|pingpong --hibernate|1,all|beam|=|p50_ns|lower|ping-pong round trip where pong hibernates after every answer (kr_hibernate; erlang:hibernate/3): p50, ns (issue 14's target: at most twice the plain round trip above)"
	"pingpong-hibernate|||||rtt_mean_ns|lower|the same: mean, ns"
	"pingpong-cross|pingpong --cross --cdf|all|beam|=|p50_ns|lower|ping-pong round trip across two schedulers: p50, ns"
	"pingpong-cross|||||rtt_mean_ns|lower|the same: mean (which the tail weighs on), ns"
	"pingpong-cross|||||line_rtt_ns|-|the machine at the start of krill's runs: a cache line's round trip between two CPUs, ns (the floor under the figures above)"
	"call|call --cdf|1,all|beam|=|p50_ns|lower|request and reply (kr_call; the BEAM: the same call written out), both on one scheduler: p50, ns"
	"call|||||p99_ns|lower|the same: p99, ns"
	"call|||||ns_per_call|lower|the same: mean, ns per call"
	"call-cross|call --cross --cdf|all|beam|=|p50_ns|lower|request and reply across two schedulers: p50, ns"
	"call-cross|||||rtt_mean_ns|lower|the same: mean, ns"
	"call-cross|||||line_rtt_ns|-|the machine at the start of krill's runs: a cache line's round trip between two CPUs, ns"
	"call-gen|call|1,all|beam|call --gen-server|p50_ns|lower|kr_call against gen_server:call, both on one scheduler: p50, ns"
	"ring|ring|1,all|beam|=|ns_per_msg|lower|ring of 1,000 processes, 1,000 laps: ns per message"
	"skynet|skynet|1,all|beam|=|secs|lower|skynet, 1,111,111 processes: seconds"
	"spawn|spawn|1,all|beam|=|spawn_per_s|higher|spawn 1,000,000 waiting processes: spawns per second"
	"spawn|||||bytes_per_proc|lower|the same: resident bytes per waiting process"
	"spawn-short|spawn --short|1,all|beam|=|spawn_per_s|higher|spawn 1,000,000 short-lived processes: per second"
	"spawn-hibernate|spawn --hibernate|1,all|beam|=|bytes_per_proc|lower|1,000,000 processes hibernating (kr_hibernate; erlang:hibernate/3): resident bytes per process"
	"spawn-hibernate|||||spawn_per_s|higher|the same: spawned and asleep, per second"
	"spawn-hibernate|||||release_per_s|higher|the same: each woken by a message and gone, per second"
	"fanin|fanin|1,all|beam|=|msgs_per_s|higher|fan-in, 100 senders x 100,000 messages: messages per second"
	"restart|restart|1,all|beam|=|restarts_per_s|higher|a supervisor restarting a crashing worker, 20,000 times: restarts per second"
	"restart|||||p50_ns|lower|the same, from the order to crash to the new child's hello: p50, ns"
	"tree|tree|1,all|beam|=|start_ms|lower|a tree of 100 supervisors of 10 workers (1,101 processes): start, ms (median of 7)"
	"tree|||||shutdown_ms|lower|the same: shutdown in order, ms (median of 7)"
	"tree|||||start_ms_first|lower|the same: the first start (fresh stacks), ms"
	"tree|||||procs|-|the same: processes in the tree (checked)"
	"timers|timers|1,all|beam|=|starts_per_s|higher|1,000,000 timers (kr_send_after; erlang:send_after/3) started by one process: starts per second"
	"timers|||||cancels_per_s|higher|the same: half of them cancelled (kr_cancel_timer; erlang:cancel_timer/1), per second"
	"timers|||||fires_per_s|higher|the same: the other half, all due at one moment, fired and received, per second"
	"timers|||||bytes_per_timer|lower|the same: resident bytes per pending timer (an 8-byte payload; the BEAM's message {t, I})"
	"overload|overload|all|beam|=|peak_queue|lower|8 senders x 200,000 messages to one slow receiver (200 empty loop turns a message): its longest queue, sampled every 64 messages"
	"overload|||||sent_per_s|higher|the same: messages a second, from the start to the last sender's DOWN received (the senders' pace, as the receiver lets them)"
	"overload-drop|overload --limit 10000 --drop|all|-|-|peak_queue|lower|the same with max_mailbox 10,000 and KR_MAILBOX_DROP (the BEAM has no mailbox limit): the longest queue"
	"overload-drop|||||dead_letters|-|the same: messages refused as the mailbox was full"
	"cpu|cpu|all|beam|=|secs_1|lower|1,000 supervised fib(27) jobs on one scheduler: seconds"
	"cpu|||||secs_n|lower|the same on all schedulers: seconds"
	"cpu|||||speedup|higher|the same: speedup (one scheduler's time over all's)"
	"cpu|||||overhead_pct|-|the same: one scheduler's time over a plain loop's, % more"
	"cpu|||||machine_speedup|-|plain loops on as many threads, without a VM: the machine's speedup then"
	"chat|chat --clients 1000 --rooms 10 --msgs 50000|all|beam|=|msgs_per_s|higher|the chat server, 1,000 clients in 10 rooms sending 50,000 lines: lines delivered per second"
	"chat|||||p99_us|lower|the same: p99 latency from send to receipt, us"
	"chat-10k|chat --clients 10000 --rooms 100 --msgs 100000|all|beam|=|msgs_per_s|higher|the chat server, 10,000 clients in 100 rooms sending 100,000 lines: lines delivered per second"
	"chat-10k|||||p99_us|lower|the same: p99 latency, us"
	"chat-bounded|chat --clients 1000 --rooms 10 --msgs 20000 --inflight 4|all|beam|=|p99_us|lower|the chat server at a load it keeps up with (4 lines in flight a room): p99 latency, us"
	"chat-bounded|||||msgs_per_s|higher|the same: lines delivered per second"
	"chat-idle|chat --clients 2000 --rooms 20 --msgs 0 --hold 4|all|beam|=|bytes_per_conn|lower|2,000 idle chat connections (joined, greeted, then silent for 4 s; krill's readers and writers hibernate after 1 s): the server's resident bytes per connection"
	"chat-idle-awake|chat --hibernate-after -1 --clients 2000 --rooms 20 --msgs 0 --hold 4|all|beam|=|bytes_per_conn|lower|the same with krill's connection processes never hibernating (the BEAM runs the same program as above)"
	"dist_pingpong|dist_pingpong|all|beam|=|p50_ns|lower|a small message's round trip between two nodes on loopback, krill to build/krnode against BEAM to BEAM: p50, ns"
	"dist_pingpong|||||mean_ns|lower|the same: mean, ns"
	"dist_pingpong|||||p99_ns|lower|the same: p99, ns"
	"dist_pingpong|||||tcp_rtt_ns|-|the machine at the start of krill's runs: a loopback TCP round trip between two threads blocking in read(), no runtime, p50, ns (what a runtime that sleeps in the kernel between messages pays at least)"
	"dist_pingpong-beam|dist_pingpong --peer beam|all|beam|=|p50_ns|lower|the same round trip, krill to a BEAM node against BEAM to BEAM: p50, ns"
	"dist_pingpong-beam|||||mean_ns|lower|the same: mean, ns"
	"dist_pingpong-beam|||||p99_ns|lower|the same: p99, ns"
	"dist_stream|dist_stream|all|beam|=|msgs_per_s|higher|one way on one connection, 1,000,000 messages of 64 bytes, krill to build/krnode against BEAM to BEAM: messages per second"
	"dist_stream|||||MB_per_s|higher|the same: payload MB (10^6 bytes) per second"
	"dist_stream-1k|dist_stream --size 1024 --msgs 200000|all|beam|=|msgs_per_s|higher|the same with 200,000 messages of 1 KiB: messages per second"
	"dist_stream-1k|||||MB_per_s|higher|the same: payload MB per second"
	"dist_stream-beam|dist_stream --peer beam|all|beam|=|msgs_per_s|higher|one way, 1,000,000 messages of 64 bytes, krill to a BEAM node against BEAM to BEAM: messages per second"
	"dist_stream-beam|||||MB_per_s|higher|the same: payload MB per second"
	"dist_stream-beam-1k|dist_stream --peer beam --size 1024 --msgs 200000|all|beam|=|msgs_per_s|higher|the same with 200,000 messages of 1 KiB: messages per second"
	"dist_stream-beam-1k|||||MB_per_s|higher|the same: payload MB per second"
	"host_call|host_call --threads 1|all|pipe|-|calls_per_s|higher|a host thread calling a server process: kr_call from its own mailbox against a pipe per thread (the answer written by the server, read by the thread): calls per second"
	"host_call|||||p50_ns|lower|the same: p50 latency of a call, ns"
	"host_call-2|host_call --threads 2|all|pipe|-|calls_per_s|higher|two host threads calling one server process, each as above: calls per second, both together"
	"host_call-2|||||p50_ns|lower|the same: p50 latency of a call, ns"
	"host_call-4|host_call --threads 4|all|pipe|-|calls_per_s|higher|four host threads calling one server process: calls per second, all together"
	"host_call-4|||||p50_ns|lower|the same: p50 latency of a call, ns"
)

die() { echo "bench.sh: $*" >&2; exit 2; }

[ "$runs" -ge 1 ] 2>/dev/null || die "KR_BENCH_RUNS wants a number >= 1, not '$runs'"
[ -x "$krbench" ] || die "$krbench is missing: run make build/krbench (or make bench)"

# spec NAME COLUMN: that column (1-based) of NAME's first suite line.
spec() { printf '%s\n' "${suite[@]}" | awk -F'|' -v n="$1" -v c="$2" '$1 == n { print $c; exit }'; }

# Which benchmarks: all, or those named on the command line.
all_names=$(printf '%s\n' "${suite[@]}" | cut -d'|' -f1 | uniq)
whole=1
if [ $# -gt 0 ]; then
	for n in "$@"; do
		grep -qx -- "$n" <<<"$all_names" || die "no benchmark '$n' (have: $(tr '\n' ' ' <<<"$all_names"))"
	done
	names=("$@")
	whole=0
else
	mapfile -t names <<<"$all_names"
fi
page=${KR_BENCH_PAGE:-}
[ -z "$page" ] && [ "$whole" -eq 1 ] && page=docs/BENCHMARKS.md
[ "$page" = none ] && page=

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A BEAM that crashes writes erl_crash.dump into the current directory (the
# repository's root) unless told otherwise: into $tmp, where a failed run's
# report quotes its slogan (the reason), and the next run starts without it.
export ERL_CRASH_DUMP=$tmp/erl_crash.dump

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

# sched_counts NAME: the scheduler counts NAME runs with; "-" for none.
sched_counts() {
	case $(spec "$1" 3) in
	-) echo - ;;
	all) [ "$ncpu" -gt 1 ] && echo "$ncpu" ;; # --cross and cpu's comparison need two
	*) echo 1; [ "$ncpu" -gt 1 ] && echo "$ncpu" ;;
	esac
	return 0
}

# The implementations NAME's runs alternate between.
impls() { if [ "$(spec "$1" 4)" = beam ] && [ "$have_beam" -eq 1 ]; then echo krill beam; else echo krill; fi; }

# --- the results file and its header ----------------------------------------

host=$(hostname -s 2>/dev/null || hostname)
out=${KR_BENCH_OUT:-bench/results/$(date +%Y-%m-%dT%H%M)-$host.txt}
mkdir -p "$(dirname "$out")"

# busy_pct: how busy the CPUs were over one second (from /proc/stat), as a
# percentage of all of them: before a run, that is the other tenants' load.
busy_pct() {
	local a b
	a=$(head -n1 /proc/stat)
	sleep 1
	b=$(head -n1 /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN {
		split(a, x); split(b, y); total = 0
		# user nice system idle iowait irq softirq steal (guest time is
		# already in user and nice)
		for (i = 2; i <= 9; i++) total += y[i] - x[i]
		idle = (y[5] - x[5]) + (y[6] - x[6]) # idle + iowait
		printf "%.0f", total ? 100 * (total - idle) / total : 0 }'
}

# The CPU model exactly as /proc/cpuinfo names it ("AMD EPYC", "Intel(R)
# Xeon(R) CPU @ 2.30GHz"): the host kind, which bench-page.sh groups the
# results by. These are virtual machines, whose model name may hide the part
# number; cpu_id adds what the CPU says of itself beneath it (vendor, family,
# model, stepping: enough to tell two parts of one name apart), its clock,
# and the hypervisor.
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
# aarch64's /proc/cpuinfo has no model name; lscpu names the core (Neoverse-N1).
[ -n "$cpu" ] || cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)
cpu_id() {
	local hv
	awk -F': *' '
		$1 ~ /^vendor_id/ && !v { v = $2 }
		$1 ~ /^cpu family/ && f == "" { f = $2 }
		$1 ~ /^model[ \t]*$/ && m == "" { m = $2 }
		$1 ~ /^stepping/ && s == "" { s = $2 }
		$1 ~ /^cpu MHz/ && !mhz { mhz = $2 }
		END { printf "%s family %s model %s stepping %s, %.0f MHz", v, f, m, s, mhz }' /proc/cpuinfo
	hv=$(lscpu 2>/dev/null | sed -n 's/^Hypervisor vendor: *//p')
	if [ -n "$hv" ]; then
		printf ', a %s guest' "$hv"
	elif grep -qw hypervisor /proc/cpuinfo; then
		printf ', a virtual machine'
	fi
	echo
}
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
echo "bench.sh: measuring how busy the machine is before we start..."
busy=$(busy_pct)
t_start=$(date +%s)
{
	echo "# krill benchmarks side by side with the BEAM: scripts/bench.sh ${names[*]}"
	echo "# date:      $(date -Iseconds)"
	echo "# host:      $host"
	echo "# cpu:       ${cpu:-unknown}, $ncpu online CPUs ($(grep -c ^processor /proc/cpuinfo) present)"
	echo "# cpu id:    $(cpu_id)"
	echo "# memory:    $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "# kernel:    $(uname -srm)"
	echo "# compiler:  $(${CC:-cc} --version | head -n1) (krbench: the Makefile's native flags, -O2)"
	echo "# OTP:       $otp"
	echo "# commit:    $commit"
	# Whether this is the whole suite: docs/BENCHMARKS.md shows only those.
	if [ "$whole" -eq 1 ]; then echo "# suite:     whole"; else echo "# suite:     part (${names[*]})"; fi
	echo "# load:      $(cut -d' ' -f1-3 /proc/loadavg) at the start; CPUs $busy% busy in the second before"
	echo "# runs:      $runs of each implementation per configuration, alternating krill and BEAM"
	echo "# krill:     $krbench BENCHMARK [options] --schedulers N --timeout $timeout_s"
	echo "# BEAM:      $erl +S N:N +P 2000000 -noshell -pa $beam_dir -s krbench main -extra BENCHMARK [options] --schedulers N --timeout $timeout_s"
	echo "# Lines: SUITE is a line of bench.sh's suite; RESULT a run's RESULT line with the suite's"
	echo "# name for it in front (case=); FAILED a run that failed; CDF NAME SCHEDULERS IMPL VALUE"
	echo "# FRACTION the last run's round-trip distribution. RESULT case=instructions: a line of"
	echo "# scripts/instructions.sh (callgrind's instructions per operation), the commands beneath it."
	for n in "${names[@]}"; do printf '%s\n' "${suite[@]}" | awk -v n="$n" -F'|' '$1 == n { print "SUITE " $0 }'; done
} >"$out"

# --- running ------------------------------------------------------------------

failures=0

# Progress: how many runs in all, so each line can say how far along we are.
total=0
for n in "${names[@]}"; do
	for s in $(sched_counts "$n"); do
		for i in $(impls "$n"); do total=$((total + runs)); done
	done
done
done_runs=0

# run_one NAME SCHED IMPL RUN LAST: one run, its RESULT lines into $out (with
# the last run's distribution, if it wrote one). A failure is reported and
# counted, never fatal: a long make bench should not lose the other
# benchmarks to one bad run.
run_one() {
	local n=$1 s=$2 impl=$3 r=$4 last=$5
	local -a args=() cmd
	local line a
	if [ "$impl" = beam ] && [ "$(spec "$n" 5)" != "=" ]; then line=$(spec "$n" 5); else line=$(spec "$n" 2); fi
	for a in $line; do
		args+=("$a")
		[ "$a" = --cdf ] && args+=("$tmp/cdf")
	done
	[ "$s" != - ] && args+=(--schedulers "$s" --timeout "$timeout_s")
	if [ "${args[0]}" = chat ]; then
		# The chat server: a server and a load generator (chat-run.sh).
		cmd=(scripts/chat-run.sh "$impl" "${args[@]:1}")
	elif [ "$impl" = krill ]; then
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
	rm -f "$tmp/hb" "$tmp/cdf" "$ERL_CRASH_DUMP"
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
	if [ "$rc" -ne 0 ] || ! grep -q "^RESULT .* impl=$impl " "$tmp/out"; then
		printf 'FAILED (exit %d) after %s s: %s\n' "$rc" "$secs" "${cmd[*]}"
		tail -n 5 "$tmp/err" | sed 's/^/      /'
		if [ -s "$ERL_CRASH_DUMP" ]; then sed -n 's/^Slogan: /      the BEAM crashed: /p' "$ERL_CRASH_DUMP"; fi
		echo "FAILED case=$n impl=$impl schedulers=$s exit=$rc" >>"$out"
		failures=$((failures + 1))
		return 0
	fi
	sed -n "s/^RESULT /RESULT case=$n /p" "$tmp/out" >>"$out"
	if [ "$last" -eq 1 ] && [ -s "$tmp/cdf" ]; then
		awk -v p="CDF $n $s $impl" '!/^#/ { print p, $0 }' "$tmp/cdf" >>"$out"
	fi
	# The headline figures of this run, for whoever watches.
	local f shown=""
	for f in $(printf '%s\n' "${suite[@]}" | awk -F'|' -v n="$n" '$1 == n { print $6 }'); do
		shown+="$f=$(sed -n "s/^RESULT .* impl=$impl .* $f=\([^ ]*\).*/\1/p" "$tmp/out" | head -n1) "
	done
	printf '%s(%s s)\n' "$shown" "$secs"
}

echo "bench.sh: $total runs; the results go to $out"
for n in "${names[@]}"; do
	for s in $(sched_counts "$n"); do
		label="$s scheduler(s)"
		[ "$s" = - ] && label="no VM"
		[ "$s" = "$ncpu" ] && [ "$ncpu" -gt 1 ] && label="$s schedulers (all)"
		echo "== $n, $label: krbench $(spec "$n" 2)$([ "$s" != - ] && echo " --schedulers $s")"
		for r in $(seq "$runs"); do
			for i in $(impls "$n"); do run_one "$n" "$s" "$i" "$r" "$((r == runs))"; done
		done
	done
done
echo "# load:      $(cut -d' ' -f1-3 /proc/loadavg) at the end, after $(( ($(date +%s) - t_start + 30) / 60 )) min" >>"$out"

# --- instructions per operation ---------------------------------------------
#
# Beside the times, what pingpong, ring and call execute per operation,
# counted by callgrind (scripts/instructions.sh): exact, and the same on every
# host and under any load, so a change in it is the code's. Under valgrind,
# a few seconds; without valgrind, the results file says so.
counted=()
for n in pingpong ring call; do
	for m in "${names[@]}"; do [ "$m" = "$n" ] && counted+=("$n"); done
done
if [ ${#counted[@]} -gt 0 ]; then
	if command -v valgrind >/dev/null; then
		echo "== instructions per operation: scripts/instructions.sh ${counted[*]}"
		if KRBENCH=$krbench scripts/instructions.sh "${counted[@]}" >"$tmp/instr" 2>"$tmp/err"; then
			sed -e 's/^RESULT /RESULT case=instructions /' -e 's/^  /# instructions: /' "$tmp/instr" >>"$out"
			sed -n 's/^RESULT bench=\([^ ]*\) instructions_per_op=\([^ ]*\).*/  \1: \2 instructions/p' "$tmp/instr"
		else
			echo "  FAILED: scripts/instructions.sh ${counted[*]}"
			tail -n 5 "$tmp/err" | sed 's/^/      /'
			echo "FAILED case=instructions impl=krill schedulers=1 exit=1" >>"$out"
			failures=$((failures + 1))
		fi
	else
		echo "bench.sh: no valgrind: no instruction counts (scripts/deps.sh native installs it)" >&2
		echo "# instructions: not counted (no valgrind)" >>"$out"
	fi
fi

# --- the tables and the page --------------------------------------------------

scripts/bench-page.sh --tables "$out" | tee "$tmp/tables"
# The tables go into the results file too, as comments, so it stands alone.
sed 's/^/# /' "$tmp/tables" >>"$out"
echo
echo "bench.sh: results and tables in $out"
if [ -n "$page" ]; then
	# A whole run among the others: the page of every kind of host, with
	# this run in its own's section (bench-page.sh picks the latest whole,
	# finished run of each CPU model).
	if [ "$whole" -eq 1 ] && [ "$(cd "$(dirname "$out")" && pwd)" = "$here/bench/results" ]; then
		scripts/bench-page.sh --all "$page"
	else
		scripts/bench-page.sh "$out" "$page"
	fi
	echo "bench.sh: $page regenerated, with its plots"
fi
if [ "$failures" -gt 0 ]; then
	echo "bench.sh: $failures run(s) FAILED (see above)" >&2
	exit 1
fi
