/*
 * report.c - the VM's reports (sched.h, section 6): their level filter,
 * the burst limit, and where they go (kr_config.log_handler, log, or
 * stderr). Every report of krill's passes here: crash reports (vm/exit.c),
 * the supervisors' (vm/sup.c), the watchdog's, the scheduler's own, and
 * kr_log's.
 *
 * Two invariants:
 *  - Nothing is formatted unless it will go out: a report is checked
 *    against the level, then against the burst limit, and only then
 *    formatted. A million processes killed at the default level cost a
 *    load and a compare each.
 *  - Every report dropped by the burst limit is counted once and said
 *    once: in a "reports dropped" line, made when the second it was
 *    dropped in is over (by the next report that passes, the watchdog's
 *    next look, or the VM's stop).
 *
 * The settings other than the level are written by krx_log_start before
 * the schedulers start (their start publishes them) and read only after.
 */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "sched.h"

#define DEFAULT_BURST 500 /* reports a second: OTP's burst_limit_max_count */

static struct {
	krx_log_config cfg;
	/* The level in force (enum kr_log_level). Relaxed everywhere: a
	 * setting, read on its own; it publishes no other memory. */
	AO_t level;
	/* The burst window: the monotonic second in the high 32 bits, the
	 * reports let through in it in the low 32. One word, so that a new
	 * second and its first report are one CAS. */
	AO_t window;
	/* Reports the limit dropped, not yet said, and the most severe
	 * level among them (0: none yet). */
	AO_t dropped, worst;
} lg;

void krx_log_start(const krx_log_config *cfg)
{
	lg.cfg = *cfg;
	if (!lg.cfg.burst)
		lg.cfg.burst = DEFAULT_BURST;
	/* Relaxed: the schedulers' start publishes these (and host threads
	 * enter only after it). */
	AO_store(&lg.level, (AO_t)cfg->level);
	AO_store(&lg.window, 0);
	AO_store(&lg.dropped, 0);
	AO_store(&lg.worst, 0);
}

int krx_log_level(void)
{
	return (int)AO_load(&lg.level);
}

int krx_log_set_level(int level)
{
	/* Relaxed: see lg.level. A swap, so that the level returned is the
	 * one this call replaced even when two set it at once. */
	AO_t old = AO_load(&lg.level);
	while (!AO_compare_and_swap(&lg.level, old, (AO_t)level))
		old = AO_load(&lg.level);
	return (int)old;
}

bool krx_log_on(int level)
{
	return level >= KR_LOG_EMERGENCY && level <= (int)AO_load(&lg.level);
}

static void sink(int level, const char *line)
{
	if (lg.cfg.handler)
		lg.cfg.handler(level, line, lg.cfg.ctx);
	else if (lg.cfg.log)
		lg.cfg.log(line, lg.cfg.ctx);
	else
		fprintf(stderr, "%s\n", line);
}

static uint64_t now_second(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec & 0xffffffffu;
}

/* Say how many reports were dropped, if any, at the most severe level
 * among them (or, if a drop raced this, at the level in force). */
static void say_dropped(void)
{
	/* Relaxed: counters; each drop is taken by exactly one swap. */
	AO_t n = AO_load(&lg.dropped);
	while (n && !AO_compare_and_swap(&lg.dropped, n, 0))
		n = AO_load(&lg.dropped);
	if (!n)
		return;
	AO_t worst = AO_load(&lg.worst);
	while (!AO_compare_and_swap(&lg.worst, worst, 0))
		worst = AO_load(&lg.worst);
	int level = krx_log_level();
	if (worst && (int)worst < level)
		level = (int)worst;
	if (!krx_log_on(level))
		return;
	char line[128];
	snprintf(line, sizeof line, "krill: %lu reports dropped (more than %d in a second)",
	         (unsigned long)n, lg.cfg.burst);
	sink(level, line);
}

static void note_drop(int level)
{
	/* Relaxed: counters (see say_dropped). The most severe level is
	 * the lowest number. */
	AO_t w = AO_load(&lg.worst);
	while ((!w || (AO_t)level < w) && !AO_compare_and_swap(&lg.worst, w, (AO_t)level))
		w = AO_load(&lg.worst);
	AO_fetch_and_add1(&lg.dropped);
}

/* May a report of this level go out now? Counts it in this second's
 * window; past the limit, counts it as dropped instead. Critical and
 * above always go out: they come before an abort. */
static bool admit(int level)
{
	if (lg.cfg.burst < 0 || level <= KR_LOG_CRITICAL)
		return true;
	uint64_t sec = now_second();
	/* Relaxed: the window word orders nothing but itself; its CAS makes
	 * each report count once. */
	AO_t w = AO_load(&lg.window);
	for (;;) {
		bool fresh = (w >> 32) != sec;
		if (!fresh && (w & 0xffffffffu) >= (AO_t)lg.cfg.burst) {
			note_drop(level);
			return false;
		}
		AO_t next = fresh ? (AO_t)(sec << 32 | 1) : w + 1;
		AO_t seen = AO_fetch_compare_and_swap(&lg.window, w, next);
		if (seen == w) {
			if (fresh)
				say_dropped(); /* an earlier second's, now over */
			return true;
		}
		w = seen;
	}
}

bool krx_log_take(int level)
{
	return krx_log_on(level) && admit(level);
}

void krx_log_put(int level, const char *line)
{
	sink(level, line);
}

void krx_vlog(int level, const char *fmt, va_list ap)
{
	if (!krx_log_take(level))
		return;
	char line[KRX_LOG_MAX];
	vsnprintf(line, sizeof line, fmt, ap);
	sink(level, line);
}

void krx_log(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	krx_vlog(level, fmt, ap);
	va_end(ap);
}

void krx_log_tick(void)
{
	/* Relaxed: a hint; say_dropped takes the count exactly. Drops are
	 * made only in a full window, so while that window is this second
	 * its drops are not over. */
	if (AO_load(&lg.dropped) && (AO_load(&lg.window) >> 32) != now_second())
		say_dropped();
}

void krx_log_stop(void)
{
	say_dropped();
}
