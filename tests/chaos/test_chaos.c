/*
 * test_chaos.c - a supervision tree under fire heals.
 *
 * One top supervisor, GROUPS group supervisors under it, PER_GROUP
 * workers under each (10,000 workers natively). Workers ping random peers
 * of their group and answer their pings. For CHAOS_MS a chaos process
 * kills random workers and random group supervisors, makes workers crash
 * (kr_crash, or a store through NULL, which krill contains), and now and
 * then (first of all, once) kills all the workers of one group at once,
 * more than its intensity allows, so that the group gives up and the top
 * restarts it. Then the
 * chaos stops and the test checks that the tree healed: the top is the
 * same process and never gave up, every group supervisor is alive with
 * all its workers, and every worker answers a call. Stopping the top then
 * takes everything down, and nothing is left (no process; under ASan, no
 * leak: vm_stop checks).
 *
 * Sizes shrink under qemu and TSan (vm_util.h's VM_HEAVY_DIV).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "krill.h"
#include "../vm_util.h"

TestSuite(chaos, .fini = vm_fini, .timeout = 180);

#define WORKERS (10000 / VM_HEAVY_DIV)
#define GROUPS KR_TEST_MIN(100, 100 / VM_LIGHT_DIV)
#define PER_GROUP (WORKERS / GROUPS)
#if KRX_TSAN
#define CHAOS_MS 2000
#else
#define CHAOS_MS 3000
#endif
/* Restarts a second a group survives; a burst kills all its workers. */
#define GROUP_INTENSITY KR_TEST_MIN(20, PER_GROUP / 2)

enum { T_PING = 1, T_PONG, T_CALL, T_ANSWER, T_CRASH, T_SEGV };

static atomic_llong worker_pid[WORKERS];
static atomic_llong group_pid[GROUPS];
static atomic_llong pongs;
static atomic_int chaos_done, heal_ok;

/* Reports: counted, not printed (there are thousands). */
static atomic_int reports, top_gave_up, groups_gave_up;

static void count_report(const char *line, void *ctx)
{
	(void)ctx;
	atomic_fetch_add(&reports, 1);
	if (strstr(line, "reached max restart intensity"))
		atomic_fetch_add(strstr(line, " top:") ? &top_gave_up : &groups_gave_up, 1);
}

/* A store through NULL (see test_fault.c: volatile both ways, and no
 * UBSan report first). */
__attribute__((no_sanitize("null"), noinline)) static void store_null(void)
{
	volatile int *volatile p = NULL;
	*p = 1;
}

/* ---- workers ---- */

static int worker_init(void *arg)
{
	atomic_store(&worker_pid[(intptr_t)arg], kr_self());
	return 0;
}

static void worker(void *arg)
{
	intptr_t k = (intptr_t)arg, g = k / PER_GROUP;
	uint32_t seed = (uint32_t)k * 2654435761u + (uint32_t)kr_self();
	while (!atomic_load(&vm_abort)) {
		kr_msg *m;
		if (kr_recv(&m, 10 + vm_rand(&seed) % 30) != 0) {
			/* Quiet for a while: ping a random peer of the group. */
			kr_pid peer = (kr_pid)atomic_load(&worker_pid[g * PER_GROUP +
			                                              vm_rand(&seed) % PER_GROUP]);
			if (peer > 0)
				kr_send(peer, T_PING, NULL, 0);
			continue;
		}
		switch (m->tag) {
		case T_PING:
			kr_send(m->sender, T_PONG, NULL, 0);
			break;
		case T_PONG:
			atomic_fetch_add(&pongs, 1);
			break;
		case T_CALL:
			kr_reply(m, T_ANSWER, &k, sizeof k);
			break;
		case T_CRASH:
			kr_crash("chaos made worker %ld crash", (long)k);
			break;
		case T_SEGV:
			store_null();
			break;
		}
		kr_msg_free(m);
	}
}

/* ---- supervisors ---- */

static void group_sup(void *arg)
{
	intptr_t g = (intptr_t)arg;
	char ids[PER_GROUP][12];
	kr_child_spec specs[PER_GROUP];
	for (int i = 0; i < PER_GROUP; i++) {
		snprintf(ids[i], sizeof ids[i], "w%d", i);
		specs[i] = (kr_child_spec){ .id = ids[i], .start = worker, .init = worker_init,
			                    .arg = (void *)(g * PER_GROUP + i) };
	}
	atomic_store(&group_pid[g], kr_self());
	kr_sup_flags f = { .max_restarts = GROUP_INTENSITY, .period_ms = 1000 };
	kr_sup_run(&f, specs, PER_GROUP);
	VM_CHECK(0, "kr_sup_run returned");
}

/* ---- chaos ---- */

static void burst(intptr_t g)
{
	for (int i = 0; i < PER_GROUP; i++)
		kr_exit_sig((kr_pid)atomic_load(&worker_pid[g * PER_GROUP + i]), KR_EXIT_KILL);
}

static void chaos(void *arg)
{
	(void)arg;
	uint32_t seed = 42;
	int64_t end = vm_now_ns() + (int64_t)CHAOS_MS * 1000000;
	burst(0);
	while (vm_now_ns() < end && !atomic_load(&vm_abort)) {
		kr_sleep(1);
		uint32_t dice = vm_rand(&seed) % 1000;
		kr_pid w = (kr_pid)atomic_load(&worker_pid[vm_rand(&seed) % WORKERS]);
		intptr_t g = vm_rand(&seed) % GROUPS;
		if (dice < 800)
			kr_exit_sig(w, KR_EXIT_KILL);
		else if (dice < 880)
			kr_send(w, T_CRASH, NULL, 0);
		else if (dice < 960)
			kr_send(w, T_SEGV, NULL, 0);
		else if (dice < 995)
			kr_exit_sig((kr_pid)atomic_load(&group_pid[g]), KR_EXIT_KILL);
		else
			burst(g);
	}
	atomic_store(&chaos_done, 1);
}

/* ---- the driver ---- */

static bool healed(void)
{
	for (int g = 0; g < GROUPS; g++) {
		kr_sup_counts n;
		kr_pid s = (kr_pid)atomic_load(&group_pid[g]);
		if (kr_sup_count_children(s, &n) != 0 || n.active != PER_GROUP)
			return false;
	}
	return true;
}

static void driver(void *arg)
{
	(void)arg;
	kr_trap_exit(1);
	static char gids[GROUPS][12];
	static kr_child_spec specs[GROUPS];
	for (int g = 0; g < GROUPS; g++) {
		snprintf(gids[g], sizeof gids[g], "g%d", g);
		specs[g] = (kr_child_spec){ .id = gids[g],
			                    .start = group_sup,
			                    .arg = (void *)(intptr_t)g,
			                    .type = KR_SUPERVISOR };
	}
	/* The top must never give up: far more restarts than chaos makes. */
	kr_sup_flags f = { .max_restarts = 1000000, .period_ms = 1000 };
	kr_pid top = kr_sup_start_link(&f, specs, GROUPS, "top");
	VM_CHECK(top > 0, "start the tree: %lld", (long long)top);
	if (top < 0)
		return;
	VM_CHECK(healed(), "the tree did not start whole");
	kr_spawn(chaos, NULL);
	while (!atomic_load(&chaos_done))
		kr_sleep(10);

	/* Heal: every group supervisor alive with all its workers. */
	int64_t deadline = vm_now_ns() + (int64_t)60000 * 1000000;
	while (!healed() && vm_now_ns() < deadline)
		kr_sleep(20);
	VM_CHECK(healed(), "the tree did not heal");
	VM_CHECK(kr_is_alive(top) && kr_whereis("top") == top,
	         "the top supervisor is not the same");
	kr_sup_counts n;
	VM_CHECK(kr_sup_count_children(top, &n) == 0 && n.active == GROUPS &&
	                 n.supervisors == GROUPS,
	         "the top's children: %zu active", n.active);

	/* Messages flow: every worker answers a call. */
	kr_sup_child *v = kr_calloc(PER_GROUP, sizeof *v);
	int answered = 0;
	for (int g = 0; g < GROUPS; g++) {
		kr_pid s = (kr_pid)atomic_load(&group_pid[g]);
		int k = kr_sup_which_children(s, v, PER_GROUP);
		VM_CHECK(k == PER_GROUP, "group %d has %d children", g, k);
		for (int i = 0; i < k; i++) {
			kr_msg *m;
			int rc = kr_call(v[i].pid, T_CALL, NULL, 0, &m, 10000);
			VM_CHECK(rc == 0, "group %d worker %d: call %d", g, i, rc);
			if (rc == 0) {
				intptr_t who;
				memcpy(&who, m->data, sizeof who);
				VM_CHECK(who == (intptr_t)g * PER_GROUP + i,
				         "the wrong worker answered");
				answered++;
				kr_msg_free(m);
			}
		}
	}
	VM_CHECK(answered == WORKERS, "%d of %d workers answered", answered, WORKERS);
	kr_free(v);
	atomic_store(&heal_ok, 1);

	/* Stop the tree, as its parent. */
	kr_ref ref = kr_monitor(top);
	kr_exit_sig(top, KR_EXIT_SHUTDOWN);
	kr_msg *m;
	VM_CHECK(kr_recv_tag(&m, KR_TAG_DOWN, 60000) == 0, "the top did not stop");
	VM_CHECK(kr_msg_down(m)->ref == ref && kr_msg_down(m)->reason.kind == KR_EXIT_SHUTDOWN,
	         "the top's end");
	kr_msg_free(m);
}

Test(chaos, a_supervised_workload_heals_after_chaos)
{
	kr_config cfg = { .schedulers = 2, .log = count_report };
	vm_start_cfg(&cfg);
	int64_t t0 = vm_now_ns();
	kr_pid d = vm_spawn(driver, NULL);
	cr_assert(VM_WAIT(!kr_is_alive(d), 150000), "the driver did not finish");
	vm_assert_clean();
	cr_assert(atomic_load(&heal_ok));
	cr_assert(VM_WAIT(vm_alive() == 0, 30000), "%zu processes left", vm_alive());
	cr_assert_eq(atomic_load(&top_gave_up), 0, "the top supervisor gave up");
	cr_assert_gt(atomic_load(&groups_gave_up), 0, "no group gave up: escalation was not tried");
	cr_log_info(
	        "chaos: %d workers in %d groups, %.1f s; %lld pongs, %d reports, %d groups gave up",
	        WORKERS, GROUPS, vm_ms_since(t0) / 1000, (long long)atomic_load(&pongs),
	        atomic_load(&reports), atomic_load(&groups_gave_up));
	vm_stop();
}
