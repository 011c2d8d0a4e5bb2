#!/usr/bin/env bash
# Turns the results files of scripts/bench.sh into tables, plots and a page.
#
#   scripts/bench-page.sh --tables RESULTS   print the tables (medians, ratios) on stdout
#   scripts/bench-page.sh [--all] [PAGE]     regenerate PAGE (default docs/BENCHMARKS.md) and
#                                            its plots (in bench/ beside it) from the latest
#                                            whole run of each kind of host in bench/results/
#   scripts/bench-page.sh RESULTS [PAGE]     the same from that one results file
#
# Everything comes from the results files alone (their SUITE, RESULT, FAILED
# and CDF lines and their headers), so any page can be made again later. The
# page is the template bench/BENCHMARKS.md.in with its @@ lines replaced; the
# hand-written parts (what each benchmark does, what the figures say) live
# in the template, so regenerating loses none of them.
#
# A kind of host is a CPU model as the "# cpu:" line of the header names it
# ("AMD EPYC", "Intel(R) Xeon(R) CPU @ 2.30GHz"). Times from two models do not
# compare, so the page gives each model a section of its own, labelled with
# the model, the run's date, commit and file, and never one model's figures
# as if they were all. With --all (what make bench uses), the run shown for a
# model is its latest one that is whole and finished:
#   - whole: its header says "# suite: whole" (bench.sh run without
#     arguments); a file from before that line existed counts as whole if it
#     ran every benchmark the template has a table for;
#   - finished: it has the "# load: ... at the end" line that bench.sh writes
#     after the last timed run (a run stopped midway would blank much of the
#     page; its section names it instead).
# Files with no "# cpu:" line or an "unknown" one name no host kind and are
# left out (the page counts them); files without SUITE lines (such as
# scripts/bench-cross.sh's) are not bench.sh results and are not looked at.
#
# The template's @@ lines. Once, anywhere:
#
#   @@SOURCE@@              which runs the page shows, and how it was made
#   @@HOSTS@@ ... @@END HOSTS@@   the lines between, once for each host kind shown
#
# and between those two, for the host kind at hand:
#
#   @@HOST@@                its heading (a level-2 one) and which run it is
#   @@MACHINE@@             the machine and the run, from the results file's header
#   @@INSTRUCTIONS@@        instructions per operation (RESULT case=instructions,
#                           from scripts/instructions.sh) beside krill's times for them
#   @@TABLE NAME@@          the table of benchmark NAME (a name in bench.sh's suite)
#   @@PLOT FILE ALT@@       a plot (pingpong-cdf.svg, call-cdf.svg, scaling.svg), drawn
#                           with gnuplot (Debian's gnuplot-nox) as FILE with the host
#                           kind's slug before .svg (pingpong-cdf-amd-epyc.svg), and its link
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
template=bench/BENCHMARKS.md.in
results_dir=${KR_BENCH_RESULTS_DIR:-bench/results} # where --all looks (another for trying the script)

usage() {
	echo "usage: $0 --tables RESULTS | $0 [--all] [PAGE] | $0 RESULTS [PAGE]" >&2
	exit 2
}
mode=all
results=
case ${1:-} in
--tables)
	mode=tables
	if [ $# -ne 2 ] || [ ! -r "$2" ]; then usage; fi
	results=$2
	;;
--all) shift ;;
-*) usage ;;
"") ;;
*)
	[ -r "$1" ] || usage
	mode=one
	results=$1
	shift
	;;
esac
[ "$mode" = tables ] || [ $# -le 1 ] || usage
page=${1:-docs/BENCHMARKS.md}
[ "$mode" = tables ] && page=

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- tables and plot data: one pass of awk over a results file ---------------
#
# analyse RESULTS DIR writes into DIR: names (the benchmarks in suite order), NAME.table (the
# markdown table of benchmark NAME), and the plots' data: cdf-NAME-IMPL.dat
# (value, fraction: the run with the most schedulers) and scale-NAME.dat
# (schedulers, krill, other[, plain loops]: throughput from the medians; "?"
# where a figure is missing). IMPL is krill or other: the BEAM, or for ctx
# swapcontext. And instructions.table, if the run counted instructions: one
# row for each of scripts/instructions.sh's lines, beside krill's time for
# the same operation on one scheduler from the same run.
analyse() {
	local results=$1 dir=$2
	mkdir -p "$dir"
	awk -v dir="$dir" '
# Sort a[1..n] as numbers (a few values: insertion sort).
function isort(a, n,    i, j, v) {
	for (i = 2; i <= n; i++) {
		v = a[i]
		for (j = i - 1; j >= 1 && a[j] + 0 > v + 0; j--)
			a[j + 1] = a[j]
		a[j + 1] = v
	}
}
# The median of the values kept under key, or "" if there are none.
function median(key,    n, a) {
	n = split(vals[key], a, " ")
	if (n == 0) return ""
	isort(a, n)
	return n % 2 ? a[(n + 1) / 2] + 0 : (a[n / 2] + a[n / 2 + 1]) / 2
}
# Rates as 37.0 M or 560 k; other figures whole from 100 up (130 ns, 4380
# bytes), with three digits below (63.2 ns, 0.384 s).
function human(v, f) {
	if (f ~ /_per_s$/ && v >= 1e6) return sprintf("%.1f M", v / 1e6)
	if (f ~ /_per_s$/ && v >= 1e4) return sprintf("%.0f k", v / 1e3)
	if (v >= 100 || v <= -100) return sprintf("%.0f", v)
	return sprintf("%.3g", v)
}
# "krill 5.1x faster", "BEAM 1.7x smaller" (bytes, queues), "even (1.03x)".
function ratio(k, b, better, f, other,    word, wins, r) {
	if (better == "-" || k == "" || b == "" || k <= 0 || b <= 0) return "-"
	word = f ~ /bytes|queue/ ? "smaller" : "faster"
	wins = better == "lower" ? k < b : k > b
	r = k > b ? k / b : b / k
	if (r < 1.05) return sprintf("even (%.2fx)", r)
	return sprintf("%s %.1fx %s", wins ? "krill" : other, r, word)
}
# The value of key=value field f in line, or "".
function field(line, f) {
	if (!match(line, " " f "=[^ ]*")) return ""
	return substr(line, RSTART + length(f) + 2, RLENGTH - length(f) - 2)
}
# A table cell: the median, or why there is none.
function cell(v, f, n, sc, impl) {
	if (v != "") return human(v, f)
	return failed[n, sc, impl] ? "failed" : "-"
}
function impl_of(s) { return s == "beam" || s == "ucontext" || s == "pipe" ? "other" : s }
function out(v) { return v == "" ? "?" : v }
$1 == "SUITE" {
	split(substr($0, 7), s, "|")
	n = s[1]
	if (!(n in args)) {
		order[++nnames] = n; args[n] = s[2]; against[n] = s[4]; their[n] = s[5]
		other[n] = s[4] == "ucontext" ? "swapcontext" : s[4] == "pipe" ? "pipe per thread" : "BEAM"
	}
	rows[n] = rows[n] (rows[n] == "" ? "" : SUBSEP) s[6] "|" s[7] "|" s[8]
	next
}
# scripts/instructions.sh: RESULT case=instructions bench=B
# instructions_per_op=X op="WHAT", the commands beneath it as comments.
$1 == "RESULT" && field($0, "case") == "instructions" {
	b = field($0, "bench")
	if (!(b in instr)) iorder[++ninstr] = b
	instr[b] = field($0, "instructions_per_op")
	op[b] = $0
	sub(/^.* op="/, "", op[b]); sub(/"$/, "", op[b])
	next
}
$1 == "RESULT" {
	n = field($0, "case"); impl = impl_of(field($0, "impl")); sc = field($0, "schedulers")
	if (sc == "") sc = "-"
	if (!((n, sc) in seen)) { seen[n, sc] = 1; scheds[n] = scheds[n] " " sc }
	for (i = 2; i <= NF; i++) {
		split($i, kv, "=")
		vals[n, sc, impl, kv[1]] = vals[n, sc, impl, kv[1]] " " kv[2]
	}
	next
}
$1 == "FAILED" {
	failed[field($0, "case"), field($0, "schedulers"), impl_of(field($0, "impl"))] = 1
	next
}
$1 == "CDF" {
	# Keep the distribution of the run with the most schedulers, from 0 at
	# its first value, with a point every 3% of the value at most (the
	# histogram has one every 0.8%): the plot looks the same, and its file
	# is a third the size.
	k = $2 SUBSEP impl_of($4)
	if ($3 + 0 > cdf_s[k] + 0) { cdf_s[k] = $3; cdf[k] = $5 " 0\n"; last[k] = 0 }
	if ($3 + 0 == cdf_s[k] + 0 && ($5 >= last[k] * 1.03 || $6 >= 1)) {
		cdf[k] = cdf[k] $5 " " $6 "\n"
		last[k] = $5
	}
}
# The table of benchmark n, over its scheduler counts sl[1..nsc].
function table(n, sl, nsc,    f, nr, rl, r, row, j, sc, k, o, cmd) {
	f = dir "/" n ".table"
	printf "| figure | schedulers | krill | %s | ratio | command |\n", other[n] > f
	print "|---|---|---|---|---|---|" > f
	nr = split(rows[n], rl, SUBSEP)
	for (r = 1; r <= nr; r++) {
		split(rl[r], row, "|") # field, better, what
		for (j = 1; j <= nsc; j++) {
			sc = sl[j]
			k = median(n SUBSEP sc SUBSEP "krill" SUBSEP row[1])
			o = median(n SUBSEP sc SUBSEP "other" SUBSEP row[1])
			cmd = "`krbench " args[n] (sc == "-" ? "" : " --schedulers " sc) "`"
			sub(/ --cdf/, "", cmd)
			# The chat rows run a server and its load (scripts/chat-run.sh).
			sub(/^`krbench chat /, "`scripts/chat-run.sh krill ", cmd)
			if (against[n] == "beam" && their[n] != "=") cmd = cmd "; BEAM: `" their[n] "`"
			printf "| %s | %s | %s | %s | %s | %s |\n", j == 1 ? row[3] : "", sc,
			       cell(k, row[1], n, sc, "krill"), cell(o, row[1], n, sc, "other"),
			       ratio(k, o, row[2], row[1], other[n]), cmd > f
		}
	}
	close(f)
}
# Throughput of benchmark n at sc schedulers from impl, or "": millions of
# messages or processes per second.
function throughput(n, sc, impl,    key, v) {
	key = n SUBSEP sc SUBSEP impl SUBSEP
	if (n == "ring") { v = median(key "ns_per_msg"); return v == "" ? "" : 1e3 / v }
	if (n == "skynet") { v = median(key "secs"); return v == "" ? "" : median(key "procs") / v / 1e6 }
	v = median(key "msgs_per_s")
	return v == "" ? "" : v / 1e6
}
# Jobs per second of cpu from impl, from its field t (one run of cpu has
# the times at one scheduler and at all).
function jobs_per_s(sc, impl, t,    key, v) {
	key = "cpu" SUBSEP sc SUBSEP impl SUBSEP
	v = median(key t)
	return v == "" ? "" : median(key "jobs") / v
}
function scale(n, sl, nsc,    f, j, sc) {
	f = dir "/scale-" n ".dat"
	for (j = 1; j <= nsc; j++) {
		sc = sl[j]
		if (n != "cpu") {
			printf "%s %s %s\n", sc, out(throughput(n, sc, "krill")), out(throughput(n, sc, "other")) > f
			continue
		}
		printf "1 %s %s %s\n", out(jobs_per_s(sc, "krill", "secs_1")),
		       out(jobs_per_s(sc, "other", "secs_1")), out(jobs_per_s(sc, "krill", "plain_secs")) > f
		printf "%s %s %s %s\n", sc, out(jobs_per_s(sc, "krill", "secs_n")),
		       out(jobs_per_s(sc, "other", "secs_n")), out(jobs_per_s(sc, "krill", "plain_n_secs")) > f
	}
	close(f)
}
# The time krill took on one scheduler for the operation instructions.sh
# counts in benchmark b: the medians of the means (and p50s) of this run.
function time_of(b,    key, m, p) {
	key = b SUBSEP "1" SUBSEP "krill" SUBSEP
	if (b == "ring") m = median(key "ns_per_msg")
	else if (b == "call") m = median(key "ns_per_call")
	else m = median(key "rtt_mean_ns")
	p = b == "ring" ? "" : median(key "p50_ns")
	if (m == "") return "not run"
	return "mean " human(m, "ns") " ns" (p == "" ? "" : ", p50 " human(p, "ns") " ns")
}
function instructions(    f, i, b) {
	f = dir "/instructions.table"
	print "| operation (krbench, one scheduler) | instructions | time for it in this run (krill) | command |" > f
	print "|---|---|---|---|" > f
	for (i = 1; i <= ninstr; i++) {
		b = iorder[i]
		printf "| %s: %s | %s | %s | `scripts/instructions.sh %s` |\n", b, op[b], instr[b],
		       time_of(b), b > f
	}
	close(f)
}
END {
	if (ninstr) instructions()
	for (k in cdf) {
		split(k, p, SUBSEP)
		f = dir "/cdf-" p[1] "-" p[2] ".dat"
		printf "%s", cdf[k] > f
		close(f)
	}
	for (i = 1; i <= nnames; i++) {
		n = order[i]
		print n > (dir "/names")
		nsc = split(scheds[n], sl, " ")
		isort(sl, nsc) # "-" (no VM) comes alone
		table(n, sl, nsc)
		if (n ~ /^(ring|skynet|fanin|cpu)$/)
			scale(n, sl, nsc)
	}
}' "$results"
	[ -s "$dir/names" ] || { echo "bench-page.sh: no SUITE lines in $results" >&2; exit 1; }
}

# header FILE FIELD [N]: the first N (default 1) values of FILE's "# FIELD:" lines.
header() { sed -n "s/^# $2: *//p" "$1" | head -n "${3:-1}"; }

if [ "$mode" = tables ]; then
	analyse "$results" "$tmp/t"
	runs=$(header "$results" runs | sed 's/[^0-9].*//')
	while read -r n; do
		echo
		if [ "${runs:-0}" = 1 ]; then echo "$n (one run):"; else echo "$n (medians of ${runs:-?} runs):"; fi
		echo
		cat "$tmp/t/$n.table"
	done <"$tmp/t/names"
	if [ -s "$tmp/t/instructions.table" ]; then
		echo
		echo "instructions per operation (callgrind: scripts/instructions.sh):"
		echo
		cat "$tmp/t/instructions.table"
	fi
	exit 0
fi

# --- which runs -----------------------------------------------------------------

# The benchmarks the template has a table for.
page_names=$(sed -n 's/^@@TABLE \(.*\)@@$/\1/p' "$template")

# kind_of FILE: the CPU model FILE's header names, without the count of CPUs
# bench.sh adds after it; nothing if it names none.
kind_of() {
	local cpu
	cpu=$(header "$1" cpu | sed 's/, [0-9][0-9]* online CPU.*//')
	[ "$cpu" = unknown ] || printf '%s' "$cpu"
}
# slug_of KIND: the kind for a file name: "AMD EPYC" amd-epyc, "Intel(R)
# Xeon(R) CPU @ 2.30GHz" intel-xeon-2-30ghz.
slug_of() {
	tr '[:upper:]' '[:lower:]' <<<"$1" |
		sed -E 's/\((r|tm)\)//g; s/(^| )cpu( |$)/ /g; s/[^a-z0-9]+/-/g; s/^-+//; s/-+$//'
}
# is_whole FILE: bench.sh's whole suite (see the top of this file).
is_whole() {
	local suite n
	suite=$(header "$1" suite)
	[ "$suite" = whole ] && return 0
	[ -z "$suite" ] || return 1
	for n in $page_names; do grep -q "^SUITE $n|" "$1" || return 1; done
}
# is_finished FILE: bench.sh got past its last timed run.
is_finished() { grep -q '^# load: .* at the end' "$1"; }
# missing FILE: the template's benchmarks FILE has no figures for.
missing() {
	local n none=()
	for n in $page_names; do
		grep -q -e "^RESULT case=$n " -e "^FAILED case=$n " "$1" || none+=("$n")
	done
	echo "${none[*]}"
}

# kinds: the host kinds shown, newest run first; shown[KIND] its file;
# cut[KIND] that kind's whole runs, newer than it, that stopped midway.
kinds=()
declare -A shown=() cut=()
older=0 partial=0 unfinished=0 nameless=0
if [ "$mode" = one ]; then
	kind=$(kind_of "$results")
	kinds=("${kind:-unknown host}")
	shown[${kinds[0]}]=$results
else
	for f in "$results_dir"/*.txt; do
		if [ ! -e "$f" ] || ! grep -q '^SUITE ' "$f"; then continue; fi
		kind=$(kind_of "$f")
		# No CPU model, no host kind: such a run cannot be labelled, and is left out.
		[ -n "$kind" ] || { nameless=$((nameless + 1)); continue; }
		w=0 fin=0
		is_whole "$f" && w=1
		is_finished "$f" && fin=1
		printf '%s\t%s\t%s\t%s\t%s\n' "$(header "$f" date)" "$kind" "$f" "$w" "$fin"
	done >"$tmp/runs"
	while IFS=$'\t' read -r _ kind f w fin; do
		if [ "$w" -eq 0 ]; then partial=$((partial + 1))
		elif [ "$fin" -eq 0 ]; then
			unfinished=$((unfinished + 1))
			[ -n "${shown[$kind]:-}" ] || cut[$kind]+="$f "
		elif [ -n "${shown[$kind]:-}" ]; then older=$((older + 1))
		else
			shown[$kind]=$f
			kinds+=("$kind")
		fi
	done < <(sort -r "$tmp/runs")
	[ ${#kinds[@]} -gt 0 ] || { echo "bench-page.sh: no whole, finished run in $results_dir" >&2; exit 1; }
fi

# --- plots ----------------------------------------------------------------------

plots=$(dirname "$page")/bench
mkdir -p "$plots"
have_gnuplot=0
command -v gnuplot >/dev/null && have_gnuplot=1
[ "$have_gnuplot" -eq 1 ] || echo "bench-page.sh: no gnuplot (scripts/deps.sh bench installs it): no plots" >&2

# A style all plots share: SVG, since it is text and diffs.
style="set terminal svg size 860,500 dynamic enhanced font 'sans,13' background '#ffffff'
set grid lc rgb '#dddddd'
set key top left Left reverse box opaque
set datafile missing '?'"

# cdf_plot NAME TITLE DIR OUT: the distributions of NAME and NAME-cross,
# krill's and the other's, from analyse's DIR, drawn into OUT.
cdf_plot() {
	local n=$1 title=$2 d=$3 out=$4 curves="" c cn impl label color dash f
	for c in "$n|krill|krill, same scheduler|#1f4e9c|1" "$n|other|BEAM, same scheduler|#c0282a|1" \
		"$n-cross|krill|krill, across schedulers|#5fa8e8|2" "$n-cross|other|BEAM, across schedulers|#f28e2b|2"; do
		IFS='|' read -r cn impl label color dash <<<"$c"
		f=$d/cdf-$cn-$impl.dat
		[ -s "$f" ] || continue
		curves+="${curves:+, }'$f' using 1:2 with steps lw 2 lc rgb '$color' dt $dash title '$label'"
	done
	[ -n "$curves" ] || return 1
	# Below the CDF, its tail: the fraction of round trips slower than x, on
	# a log scale too, where p99 and p99.9 can be told apart.
	gnuplot <<-EOF
	$style
	set terminal svg size 860,820 dynamic enhanced font 'sans,13' background '#ffffff'
	set output '$out'
	set multiplot layout 2,1 title '$title' noenhanced
	set logscale x
	set format x '10^{%T}'
	set xlabel 'round trip, ns (log scale)'
	set ylabel 'fraction of round trips at or below'
	set yrange [0:1]
	set key bottom right Left reverse
	plot $curves
	set logscale y
	set format y '10^{%T}'
	set yrange [1e-6:1]
	set ylabel 'fraction slower (log scale)'
	set key top right Left reverse
	plot ${curves//using 1:2/using 1:(1 - \$2 > 0 ? 1 - \$2 : 1/0)}
	unset multiplot
	EOF
}

# scaling_plot TITLE DIR OUT: the throughputs of ring, skynet, fan-in and cpu
# against the number of schedulers.
scaling_plot() {
	local top=$1 d=$2 out=$3 n name title unit f extra panels="" maxs
	maxs=$(cat "$d"/scale-*.dat 2>/dev/null | awk '$1 > m { m = $1 } END { print m + 0 }')
	[ "$maxs" -gt 0 ] || return 1
	for n in "ring|ring of 1,000 processes|million messages per second" \
		"skynet|skynet, 1,111,111 processes|million processes per second" \
		"fanin|fan-in, 100 senders to one|million messages per second" \
		"cpu|1,000 supervised fib(27) jobs|jobs per second"; do
		IFS='|' read -r name title unit <<<"$n"
		f=$d/scale-$name.dat
		if [ ! -s "$f" ]; then
			# An empty panel: a curve outside its range draws nothing.
			panels+="set title '$title'; unset logscale y; set yrange [0:1]; unset key"$'\n'
			panels+="set label 1 'not run' at graph 0.5, 0.5 center; plot 2 notitle"$'\n'
			panels+="unset label 1; set autoscale y; set logscale y"$'\n'
			continue
		fi
		extra=""
		[ "$name" = cpu ] && extra=", '$f' using 1:4 with linespoints lw 2 pt 6 dt 2 lc rgb '#555555' title 'plain loops on threads'"
		panels+="set title '$title'; set ylabel '$unit'; set key top left"$'\n'
		panels+="plot '$f' using 1:2 with linespoints lw 2 pt 7 lc rgb '#1f77b4' title 'krill',"
		panels+=" '$f' using 1:3 with linespoints lw 2 pt 5 lc rgb '#d62728' title 'BEAM'$extra"$'\n'
	done
	gnuplot <<-EOF
	$style
	set terminal svg size 900,700 dynamic enhanced font 'sans,12' background '#ffffff'
	set output '$out'
	set logscale y
	set xrange [0.5:$maxs + 0.5]
	set xtics 1
	set xlabel 'schedulers'
	set multiplot layout 2,2 title '$top' noenhanced
	$panels
	unset multiplot
	EOF
}

# plot FILE DIR OUT KIND: draw the template's plot FILE from analyse's DIR
# into OUT, its title naming the host kind; nonzero if it cannot be.
plot() {
	local kind=${4//\'/}
	[ "$have_gnuplot" -eq 1 ] || return 1
	case $1 in
	pingpong-cdf.svg) cdf_plot pingpong "Ping-pong round trips: the distribution ($kind)" "$2" "$3" ;;
	call-cdf.svg) cdf_plot call "Request and reply (kr_call) round trips: the distribution ($kind)" "$2" "$3" ;;
	scaling.svg) scaling_plot "Throughput against the number of schedulers (medians; log scale; $kind)" "$2" "$3" ;;
	*) echo "bench-page.sh: no plot named $1" >&2; return 1 ;;
	esac
}

# --- the page -------------------------------------------------------------------

# count N THING: "1 THING", "3 THINGs".
count() { if [ "$1" -eq 1 ]; then echo "1 $2"; else echo "$1 $2s"; fi; }
# rel FILE: FILE from the repository's root.
rel() { printf '%s' "${1#"$here"/}"; }
# run_of FILE: "`FILE` (DATE, commit C)".
# shellcheck disable=SC2016 # the backquotes are markdown's
run_of() { printf '`%s` (%s, commit %s)' "$(rel "$1")" "$(header "$1" date)" "$(header "$1" commit)"; }

source_lines() {
	local kind c what
	if [ "$mode" = one ]; then
		echo "The figures on this page are from \`$(rel "$results")\` alone, written by \`scripts/bench.sh\`"
		echo "on $(header "$results" date) (commit $(header "$results" commit)); the page itself is"
		echo "\`scripts/bench-page.sh $(rel "$results")\` applied to \`$template\`: edit the template, not"
		echo "this page. \`scripts/bench-page.sh --all\` makes the page of every kind of host."
		return
	fi
	echo "Each section below is one kind of host (one CPU model, as the results file's header names it)"
	echo "and the latest whole run of \`make bench\` on it in \`$results_dir/\`, labelled with the model, the"
	echo "run's date, commit and file: times from two kinds of host do not compare, and this page gives"
	echo "none without its host. The runs shown:"
	echo
	for kind in "${kinds[@]}"; do echo "- **$kind**: $(run_of "${shown[$kind]}")"; done
	# A kind whose whole runs all stopped midway has no section: say so.
	for kind in "${!cut[@]}"; do
		[ -z "${shown[$kind]:-}" ] || continue
		c=${cut[$kind]%% *}
		what=$(lacks "$c")
		echo "- **$kind**: no section, as no whole run on it finished; the latest, $(run_of "$c"),"
		echo "  stopped before its end${what:+ (no $what)}."
	done
	echo
	local not=()
	[ "$older" -eq 0 ] || not+=("$(count "$older" "older whole run") of these hosts")
	[ "$partial" -eq 0 ] || not+=("$(count "$partial" "partial run") (\`scripts/bench.sh NAME...\`, or from before the suite's last benchmarks)")
	[ "$unfinished" -eq 0 ] || not+=("$(count "$unfinished" "whole run") that stopped before the end")
	[ "$nameless" -eq 0 ] || not+=("$(count "$nameless" "results file") naming no CPU model")
	[ ${#not[@]} -eq 0 ] || { local IFS=';'; echo "Not shown: ${not[*]}."; } | sed 's/;/; /g'
	echo "The page is \`scripts/bench-page.sh --all\` applied to \`$template\` (\`make bench\` does"
	echo "that after a whole run): edit the template, not this page."
}

# lacks FILE: what a run stopped midway lacks ("figures for chat-10k,
# chat-bounded, and no instruction counts"), or nothing.
lacks() {
	local gone what
	gone=$(missing "$1")
	what=${gone:+figures for ${gone// /, }}
	grep -q '^RESULT case=instructions ' "$1" || what="$what${what:+, and no }instruction counts"
	printf '%s' "$what"
}

# The lines of the host section at hand: h_kind, h_file, h_dir, h_slug.
host_lines() {
	local f=$h_file ncpu c what suite
	ncpu=$(header "$f" cpu | sed -n 's/.*, \([0-9][0-9]*\) online CPU.*/\1/p')
	echo "## $h_kind${ncpu:+, $ncpu CPUs}"
	echo
	echo "The figures of this section are from \`$(rel "$f")\`, written by \`scripts/bench.sh\` on"
	echo "$(header "$f" date) at commit $(header "$f" commit), on a host whose CPU names itself"
	echo "\"$h_kind\"${ncpu:+ ($ncpu online CPUs)}. Other kinds of host give other figures."
	# In one file's page the run may be anything: say what it is not.
	suite=$(header "$f" suite)
	if [ "$mode" = one ] && ! is_whole "$f"; then
		echo "This run is not the whole suite${suite:+ ($suite)}: the benchmarks it did not run say so."
	elif [ "$mode" = one ] && ! is_finished "$f"; then
		what=$(lacks "$f")
		echo "This run stopped before its end${what:+ (no $what)}."
	fi
	for c in ${cut[$h_kind]:-}; do
		what=$(lacks "$c")
		echo "A later whole run on this kind of host, $(run_of "$c"), stopped before"
		echo "its end${what:+ (no $what)} and is not shown; \`scripts/bench-page.sh"
		echo "$(rel "$c") PAGE\` makes a page of what it has."
	done
}

machine_lines() {
	local f=$h_file suite
	suite=$(header "$f" suite)
	echo "- **results**: \`$(rel "$f")\`, $(header "$f" date), commit $(header "$f" commit)${suite:+, suite: $suite}"
	echo "- **CPU**: $(header "$f" cpu), $(header "$f" memory)"
	[ -z "$(header "$f" 'cpu id')" ] || echo "- **CPU id**: $(header "$f" 'cpu id')"
	echo "- **kernel**: $(header "$f" kernel)"
	echo "- **compiler**: $(header "$f" compiler)"
	echo "- **OTP**: $(header "$f" OTP)"
	echo "- **runs**: $(header "$f" runs)"
	header "$f" load 2 | sed 's/^/- **load**: /'
	echo "- **krill**: \`$(header "$f" krill)\`"
	echo "- **BEAM**: \`$(header "$f" BEAM)\`"
}

instruction_lines() {
	local f=$h_file
	if [ -s "$h_dir/instructions.table" ]; then
		cat "$h_dir/instructions.table"
	elif grep -q '^FAILED case=instructions ' "$f"; then
		echo "(\`scripts/instructions.sh\` failed in this run.)"
	elif grep -q '^# instructions: not counted' "$f"; then
		echo "(Not counted in this run: $(header "$f" instructions | sed 's/^not counted //; s/^(//; s/)$//').)"
	else
		echo "(Not counted in this run: \`make bench\` did not count instructions yet, or the run"
		echo "stopped before it did. \`scripts/instructions.sh\` counts them for the build at hand.)"
	fi
}

# render LINE: a template line, in the host section at hand if inside the hosts' block.
written=()
render() {
	local line=$1 file out
	case $line in
	@@SOURCE@@) source_lines ;;
	@@HOST@@) host_lines ;;
	@@MACHINE@@) machine_lines ;;
	@@INSTRUCTIONS@@) instruction_lines ;;
	@@TABLE\ *@@)
		line=${line#@@TABLE }
		line=${line%@@}
		if [ -s "$h_dir/$line.table" ]; then cat "$h_dir/$line.table"; else echo "($line was not run.)"; fi
		;;
	@@PLOT\ *@@)
		line=${line#@@PLOT }
		line=${line%@@}
		file=${line%% *}
		out=${file%.svg}-$h_slug.svg
		if plot "$file" "$h_dir" "$plots/$out" "$h_kind"; then
			echo "![${line#* } ($h_kind)](bench/$out)"
			written+=("$out")
		else
			echo "(The plot $file could not be drawn: no gnuplot, or no figures for it.)"
		fi
		;;
	*) printf '%s\n' "$line" ;;
	esac
}

mapfile -t lines <"$template"
i=0
for kind in "${kinds[@]}"; do
	i=$((i + 1))
	analyse "${shown[$kind]}" "$tmp/host$i"
done
{
	n=0
	while [ "$n" -lt "${#lines[@]}" ]; do
		line=${lines[$n]}
		n=$((n + 1))
		if [ "$line" != @@HOSTS@@ ]; then
			render "$line"
			continue
		fi
		# The hosts' block: from here to @@END HOSTS@@, once for each kind.
		block=()
		while [ "$n" -lt "${#lines[@]}" ] && [ "${lines[$n]}" != "@@END HOSTS@@" ]; do
			block+=("${lines[$n]}")
			n=$((n + 1))
		done
		n=$((n + 1))
		i=0
		for h_kind in "${kinds[@]}"; do
			i=$((i + 1))
			h_file=${shown[$h_kind]} h_dir=$tmp/host$i h_slug=$(slug_of "$h_kind")
			for line in "${block[@]}"; do render "$line"; done
		done
	done
} >"$tmp/page"
mkdir -p "$(dirname "$page")"
mv "$tmp/page" "$page"
# Plots of host kinds the page no longer shows would only mislead.
for f in "$plots"/pingpong-cdf*.svg "$plots"/call-cdf*.svg "$plots"/scaling*.svg; do
	[ -e "$f" ] || continue
	keep=0
	for w in "${written[@]}"; do [ "$(basename "$f")" = "$w" ] && keep=1; done
	[ "$keep" -eq 1 ] || rm -f "$f"
done
