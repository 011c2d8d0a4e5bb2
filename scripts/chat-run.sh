#!/usr/bin/env bash
# One run of the chat benchmark, for scripts/bench.sh: start a chat server,
# load it with build/chat_load, stop it, and pass on chat_load's RESULT line.
#
#   scripts/chat-run.sh krill|beam [--schedulers N] [--timeout SECS] [--hibernate-after MS] LOAD...
#
# krill's server is build/chat, the BEAM's bench/erlang/chat.erl (compiled
# into build/erlang by bench.sh); both get N schedulers (0 or none: all).
# --hibernate-after is krill's server's (ignored by the BEAM's, which has no
# such setting). LOAD is chat_load's options (--clients --rooms --msgs
# [--inflight] [--hold]; --server-pid is added here). The
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
hib=()
load=()
while [ $# -gt 0 ]; do
	case $1 in
	--schedulers) sched=$2; shift 2 ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--hibernate-after) hib=(--hibernate-after "$2"); shift 2 ;;
	*) load+=("$1"); shift ;;
	esac
done
[ "$sched" -gt 0 ] || sched=$(nproc)
ulimit -n "$(ulimit -Hn)"

# A port no socket uses now, below the ephemeral range (32768 and up here),
# where the previous run's 10,000 client sockets may linger (a port there
# once made the BEAM's server fail with eaddrinuse). Another program may
# still take it between this look and the server's bind (the machine may be
# shared): a server that does not start is tried again on another port.
free_port() {
	local p=$(( 10000 + RANDOM % 20000 ))
	while ss -tan 2>/dev/null | awk '{ print $4 }' | grep -q ":$p\$"; do p=$((p + 1)); done
	echo "$p"
}

tmp=$(mktemp -d)
# A BEAM that crashes writes erl_crash.dump into the current directory (the
# repository's root) unless told otherwise: here, where cleanup removes it.
export ERL_CRASH_DUMP=$tmp/erl_crash.dump
server=
stop_server() {
	if [ -n "$server" ]; then
		kill "$server" 2>/dev/null || true
		wait "$server" 2>/dev/null || true
	fi
	server=
}
cleanup() {
	stop_server
	if [ -s "$ERL_CRASH_DUMP" ]; then sed -n 's/^Slogan: /chat-run.sh: the BEAM crashed: /p' "$ERL_CRASH_DUMP" >&2; fi
	rm -rf "$tmp"
	return 0
}
trap cleanup EXIT

# start_server: start the server on $port in the background, and wait
# until it says it listens; 1 if it does not within 10 s.
start_server() {
	case $impl in
	krill) build/chat --port "$port" --schedulers "$sched" "${hib[@]}" >"$tmp/server" 2>&1 & ;;
	beam) erl +S "$sched:$sched" +P 2000000 +Q 65536 -noshell -pa build/erlang -s chat main \
		-extra --port "$port" >"$tmp/server" 2>&1 & ;;
	*) echo "chat-run.sh: krill or beam, not '$impl'" >&2; exit 2 ;;
	esac
	server=$!
	for _ in $(seq 200); do
		grep -q listening "$tmp/server" 2>/dev/null && return 0
		kill -0 "$server" 2>/dev/null || break # it ended: no use waiting
		sleep 0.05
	done
	grep -q listening "$tmp/server"
}

for try in 1 2 3; do
	port=$(free_port)
	start_server && break
	stop_server
	echo "chat-run.sh: the $impl server did not start on port $port (try $try of 3):" >&2
	sed 's/^/    /' "$tmp/server" >&2
	if [ -s "$ERL_CRASH_DUMP" ]; then sed -n 's/^Slogan: /    the BEAM crashed: /p' "$ERL_CRASH_DUMP" >&2; fi
	rm -f "$ERL_CRASH_DUMP"
	[ "$try" -lt 3 ] || exit 1
done
# The RESULT line, with the server's scheduler count for bench.sh's tables.
build/chat_load "${load[@]}" --port "$port" --impl "$impl" --timeout "$timeout_s" \
	--server-pid "$server" | sed "s/^\(RESULT bench=chat[a-z_]* impl=[a-z]*\) /\1 schedulers=$sched /"
