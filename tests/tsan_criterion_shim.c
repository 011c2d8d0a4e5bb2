/*
 * tsan_criterion_shim.c - lets Criterion's runner start under ThreadSanitizer.
 *
 * Criterion (through BoxFort) places its shared "inheritable arena" at a
 * random fixed address between 0x2000'0000'0000 and 0x7f00'0000'0000: it
 * probes candidates with mincore() until one looks unmapped, then maps it
 * with MAP_FIXED. Under TSan nearly all of that window is TSan's shadow and
 * meta memory: the probes find it mapped, or TSan's mmap interceptor refuses
 * the fixed address with EINVAL, and the runner dies with "Could not
 * initialize inheritable arena" (Criterion issue #274, still open).
 *
 * This file is linked into the TSan test binary only, and compiled without
 * -fsanitize=thread (it runs while TSan initialises). It interposes two
 * calls, for addresses inside BoxFort's window only:
 *  - mincore() reports "unmapped" for pages TSan would never hand to the
 *    program (its reserved shadow and meta ranges), so BoxFort goes on to
 *    map a candidate;
 *  - mmap64(MAP_FIXED) that TSan refuses with EINVAL is retried at a free
 *    address TSan accepts in the same window (MAP_FIXED_NOREPLACE, so nothing
 *    is ever clobbered).
 * Every other call passes straight through to TSan's interceptors, which
 * still see all of krill's own mappings.
 */
#include "san.h"

#if KRX_TSAN || defined(KRX_TSAN_SHIM)
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define WINDOW_LO 0x200000000000ull /* BoxFort's mmap_base */
#define WINDOW_HI 0x7f0000000000ull /* BoxFort's mmap_max */
#define STEP (1ull << 24)           /* BoxFort's placement granule */
/* The one application range of TSan's x86-64 layout (gcc 12, LLVM 14
 * runtime) inside the window: where PIE programs load. */
#define TSAN_APP_LO 0x550000000000ull
#define TSAN_APP_HI 0x568000000000ull
#define TSAN_HEAP_LO 0x7b0000000000ull

typedef void *mmap_fn(void *, size_t, int, int, int, off_t);
typedef int mincore_fn(void *, size_t, unsigned char *);

/* BoxFort calls mmap64 (an alias of mmap on 64-bit glibc). */
#define INTERPOSE __attribute__((visibility("default")))
INTERPOSE void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
INTERPOSE int mincore(void *addr, size_t len, unsigned char *vec);

static mmap_fn *next_mmap(void)
{
	static mmap_fn *fn;
	if (!fn)
		fn = (mmap_fn *)dlsym(RTLD_NEXT, "mmap64");
	return fn;
}

static int in_window(const void *addr)
{
	return (uintptr_t)addr > WINDOW_LO && (uintptr_t)addr < WINDOW_HI;
}

/* Pages TSan never lets the program map: its shadow and meta ranges in the
 * window, below the mid application range and between it and TSan's heap.
 * From the heap up (0x7b00'0000'0000: TSan's allocator, then the high
 * application range where mmap(NULL) lands) mincore's answer stands. */
static int tsan_refuses(const void *addr)
{
	uintptr_t a = (uintptr_t)addr;
	return in_window(addr) && (a < TSAN_APP_LO || (a >= TSAN_APP_HI && a < TSAN_HEAP_LO));
}

int mincore(void *addr, size_t len, unsigned char *vec)
{
	static mincore_fn *next;
	if (!next)
		next = (mincore_fn *)dlsym(RTLD_NEXT, "mincore");
	int rc = next(addr, len, vec);
	if (rc == 0 && tsan_refuses(addr)) {
		errno = ENOMEM;
		return -1;
	}
	return rc;
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	void *p = next_mmap()(addr, len, prot, flags, fd, off);
	if (p != MAP_FAILED || errno != EINVAL || !(flags & MAP_FIXED) || !in_window(addr))
		return p;
	/* Walk TSan's application range from a point the refused address picks. */
	int fl = (flags & ~MAP_FIXED) | MAP_FIXED_NOREPLACE;
	uintptr_t span = TSAN_APP_HI - TSAN_APP_LO;
	for (uintptr_t i = 0; i < span; i += STEP) {
		uintptr_t try = TSAN_APP_LO + ((uintptr_t)addr + i) % span;
		p = next_mmap()((void *)(try & ~(STEP - 1)), len, prot, fl, fd, off);
		if (p != MAP_FAILED && in_window(p))
			return p;
		if (p != MAP_FAILED)
			munmap(p, len);
	}
	errno = ENOMEM;
	return MAP_FAILED;
}
#endif
