/*
 * test_log.c - the VM's reports by level (sched/report.c, vm/log.c, and
 * the reports of vm/exit.c and vm/sup.c): each report at its level, as
 * OTP's logger has them; the level setting (kr_config.log_level, the
 * deprecated no_reports, kr_log_set_level at run time from host threads);
 * kr_log; no report for a process ended by another's exit signal; nothing
 * per process when a VM stops, a supervisor stops its children or an exit
 * signal kills a crowd of linked processes; and the burst limit, which
 * drops reports past it and says how many.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "fault_util.h"
#include "krill.h"
#include "vm_util.h"

TestSuite(log, .fini = vm_fini, .timeout = 120);

/* ---- the reports, captured with their levels ---- */

#define LOG_MAX 256
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct { int level; char line[512]; } logged[LOG_MAX];
static atomic_int log_n;                   /* reports seen, kept or not */
static atomic_int per_level[KR_LOG_DEBUG + 1];
static atomic_long dropped;                /* the sum of "N reports dropped" */
static atomic_int drop_lines, drop_level;

static void keep(int level, const char *line, void *ctx)
{
	(void)ctx;
	if (level >= KR_LOG_EMERGENCY && level <= KR_LOG_DEBUG)
		atomic_fetch_add(&per_level[level], 1);
	long n;
	if (sscanf(line, "krill: %ld reports dropped", &n) == 1) {
		atomic_fetch_add(&dropped, n);
		atomic_fetch_add(&drop_lines, 1);
		atomic_store(&drop_level, level);
	}
	pthread_mutex_lock(&log_lock);
	int i = atomic_fetch_add(&log_n, 1);
	if (i < LOG_MAX) {
		logged[i].level = level;
		snprintf(logged[i].line, sizeof logged[i].line, "%s", line);
	}
	pthread_mutex_unlock(&log_lock);
}

static void log_reset(void)
{
	pthread_mutex_lock(&log_lock);
	atomic_store(&log_n, 0);
	for (int i = 0; i <= KR_LOG_DEBUG; i++)
		atomic_store(&per_level[i], 0);
	atomic_store(&dropped, 0);
	atomic_store(&drop_lines, 0);
	atomic_store(&drop_level, 0);
	pthread_mutex_unlock(&log_lock);
}

/* Kept reports that contain s at this level (0: at any level). */
static int log_has(int level, const char *s)
{
	int n = 0;
	pthread_mutex_lock(&log_lock);
	int k = atomic_load(&log_n);
	for (int i = 0; i < k && i < LOG_MAX; i++)
		n += (!level || logged[i].level == level) && strstr(logged[i].line, s);
	pthread_mutex_unlock(&log_lock);
	return n;
}

/* All kept reports, for a failure's message. */
static const char *log_dump(void)
{
	static char text[8192];
	size_t len = 0;
	text[0] = 0;
	pthread_mutex_lock(&log_lock);
	int k = atomic_load(&log_n);
	for (int i = 0; i < k && i < LOG_MAX && len < sizeof text - 1; i++) {
		int w = snprintf(text + len, sizeof text - len, "\n  [%s] %.200s",
		                 kr_log_level_name(logged[i].level), logged[i].line);
		if (w < 0)
			break;
		len += (size_t)w < sizeof text - len ? (size_t)w : sizeof text - len - 1;
	}
	pthread_mutex_unlock(&log_lock);
	return text;
}

static void start_logged(int level)
{
	log_reset();
	kr_config cfg = { .schedulers = 2, .log_handler = keep, .log_level = level };
	vm_start_cfg(&cfg);
}

/* For the crowds: the watchdog kept out. A process's end that sends
 * exit signals to a crowd of linked processes, or a supervisor that stops
 * a crowd of children, runs for more than its 10 ms without a switch, and
 * its warning (one, not one per process) is not what these tests count. */
static void start_crowd(int level)
{
	log_reset();
	kr_config cfg = { .schedulers = 2, .log_handler = keep, .log_level = level,
		          .watchdog_ms = 600000 };
	vm_start_cfg(&cfg);
}

/* ---- the level setting ---- */

Test(log, the_level_is_notice_unless_set_and_bad_settings_are_refused)
{
	cr_assert_eq(kr_log_get_level(), KR_ESTOPPED);
	cr_assert_eq(kr_log_set_level(KR_LOG_INFO), KR_ESTOPPED);
	cr_assert_eq(kr_log(KR_LOG_ERROR, "x"), KR_ESTOPPED);
	kr_config bad = { .log_level = KR_LOG_DEBUG + 1 };
	cr_assert_eq(kr_vm_start(&bad), KR_EINVAL);
	bad.log_level = -1;
	cr_assert_eq(kr_vm_start(&bad), KR_EINVAL);
	bad = (kr_config){ .log = vm_quiet_log, .log_handler = keep };
	cr_assert_eq(kr_vm_start(&bad), KR_EINVAL, "both log and log_handler");

	vm_start(1);
	cr_assert_eq(kr_log_get_level(), KR_LOG_NOTICE);
	cr_assert_eq(kr_log_set_level(KR_LOG_ERROR), KR_LOG_NOTICE);
	cr_assert_eq(kr_log_set_level(KR_LOG_NONE), KR_LOG_ERROR);
	cr_assert_eq(kr_log_set_level(KR_LOG_ALL), KR_LOG_NONE);
	cr_assert_eq(kr_log_get_level(), KR_LOG_DEBUG);
	cr_assert_eq(kr_log_set_level(KR_LOG_DEFAULT), KR_LOG_DEBUG);
	cr_assert_eq(kr_log_get_level(), KR_LOG_NOTICE, "KR_LOG_DEFAULT is notice");
	cr_assert_eq(kr_log_set_level(-1), KR_EINVAL);
	cr_assert_eq(kr_log_set_level(KR_LOG_DEBUG + 1), KR_EINVAL);
	cr_assert_eq(kr_log_get_level(), KR_LOG_NOTICE, "a refused level changed the level");
	cr_assert_eq(kr_log(KR_LOG_NONE, "x"), KR_EINVAL);
	cr_assert_eq(kr_log(KR_LOG_DEBUG + 1, "x"), KR_EINVAL);
	cr_assert_eq(kr_log(KR_LOG_ERROR, NULL), KR_EINVAL);
	vm_stop();

	/* A level given at start; and a VM started again starts afresh. */
	start_logged(KR_LOG_WARNING);
	cr_assert_eq(kr_log_get_level(), KR_LOG_WARNING);
	vm_stop();
	start_logged(KR_LOG_DEFAULT);
	cr_assert_eq(kr_log_get_level(), KR_LOG_NOTICE);
	vm_stop();

	static const char *names[] = { "unknown", "none", "emergency", "alert", "critical",
		                       "error", "warning", "notice", "info", "debug" };
	for (int i = 0; i <= KR_LOG_DEBUG; i++)
		cr_assert_str_eq(kr_log_level_name(i), names[i]);
	cr_assert_str_eq(kr_log_level_name(-1), "unknown");
	cr_assert_str_eq(kr_log_level_name(KR_LOG_DEBUG + 1), "unknown");
}

/* ---- kr_log, and what each level lets through ---- */

static void log_every_level(void *arg)
{
	(void)arg;
	for (int l = KR_LOG_EMERGENCY; l <= KR_LOG_DEBUG; l++)
		VM_CHECK(kr_log(l, "mine at %s", kr_log_level_name(l)) == 0, "kr_log(%d)", l);
}

/* Each level lets through exactly the reports at it and above, from a
 * process and from a host thread alike. */
Test(log, each_level_lets_through_the_reports_at_it_and_above)
{
	const int levels[] = { KR_LOG_NONE, KR_LOG_ERROR, KR_LOG_WARNING, KR_LOG_NOTICE, KR_LOG_INFO,
		               KR_LOG_DEBUG };
	for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
		int at = levels[i];
		start_logged(at);
		kr_pid p = vm_spawn(log_every_level, NULL);
		cr_assert(VM_WAIT(!kr_is_alive(p), 5000));
		for (int l = KR_LOG_EMERGENCY; l <= KR_LOG_DEBUG; l++)
			cr_assert_eq(kr_log(l, "host's at %s", kr_log_level_name(l)), 0);
		vm_stop();
		for (int l = KR_LOG_EMERGENCY; l <= KR_LOG_DEBUG; l++) {
			char want[32];
			snprintf(want, sizeof want, "at %s", kr_log_level_name(l));
			int n = log_has(l, want);
			cr_assert_eq(n, l <= at ? 2 : 0, "level %s: %d reports at %s:%s",
			             kr_log_level_name(at), n, kr_log_level_name(l), log_dump());
		}
		cr_assert_eq(atomic_load(&log_n), at == KR_LOG_NONE ? 0 : 2 * (at - KR_LOG_NONE),
		             "level %s:%s", kr_log_level_name(at), log_dump());
	}
}

/* kr_config.log, the callback without the level, gets the same reports. */
static atomic_int plain_n;
static char plain_line[256];

static void plain(const char *line, void *ctx)
{
	VM_CHECK(ctx == &plain_n, "log_ctx not passed");
	if (atomic_fetch_add(&plain_n, 1) == 0)
		snprintf(plain_line, sizeof plain_line, "%s", line);
}

Test(log, the_callback_without_a_level_gets_the_reports_at_or_above_it)
{
	kr_config cfg = { .schedulers = 1, .log = plain, .log_ctx = &plain_n,
		          .log_level = KR_LOG_ERROR };
	vm_start_cfg(&cfg);
	cr_assert_eq(kr_log(KR_LOG_WARNING, "a warning"), 0);
	cr_assert_eq(kr_log(KR_LOG_ERROR, "an error %d", 42), 0);
	vm_stop();
	cr_assert_eq(atomic_load(&plain_n), 1);
	cr_assert_str_eq(plain_line, "an error 42");
}

/* ---- crash reports: errors ---- */

static void crasher(void *arg)
{
	switch ((int)(intptr_t)arg) {
	case 0: kr_crash("crashed on purpose"); break;
	case 1: fault_store_null(); break;
	case 2: kr_alloc(1 << 20); break; /* past max_heap */
	case 3: kr_exit(KR_EXIT_KILLED); break; /* abnormal, and its own doing */
	}
}

Test(log, a_process_that_crashes_makes_one_error_report)
{
	static const char *what[] = { "crashed: error: crashed on purpose", "crashed: segfault",
		                      "crashed: heap_limit", "crashed: killed" };
	for (int i = 0; i < 4; i++) {
		start_logged(KR_LOG_DEFAULT);
		kr_spawn_opts o = { .name = "crasher", .max_heap = 64 << 10 };
		kr_pid p = kr_spawn_opt(crasher, (void *)(intptr_t)i, &o);
		cr_assert_gt(p, 0);
		cr_assert(VM_WAIT(atomic_load(&log_n) >= 1, 5000), "no report of way %d", i);
		cr_assert(VM_WAIT(!kr_is_alive(p), 5000));
		vm_stop();
		cr_assert_eq(atomic_load(&log_n), 1, "way %d:%s", i, log_dump());
		cr_assert_eq(log_has(KR_LOG_ERROR, what[i]), 1, "way %d:%s", i, log_dump());
	}
}

/* ---- ended by another's exit signal: no report (OTP makes none) ---- */

static void sleeper(void *arg)
{
	(void)arg;
	kr_sleep(KR_INFINITY);
}

/* Linked to a sleeper, then crashes: the sleeper ends by the link's exit
 * signal, which is no crash of its own. */
static atomic_llong partner;

static void crashes_linked(void *arg)
{
	(void)arg;
	kr_spawn_opts o = { .name = "partner", .link = 1 };
	kr_pid p = kr_spawn_opt(sleeper, NULL, &o);
	VM_CHECK(p > 0, "spawn");
	atomic_store(&partner, p);
	kr_crash("the linked one fails");
}

static kr_pid killed_target;

static void killer(void *arg)
{
	(void)arg;
	VM_CHECK(kr_exit_sig(killed_target, KR_EXIT_KILL) == 0, "kr_exit_sig");
}

static void killed_three_ways(void)
{
	/* By a host thread. */
	kr_spawn_opts o = { .name = "victim" };
	kr_pid a = kr_spawn_opt(sleeper, NULL, &o);
	cr_assert_gt(a, 0);
	cr_assert_eq(kr_exit_sig(a, KR_EXIT_KILL), 0);
	/* By another process. */
	killed_target = kr_spawn_opt(sleeper, NULL, &o);
	cr_assert_gt(killed_target, 0);
	vm_spawn(killer, NULL);
	/* By a linked process's crash (that crash is reported). */
	atomic_store(&partner, 0);
	vm_spawn(crashes_linked, NULL);
	cr_assert(VM_WAIT(!kr_is_alive(a) && !kr_is_alive(killed_target) && atomic_load(&partner) > 0 &&
	                          !kr_is_alive((kr_pid)atomic_load(&partner)) && vm_alive() == 0,
	                  5000));
}

Test(log, a_process_ended_by_an_exit_signal_makes_no_report)
{
	start_logged(KR_LOG_DEFAULT);
	killed_three_ways();
	cr_assert(VM_WAIT(atomic_load(&log_n) >= 1, 5000));
	vm_stop();
	cr_assert_eq(atomic_load(&log_n), 1, "only the crash is reported:%s", log_dump());
	cr_assert_eq(log_has(KR_LOG_ERROR, "crashed: error: the linked one fails"), 1, "%s",
	             log_dump());
}

Test(log, at_debug_an_end_by_an_exit_signal_is_a_debug_line)
{
	start_logged(KR_LOG_DEBUG);
	killed_three_ways();
	cr_assert(VM_WAIT(atomic_load(&log_n) >= 4, 5000), "%s", log_dump());
	vm_stop();
	cr_assert_eq(atomic_load(&log_n), 4, "%s", log_dump());
	cr_assert_eq(log_has(KR_LOG_DEBUG, "victim exited: killed (exit signal from a host thread)"),
	             1, "%s", log_dump());
	cr_assert_eq(log_has(KR_LOG_DEBUG, "victim exited: killed (exit signal from <0."), 1, "%s",
	             log_dump());
	cr_assert_eq(log_has(KR_LOG_DEBUG, "partner exited: error: the linked one fails (exit "
	                                   "signal from <0."),
	             1, "%s", log_dump());
	cr_assert_eq(log_has(KR_LOG_ERROR, "crashed: error: the linked one fails"), 1, "%s",
	             log_dump());
}

/* ---- supervisors: errors, and progress at info ---- */

static atomic_int sup_done;

static int init_fails(void *arg)
{
	(void)arg;
	return 7;
}

static void stubborn(void *arg)
{
	(void)arg;
	kr_trap_exit(1); /* takes the shutdown as a message, and sleeps on */
	kr_sleep(KR_INFINITY);
}

static void stop_sup(kr_pid s)
{
	kr_monitor(s);
	kr_exit_sig(s, KR_EXIT_SHUTDOWN);
	kr_msg *m;
	VM_CHECK(kr_recv_tag(&m, KR_TAG_DOWN, 20000) == 0, "the supervisor did not end");
	kr_msg_free(m);
}

/* A worker that crashes once (restarted), a supervisor that gives up, a
 * child whose init fails, and one that will not stop within its
 * shutdown. */
static void sup_driver(void *arg)
{
	(void)arg;
	kr_trap_exit(1);
	kr_child_spec w = { .id = "w", .start = sleeper };
	kr_sup_flags f = { .strategy = KR_ONE_FOR_ONE, .max_restarts = 1, .period_ms = 60000 };
	kr_pid s = kr_sup_start_link(&f, &w, 1, NULL);
	VM_CHECK(s > 0, "kr_sup_start_link: %lld", (long long)s);
	kr_sup_child c;
	VM_CHECK(kr_sup_which_children(s, &c, 1) == 1, "which_children");
	kr_pid first = c.pid;
	kr_exit_sig(first, KR_EXIT_ERROR); /* restarted */
	while (kr_sup_which_children(s, &c, 1) == 1 && (c.pid == first || !kr_is_alive(c.pid)))
		kr_sleep(1);
	kr_monitor(s);
	kr_exit_sig(c.pid, KR_EXIT_ERROR); /* the second in 60 s: gives up */
	kr_msg *m;
	VM_CHECK(kr_recv_tag(&m, KR_TAG_DOWN, 20000) == 0, "the supervisor did not give up");
	kr_msg_free(m);

	kr_child_spec bad = { .id = "bad", .start = sleeper, .init = init_fails };
	VM_CHECK(kr_sup_start_link(&f, &bad, 1, NULL) == KR_ESTART, "a failing init started");

	kr_child_spec st = { .id = "stubborn", .start = stubborn, .shutdown = 20 };
	s = kr_sup_start_link(&f, &st, 1, NULL);
	VM_CHECK(s > 0, "kr_sup_start_link: %lld", (long long)s);
	stop_sup(s);
	atomic_store(&sup_done, 1);
}

static void run_sup_driver(int level)
{
	atomic_store(&sup_done, 0);
	start_logged(level);
	vm_spawn(sup_driver, NULL);
	cr_assert(VM_WAIT(atomic_load(&sup_done), 20000), "%s", log_dump());
	cr_assert(VM_WAIT(vm_alive() == 0, 5000));
	vm_stop();
}

static const char *const sup_errors[] = {
	"child w <", /* terminated, twice */
	"reached max restart intensity (more than 1 restarts in 60000 ms)",
	"failed to start: error: init failed (returned 7)",
	"child stubborn <0.", /* did not stop within 20 ms */
};

Test(log, a_supervisor_reports_errors_and_its_progress_only_at_info)
{
	run_sup_driver(KR_LOG_DEFAULT);
	cr_assert_eq(log_has(KR_LOG_ERROR, "terminated: error"), 2, "%s", log_dump());
	for (size_t i = 0; i < sizeof sup_errors / sizeof sup_errors[0]; i++)
		cr_assert_geq(log_has(KR_LOG_ERROR, sup_errors[i]), 1, "no \"%s\":%s", sup_errors[i],
		              log_dump());
	cr_assert_eq(log_has(KR_LOG_ERROR, "did not stop within 20 ms: killed"), 1, "%s", log_dump());
	cr_assert_eq(log_has(0, " started as "), 0, "progress at notice:%s", log_dump());
	cr_assert_eq(log_has(0, " restarted as "), 0, "progress at notice:%s", log_dump());
	cr_assert_eq(atomic_load(&per_level[KR_LOG_INFO]) + atomic_load(&per_level[KR_LOG_DEBUG]), 0,
	             "%s", log_dump());
	/* The bad init's crash report, and nothing more than the above. */
	cr_assert_eq(log_has(KR_LOG_ERROR, "bad crashed: error: init failed"), 1, "%s", log_dump());
	int errors = atomic_load(&per_level[KR_LOG_ERROR]);

	run_sup_driver(KR_LOG_INFO);
	cr_assert_eq(atomic_load(&per_level[KR_LOG_ERROR]), errors, "%s", log_dump());
	cr_assert_eq(log_has(KR_LOG_INFO, "child w started as <0."), 1, "%s", log_dump());
	cr_assert_eq(log_has(KR_LOG_INFO, "child w restarted as <0."), 1, "%s", log_dump());
	cr_assert_eq(log_has(KR_LOG_INFO, "child stubborn started as <0."), 1, "%s", log_dump());
	cr_assert_eq(atomic_load(&per_level[KR_LOG_INFO]), 3, "%s", log_dump());
}

/* ---- the level, set at run time from host threads ---- */

static atomic_int informed;

/* Makes an info report each time it is asked, and counts. */
static void informer(void *arg)
{
	(void)arg;
	kr_msg *m;
	while (kr_recv(&m, KR_INFINITY) == 0) {
		kr_log(KR_LOG_INFO, "informer says %d", (int)m->tag);
		kr_msg_free(m);
		atomic_fetch_add(&informed, 1);
	}
}

static atomic_int setter_go;

/* A host thread of the program's own, setting the level. */
static void *setter(void *arg)
{
	while (!atomic_load(&setter_go))
		vm_host_sleep_ms(1);
	return (void *)(intptr_t)kr_log_set_level((int)(intptr_t)arg);
}

Test(log, the_level_set_from_a_host_thread_takes_effect_at_once)
{
	start_logged(KR_LOG_DEFAULT);
	atomic_store(&informed, 0);
	kr_pid p = vm_spawn(informer, NULL);
	/* Each round: the level set by another host thread, then the
	 * informer asked for an info report. */
	const int rounds[] = { KR_LOG_INFO, KR_LOG_NOTICE, KR_LOG_DEBUG, KR_LOG_ERROR, KR_LOG_NONE,
		               KR_LOG_INFO };
	const int n = (int)(sizeof rounds / sizeof rounds[0]);
	int want = 0;
	for (int i = 0; i < n; i++) {
		atomic_store(&setter_go, 0);
		pthread_t t;
		cr_assert_eq(pthread_create(&t, NULL, setter, (void *)(intptr_t)rounds[i]), 0);
		atomic_store(&setter_go, 1);
		void *old;
		pthread_join(t, &old);
		cr_assert_eq((int)(intptr_t)old, i ? rounds[i - 1] : KR_LOG_NOTICE, "round %d", i);
		cr_assert_eq(kr_log_get_level(), rounds[i]);
		cr_assert_eq(kr_send(p, (uint64_t)(i + 10), NULL, 0), 0);
		cr_assert(VM_WAIT(atomic_load(&informed) == i + 1, 5000));
		char said[32];
		snprintf(said, sizeof said, "informer says %d", i + 10);
		int on = rounds[i] >= KR_LOG_INFO;
		want += on;
		cr_assert_eq(log_has(KR_LOG_INFO, said), on, "round %d (level %s):%s", i,
		             kr_log_level_name(rounds[i]), log_dump());
	}
	vm_stop();
	cr_assert_eq(atomic_load(&per_level[KR_LOG_INFO]), want, "%s", log_dump());
}

/* Host threads change the level while processes report as fast as they
 * can: no race (TSan), every report at a level that was in force, and the
 * level in the end one of those set. */
static atomic_int chatter_stop;

static void chatter(void *arg)
{
	(void)arg;
	while (!atomic_load(&chatter_stop)) {
		kr_log(KR_LOG_INFO, "chatter");
		kr_log(KR_LOG_ERROR, "chatter");
		kr_yield();
	}
}

static void *flipper(void *arg)
{
	int k = (int)(intptr_t)arg;
	for (int i = 0; i < 2000 / VM_LIGHT_DIV; i++)
		kr_log_set_level((i + k) % 2 ? KR_LOG_INFO : KR_LOG_NONE);
	return NULL;
}

Test(log, host_threads_set_the_level_while_processes_report)
{
	log_reset();
	kr_config cfg = { .schedulers = 2, .log_handler = keep, .log_burst = -1 };
	vm_start_cfg(&cfg);
	atomic_store(&chatter_stop, 0);
	kr_pid c[4];
	for (int i = 0; i < 4; i++)
		c[i] = vm_spawn(chatter, NULL);
	pthread_t t[3];
	for (int i = 0; i < 3; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, flipper, (void *)(intptr_t)i), 0);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	atomic_store(&chatter_stop, 1);
	for (int i = 0; i < 4; i++)
		cr_assert(VM_WAIT(!kr_is_alive(c[i]), 5000));
	int level = kr_log_get_level();
	cr_assert(level == KR_LOG_INFO || level == KR_LOG_NONE, "level %d", level);
	vm_stop();
	cr_assert_eq(atomic_load(&per_level[KR_LOG_DEBUG]) + atomic_load(&per_level[KR_LOG_WARNING]),
	             0);
}

/* ---- no_reports, the old way to say none ---- */

Test(log, no_reports_still_means_none)
{
	log_reset();
	kr_config cfg = { .schedulers = 1, .log_handler = keep, .log_level = KR_LOG_DEBUG,
		          .no_reports = 1 };
	vm_start_cfg(&cfg);
	cr_assert_eq(kr_log_get_level(), KR_LOG_NONE, "no_reports is level none, whatever log_level");
	kr_pid p = vm_spawn(crasher, NULL);
	cr_assert(VM_WAIT(!kr_is_alive(p), 5000));
	cr_assert_eq(kr_log(KR_LOG_EMERGENCY, "even this"), 0);
	/* It is a level like the others: set at run time, reports come. */
	cr_assert_eq(kr_log_set_level(KR_LOG_ERROR), KR_LOG_NONE);
	cr_assert_eq(kr_log(KR_LOG_ERROR, "now this"), 0);
	vm_stop();
	cr_assert_eq(atomic_load(&log_n), 1, "%s", log_dump());
	cr_assert_eq(log_has(KR_LOG_ERROR, "now this"), 1, "%s", log_dump());
}

/* ---- a crowd ends: nothing per process ---- */

static long crowd_n(void)
{
	return 100000 / VM_HEAVY_DIV;
}

static atomic_long asleep;

static void woke(void *arg)
{
	(void)arg;
	kr_msg *m;
	while (kr_recv(&m, KR_INFINITY) == 0)
		kr_msg_free(m);
}

/* Waits for a message without a stack (kr_hibernate): a crowd of these
 * costs a few hundred bytes each. */
static void dozer(void *arg)
{
	(void)arg;
	atomic_fetch_add(&asleep, 1);
	kr_hibernate(woke, NULL);
}

Test(log, a_vm_stopped_with_a_crowd_of_processes_makes_no_report)
{
	long n = crowd_n();
	const int levels[] = { KR_LOG_DEFAULT, KR_LOG_DEBUG };
	for (int k = 0; k < 2; k++) {
		start_crowd(levels[k]);
		atomic_store(&asleep, 0);
		for (long i = 0; i < n; i++)
			cr_assert_gt(kr_spawn(dozer, NULL), 0, "spawn %ld", i);
		for (int i = 0; i < 100; i++) /* and some holding stacks */
			vm_spawn(sleeper, NULL);
		cr_assert(VM_WAIT(atomic_load(&asleep) == n, 120000), "%ld of %ld asleep",
		          atomic_load(&asleep), n);
		vm_stop();
		cr_assert_eq(atomic_load(&log_n), 0, "%d reports at level %s:%s", atomic_load(&log_n),
		             levels[k] ? kr_log_level_name(levels[k]) : "notice", log_dump());
	}
}

/* Spawns a crowd linked to itself, waits until they sleep, and crashes:
 * its exit signal ends them all. */
static void hub(void *arg)
{
	long n = *(long *)arg;
	kr_spawn_opts o = { .link = 1, .name = "linked" };
	for (long i = 0; i < n; i++)
		VM_CHECK(kr_spawn_opt(dozer, NULL, &o) > 0, "spawn %ld", i);
	while (atomic_load(&asleep) < n)
		kr_sleep(1);
	kr_crash("the hub fails");
}

Test(log, an_exit_signal_that_ends_a_crowd_of_linked_processes_makes_one_report)
{
	long n = crowd_n();
	start_crowd(KR_LOG_DEFAULT);
	atomic_store(&asleep, 0);
	kr_pid h = vm_spawn(hub, &n);
	cr_assert(VM_WAIT(!kr_is_alive(h), 120000), "%ld of %ld asleep", atomic_load(&asleep), n);
	cr_assert(VM_WAIT(vm_alive() == 0, 120000), "%zu alive", vm_alive());
	vm_stop();
	cr_assert_eq(atomic_load(&log_n), 1, "%d reports:%s", atomic_load(&log_n), log_dump());
	cr_assert_eq(log_has(KR_LOG_ERROR, "crashed: error: the hub fails"), 1, "%s", log_dump());
}

/* A simple_one_for_one supervisor with a crowd of children, stopped: its
 * children are stopped as their spec says (brutal_kill, or shutdown),
 * which is no failure, and no report. */
static atomic_int crowd_sup_done;

static void crowd_sup_driver(void *arg)
{
	long shutdown = *(long *)arg;
	kr_trap_exit(1);
	long n = crowd_n() / 2; /* each start is a call and a handshake */
	kr_child_spec t = { .id = "crowd", .start = dozer, .shutdown = shutdown };
	kr_sup_flags f = { .strategy = KR_SIMPLE_ONE_FOR_ONE };
	kr_pid s = kr_sup_start_link(&f, &t, 1, NULL);
	VM_CHECK(s > 0, "kr_sup_start_link: %lld", (long long)s);
	for (long i = 0; i < n; i++)
		if (kr_sup_start_child(s, NULL, NULL) < 0) {
			VM_CHECK(0, "start_child %ld", i);
			break;
		}
	stop_sup(s);
	atomic_store(&crowd_sup_done, 1);
}

Test(log, a_supervisor_that_stops_a_crowd_of_children_makes_no_report)
{
	const long shutdowns[] = { KR_SHUTDOWN_BRUTAL, 5000 };
	for (int k = 0; k < 2; k++) {
		start_crowd(KR_LOG_DEFAULT);
		atomic_store(&crowd_sup_done, 0);
		vm_spawn(crowd_sup_driver, (void *)&shutdowns[k]);
		cr_assert(VM_WAIT(atomic_load(&crowd_sup_done), 120000));
		cr_assert(VM_WAIT(vm_alive() == 0, 60000), "%zu alive", vm_alive());
		vm_stop();
		cr_assert_eq(atomic_load(&log_n), 0, "%d reports (shutdown %ld):%s",
		             atomic_load(&log_n), shutdowns[k], log_dump());
	}
}

/* ---- the burst limit ---- */

static void crash_now(void *arg)
{
	(void)arg;
	kr_crash("one of a burst");
}

/* n processes crash at once, under a burst limit: some reports go out, the
 * others are dropped, and every one dropped is counted in a "reports
 * dropped" line (an error, as they were). */
static void burst(int limit, long n, bool stop_at_once)
{
	log_reset();
	kr_config cfg = { .schedulers = 2, .log_handler = keep, .log_burst = limit };
	vm_start_cfg(&cfg);
	int64_t t0 = vm_now_ns();
	for (long i = 0; i < n; i++)
		vm_spawn(crash_now, NULL);
	cr_assert(VM_WAIT(vm_alive() == 0, 60000), "%zu alive", vm_alive());
	if (!stop_at_once) /* said within a second or so, with no report after */
		cr_assert(VM_WAIT(atomic_load(&per_level[KR_LOG_ERROR]) + atomic_load(&dropped) -
		                                  atomic_load(&drop_lines) ==
		                          n,
		                  10000),
		          "%d passed, %ld said dropped of %ld", atomic_load(&per_level[KR_LOG_ERROR]),
		          atomic_load(&dropped), n);
	vm_stop();
	double secs = vm_ms_since(t0) / 1000;
	long passed = atomic_load(&per_level[KR_LOG_ERROR]) - atomic_load(&drop_lines);
	cr_assert_eq(passed + atomic_load(&dropped), n, "%ld passed, %ld said dropped of %ld",
	             passed, atomic_load(&dropped), n);
	/* At most limit in each second the burst spanned. */
	long per_s = limit ? limit : 500;
	cr_assert_leq(passed, per_s * ((long)secs + 2), "%ld passed in %.1f s", passed, secs);
	if (atomic_load(&drop_lines))
		cr_assert_eq(atomic_load(&drop_level), KR_LOG_ERROR);
}

Test(log, a_burst_past_the_limit_is_dropped_and_counted)
{
	burst(20, 400 / VM_LIGHT_DIV, true);
	cr_assert_gt(atomic_load(&dropped), 0, "nothing dropped:%s", log_dump());
	burst(20, 400 / VM_LIGHT_DIV, false);
	cr_assert_gt(atomic_load(&dropped), 0, "nothing dropped:%s", log_dump());
}

/* The default: 500 a second, as OTP's default handler. */
Test(log, the_default_burst_limit_is_500_a_second)
{
	burst(0, 5000 / VM_LIGHT_DIV, true);
}
