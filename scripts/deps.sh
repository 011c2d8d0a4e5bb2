#!/usr/bin/env bash
# Installs the Debian packages krill's build needs, only when they are missing.
#
#   scripts/deps.sh native    compiler libraries: mimalloc, libatomic_ops, Criterion,
#                             libei (erlang-dev), the BEAM (erlang-nox) that the
#                             distribution tests talk to, and chromium, the headless
#                             browser that opens the observer's page in its test
#   scripts/deps.sh aarch64   cross compiler, qemu-user, arm64 mimalloc, and an arm64
#                             sysroot holding Criterion and its runtime libraries
#   scripts/deps.sh bench     the BEAM (erlang-nox) and gnuplot for side-by-side benchmarks
#   scripts/deps.sh fuzz      clang and its runtimes (libclang-rt-14-dev: libFuzzer, ASan,
#                             UBSan for clang -fsanitize=fuzzer) for the fuzz targets
#
# As root it runs apt-get itself; otherwise it prints the exact apt-get line and fails.
#
# Criterion runs each test in a child that re-executes the test binary, so under
# qemu-user the kernel itself must know how to run an aarch64 executable: the
# aarch64 step registers qemu with binfmt_misc (what systemd-binfmt would do at
# boot with qemu-user-binfmt's own rule).
# The arm64 Criterion cannot be installed through multiarch (its nanomsg -dev package
# would remove the amd64 one), so its .debs and their runtime dependencies are unpacked
# with dpkg -x into build/sysroot-aarch64 instead.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
sysroot=${KR_SYSROOT:-$here/build/sysroot-aarch64}

native_pkgs=(libmimalloc-dev libatomic-ops-dev libcriterion-dev pkgconf make gcc valgrind erlang-dev
             erlang-nox chromium)
aarch64_pkgs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user qemu-user-binfmt libmimalloc-dev:arm64)
bench_pkgs=(erlang-nox gnuplot-nox)
# clang -fsanitize=fuzzer links libclang_rt.fuzzer-x86_64.a, which Debian 12 ships in
# libclang-rt-14-dev (not a dependency of clang; libfuzzer-14-dev is libFuzzer for gcc).
fuzz_pkgs=(clang libclang-rt-14-dev)
# libcriterion3 for arm64 and its runtime closure (apt-cache depends --recurse), less libc;
# erlang-dev for its arm64 libei.a (dist/ links it in).
sysroot_pkgs=(erlang-dev libcriterion3 libffi8 libgit2-1.5 libnanomsg5 libhttp-parser2.9 libmbedcrypto7
              libmbedtls14 libmbedx509-1 libpcre2-8-0 libssh2-1 libssl3 zlib1g libgssapi-krb5-2
              libk5crypto3 libkeyutils1 libkrb5-3 libkrb5support0 libcom-err2)

missing() {
	local p
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
			printf '%s\n' "$p"
	done
}

apt_install() {
	local need
	need=$(missing "$@")
	[ -z "$need" ] && return 0
	# shellcheck disable=SC2086
	if [ "$(id -u)" -ne 0 ]; then
		echo "krill needs these Debian packages; run as root:" >&2
		echo "  apt-get update && apt-get install -y --no-install-recommends" $need >&2
		exit 1
	fi
	echo "deps: installing" $need >&2
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $need >&2 ||
		{ apt-get update -q >&2 && apt-get install -y -q --no-install-recommends $need >&2; }
}

ensure_arm64_arch() {
	dpkg --print-foreign-architectures | grep -qx arm64 && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "krill's aarch64 tests need the arm64 architecture; run as root:" >&2
		echo "  dpkg --add-architecture arm64 && apt-get update" >&2
		exit 1
	fi
	dpkg --add-architecture arm64
	apt-get update -q >&2
}

ensure_binfmt() {
	local entry=/proc/sys/fs/binfmt_misc/qemu-aarch64
	[ -e "$entry" ] && head -n1 "$entry" | grep -qx enabled && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "krill's aarch64 tests need qemu registered with binfmt_misc; run as root:" >&2
		echo "  cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register" >&2
		exit 1
	fi
	[ -e /proc/sys/fs/binfmt_misc/register ] ||
		mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
	[ -e "$entry" ] && echo -1 > "$entry" # a stale or disabled rule
	cat /usr/lib/binfmt.d/qemu-aarch64.conf > /proc/sys/fs/binfmt_misc/register
}

make_sysroot() {
	# The marker names the package list's version: a sysroot made from an
	# older list is made again.
	[ -e "$sysroot/.complete-2" ] && return 0
	local dl
	dl=$(mktemp -d)
	chmod 755 "$dl" # apt's sandbox user must be able to write there
	trap 'rm -rf "$dl"' RETURN
	local p
	(cd "$dl" && for p in "${sysroot_pkgs[@]}"; do
		apt-get download -q "$p:arm64" >&2 ||
			{ echo "deps: cannot download $p:arm64 (try: apt-get update)" >&2; exit 1; }
	done)
	rm -rf "$sysroot"
	mkdir -p "$sysroot"
	for p in "$dl"/*.deb; do dpkg -x "$p" "$sysroot"; done
	# The link-time name; the -dev package that would carry it is the one we cannot install.
	ln -sf libcriterion.so.3 "$sysroot/usr/lib/aarch64-linux-gnu/libcriterion.so"
	touch "$sysroot/.complete-2"
}

case "${1:-native}" in
native)  apt_install "${native_pkgs[@]}" ;;
aarch64) apt_install "${native_pkgs[@]}"; ensure_arm64_arch
         apt_install "${aarch64_pkgs[@]}"; ensure_binfmt; make_sysroot ;;
bench)   apt_install "${native_pkgs[@]}" "${bench_pkgs[@]}" ;;
fuzz)    apt_install "${native_pkgs[@]}" "${fuzz_pkgs[@]}" ;;
*)       echo "usage: $0 native|aarch64|bench|fuzz" >&2; exit 2 ;;
esac
