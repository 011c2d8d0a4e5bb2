/*
 * test_registry.c - registered names (vm/registry.c): one name per process
 * and one process per name, lookups and sends by name from processes and
 * host threads, clear errors for bad names, and a name always freed when
 * its process ends, even when the end races the registration.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "krill.h"
#include "vm_util.h"

TestSuite(registry, .fini = vm_fini, .timeout = 60);


static atomic_int echo_got;

static void counts_messages(void *arg)
{
	(void)arg;
	kr_msg *m;
	while (!atomic_load(&vm_abort))
		if (kr_recv(&m, 100) == 0) {
			atomic_fetch_add(&echo_got, 1);
			kr_msg_free(m);
		}
}

Test(registry, register_whereis_send_named_unregister)
{
	vm_start(2);
	kr_pid a = vm_spawn(counts_messages, NULL), b = vm_spawn(vm_wait_forever, NULL);
	cr_assert_eq(kr_register("alpha", a), 0);
	cr_assert_eq(kr_whereis("alpha"), a);
	cr_assert_eq(kr_register("alpha", b), KR_EEXIST, "a name taken twice");
	cr_assert_eq(kr_register("alpha2", a), KR_EEXIST, "a second name for one process");
	cr_assert_eq(kr_register("beta", b), 0);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(kr_send_named("alpha", 1, &i, sizeof i), 0);
	cr_assert(VM_WAIT(atomic_load(&echo_got) == 10, 5000));
	cr_assert_eq(kr_send_named("nobody", 1, NULL, 0), KR_ENOPROC);
	cr_assert_eq(kr_whereis("nobody"), KR_ENOPROC);
	cr_assert_eq(kr_unregister("alpha"), 0);
	cr_assert_eq(kr_unregister("alpha"), KR_ENOPROC);
	cr_assert_eq(kr_whereis("alpha"), KR_ENOPROC);
	cr_assert_eq(kr_register("gamma", a), 0, "a process may take a new name after unregister");
	cr_assert_eq(kr_register("alpha", b), KR_EEXIST, "beta's process took a second name");
	vm_stop();
}

Test(registry, bad_names_and_pids)
{
	vm_start(1);
	kr_pid a = vm_spawn(vm_wait_forever, NULL);
	char longname[KR_NAME_MAX + 2];
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	cr_assert_eq(kr_register(longname, a), KR_EINVAL);
	longname[KR_NAME_MAX] = 0; /* exactly KR_NAME_MAX: fine */
	cr_assert_eq(kr_register(longname, a), 0);
	cr_assert_eq(kr_whereis(longname), a);
	cr_assert_eq(kr_register("", a), KR_EINVAL);
	cr_assert_eq(kr_register(NULL, a), KR_EINVAL);
	cr_assert_eq(kr_register("x", 0), KR_EINVAL);
	cr_assert_eq(kr_register("x", -3), KR_EINVAL);
	cr_assert_eq(kr_whereis(NULL), KR_EINVAL);
	cr_assert_eq(kr_unregister(""), KR_EINVAL);
	/* A well-formed pid of no process. */
	kr_pid gone = vm_spawn(vm_wait_forever, NULL);
	kr_exit_sig(gone, KR_EXIT_KILL);
	cr_assert(VM_WAIT(!kr_is_alive(gone), 5000));
	cr_assert_eq(kr_register("ghost", gone), KR_ENOPROC);
	cr_assert_eq(kr_whereis("ghost"), KR_ENOPROC);
	vm_stop();
	cr_assert_eq(kr_register("late", a), KR_ESTOPPED);
	cr_assert_eq(kr_whereis("late"), KR_ESTOPPED);
}

/* Names are freed at any end, and many names grow the table. */
#define MANY (2000 / VM_LIGHT_DIV)

static void register_self_and_wait(void *arg)
{
	char name[32];
	snprintf(name, sizeof name, "p%ld", (long)(intptr_t)arg);
	VM_CHECK(kr_register(name, kr_self()) == 0, "register %s", name);
	kr_msg *m;
	if (kr_recv(&m, 10000) == 0)
		kr_msg_free(m);
	if ((intptr_t)arg % 2)
		kr_crash("odd ones crash");
}

Test(registry, many_names_all_freed_when_their_processes_end)
{
	vm_start_quiet(2);
	kr_pid pids[MANY];
	for (long i = 0; i < MANY; i++)
		pids[i] = vm_spawn(register_self_and_wait, (void *)(intptr_t)i);
	char name[32];
	for (long i = 0; i < MANY; i++) {
		snprintf(name, sizeof name, "p%ld", i);
		cr_assert(VM_WAIT(kr_whereis(name) == pids[i], 5000), "%s not registered", name);
	}
	for (long i = 0; i < MANY; i++)
		kr_send(pids[i], 1, NULL, 0);
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	for (long i = 0; i < MANY; i++) {
		snprintf(name, sizeof name, "p%ld", i);
		cr_assert_eq(kr_whereis(name), KR_ENOPROC, "%s outlived its process", name);
	}
	vm_assert_clean();
	vm_stop();
}

/* Registering a process while it ends: either the registration fails with
 * noproc, or it succeeds and the end frees the name. Never a name left. */
#define RACES (5000 / VM_LIGHT_DIV)

static void end_at_once(void *arg)
{
	(void)arg;
}

static atomic_int race_ok, race_noproc;

static void racer(void *arg)
{
	(void)arg;
	for (int i = 0; i < RACES; i++) {
		kr_pid p = kr_spawn(end_at_once, NULL);
		int rc = kr_register("racer", p);
		if (rc == 0) {
			atomic_fetch_add(&race_ok, 1);
			while (kr_is_alive(p))
				kr_yield();
			/* Freed with the end; a registration that raced the end
			 * itself is freed by the end's last step, just after. */
			int tries = 0;
			while (kr_whereis("racer") != KR_ENOPROC && tries++ < 1000)
				kr_sleep(1);
			VM_CHECK(kr_whereis("racer") == KR_ENOPROC, "round %d: the name outlived it", i);
			kr_unregister("racer"); /* in case it did not (reported above) */
		} else {
			VM_CHECK(rc == KR_ENOPROC, "round %d: kr_register %d", i, rc);
			atomic_fetch_add(&race_noproc, 1);
		}
	}
}

Test(registry, a_registration_racing_the_end_leaves_no_name, .timeout = 120)
{
	vm_start(2);
	kr_pid r = vm_spawn(racer, NULL);
	cr_assert(VM_WAIT(!kr_is_alive(r), 100000));
	vm_assert_clean();
	cr_log_info("registration races: %d registered, %d found it gone", atomic_load(&race_ok),
	            atomic_load(&race_noproc));
	cr_assert_eq(atomic_load(&race_ok) + atomic_load(&race_noproc), RACES);
	vm_stop();
}
