#!/usr/bin/env bash
# test-installed.sh - programs linked against the installed library run clean
# under Valgrind's memcheck.
#
# `make test-installed`, the last step of `make test`, runs it. It installs
# krill with `make install` into a temporary prefix, builds two programs
# against that installation as a user would (pkg-config with the installed
# krill.pc, the shared library found through an rpath):
#
#   first        the README's first program, copied from README.md ("A first
#                program") as it stands there
#   supervised   examples/supervised.c: a supervision tree, crashes, restarts,
#                calls, timers
#   deep_stack   tests/installed/deep_stack.c: processes that go 40 KiB deep
#                into their stacks and end
#
# and runs each under `valgrind -q --error-exitcode=1`: a memcheck error, a
# warning of valgrind's (an unhandled system call), or a program that does
# not end well fails the check. Without valgrind it says
# so and passes. MAKE and CC name the make and the compiler (make, cc).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
make=${MAKE:-make}
cc=${CC:-cc}

if ! command -v valgrind >/dev/null 2>&1; then
	echo "test-installed: valgrind is not installed: skipped"
	exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

"$make" -s -C "$here" install PREFIX="$prefix" LIBDIR="$prefix/lib" INCDIR="$prefix/include" \
	DESTDIR= >"$tmp/install.log" 2>&1 || {
	cat "$tmp/install.log" >&2
	echo "test-installed: make install failed" >&2
	exit 1
}

# The README's first program: the first ```c block after its heading.
awk '/^## A first program/ { inside = 1; next }
     inside && /^```c$/ { code = 1; next }
     code && /^```$/ { exit }
     code' "$here/README.md" >"$tmp/first.c"
if ! grep -q 'kr_main' "$tmp/first.c"; then
	echo "test-installed: README.md has no C program under \"## A first program\"" >&2
	exit 1
fi
cp "$here/examples/supervised.c" "$here/tests/installed/deep_stack.c" "$tmp/"

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
flags=$(pkg-config --cflags --libs krill)
fail=0
# name, and a line its output must hold: the program ran to its end
for prog in "first:^hello from " "supervised:^stopped$" "deep_stack:^deep_stack: 8 of 8 "; do
	name=${prog%%:*}
	want=${prog#*:}
	# shellcheck disable=SC2086
	"$cc" -O2 -g -o "$tmp/$name" "$tmp/$name.c" $flags -Wl,-rpath,"$prefix/lib"
	libs=$(ldd "$tmp/$name") # not piped into grep -q: with pipefail, ldd's SIGPIPE would fail it
	if ! grep -q "$prefix/lib/libkrill.so" <<<"$libs"; then
		echo "test-installed: $name does not load the installed libkrill.so" >&2
		fail=1
		continue
	fi
	rc=0
	valgrind -q --error-exitcode=1 "$tmp/$name" >"$tmp/$name.out" 2>&1 || rc=$?
	# valgrind -q speaks only of trouble, on lines "==pid==" or "--pid--"
	said=$(grep -cE '^(==|--)[0-9]+(==|--)' "$tmp/$name.out" || true)
	if [ "$rc" -ne 0 ] || [ "$said" -ne 0 ] || ! grep -q "$want" "$tmp/$name.out"; then
		cat "$tmp/$name.out"
		if [ "$rc" -eq 0 ] && [ "$said" -ne 0 ]; then
			echo "test-installed: $name under valgrind: valgrind's warnings above" >&2
		elif [ "$rc" -eq 0 ]; then
			echo "test-installed: $name under valgrind: no line matching \"$want\"" >&2
		else
			echo "test-installed: $name under valgrind: exit status $rc" \
			     "(1: memcheck's errors above)" >&2
		fi
		fail=1
		continue
	fi
	echo "test-installed: $name: no memcheck errors"
done
exit $fail
