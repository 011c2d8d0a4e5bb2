/*
 * fault_util.h - code that faults on purpose, one way per fault kind, for
 * the tests that check krill contains it (test_fault.c, test_exit.c,
 * test_io.c, chaos/test_chaos.c).
 *
 * Each fault must really happen, on x86-64 and aarch64, at -O2 and under
 * the sanitizers: the compiler must not turn it into something else or
 * drop it, and UBSan (in the ASan build) must not report it first.
 */
#ifndef KR_FAULT_UTIL_H
#define KR_FAULT_UTIL_H

#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

/* A store through NULL (segfault). Volatile both: gcc turns a known null
 * store into a trap, and drops a plain store it can prove nobody reads.
 * Not sanitized: UBSan would report it first, and TSan would take two
 * processes' stores (that never happen) for a race. */
__attribute__((no_sanitize("null", "thread"), noinline, unused)) static void fault_store_null(void)
{
	volatile int *volatile p = NULL;
	*p = 1;
}

/* A page of a file that is 0 bytes long: touching it is SIGBUS. Map it
 * (from the test thread) before any process touches it. */
static int fault_bus_fd = -1;
static void *fault_bus_page;

static inline int fault_bus_map(void)
{
	fault_bus_fd = memfd_create("krill-bus", MFD_CLOEXEC);
	if (fault_bus_fd < 0)
		return -1;
	fault_bus_page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fault_bus_fd, 0);
	return fault_bus_page == MAP_FAILED ? -1 : 0;
}

static inline void fault_bus_unmap(void)
{
	munmap(fault_bus_page, 4096);
	close(fault_bus_fd);
}

__attribute__((no_sanitize("thread"))) static inline void fault_bus_touch(void)
{
	*(volatile char *)fault_bus_page = 1;
}

/* The helpers below are always inlined: a crash report names the function
 * that faulted, which is then their caller's (test_fault.c). */

/* Integer division by zero (fpe), in assembly so that no compiler or UBSan
 * check comes first. On aarch64 it does not trap (the result is 0): there
 * fault_fpe raises SIGFPE instead, which krill treats the same. */
#if defined(__x86_64__)
__attribute__((always_inline)) static inline void fault_divide_by_zero(void)
{
	__asm__ volatile("xorl %%ecx, %%ecx\n\tmovl $1, %%eax\n\tcltd\n\tidivl %%ecx"
	                 ::: "eax", "ecx", "edx", "cc");
}
#endif

__attribute__((always_inline)) static inline void fault_raise_fpe(void)
{
	raise(SIGFPE);
}

/* The fpe the architecture has: a division by zero, or the signal. */
__attribute__((always_inline)) static inline void fault_fpe(void)
{
#if defined(__x86_64__)
	fault_divide_by_zero();
#else
	fault_raise_fpe();
#endif
}

/* An undefined instruction: SIGILL on both architectures. */
__attribute__((always_inline)) static inline void fault_illegal(void)
{
#if defined(__x86_64__)
	__asm__ volatile("ud2");
#else
	__asm__ volatile("udf #0");
#endif
}

/* ud2 on x86-64 (SIGILL), brk on aarch64 (SIGTRAP): krill names both
 * "illegal_instruction". */
static inline void fault_trap(void)
{
	__builtin_trap();
}

/* Recursion without end, 256 bytes a frame at least, into the guard page
 * under the stack (stack_overflow). Only where the guard really faults:
 * a process whose kr_proc_info.stack_protection is "canary" would corrupt
 * the stack below its own. */
static volatile unsigned fault_recurse_sink;

__attribute__((noinline, unused)) static unsigned fault_recurse(unsigned depth)
{
	volatile char frame[256]; /* read after the call: the frame must stay */
	frame[0] = (char)depth;
	if (depth == UINT32_MAX)
		return 0;
	return fault_recurse(depth + 1) + (unsigned)frame[0];
}

static inline void fault_overflow(void)
{
	fault_recurse_sink = fault_recurse(0);
}

#endif
