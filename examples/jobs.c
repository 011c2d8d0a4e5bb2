/*
 * jobs.c - CPU-heavy jobs on a supervised pool of workers.
 *
 *     build/jobs
 *
 * The coordinator has a list of jobs: "how many primes are there below
 * n?". It starts a pool: a supervisor whose children are all made from
 * one template (simple_one_for_one), and four workers in it.
 *
 *     main ── coordinator (kr_server) ── pool (supervisor) ── worker x 4
 *
 * The coordinator is a generic server (kr_server, krill's gen_server):
 * callbacks for what comes to it, and krill's loop around them. Each
 * worker asks it for a job (kr_server_call), computes the answer, casts
 * it back (kr_server_cast), and asks again. A worker that asks when no
 * job is waiting is not answered yet: handle_call keeps who asked
 * (noreply), and the answer goes out later, from whichever callback
 * frees a job (kr_server_reply). Two inputs are bad: a worker given one
 * crashes (a failed KR_ASSERT, or kr_crash), and the pool restarts it at
 * once, fresh. The coordinator monitors the worker that holds each job,
 * so it sees the crash too (a DOWN, in handle_info): it gives the job one
 * more try (the fault may have been the worker's, not the job's) and, if
 * that crashes as well, reports the job as failed. The other jobs go on,
 * undisturbed, on the other workers. When every job is done or failed,
 * the coordinator answers main's call, main stops it (kr_server_stop),
 * and its terminate prints the answers' summary and stops the pool.
 *
 * krill's own reports (a crash, a restart) are printed after a "|", with
 * their level; they come from the other scheduler as well, so they may
 * interleave with the coordinator's lines a little out of order.
 * Everything here uses only the public API (krill.h).
 */
#include <krill.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

enum { WANT_JOB = 1, JOB, ANSWER, ALL_DONE }; /* message tags */

typedef struct job {
	long n;       /* the input: count the primes below n */
	long primes;  /* the answer */
	int tries;    /* workers that crashed on it */
	enum { WAITING, RUNNING, DONE, FAILED } state;
	kr_ref watch; /* while RUNNING: our monitor of the worker that has it */
} job;

static job jobs[] = {
	{ .n = 800000 }, { .n = 600000 }, { .n = 1000000 }, { .n = -7 }, /* bad: negative */
	{ .n = 400000 }, { .n = 1200000 }, { .n = 700000 }, { .n = 500000 },
	{ .n = 5000000000 },                                             /* bad: too big */
	{ .n = 900000 }, { .n = 300000 },  { .n = 650000 },
};
#define NJOBS (int)(sizeof jobs / sizeof jobs[0])
#define WORKERS 4
#define TRIES 2 /* a job that crashes this many workers is bad input */

/* What travels between coordinator and workers. */
typedef struct task {
	int id;     /* index in jobs[] */
	long value; /* n in a JOB, the count in an ANSWER */
} task;

/* ---- the worker ---- */

static long count_primes(long n)
{
	/* Bad input crashes the worker: no error path to write, the
	 * supervisor and the coordinator deal with it. */
	KR_ASSERT(n >= 2);
	if (n > 10000000)
		kr_crash("n = %ld is more than this pool takes on", n);
	long count = 0;
	for (long i = 2; i < n; i++) {
		/* This loop makes no krill call: KR_CHECK lets the other
		 * processes on this scheduler run now and then. */
		KR_CHECK();
		bool prime = true;
		for (long d = 2; d * d <= i && prime; d++)
			prime = i % d != 0;
		count += prime;
	}
	return count;
}

/* A worker of the pool: ask for a job, do it, send the answer, again. Its
 * argument is the coordinator's pid (a restarted worker gets it again). */
static void worker(void *arg)
{
	kr_pid coordinator = (kr_pid)(intptr_t)arg;
	for (;;) {
		kr_msg *m;
		if (kr_server_call(coordinator, WANT_JOB, NULL, 0, &m, KR_INFINITY) != 0)
			return; /* the coordinator is gone */
		task t;
		memcpy(&t, m->data, sizeof t);
		kr_msg_free(m);
		t.value = count_primes(t.value);
		kr_server_cast(coordinator, ANSWER, &t, sizeof t);
	}
}

/* ---- the coordinator: a kr_server ---- */

/* Its state, on its heap. */
typedef struct coordinator {
	kr_pid pool;
	kr_server_from waiting[WORKERS]; /* workers whose WANT_JOB is not answered yet */
	int nwaiting;
	int left;                        /* jobs neither done nor failed */
	kr_server_from main;             /* main's ALL_DONE call, once it came */
	bool main_waits;
} coordinator;

/* Hand the jobs that wait to the workers that wait: the replies to their
 * calls, which handle_call left unanswered. */
static void dispatch(coordinator *c)
{
	for (int id = 0; id < NJOBS && c->nwaiting > 0; id++) {
		if (jobs[id].state != WAITING)
			continue;
		kr_server_from w = c->waiting[--c->nwaiting];
		jobs[id].state = RUNNING;
		jobs[id].watch = kr_monitor(w.pid); /* a DOWN if it crashes */
		task t = { id, jobs[id].n };
		kr_server_reply(w, JOB, &t, sizeof t);
	}
}

/* All jobs are done or failed, and main asked to know: tell it. */
static void maybe_finished(coordinator *c)
{
	if (c->left == 0 && c->main_waits) {
		kr_server_reply(c->main, ALL_DONE, NULL, 0);
		c->main_waits = false;
	}
}

/* The job whose worker this monitor watched. */
static int job_watched_by(kr_ref ref)
{
	for (int id = 0; id < NJOBS; id++)
		if (jobs[id].state == RUNNING && jobs[id].watch == ref)
			return id;
	return -1;
}

/* A worker crashed with job id (the pool reports why): try it again, or
 * give up on it. */
static void crashed(coordinator *c, int id)
{
	if (++jobs[id].tries < TRIES) {
		printf("job %2d (n = %ld): its worker crashed; trying once more\n", id, jobs[id].n);
		jobs[id].state = WAITING;
	} else {
		printf("job %2d (n = %ld): crashed %d workers: bad input, given up\n", id,
		       jobs[id].n, TRIES);
		jobs[id].state = FAILED;
		c->left--;
	}
}

static kr_server_ret coord_init(void *arg, void **state)
{
	(void)arg;
	coordinator *c = kr_calloc(1, sizeof *c);
	c->left = NJOBS;
	/* If the pool gave up, we would get its exit as a message, not die. */
	kr_trap_exit(1);
	kr_child_spec tmpl = { .id = "worker", .start = worker, .restart = KR_PERMANENT };
	kr_sup_flags flags = { .strategy = KR_SIMPLE_ONE_FOR_ONE, .max_restarts = 10,
		               .period_ms = 10000 };
	c->pool = kr_sup_start_link(&flags, &tmpl, 1, "pool");
	if (c->pool < 0)
		return kr_server_ret_stop(KR_EXIT_ERROR);
	for (int i = 0; i < WORKERS; i++)
		kr_sup_start_child(c->pool, NULL, (void *)(intptr_t)kr_self());
	printf("%d jobs for a pool of %d workers\n", NJOBS, WORKERS);
	*state = c;
	return kr_server_ret_ok();
}

static kr_server_ret coord_call(const kr_msg *req, kr_server_from from, void *state)
{
	coordinator *c = state;
	if (req->tag == WANT_JOB) {
		c->waiting[c->nwaiting++] = from; /* answered by dispatch, now or later */
		dispatch(c);
	} else if (req->tag == ALL_DONE) {
		c->main = from;
		c->main_waits = true;
		maybe_finished(c);
	}
	return kr_server_ret_noreply();
}

static kr_server_ret coord_cast(const kr_msg *msg, void *state)
{
	coordinator *c = state;
	if (msg->tag == ANSWER) {
		task t;
		memcpy(&t, msg->data, sizeof t);
		kr_demonitor(jobs[t.id].watch, 1); /* done: stop watching */
		jobs[t.id].primes = t.value;
		jobs[t.id].state = DONE;
		printf("job %2d: %ld primes below %ld\n", t.id, t.value, jobs[t.id].n);
		c->left--;
		maybe_finished(c);
	}
	return kr_server_ret_ok();
}

static kr_server_ret coord_info(const kr_msg *msg, void *state)
{
	coordinator *c = state;
	if (kr_msg_down(msg)) {
		int id = job_watched_by(kr_msg_down(msg)->ref);
		if (id >= 0) {
			crashed(c, id);
			dispatch(c);
			maybe_finished(c);
		}
	} else if (kr_msg_exit(msg) && kr_msg_exit(msg)->from == c->pool) {
		printf("the pool stopped; giving up\n");
		return kr_server_ret_stop(KR_EXIT_NORMAL);
	}
	return kr_server_ret_ok();
}

/* The coordinator stops (main asked, or the pool gave up): the summary,
 * then the pool (and its workers) stopped, as its parent. */
static void coord_terminate(const kr_reason *reason, void *state)
{
	(void)reason;
	coordinator *c = state;
	kr_sup_counts counts = { 0 };
	kr_sup_count_children(c->pool, &counts);
	int done = 0, failed = 0, crashes = 0;
	for (int id = 0; id < NJOBS; id++) {
		done += jobs[id].state == DONE;
		failed += jobs[id].state == FAILED;
		crashes += jobs[id].tries;
	}
	printf("summary: %d jobs done, %d failed; %d workers crashed and were replaced; "
	       "the pool still has %zu workers\n",
	       done, failed, crashes, counts.active);
	kr_ref ref = kr_monitor(c->pool);
	kr_exit_sig(c->pool, KR_EXIT_SHUTDOWN);
	kr_msg *m;
	while (kr_recv_tag(&m, KR_TAG_DOWN, KR_INFINITY) == 0 && kr_msg_down(m)->ref != ref)
		kr_msg_free(m);
	kr_msg_free(m);
}

static const kr_server_callbacks coordinator_cb = {
	.init = coord_init,
	.handle_call = coord_call,
	.handle_cast = coord_cast,
	.handle_info = coord_info,
	.terminate = coord_terminate,
};

/* main's process: start the coordinator, wait until the jobs are through,
 * stop it. */
static void run(void *arg)
{
	(void)arg;
	kr_server_opts opts = { .link = 1, .spawn = { .name = "coordinator" } };
	kr_pid coord = kr_server_start(&coordinator_cb, NULL, &opts);
	if (coord <= 0)
		return;
	kr_msg *done;
	if (kr_server_call(coord, ALL_DONE, NULL, 0, &done, KR_INFINITY) == 0)
		kr_msg_free(done);
	kr_server_stop(coord, KR_EXIT_NORMAL, KR_INFINITY);
}

/* A report's first line (a crash's backtrace follows it), with its level. */
static void print_report(int level, const char *line, void *ctx)
{
	(void)ctx;
	printf("  | %s: %.*s\n", kr_log_level_name(level), (int)strcspn(line, "\n"), line);
}

int main(void)
{
	/* Level info: the supervisors' progress reports (a child started,
	 * restarted) too, which the default level (notice) leaves out. */
	kr_config cfg = { .log_handler = print_report, .log_level = KR_LOG_INFO };
	return kr_main(&cfg, run, NULL) < 0;
}
