/*
 * obs_api.c - the observer's JSON endpoints about processes: the process
 * table (GET /api/processes), one process (GET /api/process?pid=N), the
 * supervision trees (GET /api/trees), and POST /api/kill?pid=N. Each runs
 * in the connection's process, through the public API and two internal
 * questions: a supervisor's strategy and last restarts (supinfo.h), and a
 * process's monitors with their references (ask.h).
 *
 * Reductions per second: the rate of each process against the table as
 * an earlier request saw it (the snapshot, shared by every connection,
 * under the observer's lock), taken again once it is a second old. So a
 * page that asks once a second sees rates over about a second; the first
 * request after a start has no rates (0).
 */
#include <stdlib.h>
#include <string.h>

#include "ask.h"
#include "mi.h"
#include "obs.h"
#include "proc.h"
#include "sched.h"
#include "supinfo.h"

#define ASK_TIMEOUT_MS 1000   /* a busy process or supervisor gets this long to answer */
#define TREE_TIMEOUT_MS 3000  /* all the trees' questions */
#define MAX_DEPTH 64          /* supervisors deeper than this are listed without children */
#define MAX_LINKS 1000        /* links, monitors shown at most */

/* ---- one process's row ---- */

static const char *status_name(const kr_proc_info *in)
{
	if (in->hibernating)
		return "hibernating";
	switch (in->status) {
	case KR_RUNNING: return "running";
	case KR_RUNNABLE: return "runnable";
	case KR_WAITING: return "waiting";
	case KR_EXITING: return "exiting";
	default: return "unknown";
	}
}

static void put_opt_str(krx_obs_buf *b, const char *s)
{
	krx_obs_json_str(b, s && s[0] ? s : NULL);
}

/* The fields of a row, without the braces. */
static void put_row(krx_obs_buf *b, kr_pid pid, const kr_proc_info *in, double reds_per_s)
{
	krx_obs_printf(b, "\"pid\": %lld, \"name\": ", (long long)pid);
	put_opt_str(b, in->name);
	krx_obs_puts(b, ", \"registered\": ");
	put_opt_str(b, in->registered_name);
	krx_obs_printf(b, ", \"status\": \"%s\", \"reductions\": %llu, \"reds_per_s\": %.0f, "
	                  "\"mailbox\": %zu, \"heap_bytes\": %zu, \"scheduler\": ",
	               status_name(in), (unsigned long long)in->reductions, reds_per_s,
	               in->mailbox_len, in->heap_bytes);
	if (in->scheduler >= 0)
		krx_obs_printf(b, "%d", in->scheduler);
	else
		krx_obs_puts(b, "null");
	krx_obs_printf(b, ", \"supervisor\": %lld", (long long)in->supervisor);
}

/* ---- the reductions' snapshot ---- */

typedef struct snap_entry {
	kr_pid pid;
	uint64_t reds;
} snap_entry;

static struct {
	snap_entry *v; /* by pid; raw memory, the observer's lock */
	size_t n;
	uint64_t t_ns;
} snap;

static int by_pid(const void *a, const void *b)
{
	kr_pid x = ((const snap_entry *)a)->pid, y = ((const snap_entry *)b)->pid;
	return x < y ? -1 : x > y;
}

/* Rates for rows (n of them, sorted by pid, at now) into rate[]; then the
 * rows become the snapshot if it is a second old. Under the lock. */
static void rates_locked(const snap_entry *rows, size_t n, uint64_t now, double *rate)
{
	double secs = snap.v && now > snap.t_ns ? (double)(now - snap.t_ns) / 1e9 : 0;
	for (size_t i = 0; i < n; i++) {
		rate[i] = 0;
		if (secs < 0.2)
			continue;
		snap_entry *e = bsearch(&rows[i], snap.v, snap.n, sizeof *snap.v, by_pid);
		if (e && rows[i].reds >= e->reds)
			rate[i] = (double)(rows[i].reds - e->reds) / secs;
	}
	if (snap.v && now - snap.t_ns < 1000000000u)
		return;
	snap_entry *v = krx_alloc_raw((n ? n : 1) * sizeof *v);
	if (!v)
		return;
	memcpy(v, rows, n * sizeof *v);
	krx_free_raw(snap.v);
	snap.v = v;
	snap.n = n;
	snap.t_ns = now;
}

void krx_obs_api_free(void)
{
	krx_free_raw(snap.v);
	memset(&snap, 0, sizeof snap);
}

/* ---- GET /api/processes ---- */

int krx_obs_api_processes(krx_obs_buf *b)
{
	size_t max = KRX_OBS_MAX_ROWS + 1;
	kr_pid *pids = kr_alloc(max * sizeof *pids);
	kr_proc_info *info = kr_alloc(KRX_OBS_MAX_ROWS * sizeof *info);
	snap_entry *rows = kr_alloc(KRX_OBS_MAX_ROWS * sizeof *rows);
	double *rate = kr_alloc(KRX_OBS_MAX_ROWS * sizeof *rate);
	if (!pids || !info || !rows || !rate) {
		kr_free(pids), kr_free(info), kr_free(rows), kr_free(rate);
		krx_obs_json_error(b, "out of memory");
		return 500;
	}
	int total = kr_processes(pids, max);
	bool truncated = total > KRX_OBS_MAX_ROWS;
	size_t n = 0;
	for (int i = 0; i < total && (size_t)i < KRX_OBS_MAX_ROWS; i++) {
		if (kr_info(pids[i], &info[n]))
			continue; /* it ended meanwhile */
		rows[n].pid = pids[i];
		rows[n].reds = info[n].reductions;
		n++;
	}
	/* Sorted by pid, the snapshot's order (the page sorts as it likes). */
	snap_entry *sorted = kr_alloc((n ? n : 1) * sizeof *sorted);
	if (!sorted) {
		kr_free(pids), kr_free(info), kr_free(rows), kr_free(rate);
		krx_obs_json_error(b, "out of memory");
		return 500;
	}
	memcpy(sorted, rows, n * sizeof *rows);
	qsort(sorted, n, sizeof *sorted, by_pid);
	pthread_mutex_lock(&krx_obs_state.lock);
	rates_locked(sorted, n, krx_now_ns(), rate);
	pthread_mutex_unlock(&krx_obs_state.lock);
	krx_obs_puts(b, "{\"processes\": [");
	for (size_t i = 0; i < n; i++) {
		/* The row's rate: sorted[] is rows[] by pid. */
		snap_entry *e = bsearch(&rows[i], sorted, n, sizeof *sorted, by_pid);
		krx_obs_puts(b, i ? ",\n{" : "\n{");
		put_row(b, rows[i].pid, &info[i], e ? rate[e - sorted] : 0);
		krx_obs_puts(b, "}");
		KR_CHECK(); /* 10,000 rows take a while: let others run */
	}
	krx_obs_printf(b, "], \"truncated\": %s}", truncated ? "true" : "false");
	kr_free(pids), kr_free(info), kr_free(rows), kr_free(rate);
	kr_free(sorted);
	return 200;
}

/* ---- GET /api/process?pid=N ---- */

/* The pid a query names (in *pid): 0, or a status with its error made. */
static int query_pid(const krx_obs_req *rq, krx_obs_buf *b, kr_pid *pid)
{
	uint64_t v = 0;
	if (krx_obs_query_u64(rq->query, rq->query_len, "pid", &v) <= 0 || v == 0 ||
	    v > (uint64_t)INT64_MAX) {
		krx_obs_json_error(b, "pid: a process id (a number) is wanted");
		return 400;
	}
	*pid = (kr_pid)v;
	return 0;
}

static void put_pids(krx_obs_buf *b, const kr_pid *v, int n)
{
	krx_obs_puts(b, "[");
	for (int i = 0; i < n && i < MAX_LINKS; i++)
		krx_obs_printf(b, "%s%lld", i ? ", " : "", (long long)v[i]);
	krx_obs_puts(b, "]");
}

int krx_obs_api_process(const krx_obs_req *rq, krx_obs_buf *b)
{
	kr_pid pid;
	int status = query_pid(rq, b, &pid);
	if (status)
		return status;
	kr_proc_info in;
	kr_pid *links = kr_alloc(MAX_LINKS * sizeof *links);
	kr_pid *by = kr_alloc(MAX_LINKS * sizeof *by);
	kr_pid *mpids = kr_alloc(MAX_LINKS * sizeof *mpids);
	kr_ref *mrefs = kr_alloc(MAX_LINKS * sizeof *mrefs);
	status = 500;
	if (!links || !by || !mpids || !mrefs) {
		krx_obs_json_error(b, "out of memory");
		goto out;
	}
	int nl = 0, nm = 0, nb = 0;
	status = 404;
	/* One that does not answer the first question is not asked again. */
	if (kr_info(pid, &in) ||
	    (nl = kr_info_links(pid, links, MAX_LINKS, ASK_TIMEOUT_MS)) == KR_ENOPROC ||
	    (nm = nl == KR_ETIMEDOUT ? nl
	                             : krx_info_monitor_refs(pid, mrefs, mpids, MAX_LINKS,
	                                                     ASK_TIMEOUT_MS)) == KR_ENOPROC ||
	    (nb = nm == KR_ETIMEDOUT ? nm
	                             : kr_info_monitored_by(pid, by, MAX_LINKS, ASK_TIMEOUT_MS)) ==
	            KR_ENOPROC) {
		krx_obs_json_error(b, "no such process");
		goto out;
	}
	status = 200;
	krx_obs_puts(b, "{");
	put_row(b, pid, &in, 0);
	/* A process that cannot answer (busy in a loop without krill calls,
	 * in kr_blocking) is shown without these, and says why. */
	bool answered = nl >= 0 && nm >= 0 && nb >= 0;
	krx_obs_puts(b, ", \"links\": ");
	put_pids(b, links, nl > 0 ? nl : 0);
	krx_obs_puts(b, ", \"monitors\": [");
	for (int i = 0; i < nm && i < MAX_LINKS; i++)
		krx_obs_printf(b, "%s{\"ref\": %lld, \"pid\": %lld}", i ? ", " : "",
		               (long long)mrefs[i], (long long)mpids[i]);
	krx_obs_puts(b, "], \"monitored_by\": ");
	put_pids(b, by, nb > 0 ? nb : 0);
	krx_obs_puts(b, ", \"links_error\": ");
	krx_obs_json_str(b, answered ? NULL : kr_strerror(nl < 0 ? nl : nm < 0 ? nm : nb));
	krx_obs_puts(b, "}");
out:
	kr_free(links), kr_free(by), kr_free(mpids), kr_free(mrefs);
	return status;
}

/* ---- POST /api/kill?pid=N ---- */

int krx_obs_api_kill(const krx_obs_req *rq, krx_obs_buf *b)
{
	pthread_mutex_lock(&krx_obs_state.lock);
	int allowed = krx_obs_state.allow_kill;
	pthread_mutex_unlock(&krx_obs_state.lock);
	if (!allowed) {
		krx_obs_json_error(b, "kill not allowed");
		return 403;
	}
	kr_pid pid;
	int status = query_pid(rq, b, &pid);
	if (status)
		return status;
	if (!kr_is_alive(pid) || kr_exit_sig(pid, KR_EXIT_KILL)) {
		krx_obs_json_error(b, "no such process");
		return 404;
	}
	krx_obs_puts(b, "{\"ok\": true}");
	return 200;
}

/* ---- GET /api/trees ---- */

static const char *strategy_name(int s)
{
	switch (s) {
	case KR_ONE_FOR_ONE: return "one_for_one";
	case KR_ONE_FOR_ALL: return "one_for_all";
	case KR_REST_FOR_ONE: return "rest_for_one";
	case KR_SIMPLE_ONE_FOR_ONE: return "simple_one_for_one";
	default: return "unknown";
	}
}

/* The name a tree shows for pid: its registered name, else its label. */
static void put_proc_name(krx_obs_buf *b, kr_pid pid)
{
	kr_proc_info in;
	if (!pid || kr_info(pid, &in)) {
		krx_obs_puts(b, "null");
		return;
	}
	put_opt_str(b, in.registered_name[0] ? in.registered_name : in.name);
}

static long time_left(uint64_t deadline)
{
	uint64_t now = krx_now_ns();
	return now >= deadline ? 0 : (long)((deadline - now + 999999) / 1000000);
}

/* sup's node's strategy and children, without its braces' start. */
static void put_sup(krx_obs_buf *b, kr_pid sup, int depth, uint64_t deadline);

static void put_child(krx_obs_buf *b, const krx_sup_desc_child *c, int depth, uint64_t deadline)
{
	krx_obs_printf(b, "{\"pid\": %lld, \"name\": ", (long long)c->c.pid);
	put_proc_name(b, c->c.pid);
	krx_obs_puts(b, ", \"id\": ");
	put_opt_str(b, c->c.id);
	bool recent = c->restarted_ago_ms >= 0 && c->restarted_ago_ms < 60000;
	krx_obs_printf(b, ", \"type\": \"%s\", \"restarts\": %u, \"recent\": %s",
	               c->c.type == KR_SUPERVISOR ? "supervisor" : "worker", c->c.restarts,
	               recent ? "true" : "false");
	if (c->c.type == KR_SUPERVISOR && c->c.pid)
		put_sup(b, c->c.pid, depth + 1, deadline);
	else
		krx_obs_puts(b, ", \"strategy\": null, \"children\": []");
	krx_obs_puts(b, "}");
}

static void put_sup(krx_obs_buf *b, kr_pid sup, int depth, uint64_t deadline)
{
	int strategy = -1;
	int n = 0;
	krx_sup_desc_child *v = NULL;
	size_t cap = 16;
	while (depth < MAX_DEPTH) {
		krx_sup_desc_child *nv = kr_realloc(v, cap * sizeof *v);
		if (!nv)
			break;
		v = nv;
		n = krx_sup_describe(sup, &strategy, v, cap, time_left(deadline));
		if (n < 0 || (size_t)n <= cap)
			break;
		cap = (size_t)n; /* it grew since: ask again, for all */
	}
	krx_obs_puts(b, ", \"strategy\": ");
	krx_obs_json_str(b, strategy >= 0 ? strategy_name(strategy) : NULL);
	krx_obs_puts(b, ", \"children\": [");
	for (int i = 0; v && i < n && (size_t)i < cap; i++) {
		krx_obs_puts(b, i ? ", " : "");
		put_child(b, &v[i], depth, deadline);
	}
	krx_obs_puts(b, "]");
	kr_free(v);
}

/* A root: a supervisor that no supervisor started (a child of type
 * KR_SUPERVISOR has its parent as kr_info's supervisor). */
static bool is_root_sup(kr_pid pid)
{
	if (krx_proc_sup_check(pid))
		return false;
	kr_proc_info in;
	return kr_info(pid, &in) == 0 && (!in.supervisor || krx_proc_sup_check(in.supervisor));
}

int krx_obs_api_trees(krx_obs_buf *b)
{
	int total = kr_processes(NULL, 0);
	size_t max = total > 0 ? (size_t)total + 64 : 64;
	kr_pid *pids = kr_alloc(max * sizeof *pids);
	if (!pids) {
		krx_obs_json_error(b, "out of memory");
		return 500;
	}
	int n = kr_processes(pids, max);
	uint64_t deadline = krx_now_ns() + (uint64_t)TREE_TIMEOUT_MS * 1000000u;
	krx_obs_puts(b, "{\"trees\": [");
	bool first = true;
	for (int i = 0; i < n && (size_t)i < max; i++) {
		if (!is_root_sup(pids[i]))
			continue;
		krx_obs_puts(b, first ? "\n" : ",\n");
		first = false;
		krx_obs_printf(b, "{\"pid\": %lld, \"name\": ", (long long)pids[i]);
		put_proc_name(b, pids[i]);
		krx_obs_puts(b, ", \"id\": null, \"type\": \"supervisor\", \"restarts\": 0, "
		                "\"recent\": false");
		put_sup(b, pids[i], 0, deadline);
		krx_obs_puts(b, "}");
	}
	krx_obs_puts(b, "]}");
	kr_free(pids);
	return 200;
}
