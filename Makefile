# krill - the one build entry point.
#
#   make            build/libkrill.a, build/libkrill.so, build/krbench
#   make demo       build and run the demonstration
#   make observe    the demonstration's trees with the observer on, until Ctrl-C
#   make chat       build/chat, build/chat_load, build/chat_demo (examples/chat/README.md)
#   make test       the whole suite: native, ASan+UBSan, TSan, aarch64 under qemu,
#                   then the installed library under memcheck (test-installed),
#                   then 20 s of each fuzz target (test-fuzz)
#   make test-native | test-asan | test-tsan | test-aarch64   one suite alone
#   make test-installed  programs built against `make install` run under valgrind
#   make test-valgrind   the suite under memcheck (not part of make test: slow)
#   make fuzz-handshake | fuzz-term   one fuzz target for FUZZ_SECONDS (600)
#   make bench      the benchmarks
#   make install PREFIX=/usr/local
#
# Every target that needs Debian packages runs scripts/deps.sh first, so a
# fresh machine needs nothing but this Makefile.
#
# Each build flavour lives in its own directory under build/ and is described
# by a few variables (compiler, flags, extra libraries); one template below
# turns a flavour into its rules, so the flavours cannot drift apart.

PREFIX    ?= /usr/local
LIBDIR    ?= $(PREFIX)/lib
INCDIR    ?= $(PREFIX)/include
VERSION   := 0.1.0
SOVERSION := 0

CC        ?= gcc
CROSS_CC  ?= aarch64-linux-gnu-gcc
OBJCOPY   ?= objcopy
CROSS_OBJCOPY ?= aarch64-linux-gnu-objcopy
QEMU      ?= qemu-aarch64
B         := build
SYSROOT64 := $(CURDIR)/$(B)/sysroot-aarch64
ARM64_LIB := $(SYSROOT64)/usr/lib/aarch64-linux-gnu:$(SYSROOT64)/lib/aarch64-linux-gnu

# Sources: every .c in sched/, vm/ and dist/, plus the assembly for the target arch.
LIB_C     := $(wildcard sched/*.c vm/*.c dist/*.c)
# Data built in with .incbin: the observer's page (vm/obs_page.S).
LIB_S     := $(wildcard vm/*.S)
OBS_PAGE  := $(wildcard vm/observer/*)
TEST_C    := $(wildcard tests/*.c tests/chaos/*.c)
BENCH_C   := $(wildcard bench/*.c)
HDRS      := $(wildcard include/*.h include/krill/*.h sched/*.h vm/*.h dist/*.h tests/*.h bench/*.h \
                        examples/chat/*.h)
# The chat server (examples/chat/) is a small library that its programs
# (build/chat, build/chat_demo) and the test suite (tests/test_chat.c) share.
CHAT_SRV  := examples/chat/chat_server.c

WARN      := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
BASE      := -std=c11 -D_GNU_SOURCE -g -fno-omit-frame-pointer -fstack-clash-protection \
             -fvisibility=hidden -Iinclude -iquote sched -iquote vm -iquote dist $(WARN)
LIBS      := -lmimalloc -lpthread -lm
# Programs export their symbols so that crash reports name functions
# (backtrace_symbols reads the dynamic symbol table).
PROG_LDFLAGS := -rdynamic
# The test runner counts the blocks krill takes from mimalloc, so that the
# native and aarch64 suites find leaks too (tests/alloc_count.c).
TEST_WRAP := -Wl,--wrap=mi_malloc,--wrap=mi_calloc,--wrap=mi_realloc,--wrap=mi_free

# libei (Debian's erlang-dev), the reference codec of Erlang's external term
# format, which dist/ uses: linked into libkrill (the static library holds it
# as one object, build/.../obj/ei.o; the shared one hides its symbols), so a
# program using krill needs no Erlang at run time.
EI_A      := /usr/lib/erlang/usr/lib/libei.a
EI_A64    := $(SYSROOT64)/usr/lib/erlang/usr/lib/libei.a

# name, compiler, arch, cflags, ldflags, extra libs-dirs
native_CC      := $(CC)
native_OBJCOPY := $(OBJCOPY)
native_LD      := ld
native_EI      := $(EI_A)
native_ARCH    := x86_64
native_CFLAGS  := $(BASE) -O2 -fPIC
native_LDFLAGS :=
native_RUN     :=

asan_CC        := $(CC)
asan_OBJCOPY   := $(OBJCOPY)
asan_LD        := ld
asan_EI        := $(EI_A)
asan_ARCH      := x86_64
asan_CFLAGS    := $(BASE) -O1 -fsanitize=address,undefined -fno-sanitize-recover=all
asan_LDFLAGS   := -fsanitize=address,undefined
asan_RUN       := ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:allow_user_segv_handler=1 UBSAN_OPTIONS=print_stacktrace=1

tsan_CC        := $(CC)
tsan_OBJCOPY   := $(OBJCOPY)
tsan_LD        := ld
tsan_EI        := $(EI_A)
tsan_ARCH      := x86_64
tsan_CFLAGS    := $(BASE) -O1 -fsanitize=thread -Wno-tsan
tsan_LDFLAGS   := -fsanitize=thread -ldl
tsan_RUN       := TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

# Valgrind: the whole suite is not part of `make test` (slow), but kept
# working. Every build registers its stacks with VALGRIND_STACK_REGISTER, so
# memcheck follows the switches; make test runs test-installed instead.
valgrind_CC    := $(CC)
valgrind_OBJCOPY := $(OBJCOPY)
valgrind_LD    := ld
valgrind_EI    := $(EI_A)
valgrind_ARCH  := x86_64
valgrind_CFLAGS := $(BASE) -O1
valgrind_LDFLAGS :=
valgrind_RUN   := valgrind -q --trace-children=yes --error-exitcode=99

aarch64_CC     := $(CROSS_CC)
aarch64_OBJCOPY := $(CROSS_OBJCOPY)
aarch64_LD     := aarch64-linux-gnu-ld
aarch64_EI     := $(EI_A64)
aarch64_ARCH   := aarch64
aarch64_CFLAGS := $(BASE) -O2 --param stack-clash-protection-guard-size=12 \
                  -DKR_TEST_SCALE=10 -I$(B)/aarch64/include
aarch64_LDFLAGS := -L$(SYSROOT64)/usr/lib/aarch64-linux-gnu -Wl,-rpath-link,$(ARM64_LIB) \
                   -L/usr/lib/aarch64-linux-gnu
# qemu-user with -L / uses the multiarch arm64 libc; -L /usr/aarch64-linux-gnu
# hangs threaded programs once libc6:arm64 is installed. QEMU_LD_PREFIX says the
# same to the qemu that binfmt_misc starts when Criterion re-executes the binary.
aarch64_RUN    := QEMU_LD_PREFIX=/ LD_LIBRARY_PATH=$(ARM64_LIB) $(QEMU) -L /

FLAVOURS  := native asan tsan aarch64

.PHONY: all lib chat demo test test-native test-asan test-tsan test-aarch64 test-valgrind \
        test-installed bench install fuzz-handshake fuzz-handshake-short fuzz-term fuzz-term-short \
        test-fuzz deps-fuzz \
        uninstall clean deps-native deps-aarch64 deps-bench

all: lib $(B)/krbench

# --- dependencies -----------------------------------------------------------

$(B)/.deps-native: scripts/deps.sh
	@mkdir -p $(B)
	scripts/deps.sh native
	@touch $@
$(B)/.deps-aarch64: scripts/deps.sh
	@mkdir -p $(B)
	scripts/deps.sh aarch64
	@touch $@
$(B)/.deps-bench: scripts/deps.sh
	@mkdir -p $(B)
	scripts/deps.sh bench
	@touch $@
deps-native: $(B)/.deps-native
deps-aarch64: $(B)/.deps-aarch64
deps-bench: $(B)/.deps-bench
deps-fuzz:
	scripts/deps.sh fuzz

# The cross compiler does not search /usr/include; give it the
# architecture-independent headers it needs, and nothing else from there.
$(B)/aarch64/include/.stamp: $(B)/.deps-aarch64
	@mkdir -p $(@D)
	ln -sfn /usr/include/criterion $(@D)/criterion
	ln -sfn /usr/include/atomic_ops $(@D)/atomic_ops
	ln -sf /usr/include/atomic_ops.h $(@D)/atomic_ops.h
	ln -sf /usr/include/mimalloc.h $(@D)/mimalloc.h
	@touch $@
# valgrind.h and memcheck.h (client requests for both architectures), in a
# rule of their own so that a build directory made before them gets them.
$(B)/aarch64/include/valgrind: | $(B)/aarch64/include/.stamp
	ln -sfn /usr/include/valgrind $@
# libei's header (the same for every architecture), likewise.
$(B)/aarch64/include/ei.h: | $(B)/aarch64/include/.stamp
	ln -sf /usr/include/ei.h $@

# --- one flavour: objects, static library, test runner ----------------------
# $(1) = flavour, $(2) = output directory
#
# The library's own objects have their code moved into the section krill_text
# (scripts/krill-text.sh), by which sched/fault.c recognises krill's code.
krill_text = $(if $(filter $@,$($(1)_LIB_OBJ)),scripts/krill-text.sh $($(1)_OBJCOPY) $@)

define FLAVOUR
$(2)/obj/%.o: %.c $(HDRS) scripts/krill-text.sh $(3)
	@mkdir -p $$(@D)
	$$($(1)_CC) $$($(1)_CFLAGS) -c $$< -o $$@
	$$(call krill_text,$(1))
$(2)/obj/vm/obs_page.o: $(OBS_PAGE)
$(2)/obj/%.o: %.S scripts/krill-text.sh $(3)
	@mkdir -p $$(@D)
	$$($(1)_CC) $$($(1)_CFLAGS) -c $$< -o $$@
	$$(call krill_text,$(1))

# libei's objects as one (see EI_A): member names like send.o would clash
# with krill's own in the archive.
$(2)/obj/ei.o: $$($(1)_EI) $(3)
	@mkdir -p $$(@D)
	$$($(1)_LD) -r --whole-archive $$($(1)_EI) -o $$@

$(1)_LIB_OBJ  := $$(LIB_C:%.c=$(2)/obj/%.o) $$(LIB_S:%.S=$(2)/obj/%.o) \
                 $(2)/obj/sched/ctx_$$($(1)_ARCH).o
$(1)_TEST_OBJ := $$(TEST_C:%.c=$(2)/obj/%.o) $$(CHAT_SRV:%.c=$(2)/obj/%.o) \
                 $$(patsubst %.S,$(2)/obj/%.o,$$(wildcard tests/*_$$($(1)_ARCH).S))

$(2)/libkrill.a: $$($(1)_LIB_OBJ) $(2)/obj/ei.o
	@rm -f $$@
	$$(if $$(filter aarch64,$(1)),aarch64-linux-gnu-ar,ar) rcs $$@ $$^

$(2)/krill_tests: $$($(1)_TEST_OBJ) $(2)/libkrill.a
	$$($(1)_CC) $$($(1)_LDFLAGS) $(PROG_LDFLAGS) $(TEST_WRAP) -o $$@ $$($(1)_TEST_OBJ) $(2)/libkrill.a \
	  -lcriterion $(LIBS)

# A node to talk to from other nodes (examples/dist/krnode.c): the
# distribution tests start it as their peer, built the same way they are.
$(2)/krnode: $(2)/obj/examples/dist/krnode.o $(2)/libkrill.a
	$$($(1)_CC) $$($(1)_LDFLAGS) $(PROG_LDFLAGS) -o $$@ $$^ $(LIBS)

# The cluster demonstration (examples/dist/README.md): a node program and
# the driver that runs and kills its nodes; tests/test_dist_demo.c runs it.
$(2)/cluster: $(2)/obj/examples/dist/cluster.o $(2)/libkrill.a
	$$($(1)_CC) $$($(1)_LDFLAGS) $(PROG_LDFLAGS) -o $$@ $$^ $(LIBS)
$(2)/cluster_demo: $(2)/obj/examples/dist/cluster_demo.o
	$$($(1)_CC) $$($(1)_LDFLAGS) -o $$@ $$^

test-$(1): $(2)/krill_tests $(2)/krnode $(2)/cluster $(2)/cluster_demo
	@echo "== krill tests: $(1) =="
	cd $(2) && $$($(1)_RUN) ./krill_tests $$(TEST_ARGS)
endef

$(eval $(call FLAVOUR,native,$(B),$(B)/.deps-native))
$(eval $(call FLAVOUR,asan,$(B)/asan,$(B)/.deps-native))
$(eval $(call FLAVOUR,tsan,$(B)/tsan,$(B)/.deps-native))
$(eval $(call FLAVOUR,aarch64,$(B)/aarch64,$(B)/aarch64/include/.stamp $(B)/aarch64/include/valgrind \
                               $(B)/aarch64/include/ei.h))
$(eval $(call FLAVOUR,valgrind,$(B)/valgrind,$(B)/.deps-native))

# The shim that lets Criterion start under TSan runs while TSan initialises,
# so it must not itself be instrumented (see the file).
$(B)/tsan/obj/tests/tsan_criterion_shim.o: tsan_CFLAGS := $(BASE) -O1 -DKRX_TSAN_SHIM

# --- the library and tools --------------------------------------------------

lib: $(B)/libkrill.a $(B)/libkrill.so

# The version script exports the kr_ API and nothing else (libei's symbols stay inside).
$(B)/libkrill.so: $(native_LIB_OBJ) $(B)/obj/ei.o scripts/libkrill.map
	$(CC) -shared -Wl,-soname,libkrill.so.$(SOVERSION) -Wl,-z,start-stop-visibility=hidden \
	  -Wl,--version-script=scripts/libkrill.map -o $@ $(filter %.o,$^) $(LIBS)

BENCH_OBJ := $(BENCH_C:%.c=$(B)/obj/%.o)
$(B)/krbench: $(BENCH_OBJ) $(B)/libkrill.a
	$(CC) $(PROG_LDFLAGS) -o $@ $(BENCH_OBJ) $(B)/libkrill.a $(LIBS)

EXAMPLES := $(patsubst examples/%.c,$(B)/%,$(filter-out examples/observe.c,$(wildcard examples/*.c)))
$(EXAMPLES): $(B)/%: $(B)/obj/examples/%.o $(B)/libkrill.a
	$(CC) $(PROG_LDFLAGS) -o $@ $< $(B)/libkrill.a $(LIBS)

# The chat server and its load generator (examples/chat/).
$(B)/chat: $(B)/obj/examples/chat/chat.o $(B)/obj/$(CHAT_SRV:.c=.o) $(B)/libkrill.a
	$(CC) $(PROG_LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LIBS)
$(B)/chat_load: $(B)/obj/examples/chat/chat_load.o $(B)/obj/bench/hist.o $(B)/libkrill.a
	$(CC) $(PROG_LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LIBS)
$(B)/chat_demo: $(B)/obj/examples/chat/chat_demo.o $(B)/obj/$(CHAT_SRV:.c=.o) $(B)/libkrill.a
	$(CC) $(PROG_LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LIBS)
chat: $(B)/chat $(B)/chat_load $(B)/chat_demo

# The demonstration's trees with the observer on (examples/observe.c, the
# chat server's included): prints the page's address, runs until Ctrl-C.
# OBSERVE_PORT (8086) is the observer's port; taken, it picks a free one.
OBSERVE_PORT ?= 8086
$(B)/observe: $(B)/obj/examples/observe.o $(B)/obj/$(CHAT_SRV:.c=.o) $(B)/libkrill.a
	$(CC) $(PROG_LDFLAGS) -o $@ $(filter %.o %.a,$^) $(LIBS)
.PHONY: observe
observe: $(B)/observe
	$(B)/observe $(OBSERVE_PORT)

demo: $(B)/krbench $(EXAMPLES) $(B)/chat_demo $(B)/cluster $(B)/cluster_demo
	@echo "== the context switch, krill against glibc swapcontext =="
	$(B)/krbench ctx
	@echo
	@echo "== coroutines: a generator and a round robin =="
	$(B)/coroutines
	@echo
	@echo "== processes: a ring of 10,000 passing a token 100 times =="
	$(B)/ring 10000 100
	@echo
	@echo "== let it crash: one branch of a tree fails and is repaired, the other works on =="
	$(B)/supervised
	@echo
	@echo "== supervised jobs: bad input crashes a worker, the pool replaces it =="
	$(B)/jobs
	@echo
	@echo "== the chat server: a connection crashes, a room crashes, a room crashes too often =="
	$(B)/chat_demo
	@echo
	@echo "== a cluster of nodes: a worker node, then the coordinator's, killed with SIGKILL; no job lost =="
	$(B)/cluster_demo
	@echo
	@echo "To watch such trees live in a browser (crashes, restarts, every process): make observe"

# make test runs every suite, in order, even when one fails, and fails if any did.
test:
	@fail=0; \
	for t in test-native test-asan test-tsan test-aarch64 test-installed test-fuzz; do \
		$(MAKE) --no-print-directory $$t || { echo "!! $$t FAILED"; fail=1; }; \
	done; \
	exit $$fail

# The README's first program and examples/supervised.c, built against the
# library as `make install` puts it (in a temporary prefix), under memcheck:
# scripts/test-installed.sh. Skipped, and passing, without valgrind.
test-installed: $(B)/.deps-native
	@echo "== krill tests: the installed library under valgrind =="
	@MAKE="$(MAKE)" CC="$(CC)" scripts/test-installed.sh

# The whole suite (the context switch, then every VM benchmark with one
# scheduler and with all of them, krill and the BEAM (bench/erlang/) in
# alternation): scripts/bench.sh prints a table per benchmark, writes the
# results, under a header naming the CPU model, to bench/results/, counts
# instructions per operation (scripts/instructions.sh, with valgrind) and
# regenerates docs/BENCHMARKS.md and its plots from the latest whole run of
# each kind of host there (scripts/bench-page.sh --all: one section per CPU
# model). KR_BENCH_RUNS (default 3) sets the runs of each; see the script
# for more.
bench: $(B)/krbench $(B)/krnode $(B)/chat $(B)/chat_load $(B)/.deps-bench
	scripts/bench.sh

# --- fuzzing ----------------------------------------------------------------

# The handshake's fuzz target (tests/fuzz/fuzz_handshake.c): clang's
# libFuzzer with ASan and UBSan, the handshake machine fed the input as a
# peer's frames, no VM. The seeds in tests/fuzz/corpus/handshake/ stay as
# they are; what the fuzzer finds goes to build/fuzz/corpus-handshake/.
# fuzz-handshake-short runs about 20 s; fuzz-handshake runs FUZZ_SECONDS.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 600
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=all -Iinclude -iquote dist
FUZZ_HS_SRC  := tests/fuzz/fuzz_handshake.c dist/handshake.c vm/error.c

$(B)/fuzz/fuzz_handshake: $(FUZZ_HS_SRC) dist/handshake.h $(B)/.deps-native
	@mkdir -p $(@D)/corpus-handshake
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(FUZZ_HS_SRC) $(EI_A)

FUZZ_RUN     = $< -max_len=$(1) -print_final_stats=1 -artifact_prefix=$(B)/fuzz/

fuzz-handshake-short: $(B)/fuzz/fuzz_handshake
	@echo "== fuzz: the handshake, 20 s =="
	$(call FUZZ_RUN,1024) -max_total_time=20 $(B)/fuzz/corpus-handshake tests/fuzz/corpus/handshake
fuzz-handshake: $(B)/fuzz/fuzz_handshake
	$(call FUZZ_RUN,1024) -max_total_time=$(FUZZ_SECONDS) $(B)/fuzz/corpus-handshake \
	  tests/fuzz/corpus/handshake

# The term decoder's and the control messages' target (tests/fuzz/fuzz_term.c):
# dist/ext.c, ctrl.c, peer.c and track.c as they are, the VM under them
# stubbed in the target; seeds in tests/fuzz/corpus/term/, written by
# tests/fuzz/term_seeds.escript from a BEAM's term_to_binary.
FUZZ_TERM_SRC := tests/fuzz/fuzz_term.c dist/ext.c dist/ctrl.c dist/peer.c dist/track.c dist/spawn.c
FUZZ_TERM_H   := dist/ext.h dist/ctrl.h dist/peer.h dist/track.h dist/spawn.h dist/node.h dist/conn.h \
                 vm/remote.h

$(B)/fuzz/fuzz_term: $(FUZZ_TERM_SRC) $(FUZZ_TERM_H) $(B)/.deps-native
	@mkdir -p $(@D)/corpus-term
	$(FUZZ_CC) $(FUZZ_CFLAGS) -iquote vm -iquote sched -o $@ $(FUZZ_TERM_SRC) $(EI_A)

fuzz-term-short: $(B)/fuzz/fuzz_term
	@echo "== fuzz: terms and control messages, 20 s =="
	$(call FUZZ_RUN,4096) -max_total_time=20 $(B)/fuzz/corpus-term tests/fuzz/corpus/term
fuzz-term: $(B)/fuzz/fuzz_term
	$(call FUZZ_RUN,4096) -max_total_time=$(FUZZ_SECONDS) $(B)/fuzz/corpus-term \
	  tests/fuzz/corpus/term

# Both short runs, as make test's last suite. clang and its libFuzzer
# runtime come from scripts/deps.sh fuzz; where they are missing and cannot
# be installed (not root), it says so and passes.
test-fuzz: $(B)/.deps-native
	@scripts/deps.sh fuzz || true
	@mkdir -p $(B)/fuzz
	@if printf 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }\n' | \
	    $(FUZZ_CC) -x c -fsanitize=fuzzer,address,undefined -o $(B)/fuzz/.probe - >/dev/null 2>&1; \
	then $(MAKE) --no-print-directory fuzz-handshake-short fuzz-term-short; \
	else echo "== fuzz: SKIPPED: $(FUZZ_CC) cannot link a libFuzzer target (scripts/deps.sh fuzz) =="; fi

# --- install ----------------------------------------------------------------

# krill.pc names the PREFIX of this very install, so it is written here each
# time (a build/krill.pc kept from an install elsewhere would name that one).
install: lib
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR)
	install -m 644 $(B)/libkrill.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(B)/libkrill.so $(DESTDIR)$(LIBDIR)/libkrill.so.$(VERSION)
	ln -sf libkrill.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libkrill.so.$(SOVERSION)
	ln -sf libkrill.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libkrill.so
	install -m 644 include/krill.h $(DESTDIR)$(INCDIR)/
	install -d $(DESTDIR)$(INCDIR)/krill
	install -m 644 $(wildcard include/krill/*.h) $(DESTDIR)$(INCDIR)/krill/
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$(INCDIR)' '' \
	  'Name: krill' 'Description: Erlang-style process VM for C' 'Version: $(VERSION)' \
	  'Libs: -L$${libdir} -lkrill' 'Libs.private: -lmimalloc -lpthread -lm' \
	  'Cflags: -I$${includedir}' > $(DESTDIR)$(LIBDIR)/pkgconfig/krill.pc
	chmod 644 $(DESTDIR)$(LIBDIR)/pkgconfig/krill.pc

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libkrill.* $(DESTDIR)$(INCDIR)/krill.h \
	      $(patsubst include/%,$(DESTDIR)$(INCDIR)/%,$(wildcard include/krill/*.h)) \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/krill.pc
	rmdir $(DESTDIR)$(INCDIR)/krill 2>/dev/null || true

clean:
	rm -rf $(B)/obj $(B)/asan $(B)/tsan $(B)/valgrind $(B)/aarch64/obj $(B)/aarch64/krill_tests \
	       $(B)/*.a $(B)/*.so $(B)/krbench $(B)/krill_tests $(B)/krill.pc $(EXAMPLES) $(B)/krnode \
	       $(B)/cluster $(B)/cluster_demo $(B)/chat $(B)/chat_load $(B)/chat_demo $(B)/observe
