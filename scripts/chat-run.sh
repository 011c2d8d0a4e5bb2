#!/usr/bin/env bash
# One run of the chat benchmark, for scripts/bench.sh: start a chat server,
# load it with build/chat_load, stop it, and pass on chat_load's RESULT line.
#
#   scripts/chat-run.sh krill|beam [--schedulers N] [--timeout SECS] LOAD...
#
# krill's server is build/chat, the BEAM's bench/erlang/chat.erl (compiled
# into build/erlang by bench.sh); both get N schedulers (0 or none: all).
# LOAD is chat_load's options (--clients --rooms --msgs [--inflight]). The
# load generator is krill either way (build/chat_load, all schedulers), so
# both servers see the same client. Each run picks a free port, and a
# connection is a descriptor on both sides, so the soft descriptor limit is
# raised to the hard one.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
impl=${1:?usage: chat-run.sh krill|beam [--schedulers N] [--timeout SECS] LOAD...}
shift
sched=0
timeout_s=600
load=()
while [ $# -gt 0 ]; do
	case $1 in
	--schedulers) sched=$2; shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	*) load+=("$1"); shift ;;
	esac
done
[ "$sched" -gt 0 ] || sched=$(nproc)
ulimit -n "$(ulimit -Hn)"

# A port no socket uses now, below the ephemeral range (32768 and up here),
# where the previous run's 10,000 client sockets may linger.
port=$(( 10000 + RANDOM % 20000 ))
while ss -tan 2>/dev/null | awk '{ print $4 }' | grep -q ":$port\$"; do port=$((port + 1)); done

tmp=$(mktemp -d)
server=
cleanup() {
	if [ -n "$server" ]; then
		kill "$server" 2>/dev/null || true
		wait "$server" 2>/dev/null || true
	fi
	rm -rf "$tmp"
	return 0
}
trap cleanup EXIT

case $impl in
krill) build/chat --port "$port" --schedulers "$sched" >"$tmp/server" 2>&1 & ;;
beam) erl +S "$sched:$sched" +P 2000000 +Q 65536 -noshell -pa build/erlang -s chat main \
	-extra --port "$port" >"$tmp/server" 2>&1 & ;;
*) echo "chat-run.sh: krill or beam, not '$impl'" >&2; exit 2 ;;
esac
server=$!
for _ in $(seq 200); do grep -q listening "$tmp/server" 2>/dev/null && break; sleep 0.05; done
grep -q listening "$tmp/server" || { echo "chat-run.sh: the $impl server did not start" >&2; cat "$tmp/server" >&2; exit 1; }
# The RESULT line, with the server's scheduler count for bench.sh's tables.
build/chat_load "${load[@]}" --port "$port" --impl "$impl" --timeout "$timeout_s" |
	sed "s/^\(RESULT bench=chat impl=[a-z]*\) /\1 schedulers=$sched /"
