#!/usr/bin/env bash
# Takes docs/observer.png, the observer's page as docs/observer.md shows it:
# runs build/observe (make observe's program) on a free port, lets its trees
# crash and restart for a while, and has headless chromium (Debian's, as the
# test uses) screenshot the page as a newcomer first sees it.
#
#   scripts/observer-shot.sh [OUT.png] [SECONDS]     (docs/observer.png, 40)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/docs/observer.png}
wait_s=${2:-40}
make -C "$here" --no-print-directory build/observe >&2

tmp=$(mktemp -d)
cleanup() {
	[ -n "${obs_pid:-}" ] && kill "$obs_pid" 2>/dev/null && wait "$obs_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

"$here/build/observe" 0 >"$tmp/out" 2>&1 &
obs_pid=$!
url=
for _ in $(seq 100); do
	url=$(grep -o 'http://127\.0\.0\.1:[0-9]*/' "$tmp/out" | head -n1) && [ -n "$url" ] && break
	sleep 0.1
done
[ -n "$url" ] || { echo "observer-shot: build/observe printed no address:" >&2; cat "$tmp/out" >&2; exit 1; }
echo "observer-shot: $url, waiting ${wait_s} s for the charts to fill" >&2
sleep "$wait_s"

chromium --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars \
	--user-data-dir="$tmp/profile" --window-size=1400,1000 --virtual-time-budget=3000 \
	--screenshot="$out" "$url" >/dev/null 2>"$tmp/chromium.log" ||
	{ echo "observer-shot: chromium failed:" >&2; tail -n 20 "$tmp/chromium.log" >&2; exit 1; }
echo "observer-shot: wrote $out" >&2
