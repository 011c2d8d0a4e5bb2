/*
 * obs_metrics.c - GET /metrics: the VM's figures in the Prometheus text
 * exposition format, version 0.0.4. Every family has its HELP and TYPE
 * lines before its samples; counters end in _total; per scheduler figures
 * carry the label scheduler="i". The figures are read when asked (not the
 * sampler's), so a scrape at any interval sees exact counters.
 */
#include "obs.h"
#include "sched.h"

/* A family's HELP and TYPE lines. */
static void family(krx_obs_buf *b, const char *name, const char *type, const char *help)
{
	krx_obs_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(krx_obs_buf *b, const char *name, const char *type, const char *help, double v)
{
	family(b, name, type, help);
	krx_obs_printf(b, "%s %.17g\n", name, v);
}

int krx_obs_metrics(krx_obs_buf *b)
{
	unsigned n = krx_sched_count();
	krx_obs_totals t = { .nsched = n };
	uint64_t *v = kr_calloc(3 * (size_t)(n ? n : 1), sizeof *v);
	if (!v) {
		krx_obs_puts(b, "# out of memory\n");
		return 500;
	}
	t.idle_ns = v;
	t.steals = v + n;
	t.runq = v + 2 * (size_t)n;
	krx_obs_totals_get(&t);
	double up = (double)(t.now_ns - krx_sched_started_ns()) / 1e9;
	kr_vm_stats vs;
	(void)kr_vm_stats_get(&vs);

	family(b, "krill_scheduler_busy_seconds_total", "counter",
	       "Time each scheduler spent not idle (running processes, and its own work between them).");
	for (unsigned i = 0; i < n; i++) {
		double idle = (double)t.idle_ns[i] / 1e9;
		krx_obs_printf(b, "krill_scheduler_busy_seconds_total{scheduler=\"%u\"} %.9f\n", i,
		               up > idle ? up - idle : 0);
	}
	family(b, "krill_scheduler_idle_seconds_total", "counter",
	       "Time each scheduler spent idle: spinning or asleep for want of work.");
	for (unsigned i = 0; i < n; i++)
		krx_obs_printf(b, "krill_scheduler_idle_seconds_total{scheduler=\"%u\"} %.9f\n", i,
		               (double)t.idle_ns[i] / 1e9);
	family(b, "krill_scheduler_steals_total", "counter",
	       "Times each scheduler took work from another's run queue.");
	for (unsigned i = 0; i < n; i++)
		krx_obs_printf(b, "krill_scheduler_steals_total{scheduler=\"%u\"} %llu\n", i,
		               (unsigned long long)t.steals[i]);
	family(b, "krill_scheduler_run_queue", "gauge",
	       "Processes waiting in each scheduler's run queue.");
	for (unsigned i = 0; i < n; i++)
		krx_obs_printf(b, "krill_scheduler_run_queue{scheduler=\"%u\"} %llu\n", i,
		               (unsigned long long)t.runq[i]);

	one(b, "krill_processes", "gauge", "Processes alive (host threads' mailboxes included).",
	    (double)t.procs);
	one(b, "krill_processes_hibernating", "gauge", "Processes waiting in kr_hibernate, without a stack.",
	    (double)vs.hibernating);
	one(b, "krill_processes_spawned_total", "counter", "Processes spawned.", (double)t.spawns);
	one(b, "krill_messages_sent_total", "counter",
	    "Messages sent: user messages, call requests and replies.", (double)t.sent);
	one(b, "krill_dead_letters_total", "counter",
	    "Messages sent to processes that were gone, or refused by a full mailbox.",
	    (double)t.dead_letters);
	one(b, "krill_supervisor_restarts_total", "counter", "Children restarted by supervisors.",
	    (double)t.restarts);
	one(b, "krill_timers", "gauge", "Timers pending.", (double)vs.timers);

	family(b, "krill_memory_bytes", "gauge",
	       "Memory by kind: heaps (kr_alloc blocks and received messages of live processes), "
	       "stacks (stack pages the system has given), messages (message blocks held, "
	       "received ones included).");
	krx_obs_printf(b, "krill_memory_bytes{kind=\"heaps\"} %llu\n",
	               (unsigned long long)t.heap_bytes);
	krx_obs_printf(b, "krill_memory_bytes{kind=\"stacks\"} %llu\n",
	               (unsigned long long)t.stack_bytes);
	krx_obs_printf(b, "krill_memory_bytes{kind=\"messages\"} %llu\n",
	               (unsigned long long)t.msg_bytes);
	one(b, "krill_uptime_seconds", "gauge", "Time since the VM started.", up);
	kr_free(v);
	return 200;
}
