#!/usr/bin/env bash
# Turns a results file of scripts/bench.sh into tables, plots and a page.
#
#   scripts/bench-page.sh --tables RESULTS   print the tables (medians, ratios) on stdout
#   scripts/bench-page.sh RESULTS [PAGE]     regenerate PAGE (default docs/BENCHMARKS.md)
#                                            and its plots, in bench/ beside it
#
# Everything comes from the results file alone (its SUITE, RESULT and CDF
# lines and its header), so any run's page can be made again later. The page
# is the template bench/BENCHMARKS.md.in with its @@ lines replaced; the
# hand-written parts (what each benchmark does, what the figures say) live
# in the template, so regenerating loses none of them. The @@ lines:
#
#   @@SOURCE@@              which run the figures are from
#   @@MACHINE@@             the machine and the run, from the results file's header
#   @@TABLE NAME@@          the table of benchmark NAME (a name in bench.sh's suite)
#   @@PLOT FILE ALT@@       a plot (pingpong-cdf.svg, call-cdf.svg, scaling.svg), rendered
#                           with gnuplot (Debian's gnuplot-nox), and its link
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
template=bench/BENCHMARKS.md.in

tables_only=0
if [ "${1:-}" = --tables ]; then
	tables_only=1
	shift
fi
if [ $# -lt 1 ] || [ ! -r "$1" ]; then
	echo "usage: $0 [--tables] RESULTS [PAGE]" >&2
	exit 2
fi
results=$1
page=${2:-docs/BENCHMARKS.md}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --- tables and plot data: one pass of awk over the results ------------------
#
# Writes into $tmp: names (the benchmarks in suite order), NAME.table (the
# markdown table of benchmark NAME), and the plots' data: cdf-NAME-IMPL.dat
# (value, fraction: the run with the most schedulers) and scale-NAME.dat
# (schedulers, krill, other[, plain loops]: throughput from the medians; "?"
# where a figure is missing). IMPL is krill or other: the BEAM, or for ctx
# swapcontext.
awk -v dir="$tmp" '
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
# "krill 5.1x faster", "BEAM 1.7x smaller", "even (1.03x)".
function ratio(k, b, better, f, other,    word, wins, r) {
	if (better == "-" || k == "" || b == "" || k <= 0 || b <= 0) return "-"
	word = f ~ /bytes/ ? "smaller" : "faster"
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
function impl_of(s) { return s == "beam" || s == "ucontext" ? "other" : s }
function out(v) { return v == "" ? "?" : v }
$1 == "SUITE" {
	split(substr($0, 7), s, "|")
	n = s[1]
	if (!(n in args)) {
		order[++nnames] = n; args[n] = s[2]; against[n] = s[4]; their[n] = s[5]
		other[n] = s[4] == "ucontext" ? "swapcontext" : "BEAM"
	}
	rows[n] = rows[n] (rows[n] == "" ? "" : SUBSEP) s[6] "|" s[7] "|" s[8]
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
END {
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

[ -s "$tmp/names" ] || { echo "bench-page.sh: no SUITE lines in $results" >&2; exit 1; }
runs=$(sed -n 's/^# runs: *\([0-9]*\).*/\1/p' "$results" | head -n1)

if [ "$tables_only" -eq 1 ]; then
	while read -r n; do
		echo
		if [ "${runs:-0}" -eq 1 ]; then echo "$n (one run):"; else echo "$n (medians of ${runs:-?} runs):"; fi
		echo
		cat "$tmp/$n.table"
	done <"$tmp/names"
	exit 0
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

# cdf_plot NAME TITLE: the distributions of NAME and NAME-cross, krill's and the other's.
cdf_plot() {
	local n=$1 title=$2 curves="" c cn impl label color dash f
	for c in "$n|krill|krill, same scheduler|#1f4e9c|1" "$n|other|BEAM, same scheduler|#c0282a|1" \
		"$n-cross|krill|krill, across schedulers|#5fa8e8|2" "$n-cross|other|BEAM, across schedulers|#f28e2b|2"; do
		IFS='|' read -r cn impl label color dash <<<"$c"
		f=$tmp/cdf-$cn-$impl.dat
		[ -s "$f" ] || continue
		curves+="${curves:+, }'$f' using 1:2 with steps lw 2 lc rgb '$color' dt $dash title '$label'"
	done
	[ -n "$curves" ] || return 1
	# Below the CDF, its tail: the fraction of round trips slower than x, on
	# a log scale too, where p99 and p99.9 can be told apart.
	gnuplot <<-EOF
	$style
	set terminal svg size 860,820 dynamic enhanced font 'sans,13' background '#ffffff'
	set output '$plots/$n-cdf.svg'
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

# The throughputs of ring, skynet, fan-in and cpu against the number of schedulers.
scaling_plot() {
	local n name title unit f extra panels="" maxs
	maxs=$(cat "$tmp"/scale-*.dat 2>/dev/null | awk '$1 > m { m = $1 } END { print m + 0 }')
	[ "$maxs" -gt 0 ] || return 1
	for n in "ring|ring of 1,000 processes|million messages per second" \
		"skynet|skynet, 1,111,111 processes|million processes per second" \
		"fanin|fan-in, 100 senders to one|million messages per second" \
		"cpu|1,000 supervised fib(27) jobs|jobs per second"; do
		IFS='|' read -r name title unit <<<"$n"
		f=$tmp/scale-$name.dat
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
	set output '$plots/scaling.svg'
	set logscale y
	set xrange [0.5:$maxs + 0.5]
	set xtics 1
	set xlabel 'schedulers'
	set multiplot layout 2,2 title 'Throughput against the number of schedulers (medians; log scale)'
	$panels
	unset multiplot
	EOF
}

# plot FILE: render it; nonzero if it cannot be.
plot() {
	[ "$have_gnuplot" -eq 1 ] || return 1
	case $1 in
	pingpong-cdf.svg) cdf_plot pingpong 'Ping-pong round trips: the distribution' ;;
	call-cdf.svg) cdf_plot call 'Request and reply (kr_call) round trips: the distribution' ;;
	scaling.svg) scaling_plot ;;
	*) echo "bench-page.sh: no plot named $1" >&2; return 1 ;;
	esac
}

# --- the page -------------------------------------------------------------------

header() { sed -n "s/^# $1: *//p" "$results" | head -n "${2:-1}"; }

{
	rel=${results#"$here"/}
	echo "The figures on this page are from \`$rel\`, written by \`make bench\` on $(header date)"
	echo "(commit $(header commit)); the page itself is \`scripts/bench-page.sh $rel\` applied to"
	echo "\`$template\`: edit the template, not this page."
} >"$tmp/SOURCE"
{
	echo "- **CPU**: $(header cpu), $(header memory)"
	echo "- **kernel**: $(header kernel)"
	echo "- **compiler**: $(header compiler)"
	echo "- **OTP**: $(header OTP)"
	echo "- **runs**: $(header runs)"
	header load 2 | sed 's/^/- **load**: /'
	echo "- **krill**: \`$(header krill)\`"
	echo "- **BEAM**: \`$(header BEAM)\`"
} >"$tmp/MACHINE"

mkdir -p "$(dirname "$page")"
while IFS= read -r line; do
	case $line in
	@@SOURCE@@ | @@MACHINE@@)
		line=${line#@@}
		cat "$tmp/${line%@@}"
		;;
	@@TABLE\ *@@)
		line=${line#@@TABLE }
		line=${line%@@}
		if [ -s "$tmp/$line.table" ]; then cat "$tmp/$line.table"; else echo "($line was not run.)"; fi
		;;
	@@PLOT\ *@@)
		line=${line#@@PLOT }
		line=${line%@@}
		file=${line%% *}
		if plot "$file"; then
			echo "![${line#* }](bench/$file)"
		else
			echo "(The plot $file could not be drawn: no gnuplot, or no figures for it.)"
		fi
		;;
	*) printf '%s\n' "$line" ;;
	esac
done <"$template" >"$tmp/page"
mv "$tmp/page" "$page"
