#!/usr/bin/env bash
# The message round trip across two schedulers, three ways side by side,
# run after run:
#
#   krbench   build/krbench pingpong --cross --schedulers 2
#   user      a program written as a user would write it (below): two
#             processes bound to schedulers 1 and 2 with
#             kr_spawn_opts.bind_scheduler, each round trip timed with
#             clock_gettime, linked with build/libkrill.a
#   beam      the same on the BEAM, as make bench runs it (bench/erlang/)
#
# Each run is framed by `krbench line` (a cache line's round trip between
# the two CPUs, without a VM) before and after it: that round trip, not
# krill, is the floor under a message's, and on a virtual machine it
# changes as the host moves the virtual CPUs (on the 2-CPU AMD EPYC guests
# this was written on, ~110-140 ns while they share a core complex and
# ~460-520 ns while they do not, flipping from minute to minute). The
# summary sorts each implementation's runs into bands by their p50 (on a
# shared machine the runs fall into a few distinct levels, and a median
# across levels means nothing) and says, for each band, how many of its
# runs had the line near (under 250 ns before and after) or far (over 350 ns
# both); the rest saw the host move the CPUs during the run.
#
#   scripts/bench-cross.sh [RUNS]      RUNS of each (default 9)
#
# Environment: KR_CROSS_ROUNDS (round trips a run, default 100000),
# KR_BENCH_ERL (the BEAM to run, default erl; none: krill alone).
# Needs build/krbench and build/libkrill.a (make), and erl for the BEAM.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
runs=${1:-9}
rounds=${KR_CROSS_ROUNDS:-100000}
erl=${KR_BENCH_ERL:-erl}
krbench=build/krbench
[ -x "$krbench" ] && [ -r build/libkrill.a ] || { echo "bench-cross.sh: run make first" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "bench-cross.sh: needs two CPUs" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export ERL_CRASH_DUMP=$tmp/erl_crash.dump

# The user's program: what a newcomer writes from the README and krill.h.
cat >"$tmp/user.c" <<'EOF'
#include <krill.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long rounds, warmup = 10000;
static long long *rtt;

static long long now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void pong(void *arg)
{
	kr_msg *m;
	while (kr_recv(&m, KR_INFINITY) == 0) {
		int stop = m->tag == 2;
		if (!stop)
			kr_send(m->sender, 1, m->data, m->len);
		kr_msg_free(m);
		if (stop)
			return;
	}
}

static void ping(void *arg)
{
	kr_spawn_opts po = { .bind_scheduler = 2 }; /* scheduler 1; ping is on 0 */
	kr_pid p = kr_spawn_opt(pong, NULL, &po);
	for (long i = 0; i < warmup + rounds; i++) {
		kr_msg *m;
		long long t0 = now();
		kr_send(p, 1, &i, sizeof i);
		kr_recv(&m, KR_INFINITY);
		long long t1 = now();
		kr_msg_free(m);
		if (i >= warmup)
			rtt[i - warmup] = t1 - t0;
	}
	kr_send(p, 2, NULL, 0);
}

static void root(void *arg)
{
	kr_ref ref;
	kr_spawn_opts o = { .bind_scheduler = 1, .monitor = &ref };
	kr_spawn_opt(ping, NULL, &o);
	kr_msg *m;
	kr_recv_tag(&m, KR_TAG_DOWN, KR_INFINITY);
}

static int cmp(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	rounds = atol(argv[1]);
	rtt = malloc(rounds * sizeof *rtt);
	kr_config c = { .schedulers = 2 };
	if (!rtt || kr_main(&c, root, NULL) != 0)
		return 1;
	qsort(rtt, rounds, sizeof *rtt, cmp);
	printf("RESULT bench=pingpong impl=user p50_ns=%lld p99_ns=%lld\n", rtt[rounds / 2],
	       rtt[rounds * 99 / 100]);
	return 0;
}
EOF
${CC:-cc} -O2 -Iinclude "$tmp/user.c" build/libkrill.a -lmimalloc -lpthread -lm -o "$tmp/user"

impls="krbench user"
if [ "$erl" != none ] && command -v "$erl" >/dev/null && command -v erlc >/dev/null; then
	mkdir -p build/erlang
	erlc -o build/erlang bench/erlang/*.erl
	impls="$impls beam"
else
	echo "bench-cross.sh: no BEAM ($erl): krill alone" >&2
fi

line() { "$krbench" line | sed -n 's/^RESULT .*line_rtt_ns=\([0-9]*\).*/\1/p'; }

# run IMPL: one run; prints "IMPL LINE_BEFORE LINE_AFTER P50 P99".
run() {
	local before after out
	before=$(line)
	case $1 in
	krbench) out=$("$krbench" pingpong --cross --schedulers 2 --rounds "$rounds" 2>/dev/null) ;;
	user) out=$("$tmp/user" "$rounds") ;;
	beam) out=$("$erl" +S 2:2 +P 2000000 -noshell -pa build/erlang -s krbench main \
		-extra pingpong --cross --rounds "$rounds" --schedulers 2 2>/dev/null) ;;
	esac
	after=$(line)
	local p50 p99
	p50=$(sed -n 's/^RESULT .* p50_ns=\([0-9]*\).*/\1/p' <<<"$out")
	p99=$(sed -n 's/^RESULT .* p99_ns=\([0-9]*\).*/\1/p' <<<"$out")
	echo "$1 ${before:-?} ${after:-?} ${p50:-?} ${p99:-?}"
}

echo "# bench-cross.sh $runs, $rounds round trips a run; $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1), $(nproc) CPUs"
echo "# load at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# impl line_before_ns line_after_ns p50_ns p99_ns"
for r in $(seq "$runs"); do
	for i in $impls; do run "$i"; done
done | tee "$tmp/runs"
echo "# load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "each implementation's runs by their p50, in bands: how many, their median p50 and p99, and"
echo "how many of them had the line near (under 250 ns before and after) or far (over 350 ns both)"
echo
awk '
function isort(a, n,    i, j, v) {
	for (i = 2; i <= n; i++) { v = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > v + 0; j--) a[j + 1] = a[j]; a[j + 1] = v }
}
function med(s,    a, n) {
	n = split(s, a, " "); if (!n) return "-"; isort(a, n)
	return sprintf("%.0f", n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2)
}
$1 ~ /^#/ || $2 == "?" || $3 == "?" || $4 == "?" { next }
{
	b = $4 < 600 ? 1 : $4 < 5000 ? 2 : $4 < 50000 ? 3 : 4
	k = $1 SUBSEP b; n[k]++; p50[k] = p50[k] " " $4; p99[k] = p99[k] " " $5
	if ($2 < 250 && $3 < 250) near[k]++
	if ($2 > 350 && $3 > 350) far[k]++
	if (!($1 in seen)) { seen[$1] = 1; order[++ni] = $1 }
}
END {
	split("under 0.6 us|0.6 to 5 us|5 to 50 us|over 50 us", bn, "|")
	printf "| implementation | p50 band | runs | line near / far | p50, ns (median) | p99, ns (median) |\n|---|---|---|---|---|---|\n"
	for (i = 1; i <= ni; i++)
		for (b = 1; b <= 4; b++) {
			k = order[i] SUBSEP b
			if (n[k]) printf "| %s | %s | %d | %d / %d | %s | %s |\n", order[i], bn[b], n[k], near[k], far[k], med(p50[k]), med(p99[k])
		}
}' "$tmp/runs"
