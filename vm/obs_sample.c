/*
 * obs_sample.c - the observer's sampler: once a second it reads the VM's
 * totals, and keeps their differences over the second (and the gauges at
 * its end) in a ring of the last KRX_OBS_SAMPLES samples, which GET
 * /api/stats serves.
 *
 * The totals and what each counts (docs/observer.md, "The API"):
 *  - per scheduler, idle time (spinning and parked for want of work) and
 *    steals, kept by the scheduler's own thread (sched/loop.c), and its
 *    run queue's length now: utilisation is 1 - idle / interval;
 *  - messages sent and restarts, per scheduler too (vm.h, stat.h), spawns
 *    and dead letters (kr_vm_stats), processes alive;
 *  - memory: heaps (kr_alloc blocks and received messages of every live
 *    process: a walk of the process table), stacks (the stack pools' pages
 *    the system has given: mincore, a few calls per 4,096 stacks), message
 *    blocks (held from the allocator, per scheduler: vm.h).
 * The two walks cost the sampler about a millisecond per 100,000
 * processes, once a second, on whichever scheduler it runs.
 *
 * The ring is krx_obs_state's, under its lock, which is taken only to
 * copy a sample in or out (obs.h: no krill call, no kr_alloc under it). A
 * sampler from an observer that has since been stopped (gen differs)
 * stops writing.
 */
#include <math.h>
#include <string.h>
#include <time.h>

#include "obs.h"
#include "proc.h"
#include "sched.h"
#include "vm.h"

void krx_obs_ring_reset(krx_obs *o)
{
	o->head = 0;
	o->count = 0;
}

void krx_obs_totals_get(krx_obs_totals *t)
{
	kr_vm_stats vs;
	krx_vm_figures f;
	t->now_ns = krx_now_ns();
	(void)kr_vm_stats_get(&vs);
	krx_vm_figures_get(&f);
	t->sent = f.sent;
	t->restarts = f.restarts;
	t->msg_bytes = f.msg_bytes;
	t->spawns = vs.procs_spawned;
	t->dead_letters = vs.dead_letters;
	t->procs = vs.procs_alive;
	t->heap_bytes = krx_procs_heap_bytes();
	t->stack_bytes = krx_sched_stacks_resident();
	for (unsigned i = 0; i < t->nsched; i++) {
		krx_sched_figures sf;
		krx_sched_figures_get(i, t->now_ns, &sf);
		t->idle_ns[i] = sf.idle_ns;
		t->steals[i] = sf.steals;
		t->runq[i] = sf.runq;
	}
}

/* Arrays for n schedulers' totals, on the caller's heap. */
static bool totals_alloc(krx_obs_totals *t, unsigned n)
{
	memset(t, 0, sizeof *t);
	t->nsched = n;
	uint64_t *v = kr_calloc(3 * (size_t)(n ? n : 1), sizeof *v);
	if (!v)
		return false;
	t->idle_ns = v;
	t->steals = v + n;
	t->runq = v + 2 * (size_t)n;
	return true;
}

static uint64_t delta(uint64_t a, uint64_t b)
{
	return b > a ? b - a : 0;
}

/* The sample of the interval from a to b, into *s and ps[0..n). */
static void make_sample(const krx_obs_totals *a, const krx_obs_totals *b, krx_obs_sample *s,
                        krx_obs_sched_sample *ps)
{
	uint64_t dt = delta(a->now_ns, b->now_ns);
	*s = (krx_obs_sample){
		.t_ms = delta(krx_sched_started_ns(), b->now_ns) / 1000000,
		.interval_ns = dt,
		.procs = b->procs,
		.sent = delta(a->sent, b->sent),
		.spawns = delta(a->spawns, b->spawns),
		.restarts = delta(a->restarts, b->restarts),
		.dead_letters = delta(a->dead_letters, b->dead_letters),
		.heap_bytes = b->heap_bytes,
		.stack_bytes = b->stack_bytes,
		.msg_bytes = b->msg_bytes,
	};
	for (unsigned i = 0; i < b->nsched; i++) {
		uint64_t idle = delta(a->idle_ns[i], b->idle_ns[i]);
		double util = dt ? 1.0 - (double)idle / (double)dt : 0;
		ps[i].util = (float)(util < 0 ? 0 : util > 1 ? 1 : util);
		ps[i].runq = (uint32_t)b->runq[i];
		ps[i].steals = (uint32_t)delta(a->steals[i], b->steals[i]);
	}
}

/* Put a sample in the ring, unless the observer it was taken for has
 * been stopped since (false: the sampler ends). */
static bool ring_put(uint64_t gen, const krx_obs_sample *s, const krx_obs_sched_sample *ps)
{
	krx_obs *o = &krx_obs_state;
	pthread_mutex_lock(&o->lock);
	/* Relaxed: written under the lock. */
	bool mine = AO_load(&o->gen) == gen && o->samples;
	if (mine) {
		o->samples[o->head] = *s;
		memcpy(&o->per_sched[o->head * o->nsched], ps, o->nsched * sizeof *ps);
		o->head = (o->head + 1) % KRX_OBS_SAMPLES;
		if (o->count < KRX_OBS_SAMPLES)
			o->count++;
	}
	pthread_mutex_unlock(&o->lock);
	return mine;
}

void krx_obs_sampler_main(void *arg)
{
	(void)arg;
	krx_obs *o = &krx_obs_state;
	pthread_mutex_lock(&o->lock);
	uint64_t gen = AO_load(&o->gen); /* relaxed: under the lock */
	unsigned n = o->nsched;
	pthread_mutex_unlock(&o->lock);
	krx_obs_totals t[2];
	krx_obs_sched_sample *ps = kr_calloc(n ? n : 1, sizeof *ps);
	if (!ps || !totals_alloc(&t[0], n) || !totals_alloc(&t[1], n))
		kr_crash("krill observer: no memory for the sampler");
	krx_obs_totals_get(&t[0]);
	uint64_t next = t[0].now_ns;
	for (int k = 1;; k ^= 1) {
		/* On the second's ticks from the start, whatever a look costs. */
		next += (uint64_t)KRX_OBS_INTERVAL_MS * 1000000u;
		uint64_t now = krx_now_ns();
		if (next > now)
			kr_sleep((long)((next - now + 999999) / 1000000));
		else
			next = now; /* far behind (a busy VM): start again from now */
		krx_obs_totals_get(&t[k]);
		krx_obs_sample s;
		make_sample(&t[k ^ 1], &t[k], &s, ps);
		if (!ring_put(gen, &s, ps))
			return;
	}
}

/* ---- GET /api/stats?since=T ---- */

static void put_sample(krx_obs_buf *b, const krx_obs_sample *s, const krx_obs_sched_sample *ps,
                       unsigned n)
{
	double secs = s->interval_ns ? (double)s->interval_ns / 1e9 : 1;
	krx_obs_printf(b, "{\"t\": %llu, \"util\": [", (unsigned long long)s->t_ms);
	for (unsigned i = 0; i < n; i++) {
		krx_obs_puts(b, i ? ", " : "");
		krx_obs_printf(b, "%.4f", (double)ps[i].util);
	}
	krx_obs_puts(b, "], \"runq\": [");
	for (unsigned i = 0; i < n; i++)
		krx_obs_printf(b, "%s%u", i ? ", " : "", ps[i].runq);
	krx_obs_puts(b, "], \"steals\": [");
	for (unsigned i = 0; i < n; i++)
		krx_obs_printf(b, "%s%u", i ? ", " : "", ps[i].steals);
	krx_obs_printf(b,
	               "], \"procs\": %llu, \"msgs_per_s\": %.0f, \"spawns_per_s\": %.0f, "
	               "\"restarts\": %llu, \"dead_letters\": %llu, "
	               "\"mem\": {\"heaps\": %llu, \"stacks\": %llu, \"msgs\": %llu}}",
	               (unsigned long long)s->procs, round((double)s->sent / secs),
	               round((double)s->spawns / secs), (unsigned long long)s->restarts,
	               (unsigned long long)s->dead_letters, (unsigned long long)s->heap_bytes,
	               (unsigned long long)s->stack_bytes, (unsigned long long)s->msg_bytes);
}

int krx_obs_api_stats(const krx_obs_req *rq, krx_obs_buf *b)
{
	krx_obs *o = &krx_obs_state;
	uint64_t since = 0;
	int has_since = krx_obs_query_u64(rq->query, rq->query_len, "since", &since);
	if (has_since < 0) {
		krx_obs_json_error(b, "since: not a number of ms");
		return 400;
	}
	/* Room first (kr_alloc), then the copy under the lock. */
	pthread_mutex_lock(&o->lock);
	unsigned n = o->nsched;
	pthread_mutex_unlock(&o->lock);
	krx_obs_sample *v = kr_alloc(KRX_OBS_SAMPLES * sizeof *v);
	krx_obs_sched_sample *pv = kr_alloc((size_t)KRX_OBS_SAMPLES * (n ? n : 1) * sizeof *pv);
	if (!v || !pv) {
		kr_free(v);
		kr_free(pv);
		krx_obs_json_error(b, "out of memory");
		return 500;
	}
	size_t k = 0;
	pthread_mutex_lock(&o->lock);
	if (o->nsched == n && o->samples) {
		for (size_t i = 0; i < o->count; i++) {
			size_t at = (o->head + KRX_OBS_SAMPLES - o->count + i) % KRX_OBS_SAMPLES;
			if (has_since > 0 && o->samples[at].t_ms <= since)
				continue;
			v[k] = o->samples[at];
			memcpy(&pv[k * n], &o->per_sched[at * n], n * sizeof *pv);
			k++;
		}
	}
	int allow_kill = o->allow_kill;
	pthread_mutex_unlock(&o->lock);
	uint64_t now_ms = delta(krx_sched_started_ns(), krx_now_ns()) / 1000000;
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	krx_obs_puts(b, "{\"node\": ");
	krx_obs_json_str(b, kr_node_name());
	krx_obs_printf(b,
	               ", \"now_ms\": %llu, \"uptime_ms\": %llu, \"wall_ms\": %llu, "
	               "\"schedulers\": %u, \"kill_allowed\": %s, \"interval_ms\": %d, "
	               "\"samples\": [",
	               (unsigned long long)now_ms, (unsigned long long)now_ms,
	               (unsigned long long)wall.tv_sec * 1000 + (unsigned long long)wall.tv_nsec / 1000000,
	               n, allow_kill ? "true" : "false", KRX_OBS_INTERVAL_MS);
	for (size_t i = 0; i < k; i++) {
		krx_obs_puts(b, i ? ", " : "");
		put_sample(b, &v[i], &pv[i * n], n);
	}
	krx_obs_puts(b, "]}");
	kr_free(v);
	kr_free(pv);
	return 200;
}
