/*
 * test_sup.c - supervisors (vm/sup.c) through the public API, checked
 * against OTP's supervisor rules: start order and synchronous starts,
 * stop order (reverse), each strategy restarting exactly the right
 * children in the right order, the restart types, the restart intensity
 * and its window, failed restarts retried and counted, escalation
 * through three levels, shutdown timeouts and brutal_kill, start failures,
 * a spec's spawn options, dynamic children, simple_one_for_one with many
 * children, a supervisor ended by its parent, and strangers ignored.
 *
 * Each scenario runs in a driver process (the supervisor's parent); the
 * children record what happens to them in an event log ("+a": a started,
 * its init ran; "-a": a got its supervisor's exit signal and stopped;
 * "~a": a ignored it), which the driver compares with what OTP would do.
 * When the driver returns, its end (normal) tells its supervisor to stop,
 * and the test checks that nothing is left alive.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "krill.h"
#include "vm_util.h"

TestSuite(sup, .fini = vm_fini, .timeout = 60);

/* ---- reports: captured, so expected crashes stay off stderr ---- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[1 << 18];
static size_t log_len;

static void capture(const char *line, void *ctx)
{
	(void)ctx;
	pthread_mutex_lock(&log_lock);
	int n = snprintf(log_text + log_len, sizeof log_text - log_len, "%s\n", line);
	if (n > 0 && log_len + (size_t)n < sizeof log_text)
		log_len += (size_t)n;
	pthread_mutex_unlock(&log_lock);
}

/* Lines of the log that contain every one of the (up to two) needles. */
static int log_lines(const char *a, const char *b)
{
	int n = 0;
	pthread_mutex_lock(&log_lock);
	for (char *line = log_text; line < log_text + log_len;) {
		char *end = strchr(line, '\n');
		*end = 0;
		if (strstr(line, a) && (!b || strstr(line, b)))
			n++;
		*end = '\n';
		line = end + 1;
	}
	pthread_mutex_unlock(&log_lock);
	return n;
}

static void start_vm(unsigned schedulers)
{
	kr_config cfg = { .schedulers = schedulers, .log = capture };
	vm_start_cfg(&cfg);
}

/* ---- the event log ---- */

static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static char ev_text[8192];

static __attribute__((format(printf, 1, 2))) void ev(const char *fmt, ...)
{
	char item[64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(item, sizeof item, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&ev_lock);
	size_t len = strlen(ev_text);
	snprintf(ev_text + len, sizeof ev_text - len, "%s%s", len ? " " : "", item);
	pthread_mutex_unlock(&ev_lock);
}

static bool ev_is(const char *want)
{
	pthread_mutex_lock(&ev_lock);
	bool same = strcmp(ev_text, want) == 0;
	pthread_mutex_unlock(&ev_lock);
	return same;
}

static const char *ev_now(void)
{
	static char copy[sizeof ev_text];
	pthread_mutex_lock(&ev_lock);
	memcpy(copy, ev_text, sizeof copy);
	pthread_mutex_unlock(&ev_lock);
	return copy;
}

/* In a process: wait (with a deadline) until the log reads want. */
#define P_EV(want)                                                                    \
	do {                                                                          \
		int64_t end_ = vm_now_ns() + (int64_t)10000 * 1000000;                \
		while (!ev_is(want) && vm_now_ns() < end_)                            \
			kr_sleep(1);                                                  \
		VM_CHECK(ev_is(want), "events \"%s\", want \"%s\"", ev_now(), want); \
	} while (0)

/* ---- workers ----
 * A worker's arg is its index (its id is ids[i]) plus a mode. It records
 * its start in init, before it reports, so starts are logged in the order
 * the supervisor made them; and its stop when its supervisor's exit
 * signal reaches it (it traps exits), before it ends, so stops are logged
 * in the order the supervisor waited for them. */

enum {
	M_TRAP = 1 << 8,    /* trap exits: log "-x" and end with the signal's reason */
	M_IGNORE = 1 << 9,  /* trap exits and ignore them: log "~x" */
	M_SLOW = 1 << 10,   /* trap exits, and take 100 ms to stop */
	M_FAIL = 1 << 11,   /* init fails */
	M_QUIT = 1 << 12,   /* init ends the process (before reporting) */
	M_BADSTOP = 1 << 13, /* trap exits, and crash when told to stop: log "!x" */
};

enum { T_CRASH = 1, T_NORMAL, T_SHUTDOWN, T_PING, T_PONG, T_FAULT };

static const char *const ids[] = { "a", "b", "c", "d", "e", "f", "g", "h" };
static atomic_llong wpid[8];

static int w_init(void *arg)
{
	int v = (int)(intptr_t)arg, i = v & 0xff;
	if (v & M_FAIL)
		return 7;
	if (v & M_QUIT)
		kr_exit(KR_EXIT_NORMAL);
	/* Trap before reporting: the supervisor may stop us right after. */
	if (v & (M_TRAP | M_IGNORE | M_SLOW | M_BADSTOP))
		kr_trap_exit(1);
	atomic_store(&wpid[i], kr_self());
	ev("+%s", ids[i]);
	return 0;
}

static void w_main(void *arg)
{
	int v = (int)(intptr_t)arg, i = v & 0xff;
	while (!atomic_load(&vm_abort)) {
		kr_msg *m;
		if (kr_recv(&m, 100))
			continue;
		const kr_exit_msg *e = kr_msg_exit(m);
		if (e) {
			kr_reason r = e->reason;
			kr_msg_free(m);
			if (v & M_IGNORE) {
				ev("~%s", ids[i]);
				continue;
			}
			if (v & M_SLOW)
				kr_sleep(100);
			if (v & M_BADSTOP) {
				ev("!%s", ids[i]);
				kr_crash("crashed while stopping");
			}
			ev("-%s", ids[i]);
			kr_exit_reason(&r);
		}
		uint64_t tag = m->tag;
		if (tag == T_PING)
			kr_reply(m, T_PONG, NULL, 0);
		kr_msg_free(m);
		if (tag == T_CRASH)
			kr_crash("told to crash");
		if (tag == T_NORMAL)
			return;
		if (tag == T_SHUTDOWN)
			kr_exit(KR_EXIT_SHUTDOWN);
	}
}

static kr_child_spec wspec(int i, int mode)
{
	return (kr_child_spec){ .id = ids[i], .start = w_main, .arg = (void *)(intptr_t)(i | mode),
		                .init = w_init };
}

static kr_pid W(int i)
{
	return (kr_pid)atomic_load(&wpid[i]);
}

static int is_down_of(const kr_msg *m, void *ctx)
{
	const kr_down_msg *d = kr_msg_down(m);
	return d && d->ref == *(const kr_ref *)ctx;
}

/* In a process: wait for the DOWN of ref (others stay queued); its reason
 * in *r. */
static int wait_down(kr_ref ref, kr_reason *r, long ms)
{
	kr_msg *m;
	if (kr_recv_match(&m, is_down_of, &ref, ms) != 0)
		return -1;
	if (r)
		*r = kr_msg_down(m)->reason;
	kr_msg_free(m);
	return 0;
}

/* In a process: make pid, a child of sup, end by telling it `tag`, and
 * return once sup has dealt with its end (restarted it, or not), with the
 * child's reason's kind. The child's exit signal to sup goes before its
 * DOWN to us, so sup takes it before the request we then make, and
 * answers that request only after any restart it made. */
static int end_child(kr_pid sup, kr_pid pid, uint64_t tag)
{
	kr_ref ref = kr_monitor(pid);
	kr_send(pid, tag, NULL, 0);
	kr_reason r = { .kind = -1 };
	VM_CHECK(wait_down(ref, &r, 10000) == 0, "the child did not end");
	kr_sup_counts n;
	(void)kr_sup_count_children(sup, &n); /* KR_ENOPROC if sup has given up */
	return r.kind;
}

/* Stop sup as its parent does (shutdown), and return its reason's kind. */
static int stop_sup(kr_pid sup)
{
	kr_ref ref = kr_monitor(sup);
	kr_exit_sig(sup, KR_EXIT_SHUTDOWN);
	kr_reason r = { .kind = -1 };
	VM_CHECK(wait_down(ref, &r, 20000) == 0, "the supervisor did not end");
	return r.kind;
}

/* ---- running a scenario ---- */

static atomic_int drv_done;

/* The driver traps exits: a supervisor that ends (given up, or told to
 * stop) sends its parent an exit signal with its reason, shutdown, which
 * would end a parent that did not trap (a supervisor's parent is usually a
 * supervisor, which does). */
static void driver_main(void *fn)
{
	kr_trap_exit(1);
	((kr_fn *)fn)(NULL);
}

static void run(kr_fn *driver, long ms)
{
	kr_spawn_opts o = { .name = "driver" };
	cr_assert_gt(kr_spawn_opt(driver_main, (void *)driver, &o), 0);
	cr_assert(VM_WAIT(atomic_load(&drv_done), ms), "the driver did not finish; events \"%s\"",
	          ev_now());
	cr_assert(VM_WAIT(vm_alive() == 0, 20000), "%zu processes left", vm_alive());
	vm_assert_clean();
}

static void which_ids(kr_pid sup, char *out, size_t len)
{
	kr_sup_child v[8];
	int n = kr_sup_which_children(sup, v, 8);
	out[0] = 0;
	for (int i = 0; i < n && i < 8; i++) {
		size_t l = strlen(out);
		snprintf(out + l, len - l, "%s%s%s", i ? " " : "", v[i].id, v[i].pid ? "" : "(0)");
	}
}

#define CHECK_WHICH(sup, want)                                                 \
	do {                                                                   \
		char got_[128];                                                \
		which_ids(sup, got_, sizeof got_);                             \
		VM_CHECK(!strcmp(got_, want), "children \"%s\", want \"%s\"", got_, want); \
	} while (0)

/* ---- start and stop order ---- */

static void drv_order(void *arg)
{
	(void)arg;
	kr_child_spec specs[] = { wspec(0, M_TRAP), wspec(1, M_TRAP), wspec(2, M_TRAP) };
	kr_pid s = kr_sup_start_link(NULL, specs, 3, "order_sup");
	VM_CHECK(s > 0, "kr_sup_start_link: %lld", (long long)s);
	/* Synchronous: every child has started by the time it returns. */
	VM_CHECK(ev_is("+a +b +c"), "at return: \"%s\"", ev_now());
	VM_CHECK(kr_whereis("order_sup") == s, "the name");
	kr_sup_child v[4];
	VM_CHECK(kr_sup_which_children(s, v, 4) == 3, "which_children count");
	for (int i = 0; i < 3; i++)
		VM_CHECK(!strcmp(v[i].id, ids[i]) && v[i].pid == W(i) && v[i].type == KR_WORKER &&
		                 v[i].restart == KR_PERMANENT,
		         "child %d: %s %lld", i, v[i].id, (long long)v[i].pid);
	VM_CHECK(kr_sup_which_children(s, v, 1) == 3 && !strcmp(v[0].id, "a"),
	         "which_children max 1");
	VM_CHECK(kr_sup_which_children(s, NULL, 0) == 3, "which_children max 0");
	VM_CHECK(stop_sup(s) == KR_EXIT_SHUTDOWN, "the supervisor's reason");
	VM_CHECK(ev_is("+a +b +c -c -b -a"), "stop order: \"%s\"", ev_now());
	for (int i = 0; i < 3; i++)
		VM_CHECK(!kr_is_alive(W(i)), "child %d alive", i);
	atomic_store(&drv_done, 1);
}

Test(sup, children_start_in_order_synchronously_and_stop_in_reverse)
{
	start_vm(2);
	run(drv_order, 20000);
	vm_stop();
}

/* ---- the strategies ---- */

static void drv_one_for_one(void *arg)
{
	(void)arg;
	VM_CHECK(kr_log_set_level(KR_LOG_INFO) == KR_LOG_NOTICE, "the level was not notice");
	kr_child_spec specs[] = { wspec(0, M_TRAP), wspec(1, M_TRAP), wspec(2, M_TRAP) };
	kr_sup_flags f = { .strategy = KR_ONE_FOR_ONE, .max_restarts = 10 };
	kr_pid s = kr_sup_start_link(&f, specs, 3, NULL);
	kr_pid a = W(0), b = W(1), c = W(2);
	VM_CHECK(end_child(s, b, T_CRASH) == KR_EXIT_ERROR, "b's reason");
	P_EV("+a +b +c +b");
	VM_CHECK(W(0) == a && W(2) == c && W(1) != b && kr_is_alive(W(1)),
	         "pids after the restart");
	CHECK_WHICH(s, "a b c");
	VM_CHECK(log_lines("child b", "terminated: error: told to crash") == 1,
	         "no report of b's end");
	VM_CHECK(log_lines("child b restarted as", NULL) == 1,
	         "no report of b's restart (a progress report: info)");
	atomic_store(&drv_done, 1);
}

Test(sup, one_for_one_restarts_only_the_child_that_ended)
{
	start_vm(2);
	run(drv_one_for_one, 20000);
	vm_stop();
}

static void drv_one_for_all(void *arg)
{
	(void)arg;
	kr_child_spec specs[] = { wspec(0, M_TRAP), wspec(1, M_TRAP), wspec(2, M_TRAP) };
	kr_sup_flags f = { .strategy = KR_ONE_FOR_ALL, .max_restarts = 10 };
	kr_pid s = kr_sup_start_link(&f, specs, 3, NULL);
	kr_pid a = W(0), c = W(2);
	end_child(s, W(1), T_CRASH);
	/* The others stop in reverse start order, then all start in order. */
	P_EV("+a +b +c -c -a +a +b +c");
	VM_CHECK(W(0) != a && W(2) != c && !kr_is_alive(a) && !kr_is_alive(c), "not all restarted");
	CHECK_WHICH(s, "a b c");
	/* The first child's end takes down the rest likewise. */
	end_child(s, W(0), T_CRASH);
	P_EV("+a +b +c -c -a +a +b +c -c -b +a +b +c");
	/* A temporary sibling is stopped with the others, and forgotten. */
	kr_child_spec d = wspec(3, M_TRAP);
	d.restart = KR_TEMPORARY;
	VM_CHECK(kr_sup_start_child(s, &d, NULL) > 0, "start d");
	end_child(s, W(1), T_CRASH);
	P_EV("+a +b +c -c -a +a +b +c -c -b +a +b +c +d -d -c -a +a +b +c");
	CHECK_WHICH(s, "a b c");
	atomic_store(&drv_done, 1);
}

Test(sup, one_for_all_stops_the_others_in_reverse_and_restarts_all_in_order)
{
	start_vm(2);
	run(drv_one_for_all, 20000);
	vm_stop();
}

static void drv_rest_for_one(void *arg)
{
	(void)arg;
	kr_child_spec specs[] = { wspec(0, M_TRAP), wspec(1, M_TRAP), wspec(2, M_TRAP),
		                  wspec(3, M_TRAP) };
	kr_sup_flags f = { .strategy = KR_REST_FOR_ONE, .max_restarts = 10 };
	kr_pid s = kr_sup_start_link(&f, specs, 4, NULL);
	kr_pid a = W(0);
	end_child(s, W(1), T_CRASH);
	P_EV("+a +b +c +d -d -c +b +c +d");
	VM_CHECK(W(0) == a, "a was restarted");
	/* The last child's end restarts only itself. */
	end_child(s, W(3), T_CRASH);
	P_EV("+a +b +c +d -d -c +b +c +d +d");
	CHECK_WHICH(s, "a b c d");
	atomic_store(&drv_done, 1);
}

Test(sup, rest_for_one_restarts_the_child_and_those_started_after_it)
{
	start_vm(2);
	run(drv_rest_for_one, 20000);
	vm_stop();
}

/* ---- restart types ---- */

static void drv_restart_types(void *arg)
{
	(void)arg;
	kr_child_spec specs[] = { wspec(0, 0), wspec(1, 0), wspec(2, 0) };
	specs[0].id = "p"; /* permanent */
	specs[1].id = "t";
	specs[1].restart = KR_TRANSIENT;
	specs[2].id = "x";
	specs[2].restart = KR_TEMPORARY;
	kr_sup_flags f = { .max_restarts = 100 };
	kr_pid s = kr_sup_start_link(&f, specs, 3, NULL);
	CHECK_WHICH(s, "p t x");
	/* Permanent: restarted whatever the reason. */
	static const uint64_t ends[] = { T_NORMAL, T_SHUTDOWN, T_CRASH };
	for (int k = 0; k < 3; k++) {
		kr_pid old = W(0);
		end_child(s, old, ends[k]);
		CHECK_WHICH(s, "p t x");
		VM_CHECK(W(0) != old && kr_is_alive(W(0)), "permanent not restarted after %d", k);
	}
	/* Transient: not after normal or shutdown (the spec stays, for
	 * kr_sup_restart_child); after a crash, yes. */
	end_child(s, W(1), T_NORMAL);
	CHECK_WHICH(s, "p t(0) x");
	kr_pid t = kr_sup_restart_child(s, "t");
	VM_CHECK(t > 0 && t == W(1), "restart_child t: %lld", (long long)t);
	end_child(s, W(1), T_SHUTDOWN);
	CHECK_WHICH(s, "p t(0) x");
	t = kr_sup_restart_child(s, "t");
	VM_CHECK(t > 0, "restart_child t: %lld", (long long)t);
	end_child(s, t, T_CRASH);
	CHECK_WHICH(s, "p t x");
	VM_CHECK(W(1) != t && kr_is_alive(W(1)), "transient not restarted after a crash");
	/* Temporary: never restarted, and forgotten. */
	end_child(s, W(2), T_CRASH);
	CHECK_WHICH(s, "p t");
	VM_CHECK(kr_sup_restart_child(s, "x") == KR_ENOPROC, "a temporary child's spec was kept");
	kr_sup_counts n;
	VM_CHECK(kr_sup_count_children(s, &n) == 0 && n.specs == 2 && n.active == 2, "counts");
	/* Reported as OTP's child_terminated: every end of the permanent
	 * child, the normal one included; only the crashes of the others. */
	VM_CHECK(log_lines("child p ", "terminated: normal") == 1 &&
	                 log_lines("child p ", "terminated: shutdown") == 1 &&
	                 log_lines("child p ", "terminated: error") == 1,
	         "the permanent child's three ends were not each reported");
	VM_CHECK(log_lines("child t ", "terminated: normal") == 0 &&
	                 log_lines("child t ", "terminated: shutdown") == 0 &&
	                 log_lines("child t ", "terminated: error") == 1,
	         "the transient child's reports");
	VM_CHECK(log_lines("child x ", "terminated: error") == 1, "the temporary child's crash");
	atomic_store(&drv_done, 1);
}

Test(sup, permanent_transient_and_temporary_children)
{
	start_vm(2);
	run(drv_restart_types, 20000);
	vm_stop();
}

/* ---- restart intensity ---- */

static void drv_intensity(void *arg)
{
	(void)arg;
	kr_child_spec specs[] = { wspec(0, M_TRAP), wspec(1, M_TRAP) };
	kr_sup_flags f = { .max_restarts = 2, .period_ms = 60000 };
	kr_pid s = kr_sup_start_link(&f, specs, 2, NULL);
	kr_ref ref = kr_monitor(s);
	end_child(s, W(0), T_CRASH);
	end_child(s, W(0), T_CRASH);
	CHECK_WHICH(s, "a b");
	/* The third restart within the period is one too many: the
	 * supervisor stops its children in reverse order and ends. */
	end_child(s, W(0), T_CRASH);
	kr_reason r;
	VM_CHECK(wait_down(ref, &r, 10000) == 0, "the supervisor did not give up");
	VM_CHECK(r.kind == KR_EXIT_SHUTDOWN && strstr(r.text, "intensity"), "its reason: %d %s",
	         r.kind, r.text);
	VM_CHECK(ev_is("+a +b +a +a -b"), "events \"%s\"", ev_now());
	VM_CHECK(log_lines("reached max restart intensity (", NULL) == 1, "no intensity report");
	atomic_store(&drv_done, 1);
}

Test(sup, more_restarts_than_the_intensity_end_the_supervisor)
{
	start_vm(2);
	run(drv_intensity, 20000);
	vm_stop();
}

static void drv_window(void *arg)
{
	(void)arg;
	kr_child_spec specs[] = { wspec(0, 0) };
	kr_sup_flags f = { .max_restarts = 1, .period_ms = 1000 };
	kr_pid s = kr_sup_start_link(&f, specs, 1, NULL);
	kr_ref ref = kr_monitor(s);
	end_child(s, W(0), T_CRASH);
	/* Once the period has passed, that restart no longer counts. */
	kr_sleep(1200);
	end_child(s, W(0), T_CRASH);
	CHECK_WHICH(s, "a");
	VM_CHECK(kr_is_alive(s), "the supervisor gave up on restarts a period apart");
	/* Two within the period: too many. */
	end_child(s, W(0), T_CRASH);
	VM_CHECK(wait_down(ref, NULL, 10000) == 0, "the supervisor did not give up");
	atomic_store(&drv_done, 1);
}

Test(sup, restarts_older_than_the_period_are_forgotten)
{
	start_vm(2);
	run(drv_window, 20000);
	vm_stop();
}

/* A restart that fails is retried, and each try counts as a restart. */
static atomic_int fail_next;

static int flaky_init(void *arg)
{
	if (atomic_load(&fail_next) > 0) {
		atomic_fetch_sub(&fail_next, 1);
		return 1;
	}
	return w_init(arg);
}

static void drv_retry(void *arg)
{
	(void)arg;
	kr_child_spec specs[] = { wspec(0, 0), wspec(1, M_TRAP) };
	specs[0].init = flaky_init;
	kr_sup_flags f = { .max_restarts = 3, .period_ms = 60000 };
	kr_pid s = kr_sup_start_link(&f, specs, 2, NULL);
	kr_ref ref = kr_monitor(s);
	atomic_store(&fail_next, 2);
	end_child(s, W(0), T_CRASH);
	/* Two tries fail, the third starts it: three restarts. */
	P_EV("+a +b +a");
	CHECK_WHICH(s, "a b");
	VM_CHECK(log_lines("child a", "failed to start: error: init failed (returned 1)") == 2,
	         "%d start failures reported",
	         log_lines("child a", "failed to start: error: init failed (returned 1)"));
	/* So one more is too many. */
	end_child(s, W(0), T_CRASH);
	VM_CHECK(wait_down(ref, NULL, 10000) == 0, "the retries did not count as restarts");
	atomic_store(&drv_done, 1);
}

Test(sup, a_failed_restart_is_retried_and_counted)
{
	start_vm(2);
	run(drv_retry, 20000);
	vm_stop();
}

static void drv_no_restarts(void *arg)
{
	(void)arg;
	kr_child_spec specs[] = { wspec(0, 0) };
	kr_sup_flags f = { .max_restarts = KR_SUP_NO_RESTARTS };
	kr_pid s = kr_sup_start_link(&f, specs, 1, NULL);
	kr_ref ref = kr_monitor(s);
	end_child(s, W(0), T_CRASH);
	VM_CHECK(wait_down(ref, NULL, 10000) == 0, "KR_SUP_NO_RESTARTS allowed a restart");
	/* A child that is not to be restarted costs no restart. */
	specs[0].restart = KR_TEMPORARY;
	s = kr_sup_start_link(&f, specs, 1, NULL);
	end_child(s, W(0), T_CRASH);
	CHECK_WHICH(s, "");
	VM_CHECK(kr_is_alive(s), "a temporary child's end counted as a restart");
	atomic_store(&drv_done, 1);
}

Test(sup, no_restarts_at_all)
{
	start_vm(2);
	run(drv_no_restarts, 20000);
	vm_stop();
}

/* ---- escalation through three levels ----
 * A (top) > B > C > w. w crashes at each of its first six starts. C
 * (intensity 1) gives up at w's second crash; B (intensity 1) restarts C
 * once and gives up when C gives up again; A restarts B. */

static atomic_int w_crashes;
static const kr_sup_flags one_restart = { .max_restarts = 1, .period_ms = 60000 };

static int level_init(void *arg)
{
	ev("+%s", (const char *)arg);
	return 0;
}

static void crashing_worker(void *arg)
{
	(void)arg;
	if (atomic_fetch_add(&w_crashes, 1) < 6)
		kr_crash("crash %d", atomic_load(&w_crashes));
	w_main((void *)(intptr_t)0);
}

static void sup_c(void *arg)
{
	(void)arg;
	kr_child_spec w = { .id = "w", .start = crashing_worker, .init = level_init, .arg = "w" };
	kr_sup_run(&one_restart, &w, 1);
	VM_CHECK(0, "kr_sup_run returned");
}

static void sup_b(void *arg)
{
	(void)arg;
	kr_child_spec c = { .id = "C", .start = sup_c, .init = level_init, .arg = "C",
		            .type = KR_SUPERVISOR };
	kr_sup_run(&one_restart, &c, 1);
}

static void drv_escalation(void *arg)
{
	(void)arg;
	kr_child_spec b = { .id = "B", .start = sup_b, .init = level_init, .arg = "B",
		            .type = KR_SUPERVISOR };
	kr_sup_flags f = { .max_restarts = 5, .period_ms = 60000 };
	kr_pid a = kr_sup_start_link(&f, &b, 1, "A");
	VM_CHECK(a > 0, "start A: %lld", (long long)a);
	P_EV("+B +C +w +w +C +w +w +B +C +w +w +C +w");
	VM_CHECK(kr_is_alive(a), "A gave up");
	/* C gave up three times (twice under the first B), B once. */
	VM_CHECK(log_lines("reached max restart intensity (", NULL) == 4, "%d intensity reports",
	         log_lines("reached max restart intensity (", NULL));
	kr_sup_child v;
	VM_CHECK(kr_sup_which_children(a, &v, 1) == 1 && v.pid > 0 && v.type == KR_SUPERVISOR,
	         "A's child");
	kr_sup_child vc;
	VM_CHECK(kr_sup_which_children(v.pid, &vc, 1) == 1 && vc.type == KR_SUPERVISOR,
	         "B's child");
	kr_sup_counts n;
	VM_CHECK(kr_sup_count_children(vc.pid, &n) == 0 && n.active == 1 && n.workers == 1,
	         "C's child");
	atomic_store(&drv_done, 1);
}

Test(sup, escalation_climbs_three_levels)
{
	start_vm(2);
	run(drv_escalation, 30000);
	vm_stop();
}

/* ---- shutdown: timeouts, infinity, brutal_kill ---- */

static void drv_shutdown(void *arg)
{
	(void)arg;
	kr_child_spec specs[] = { wspec(0, M_SLOW), wspec(1, M_IGNORE), wspec(2, M_TRAP),
		                  wspec(3, M_IGNORE) };
	specs[0].shutdown = KR_SHUTDOWN_INFINITY;
	specs[1].shutdown = 200;
	specs[3].shutdown = KR_SHUTDOWN_BRUTAL;
	kr_pid s = kr_sup_start_link(NULL, specs, 4, NULL);
	static const struct {
		int i, kind;
		long at_least_ms;
	} want[] = {
		{ 0, KR_EXIT_SHUTDOWN, 100 }, /* infinity: waited for it */
		{ 1, KR_EXIT_KILLED, 200 },   /* ignored shutdown: killed after its timeout */
		{ 2, KR_EXIT_SHUTDOWN, 0 },   /* stopped promptly: not killed */
		{ 3, KR_EXIT_KILLED, 0 },     /* brutal_kill, trapping or not */
	};
	for (int k = 0; k < 4; k++) {
		kr_pid c = W(want[k].i);
		kr_ref ref = kr_monitor(c);
		int64_t t0 = vm_now_ns();
		int rc = kr_sup_terminate_child(s, ids[want[k].i], 0);
		double ms = vm_ms_since(t0);
		kr_reason r = { .kind = -1 };
		VM_CHECK(rc == 0 && wait_down(ref, &r, 1000) == 0, "terminate %s: %d",
		         ids[want[k].i], rc);
		VM_CHECK(r.kind == want[k].kind, "%s ended %d, want %d", ids[want[k].i], r.kind,
		         want[k].kind);
		VM_CHECK(ms >= (double)want[k].at_least_ms - 1,
		         "%s: stopped after %.1f ms, want >= %ld", ids[want[k].i], ms,
		         want[k].at_least_ms);
	}
	VM_CHECK(ev_is("+a +b +c +d -a ~b -c"), "events \"%s\"", ev_now());
	VM_CHECK(log_lines("child b", "did not stop within 200 ms: killed") == 1,
	         "no report for b");
	VM_CHECK(log_lines("child d", NULL) == 0, "a report for a brutal kill");
	CHECK_WHICH(s, "a(0) b(0) c(0) d(0)");
	atomic_store(&drv_done, 1);
}

Test(sup, shutdown_timeouts_infinity_and_brutal_kill)
{
	start_vm(2);
	run(drv_shutdown, 20000);
	vm_stop();
}

/* ---- the defaults: shutdown, restart intensity, strategy ---- */

/* KR_SHUTDOWN_DEFAULT: a worker that ignores its shutdown is killed after
 * 5000 ms; a child supervisor is waited for as long as it takes (its own
 * child here takes 5500 ms to be killed, after which it ends with shutdown,
 * not killed). Both at once, in two processes. */
static atomic_int dflt_parts;

static void dflt_worker_part(void *arg)
{
	(void)arg;
	kr_trap_exit(1);
	kr_child_spec specs[] = { wspec(0, M_IGNORE) }; /* shutdown: the default */
	kr_pid s = kr_sup_start_link(NULL, specs, 1, NULL);
	kr_ref ref = kr_monitor(W(0));
	int64_t t0 = vm_now_ns();
	int rc = kr_sup_terminate_child(s, "a", 0);
	double ms = vm_ms_since(t0);
	kr_reason r = { .kind = -1 };
	VM_CHECK(rc == 0 && wait_down(ref, &r, 1000) == 0, "terminate a: %d", rc);
	VM_CHECK(r.kind == KR_EXIT_KILLED, "a worker ignoring its shutdown ended %s, want killed",
	         kr_exit_kind_name(r.kind));
	VM_CHECK(ms >= 4999.0, "killed after %.0f ms; a worker's default is 5000", ms);
	stop_sup(s);
	atomic_fetch_add(&dflt_parts, 1);
}

static void slow_to_stop_sup(void *arg)
{
	(void)arg;
	kr_child_spec w = wspec(1, M_IGNORE);
	w.shutdown = 5500;
	kr_sup_run(NULL, &w, 1);
}

static void dflt_sup_part(void *arg)
{
	(void)arg;
	kr_trap_exit(1);
	kr_child_spec c = { .id = "C", .start = slow_to_stop_sup, .type = KR_SUPERVISOR };
	kr_pid s = kr_sup_start_link(NULL, &c, 1, NULL);
	kr_sup_child v = { .pid = 0 };
	VM_CHECK(kr_sup_which_children(s, &v, 1) == 1 && v.pid > 0, "the child supervisor");
	kr_ref ref = kr_monitor(v.pid);
	int64_t t0 = vm_now_ns();
	int rc = kr_sup_terminate_child(s, "C", 0);
	double ms = vm_ms_since(t0);
	kr_reason r = { .kind = -1 };
	VM_CHECK(rc == 0 && wait_down(ref, &r, 1000) == 0, "terminate C: %d", rc);
	VM_CHECK(r.kind == KR_EXIT_SHUTDOWN, "a child supervisor ended %s, want shutdown (waited for)",
	         kr_exit_kind_name(r.kind));
	VM_CHECK(ms >= 5499.0, "C stopped after %.0f ms, before its own child's 5500", ms);
	stop_sup(s);
	atomic_fetch_add(&dflt_parts, 1);
}

static void drv_default_shutdown(void *arg)
{
	(void)arg;
	VM_CHECK(kr_spawn(dflt_sup_part, NULL) > 0, "spawn");
	dflt_worker_part(NULL);
	int64_t end = vm_now_ns() + (int64_t)30000 * 1000000;
	while (atomic_load(&dflt_parts) < 2 && vm_now_ns() < end)
		kr_sleep(10);
	VM_CHECK(atomic_load(&dflt_parts) == 2, "the child supervisor was never stopped");
	atomic_store(&drv_done, 1);
}

Test(sup, the_default_shutdown_is_5000_ms_for_a_worker_and_infinity_for_a_supervisor)
{
	start_vm(2);
	run(drv_default_shutdown, 40000);
	vm_stop();
}

/* Zeroed flags (or none): one_for_one, at most 1 restart in 5000 ms. One
 * restart is made, and only of the child that ended; a second at once is
 * one too many; two 4 s apart are still too many, two 5.2 s apart are not.
 * The two last at once, in two processes. */
static atomic_int intens_parts;

static void intens_apart(void *arg)
{
	long apart_ms = (long)(intptr_t)arg;
	int i = apart_ms < 5000 ? 4 : 5;
	kr_trap_exit(1);
	kr_sup_flags zero = { 0 };
	kr_child_spec specs[] = { wspec(i, 0) };
	kr_pid s = kr_sup_start_link(&zero, specs, 1, NULL);
	kr_ref ref = kr_monitor(s);
	end_child(s, W(i), T_CRASH);
	kr_sleep(apart_ms);
	end_child(s, W(i), T_CRASH);
	bool gave_up = wait_down(ref, NULL, 1000) == 0;
	VM_CHECK(gave_up == (apart_ms < 5000), "two restarts %ld ms apart: the supervisor %s", apart_ms,
	         gave_up ? "gave up (the period is shorter than 5000 ms)"
	                 : "went on (the period is longer than 5000 ms)");
	if (!gave_up)
		stop_sup(s);
	atomic_fetch_add(&intens_parts, 1);
}

static void drv_default_intensity(void *arg)
{
	(void)arg;
	kr_child_spec specs[] = { wspec(2, 0), wspec(3, 0) };
	kr_pid s = kr_sup_start_link(NULL, specs, 2, NULL);
	kr_ref ref = kr_monitor(s);
	kr_pid c = W(2), d = W(3);
	VM_CHECK(end_child(s, c, T_CRASH) == KR_EXIT_ERROR, "c's reason");
	VM_CHECK(kr_is_alive(s), "one restart is allowed by default");
	VM_CHECK(W(2) != c && kr_is_alive(W(2)) && W(3) == d, "one_for_one: only c is restarted");
	end_child(s, W(2), T_CRASH);
	kr_reason r = { .kind = -1 };
	VM_CHECK(wait_down(ref, &r, 10000) == 0, "a second restart at once was allowed");
	VM_CHECK(r.kind == KR_EXIT_SHUTDOWN, "the supervisor's reason: %d", r.kind);
	VM_CHECK(kr_spawn(intens_apart, (void *)(intptr_t)4000) > 0, "spawn");
	intens_apart((void *)(intptr_t)5200);
	int64_t end = vm_now_ns() + (int64_t)30000 * 1000000;
	while (atomic_load(&intens_parts) < 2 && vm_now_ns() < end)
		kr_sleep(10);
	VM_CHECK(atomic_load(&intens_parts) == 2, "the 4 s case never finished");
	atomic_store(&drv_done, 1);
}

Test(sup, the_default_intensity_is_one_restart_in_5000_ms_one_for_one)
{
	start_vm(2);
	run(drv_default_intensity, 40000);
	vm_stop();
}

/* ---- the report of a stop that did not go as planned ---- */

static atomic_int c_acted;

/* c's init, the first time: end a (crash) and then b (normally) while
 * their supervisor waits for c to start, so that both of their exits are
 * queued when it takes a's, and stops b. */
static int c_init(void *arg)
{
	if (!atomic_exchange(&c_acted, 1)) {
		kr_ref ra = kr_monitor(W(0));
		kr_send(W(0), T_CRASH, NULL, 0);
		VM_CHECK(wait_down(ra, NULL, 10000) == 0, "a did not end");
		kr_ref rb = kr_monitor(W(1));
		kr_send(W(1), T_NORMAL, NULL, 0);
		VM_CHECK(wait_down(rb, NULL, 10000) == 0, "b did not end");
	}
	return w_init(arg);
}

static void drv_unclean_stops(void *arg)
{
	(void)arg;
	kr_child_spec specs[] = { wspec(0, M_TRAP), wspec(1, M_TRAP) };
	kr_sup_flags f = { .strategy = KR_REST_FOR_ONE, .max_restarts = 10 };
	kr_pid s = kr_sup_start_link(&f, specs, 2, NULL);
	kr_child_spec c = wspec(2, M_TRAP);
	c.init = c_init;
	VM_CHECK(kr_sup_start_child(s, &c, NULL) > 0, "c did not start");
	/* s now takes a's end: it stops b (which had ended) and c, and restarts
	 * all three. */
	P_EV("+a +b +c -c +a +b +c");
	VM_CHECK(log_lines("child b", "had already ended by itself when it was to be stopped: normal") ==
	                 1,
	         "no report that b had ended before it was stopped");
	/* Told to stop, d crashes instead. */
	kr_child_spec d = wspec(3, M_BADSTOP);
	VM_CHECK(kr_sup_start_child(s, &d, NULL) > 0, "d did not start");
	VM_CHECK(kr_sup_terminate_child(s, "d", 0) == 0, "terminate d");
	P_EV("+a +b +c -c +a +b +c +d !d");
	VM_CHECK(log_lines("child d", "ended with another reason than shutdown while being stopped: "
	                              "error: crashed while stopping") == 1,
	         "no report that d ended otherwise");
	/* Those two, and no other stop was unclean (c's was clean). */
	VM_CHECK(log_lines("while being stopped", NULL) == 1 && log_lines("to be stopped", NULL) == 1,
	         "other reports of a stop");
	atomic_store(&drv_done, 1);
}

Test(sup, a_stop_that_goes_otherwise_is_reported_as_what_happened)
{
	start_vm(2);
	run(drv_unclean_stops, 20000);
	vm_stop();
}

/* ---- start failures ---- */

static void drv_start_fails(void *arg)
{
	(void)arg;
	/* init fails */
	kr_child_spec specs[] = { wspec(0, M_TRAP), wspec(1, M_FAIL), wspec(2, M_TRAP) };
	kr_pid s = kr_sup_start_link(NULL, specs, 3, "fails");
	VM_CHECK(s == KR_ESTART, "kr_sup_start_link: %lld", (long long)s);
	VM_CHECK(ev_is("+a -a"), "events \"%s\"", ev_now());
	VM_CHECK(!kr_is_alive(W(0)), "a started child survived");
	VM_CHECK(kr_whereis("fails") == KR_ENOPROC, "the name outlived the supervisor");
	VM_CHECK(log_lines("child b", "failed to start: error: init failed (returned 7)") == 1,
	         "no report of b's failure");
	/* the child ends before reporting */
	specs[1] = wspec(1, M_QUIT);
	s = kr_sup_start_link(NULL, specs, 3, "fails");
	VM_CHECK(s == KR_ESTART, "kr_sup_start_link: %lld", (long long)s);
	VM_CHECK(ev_is("+a -a +a -a"), "events \"%s\"", ev_now());
	atomic_store(&drv_done, 1);
}

Test(sup, a_child_that_fails_to_start_fails_the_whole_start)
{
	start_vm(2);
	run(drv_start_fails, 20000);
	vm_stop();
}

/* A nested supervisor whose child fails: the failure climbs. */
static void sup_failing(void *arg)
{
	(void)arg;
	kr_child_spec specs[] = { wspec(3, M_TRAP), wspec(4, M_FAIL) };
	kr_sup_run(NULL, specs, 2);
}

static void drv_nested_fail(void *arg)
{
	(void)arg;
	kr_child_spec specs[] = { wspec(0, M_TRAP),
		                  { .id = "S", .start = sup_failing, .type = KR_SUPERVISOR } };
	kr_pid s = kr_sup_start_link(NULL, specs, 2, NULL);
	VM_CHECK(s == KR_ESTART, "kr_sup_start_link: %lld", (long long)s);
	VM_CHECK(ev_is("+a +d -d -a"), "events \"%s\"", ev_now());
	VM_CHECK(log_lines("child S", "failed to start: shutdown: failed to start child e") == 1,
	         "no report of S's failure");
	atomic_store(&drv_done, 1);
}

Test(sup, a_nested_start_failure_fails_the_parent)
{
	start_vm(2);
	run(drv_nested_fail, 20000);
	vm_stop();
}

/* No room for the child: the spawn fails. */
static void drv_spawn_fails(void *arg)
{
	(void)arg;
	kr_child_spec specs[] = { wspec(0, M_TRAP), wspec(1, M_TRAP) };
	/* driver + supervisor + a = max_procs */
	kr_pid s = kr_sup_start_link(NULL, specs, 2, NULL);
	VM_CHECK(s == KR_ESTART, "kr_sup_start_link: %lld", (long long)s);
	VM_CHECK(log_lines("child b", "failed to start: error: spawn:") == 1, "no report");
	atomic_store(&drv_done, 1);
}

Test(sup, a_child_that_cannot_be_spawned_fails_the_start)
{
	kr_config cfg = { .schedulers = 2, .log = capture, .max_procs = 3 };
	vm_start_cfg(&cfg);
	run(drv_spawn_fails, 20000);
	vm_stop();
}

/* ---- dynamic children ---- */

static void nested_two(void *arg)
{
	(void)arg;
	kr_child_spec specs[] = { wspec(5, 0), wspec(6, 0) };
	kr_sup_run(NULL, specs, 2);
}

static void drv_dynamic(void *arg)
{
	(void)arg;
	kr_child_spec a = wspec(0, M_TRAP), b = wspec(1, M_TRAP);
	kr_pid s = kr_sup_start_link(NULL, &a, 1, NULL);
	kr_pid pb = kr_sup_start_child(s, &b, NULL);
	VM_CHECK(pb > 0 && pb == W(1), "start_child b: %lld", (long long)pb);
	CHECK_WHICH(s, "a b");
	VM_CHECK(kr_sup_start_child(s, &a, NULL) == KR_EEXIST, "a duplicate id");
	kr_child_spec bad = b;
	bad.start = NULL;
	VM_CHECK(kr_sup_start_child(s, &bad, NULL) == KR_EINVAL, "no start function");
	VM_CHECK(kr_sup_start_child(s, NULL, NULL) == KR_EINVAL, "no spec, not simple");
	kr_child_spec fail = wspec(2, M_FAIL);
	VM_CHECK(kr_sup_start_child(s, &fail, NULL) == KR_ESTART, "a child that fails to start");
	CHECK_WHICH(s, "a b");
	kr_sup_counts n;
	VM_CHECK(kr_sup_count_children(s, &n) == 0 && n.specs == 2 && n.active == 2 &&
	                 n.workers == 2 && n.supervisors == 0,
	         "counts %zu %zu %zu %zu", n.specs, n.active, n.workers, n.supervisors);

	VM_CHECK(kr_sup_terminate_child(s, "b", 0) == 0, "terminate b");
	VM_CHECK(!kr_is_alive(pb), "b survived");
	CHECK_WHICH(s, "a b(0)");
	VM_CHECK(kr_sup_terminate_child(s, "b", 0) == 0, "terminate b again");
	VM_CHECK(kr_sup_terminate_child(s, "zz", 0) == KR_ENOPROC, "terminate an unknown id");
	VM_CHECK(kr_sup_terminate_child(s, "b", pb) == KR_EINVAL, "an id and a pid");
	VM_CHECK(kr_sup_terminate_child(s, NULL, W(0)) == KR_EINVAL, "by pid, not simple");
	VM_CHECK(kr_sup_count_children(s, &n) == 0 && n.specs == 2 && n.active == 1, "counts");

	kr_pid pb2 = kr_sup_restart_child(s, "b");
	VM_CHECK(pb2 > 0 && pb2 != pb && pb2 == W(1), "restart_child b: %lld", (long long)pb2);
	VM_CHECK(kr_sup_restart_child(s, "b") == KR_EEXIST, "restart a running child");
	VM_CHECK(kr_sup_delete_child(s, "b") == KR_EEXIST, "delete a running child");
	VM_CHECK(kr_sup_restart_child(s, "zz") == KR_ENOPROC, "restart an unknown id");
	VM_CHECK(kr_sup_delete_child(s, "zz") == KR_ENOPROC, "delete an unknown id");
	kr_sup_terminate_child(s, "b", 0);
	VM_CHECK(kr_sup_delete_child(s, "b") == 0, "delete b");
	CHECK_WHICH(s, "a");
	VM_CHECK(kr_sup_restart_child(s, "b") == KR_ENOPROC, "restart a deleted child");
	/* A deleted id may be used again. */
	VM_CHECK(kr_sup_start_child(s, &b, NULL) > 0, "start b again");

	kr_child_spec nest = { .id = "N", .start = nested_two, .type = KR_SUPERVISOR };
	kr_pid pn = kr_sup_start_child(s, &nest, NULL);
	VM_CHECK(pn > 0, "start a supervisor child: %lld", (long long)pn);
	VM_CHECK(kr_sup_count_children(s, &n) == 0 && n.specs == 3 && n.active == 3 &&
	                 n.workers == 2 && n.supervisors == 1,
	         "counts %zu %zu %zu %zu", n.specs, n.active, n.workers, n.supervisors);
	VM_CHECK(kr_sup_count_children(pn, &n) == 0 && n.active == 2, "the nested supervisor's");
	CHECK_WHICH(pn, "f g");
	VM_CHECK(ev_is("+a +b -b +b -b +b +f +g"), "events \"%s\"", ev_now());
	VM_CHECK(stop_sup(s) == KR_EXIT_SHUTDOWN, "stop");
	VM_CHECK(!kr_is_alive(pn) && !kr_is_alive(W(5)) && !kr_is_alive(W(6)),
	         "the nested tree survived");
	VM_CHECK(kr_sup_count_children(s, &n) == KR_ENOPROC, "a dead supervisor");
	VM_CHECK(kr_sup_which_children(s, NULL, 0) == KR_ENOPROC, "a dead supervisor");
	VM_CHECK(kr_sup_count_children(kr_self(), &n) == KR_EINVAL, "to itself");
	atomic_store(&drv_done, 1);
}

Test(sup, dynamic_start_terminate_restart_delete_which_count)
{
	start_vm(2);
	run(drv_dynamic, 20000);
	vm_stop();
}

/* Thousands of dynamic children found by id: starting, refusing a
 * duplicate, terminating, deleting and restarting each by its id. */
#define BY_ID_N (4000 / KR_TEST_SCALE)

static void idle_child(void *arg)
{
	(void)arg;
	kr_msg *m;
	while (kr_recv(&m, KR_INFINITY) == 0)
		kr_msg_free(m);
}

static kr_child_spec idle_spec(char *id, size_t size, int i)
{
	snprintf(id, size, "conn-%d", i);
	return (kr_child_spec){ .id = id, .start = idle_child };
}

static void drv_by_id(void *arg)
{
	(void)arg;
	kr_pid s = kr_sup_start_link(NULL, NULL, 0, NULL);
	char id[32];
	kr_pid *pids = kr_calloc(BY_ID_N, sizeof *pids);
	VM_CHECK(s > 0 && pids, "the supervisor: %lld", (long long)s);
	for (int i = 0; i < BY_ID_N && pids; i++) {
		kr_child_spec c = idle_spec(id, sizeof id, i);
		pids[i] = kr_sup_start_child(s, &c, NULL);
		VM_CHECK(pids[i] > 0, "start %s: %lld", id, (long long)pids[i]);
		if (i % 97 == 0) {
			kr_child_spec again = idle_spec(id, sizeof id, i / 2);
			VM_CHECK(kr_sup_start_child(s, &again, NULL) == KR_EEXIST, "a duplicate %s", id);
		}
	}
	/* Every other child stopped and deleted, by id. */
	for (int i = 0; i < BY_ID_N && pids; i += 2) {
		snprintf(id, sizeof id, "conn-%d", i);
		VM_CHECK(kr_sup_terminate_child(s, id, 0) == 0, "terminate %s", id);
		VM_CHECK(!kr_is_alive(pids[i]), "%s survived", id);
		VM_CHECK(kr_sup_delete_child(s, id) == 0, "delete %s", id);
	}
	kr_sup_counts n;
	VM_CHECK(kr_sup_count_children(s, &n) == 0 && n.specs == BY_ID_N / 2 &&
	                 n.active == BY_ID_N / 2,
	         "counts: %zu specs, %zu active", n.specs, n.active);
	/* The deleted ids are unknown and free again; the kept ones are found. */
	for (int i = 0; i < BY_ID_N && pids; i++) {
		snprintf(id, sizeof id, "conn-%d", i);
		if (i % 2 == 0) {
			VM_CHECK(kr_sup_restart_child(s, id) == KR_ENOPROC, "%s was deleted", id);
			kr_child_spec c = idle_spec(id, sizeof id, i);
			VM_CHECK(kr_sup_start_child(s, &c, NULL) > 0, "start %s again", id);
		} else {
			VM_CHECK(kr_sup_restart_child(s, id) == KR_EEXIST, "%s is running", id);
		}
	}
	snprintf(id, sizeof id, "conn-%d", BY_ID_N - 1);
	VM_CHECK(kr_sup_terminate_child(s, id, 0) == 0, "terminate %s", id);
	VM_CHECK(kr_sup_restart_child(s, id) > 0, "restart %s", id);
	VM_CHECK(kr_sup_count_children(s, &n) == 0 && n.specs == BY_ID_N && n.active == BY_ID_N,
	         "counts: %zu specs, %zu active", n.specs, n.active);
	VM_CHECK(stop_sup(s) == KR_EXIT_SHUTDOWN, "stop");
	kr_free(pids);
	atomic_store(&drv_done, 1);
}

Test(sup, thousands_of_dynamic_children_by_id, .timeout = 120)
{
	start_vm(2);
	run(drv_by_id, 100000);
	vm_stop();
}

/* The spec's spawn options reach the child: its label, stack and heap. */
static void heap_eater(void *arg)
{
	(void)arg;
	kr_msg *m;
	if (kr_recv(&m, KR_INFINITY) == 0)
		for (;;)
			kr_alloc(4096); /* until max_heap ends it */
}

static void drv_spawn_opts(void *arg)
{
	(void)arg;
	kr_child_spec specs[] = {
		{ .id = "eater", .start = heap_eater, .max_heap = 64 << 10, .name = "hungry",
		  .stack_size = 256 << 10, .restart = KR_TRANSIENT },
		wspec(1, 0),
	};
	kr_pid s = kr_sup_start_link(NULL, specs, 2, NULL);
	kr_sup_child v[2];
	VM_CHECK(kr_sup_which_children(s, v, 2) == 2, "which");
	kr_proc_info info;
	VM_CHECK(kr_info(v[0].pid, &info) == 0 && !strcmp(info.name, "hungry"), "label \"%s\"",
	         info.name);
	VM_CHECK(kr_info(v[1].pid, &info) == 0 && !strcmp(info.name, "b"), "default label \"%s\"",
	         info.name);
	VM_CHECK(end_child(s, v[0].pid, 1) == KR_EXIT_HEAP_LIMIT, "max_heap did not apply");
	CHECK_WHICH(s, "eater b"); /* transient, ended abnormally: restarted */
	atomic_store(&drv_done, 1);
}

Test(sup, a_spec_s_spawn_options_reach_the_child)
{
	start_vm(2);
	run(drv_spawn_opts, 20000);
	vm_stop();
}

/* ---- simple_one_for_one with many children ---- */

#define SIMPLE_N (2000 / VM_LIGHT_DIV)
static atomic_llong job_pid[SIMPLE_N];
static atomic_int job_starts[SIMPLE_N];

static int job_init(void *arg)
{
	intptr_t i = (intptr_t)arg;
	atomic_store(&job_pid[i], kr_self());
	atomic_fetch_add(&job_starts[i], 1);
	return 0;
}

static void job_main(void *arg)
{
	(void)arg;
	w_main((void *)(intptr_t)0);
}

static void drv_simple(void *arg)
{
	(void)arg;
	kr_child_spec tmpl = { .id = "job", .start = job_main, .init = job_init };
	kr_sup_flags f = { .strategy = KR_SIMPLE_ONE_FOR_ONE, .max_restarts = 100 };
	kr_pid s = kr_sup_start_link(&f, &tmpl, 1, NULL);
	VM_CHECK(s > 0, "start: %lld", (long long)s);
	CHECK_WHICH(s, "");
	for (intptr_t i = 0; i < SIMPLE_N; i++) {
		kr_pid p = kr_sup_start_child(s, NULL, (void *)i);
		VM_CHECK(p > 0 && p == atomic_load(&job_pid[i]), "start_child %ld: %lld", (long)i,
		         (long long)p);
	}
	kr_sup_counts n;
	VM_CHECK(kr_sup_count_children(s, &n) == 0 && n.specs == 1 && n.active == SIMPLE_N &&
	                 n.workers == SIMPLE_N && n.supervisors == 0,
	         "counts %zu %zu %zu", n.specs, n.active, n.workers);
	kr_sup_child *v = kr_calloc(SIMPLE_N, sizeof *v);
	VM_CHECK(kr_sup_which_children(s, v, SIMPLE_N) == SIMPLE_N, "which_children");
	for (int i = 0; i < SIMPLE_N; i++)
		VM_CHECK(v[i].pid == atomic_load(&job_pid[i]) && v[i].id[0] == 0, "child %d", i);
	/* Crashed children come back with their own arg. */
	uint32_t seed = 12345;
	for (int k = 0; k < 20; k++) {
		int i = (int)(vm_rand(&seed) % SIMPLE_N);
		kr_pid old = atomic_load(&job_pid[i]);
		int starts = atomic_load(&job_starts[i]);
		end_child(s, old, T_CRASH);
		VM_CHECK(atomic_load(&job_pid[i]) != old &&
		                 atomic_load(&job_starts[i]) == starts + 1,
		         "child %d not restarted with its arg", i);
	}
	/* Terminated by pid: gone for good. */
	kr_pid gone = atomic_load(&job_pid[0]);
	VM_CHECK(kr_sup_terminate_child(s, NULL, gone) == 0, "terminate by pid");
	VM_CHECK(!kr_is_alive(gone), "it survived");
	VM_CHECK(kr_sup_terminate_child(s, NULL, gone) == KR_ENOPROC, "terminate it again");
	VM_CHECK(kr_sup_count_children(s, &n) == 0 && n.active == SIMPLE_N - 1 &&
	                 n.workers == SIMPLE_N - 1,
	         "counts after terminate: %zu", n.active);
	VM_CHECK(kr_sup_terminate_child(s, "job", 0) == KR_EINVAL, "terminate by id");
	VM_CHECK(kr_sup_restart_child(s, "job") == KR_EINVAL, "restart_child");
	VM_CHECK(kr_sup_delete_child(s, "job") == KR_EINVAL, "delete_child");
	VM_CHECK(kr_sup_start_child(s, &tmpl, NULL) == KR_EINVAL, "start_child with a spec");
	/* A normal end: permanent, so restarted. */
	kr_pid p1 = atomic_load(&job_pid[1]);
	end_child(s, p1, T_NORMAL);
	VM_CHECK(kr_sup_which_children(s, NULL, 0) == SIMPLE_N - 1, "count");
	VM_CHECK(atomic_load(&job_pid[1]) != p1, "not restarted");
	VM_CHECK(stop_sup(s) == KR_EXIT_SHUTDOWN, "stop");
	for (int i = 1; i < SIMPLE_N; i++)
		VM_CHECK(!kr_is_alive(atomic_load(&job_pid[i])), "child %d survived", i);
	kr_free(v);
	atomic_store(&drv_done, 1);
}

Test(sup, simple_one_for_one_with_many_children, .timeout = 120)
{
	start_vm(2);
	run(drv_simple, 100000);
	vm_stop();
}

/* simple_one_for_one stops its children all at once: children that
 * ignore shutdown are all killed after one timeout. */
#define IGNORERS 20

static int ignorer_init(void *arg)
{
	(void)arg;
	kr_trap_exit(1);
	return 0;
}

static void ignorer(void *arg)
{
	(void)arg;
	w_main((void *)(intptr_t)(7 | M_IGNORE));
}

static void drv_simple_stop(void *arg)
{
	(void)arg;
	kr_child_spec tmpl = {
		.id = "ig", .start = ignorer, .init = ignorer_init, .shutdown = 300
	};
	kr_sup_flags f = { .strategy = KR_SIMPLE_ONE_FOR_ONE };
	kr_pid s = kr_sup_start_link(&f, &tmpl, 1, NULL);
	kr_ref refs[IGNORERS];
	for (int i = 0; i < IGNORERS; i++) {
		kr_pid p = kr_sup_start_child(s, NULL, NULL);
		refs[i] = kr_monitor(p);
	}
	int64_t t0 = vm_now_ns();
	VM_CHECK(stop_sup(s) == KR_EXIT_SHUTDOWN, "stop");
	VM_CHECK(vm_ms_since(t0) >= 299, "stopped before the timeout");
	for (int i = 0; i < IGNORERS; i++) {
		kr_reason r = { .kind = -1 };
		VM_CHECK(wait_down(refs[i], &r, 1000) == 0 && r.kind == KR_EXIT_KILLED,
		         "child %d: %d", i, r.kind);
	}
	atomic_store(&drv_done, 1);
}

Test(sup, simple_one_for_one_stops_its_children_together)
{
	start_vm(2);
	run(drv_simple_stop, 20000);
	vm_stop();
}

/* ---- the parent's end, and exit signals from strangers ---- */

static atomic_llong parent_sup;

static void drv_killed(void *arg)
{
	(void)arg;
	kr_child_spec specs[] = { wspec(0, 0), wspec(1, 0), wspec(2, M_TRAP) };
	kr_pid s = kr_sup_start_link(NULL, specs, 3, NULL);
	kr_pid a = W(0), b = W(1), c = W(2);
	kr_ref ra = kr_monitor(a), rc = kr_monitor(c);
	kr_exit_sig(s, KR_EXIT_KILL);
	kr_reason r;
	VM_CHECK(wait_down(ra, &r, 5000) == 0 && r.kind == KR_EXIT_KILLED, "a: %d", r.kind);
	VM_CHECK(wait_down(rc, &r, 5000) == 0 && r.kind == KR_EXIT_KILLED, "c: %d", r.kind);
	while (kr_is_alive(b))
		kr_sleep(1);
	VM_CHECK(ev_is("+a +b +c -c"), "events \"%s\"", ev_now());
	atomic_store(&drv_done, 1);
}

Test(sup, a_supervisor_killed_by_its_parent_takes_its_children_down)
{
	start_vm(2);
	run(drv_killed, 20000);
	vm_stop();
}

/* The parent crashes: the supervisor stops its children in reverse order
 * and ends with the parent's reason. */
static atomic_int observed_kind, observing;
static char observed_text[128];

static void crashing_parent(void *arg)
{
	(void)arg;
	kr_child_spec specs[] = { wspec(0, M_TRAP), wspec(1, M_TRAP), wspec(2, M_TRAP) };
	atomic_store(&parent_sup, kr_sup_start_link(NULL, specs, 3, NULL));
	while (!atomic_load(&observing))
		kr_sleep(1);
	kr_crash("the parent crashes");
}

static void observer(void *arg)
{
	(void)arg;
	while (!atomic_load(&parent_sup))
		kr_sleep(1);
	kr_ref ref = kr_monitor((kr_pid)atomic_load(&parent_sup));
	atomic_store(&observing, 1);
	kr_reason r = { .kind = -1 };
	VM_CHECK(wait_down(ref, &r, 10000) == 0, "no DOWN");
	snprintf(observed_text, sizeof observed_text, "%s", r.text);
	atomic_store(&observed_kind, r.kind);
}

Test(sup, the_parent_ends_and_the_supervisor_follows_with_its_reason)
{
	start_vm(2);
	atomic_store(&observed_kind, -1);
	kr_pid o = vm_spawn(observer, NULL);
	vm_spawn(crashing_parent, NULL);
	cr_assert(VM_WAIT(!kr_is_alive(o), 10000));
	cr_assert_eq(atomic_load(&observed_kind), KR_EXIT_ERROR);
	cr_assert_str_eq(observed_text, "the parent crashes");
	cr_assert(ev_is("+a +b +c -c -b -a"), "events \"%s\"", ev_now());
	cr_assert(VM_WAIT(vm_alive() == 0, 5000), "%zu left", vm_alive());
	vm_assert_clean();
	vm_stop();
}

static void stranger(void *arg)
{
	kr_pid s = *(kr_pid *)arg;
	kr_link(s);
	kr_exit_sig(s, KR_EXIT_SHUTDOWN);
	kr_crash("a stranger crashes");
}

static void drv_strangers(void *arg)
{
	(void)arg;
	kr_child_spec specs[] = { wspec(0, M_TRAP) };
	static kr_pid s;
	s = kr_sup_start_link(NULL, specs, 1, NULL);
	kr_pid a = W(0);
	kr_ref ref = kr_monitor(kr_spawn(stranger, &s));
	wait_down(ref, NULL, 5000);
	CHECK_WHICH(s, "a");
	VM_CHECK(kr_is_alive(s) && W(0) == a, "an exit signal from a stranger was obeyed");
	VM_CHECK(ev_is("+a"), "events \"%s\"", ev_now());
	atomic_store(&drv_done, 1);
}

Test(sup, exit_signals_from_strangers_are_ignored)
{
	start_vm(2);
	run(drv_strangers, 20000);
	vm_stop();
}

/* kr_sup_run in a process no supervisor started: exit signals from host
 * threads are its parent's. */
static void root_sup(void *arg)
{
	(void)arg;
	kr_child_spec specs[] = { wspec(0, M_TRAP), wspec(1, M_TRAP) };
	kr_sup_run(NULL, specs, 2);
}

Test(sup, a_root_supervisor_obeys_host_threads)
{
	start_vm(2);
	kr_pid r = vm_spawn(root_sup, NULL);
	cr_assert(VM_WAIT(ev_is("+a +b"), 10000), "events \"%s\"", ev_now());
	cr_assert_eq(kr_exit_sig(r, KR_EXIT_SHUTDOWN), 0);
	cr_assert(VM_WAIT(vm_alive() == 0, 10000), "%zu left", vm_alive());
	cr_assert(ev_is("+a +b -b -a"), "events \"%s\"", ev_now());
	vm_assert_clean();
	vm_stop();
}

/* ---- bad arguments ---- */

static void drv_bad(void *arg)
{
	(void)arg;
	kr_child_spec a = wspec(0, 0);
	kr_child_spec two[] = { a, a };
	VM_CHECK(kr_sup_start_link(NULL, two, 2, NULL) == KR_EINVAL, "two children with one id");
	kr_sup_flags f = { .strategy = 9 };
	VM_CHECK(kr_sup_start_link(&f, &a, 1, NULL) == KR_EINVAL, "a bad strategy");
	f = (kr_sup_flags){ .strategy = KR_SIMPLE_ONE_FOR_ONE };
	VM_CHECK(kr_sup_start_link(&f, two, 2, NULL) == KR_EINVAL, "simple with two specs");
	f = (kr_sup_flags){ .max_restarts = -5 };
	VM_CHECK(kr_sup_start_link(&f, &a, 1, NULL) == KR_EINVAL, "negative intensity");
	kr_child_spec bad = a;
	bad.id = "";
	VM_CHECK(kr_sup_start_link(NULL, &bad, 1, NULL) == KR_EINVAL, "an empty id");
	bad = a;
	bad.restart = 7;
	VM_CHECK(kr_sup_start_link(NULL, &bad, 1, NULL) == KR_EINVAL, "a bad restart type");
	bad = a;
	bad.shutdown = -3;
	VM_CHECK(kr_sup_start_link(NULL, &bad, 1, NULL) == KR_EINVAL, "a bad shutdown");
	bad = a;
	bad.stack_size = 100;
	VM_CHECK(kr_sup_start_link(NULL, &bad, 1, NULL) == KR_EINVAL, "a bad stack size");
	VM_CHECK(kr_sup_run(&(kr_sup_flags){ .strategy = -1 }, &a, 1) == KR_EINVAL, "kr_sup_run");
	kr_pid s = kr_sup_start_link(NULL, NULL, 0, "taken");
	VM_CHECK(s > 0, "a supervisor without children: %lld", (long long)s);
	VM_CHECK(kr_sup_start_link(NULL, NULL, 0, "taken") == KR_EEXIST, "a name taken");
	VM_CHECK(kr_sup_start_link(NULL, NULL, 0, "") == KR_EINVAL, "an empty name");
	VM_CHECK(kr_sup_which_children(s, NULL, 0) == 0, "no children");
	VM_CHECK(kr_sup_count_children(s, NULL) == KR_EINVAL, "count into NULL");
	VM_CHECK(kr_sup_which_children(s, NULL, 3) == KR_EINVAL, "which into NULL");
	VM_CHECK(kr_sup_terminate_child(s, NULL, 0) == KR_EINVAL, "terminate nothing");
	VM_CHECK(kr_sup_restart_child(s, NULL) == KR_EINVAL, "restart NULL");
	VM_CHECK(kr_sup_delete_child(0, "a") == KR_ENOPROC, "pid 0");
	atomic_store(&drv_done, 1);
}

Test(sup, bad_arguments_and_host_threads)
{
	start_vm(1);
	kr_child_spec a = wspec(0, 0);
	kr_sup_counts n;
	/* A host thread cannot be a supervisor, but its requests work
	 * (test_intro.c, test_host.c); this pid names no process. */
	cr_assert_eq(kr_sup_run(NULL, &a, 1), KR_ENOTPROC);
	cr_assert_eq(kr_sup_start_child(1 << 26 | 1, &a, NULL), KR_ENOPROC);
	cr_assert_eq(kr_sup_terminate_child(1 << 26 | 1, "a", 0), KR_ENOPROC);
	cr_assert_eq(kr_sup_restart_child(1 << 26 | 1, "a"), KR_ENOPROC);
	cr_assert_eq(kr_sup_delete_child(1 << 26 | 1, "a"), KR_ENOPROC);
	cr_assert_eq(kr_sup_which_children(1 << 26 | 1, NULL, 0), KR_ENOPROC);
	cr_assert_eq(kr_sup_count_children(1 << 26 | 1, &n), KR_ENOPROC);
	cr_assert_eq(kr_host_release(), 0); /* run() waits for no process left */
	run(drv_bad, 20000);
	kr_pid s = kr_sup_start_link(NULL, &a, 1, NULL);
	cr_assert_gt(s, 0, "kr_sup_start_link from a host thread: %lld", (long long)s);
	cr_assert_eq(kr_sup_which_children(s, NULL, 0), 1);
	vm_stop();
}
