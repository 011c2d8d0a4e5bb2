#!/usr/bin/env bash
# instructions.sh - instructions per operation of krill's hot paths, counted
# by callgrind: each benchmark runs twice, at two lengths, and the
# difference of the two totals divided by the difference of the lengths is
# what one more round (a message round trip, a hop round a ring, a call)
# costs. The start, the stop and everything else that does not grow with
# the length cancels out. The count does not depend on the host's speed or
# load the way a time does, but it is not exact: what the scheduler does
# while a run waits (spinning, the rounds where the loop comes round) varies
# a little, and repeated counts of one build spread by about 0.5% (pingpong,
# call) to 5% (ring). Compare two builds by several counts each.
#
#   scripts/instructions.sh                 pingpong, ring and call
#   scripts/instructions.sh pingpong ...    the ones named
#
# Each line: RESULT bench=NAME instructions_per_op=X op=WHAT, then the
# command lines it ran. Needs valgrind (scripts/deps.sh installs it) and
# build/krbench (make).
set -euo pipefail
cd "$(dirname "$0")/.."

KRBENCH=${KRBENCH:-build/krbench}
[ -x "$KRBENCH" ] || { echo "instructions.sh: $KRBENCH not built (run make)" >&2; exit 1; }
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind not installed" >&2; exit 1; }

# bench: the krbench arguments before the length, the length option, the two
# lengths, what one unit of length is, and how many operations a unit holds.
spec() {
	case "$1" in
	pingpong) echo "pingpong --schedulers 1|--rounds|50000|150000|a message round trip (two sends, two receives, two switches; one clock read and one histogram record)|1" ;;
	ring) echo "ring --schedulers 1 --procs 1000|--rounds|20|60|a hop round a ring of 1,000 processes (a send, a receive, a switch)|1000" ;;
	call) echo "call --schedulers 1|--rounds|50000|150000|a kr_call and its kr_reply (one clock read and one histogram record)|1" ;;
	*) echo "instructions.sh: no such benchmark: $1 (pingpong, ring, call)" >&2; exit 1 ;;
	esac
}

count() {
	local out
	out=$(mktemp)
	# shellcheck disable=SC2086
	valgrind --tool=callgrind --callgrind-out-file=/dev/null $KRBENCH "$@" >/dev/null 2>"$out" || {
		cat "$out" >&2
		rm -f "$out"
		exit 1
	}
	sed -n 's/.*Collected : *\([0-9]*\).*/\1/p' "$out"
	rm -f "$out"
}

benches=("$@")
[ ${#benches[@]} -gt 0 ] || benches=(pingpong ring call)
for b in "${benches[@]}"; do
	IFS='|' read -r args opt lo hi what per <<<"$(spec "$b")"
	# shellcheck disable=SC2086
	a=$(count $args "$opt" "$lo")
	# shellcheck disable=SC2086
	z=$(count $args "$opt" "$hi")
	per_op=$(awk -v a="$a" -v z="$z" -v lo="$lo" -v hi="$hi" -v per="$per" \
		'BEGIN { printf "%.1f", (z - a) / ((hi - lo) * per) }')
	echo "RESULT bench=$b instructions_per_op=$per_op op=\"$what\""
	echo "  valgrind --tool=callgrind $KRBENCH $args $opt $lo: $a instructions"
	echo "  valgrind --tool=callgrind $KRBENCH $args $opt $hi: $z instructions"
done
