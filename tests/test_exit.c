/*
 * test_exit.c - how processes end (vm/exit.c): the reason each way of
 * ending gives (returning, kr_exit, kr_crash, KR_ASSERT, a fault, the heap
 * limit), the one report of an abnormal end with the process's own frames,
 * no report for normal and shutdown, what an end frees, and the status
 * kr_main returns.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "fault_util.h"
#include "krill.h"
#include "vm_util.h"

TestSuite(exit, .fini = vm_fini, .timeout = 60);

/* ---- the log, captured ---- */

#define LOG_MAX 64
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_lines[LOG_MAX][1024];
static atomic_int log_n;

static void capture(const char *line, void *ctx)
{
	(void)ctx;
	pthread_mutex_lock(&log_lock);
	int i = atomic_load(&log_n);
	if (i < LOG_MAX) {
		snprintf(log_lines[i], sizeof log_lines[i], "%s", line);
		atomic_store(&log_n, i + 1);
	}
	pthread_mutex_unlock(&log_lock);
}

/* The first captured report that contains s, or NULL. */
static const char *log_find(const char *s)
{
	const char *found = NULL;
	pthread_mutex_lock(&log_lock);
	for (int i = 0; i < atomic_load(&log_n) && !found; i++)
		if (strstr(log_lines[i], s))
			found = log_lines[i];
	pthread_mutex_unlock(&log_lock);
	return found;
}

static void vm_start_captured(unsigned schedulers)
{
	kr_config cfg = { .schedulers = schedulers, .log = capture };
	vm_start_cfg(&cfg);
}

/* ---- each way of ending, seen by a monitor ---- */

static int how;
static atomic_int watched_kind = -1;
static char watched_text[sizeof(((kr_reason *)0)->text)];

/* Exported (krill's own build hides symbols by default): a crash report
 * names the functions a program exports (-rdynamic). */
__attribute__((visibility("default"))) void exit_test_ender(void *arg);
void exit_test_ender(void *arg)
{
	int x = (int)(intptr_t)arg;
	switch (how) {
	case 0: return;
	case 1: kr_exit(KR_EXIT_SHUTDOWN); break;
	case 2: kr_exit(KR_EXIT_ERROR); break;
	case 3: kr_crash("bad frame %d", x); break;
	case 4: KR_ASSERT(x == 2); break;
	case 5: kr_exit(KR_EXIT_KILL); break;
	case 6: { kr_reason r = { .kind = KR_EXIT_ERROR }; strcpy(r.text, "my own reason");
		  kr_exit_reason(&r); break; }
	case 7: fault_store_null(); break;
	}
	VM_CHECK(0, "way %d of ending returned", how);
}

static void watcher(void *arg)
{
	kr_ref ref;
	kr_spawn_opts o = { .monitor = &ref, .name = "ender" };
	kr_pid p = kr_spawn_opt(exit_test_ender, arg, &o);
	VM_CHECK(p > 0, "spawn: %lld", (long long)p);
	kr_msg *m;
	if (kr_recv_tag(&m, KR_TAG_DOWN, 5000) != 0)
		return;
	const kr_down_msg *d = kr_msg_down(m);
	if (d && d->ref == ref && d->pid == p) {
		memcpy(watched_text, d->reason.text, sizeof watched_text);
		atomic_store(&watched_kind, d->reason.kind);
	}
	kr_msg_free(m);
}

static int end_and_watch(int way, int arg)
{
	how = way;
	atomic_store(&watched_kind, -1);
	atomic_store(&log_n, 0);
	vm_start_captured(1);
	vm_spawn(watcher, (void *)(intptr_t)arg);
	cr_assert(VM_WAIT(atomic_load(&watched_kind) >= 0, 5000), "no DOWN for way %d", way);
	vm_assert_clean();
	vm_stop();
	return atomic_load(&watched_kind);
}

Test(exit, returning_is_normal_and_unreported)
{
	cr_assert_eq(end_and_watch(0, 0), KR_EXIT_NORMAL);
	cr_assert_eq(atomic_load(&log_n), 0, "a normal end was reported: %s", log_lines[0]);
}

Test(exit, shutdown_is_quiet_error_is_reported)
{
	cr_assert_eq(end_and_watch(1, 0), KR_EXIT_SHUTDOWN);
	cr_assert_eq(atomic_load(&log_n), 0, "a shutdown was reported: %s", log_lines[0]);
	cr_assert_eq(end_and_watch(2, 0), KR_EXIT_ERROR);
	cr_assert_eq(atomic_load(&log_n), 1, "%d reports of one crash", atomic_load(&log_n));
	cr_assert_not_null(log_find("ender crashed: error"), "report: %s", log_lines[0]);
}

Test(exit, kr_crash_gives_its_text_and_a_backtrace_of_the_process)
{
	cr_assert_eq(end_and_watch(3, 42), KR_EXIT_ERROR);
	cr_assert_str_eq(watched_text, "bad frame 42");
	const char *r = log_find("crashed: error: bad frame 42");
	cr_assert_not_null(r, "report: %s", log_lines[0]);
	/* The process's own frame is there, krill's are not. */
	cr_assert_not_null(strstr(r, "exit_test_ender"), "no frame of the process: %s", r);
	cr_assert_null(strstr(r, "kr_crash"), "krill's frames in the backtrace: %s", r);
}

Test(exit, a_failed_assert_names_the_condition_and_the_line)
{
	cr_assert_eq(end_and_watch(4, 3), KR_EXIT_ERROR);
	cr_assert(strstr(watched_text, "assertion x == 2 failed at test_exit.c:"), "text \"%s\"",
	          watched_text);
}

Test(exit, kill_and_reasons_given_in_full)
{
	cr_assert_eq(end_and_watch(5, 0), KR_EXIT_KILLED, "kr_exit(KILL) ends as killed");
	cr_assert_eq(end_and_watch(6, 0), KR_EXIT_ERROR);
	cr_assert_str_eq(watched_text, "my own reason");
}

Test(exit, a_fault_is_the_reason)
{
	cr_assert_eq(end_and_watch(7, 0), KR_EXIT_SEGFAULT);
	cr_assert(strstr(watched_text, "at address 0x0"), "text \"%s\"", watched_text);
	cr_assert_not_null(log_find("ender crashed: segfault"), "report: %s", log_lines[0]);
}

/* A kind that is no kind is KR_EINVAL, and the caller goes on; so is a
 * NULL reason. */
static atomic_int bad_kind_done;

static void ends_badly(void *arg)
{
	(void)arg;
	int rc;
	VM_CHECK((rc = kr_exit(-1)) == KR_EINVAL, "kr_exit(-1): %d", rc);
	VM_CHECK((rc = kr_exit(KR_EXIT_KILL + 1)) == KR_EINVAL, "kr_exit(KILL + 1): %d", rc);
	VM_CHECK((rc = kr_exit(1000)) == KR_EINVAL, "kr_exit(1000): %d", rc);
	VM_CHECK((rc = kr_exit_reason(NULL)) == KR_EINVAL, "kr_exit_reason(NULL): %d", rc);
	kr_reason r = { .kind = KR_EXIT_KILL + 1 };
	VM_CHECK((rc = kr_exit_reason(&r)) == KR_EINVAL, "kr_exit_reason(kind KILL + 1): %d", rc);
	atomic_store(&bad_kind_done, 1);
}

Test(exit, a_bad_kind_is_einval_and_the_process_goes_on)
{
	atomic_store(&log_n, 0);
	vm_start_captured(1);
	kr_pid p = vm_spawn(ends_badly, NULL);
	cr_assert(VM_WAIT(!kr_is_alive(p), 5000));
	cr_assert_eq(atomic_load(&bad_kind_done), 1, "a bad kind ended the process");
	cr_assert_eq(atomic_load(&log_n), 0, "reported: %s", log_lines[0]);
	vm_stop();
}

/* ---- what an end frees ---- */

static atomic_int holder_ready;

static void holder(void *arg)
{
	(void)arg;
	void *a = kr_alloc(100000);
	VM_CHECK(a != NULL, "kr_alloc");
	kr_msg *m;
	VM_CHECK(kr_recv(&m, 5000) == 0, "no message"); /* kept, not freed */
	atomic_store(&holder_ready, 1);
	kr_sleep(10000);
}

Test(exit, an_end_frees_heap_messages_and_name)
{
	vm_start_captured(2);
	kr_pid h = vm_spawn(holder, NULL);
	cr_assert_eq(kr_register("holder", h), 0);
	cr_assert_eq(kr_send(h, 1, "x", 1), 0);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(kr_send(h, 2, "queued", 6), 0);
	cr_assert(VM_WAIT(atomic_load(&holder_ready), 5000));
	cr_assert_geq(vm_heap(h), 100000);
	/* Killed by another's signal: no crash, only a debug line. */
	cr_assert_eq(kr_log_set_level(KR_LOG_DEBUG), KR_LOG_NOTICE);
	cr_assert_eq(kr_exit_sig(h, KR_EXIT_KILL), 0);
	cr_assert(VM_WAIT(vm_alive() == 0, 5000));
	cr_assert_eq(kr_whereis("holder"), KR_ENOPROC, "the name outlived its process");
	cr_assert_not_null(log_find("exited: killed (exit signal from a host thread)"), "report: %s",
	                   log_lines[0]);
	vm_stop(); /* the leak check (ASan) covers the heap and the messages */
}

/* ---- kr_main's status ---- */

static void root_normal(void *arg) { (void)arg; }
static void root_crash(void *arg) { (void)arg; kr_crash("the root fails"); }
static void root_segfault(void *arg) { (void)arg; fault_store_null(); }
static void root_shutdown(void *arg) { (void)arg; kr_exit(KR_EXIT_SHUTDOWN); }

Test(exit, kr_main_returns_how_the_root_ended)
{
	kr_config cfg = { .schedulers = 2, .log = capture };
	cr_assert_eq(kr_main(&cfg, root_normal, NULL), 0);
	cr_assert_eq(kr_main(&cfg, root_crash, NULL), KR_EXIT_ERROR);
	cr_assert_eq(kr_main(&cfg, root_segfault, NULL), KR_EXIT_SEGFAULT);
	cr_assert_eq(kr_main(&cfg, root_shutdown, NULL), KR_EXIT_SHUTDOWN);
	cr_assert_eq(kr_main(&cfg, NULL, NULL), KR_EINVAL);
}

/* no_reports: a crash makes no report at all, and still ends with its reason. */
Test(exit, no_reports_means_no_report_and_the_same_reasons)
{
	how = 3;
	atomic_store(&watched_kind, -1);
	atomic_store(&log_n, 0);
	kr_config cfg = { .schedulers = 1, .log = capture, .no_reports = 1 };
	vm_start_cfg(&cfg);
	vm_spawn(watcher, (void *)(intptr_t)5);
	cr_assert(VM_WAIT(atomic_load(&watched_kind) >= 0, 5000));
	cr_assert_eq(atomic_load(&watched_kind), KR_EXIT_ERROR);
	cr_assert_str_eq(watched_text, "bad frame 5");
	vm_stop();
	cr_assert_eq(atomic_load(&log_n), 0, "a report with no_reports: %s", log_lines[0]);
}
