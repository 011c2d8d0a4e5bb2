#!/bin/sh
# krill-text.sh OBJCOPY OBJECT...
#
# Moves the code of krill's own objects into one section, krill_text, in
# place. The linker then gathers krill's code in one range and defines
# __start_krill_text and __stop_krill_text around it, in any program that
# links the library, static or shared: sched/fault.c tells a fault in krill's
# code from one in a process's code by that range.
#
# Compilers put code in .text and in variants of it (.text.unlikely and
# .text.hot for hot/cold splitting, .text.startup for constructors, one
# .text.NAME per function with -ffunction-sections): every executable section
# named .text or .text.* is renamed, keeping its flags and alignment. Any
# other executable section stops the build, rather than leave code outside
# the range that fault.c would take for a process's.
set -eu
objcopy=$1
shift
for o in "$@"; do
	code=$(readelf -SW "$o" | sed 's/^ *\[ *[0-9]*\]//' |
		awk '$2 == "PROGBITS" && $7 ~ /X/ { print $1 }')
	args=
	for sec in $code; do
		case $sec in
		krill_text) ;;
		.text | .text.*) args="$args --rename-section $sec=krill_text" ;;
		*)
			echo "krill-text.sh: $o: code in section $sec, which would not count as krill's" >&2
			exit 1
			;;
		esac
	done
	if [ -n "$args" ]; then
		# shellcheck disable=SC2086
		"$objcopy" $args "$o"
	fi
done
