/*
 * test_embed.c - a host program talking to the VM from its own threads: a
 * million messages in from a host thread with replies out through a
 * host-side queue, several host threads sending and spawning at once, host
 * threads looking processes up while they exit, and a host thread sending
 * while the VM stops.
 *
 * Criterion asserts only on the test thread: processes and helper threads
 * record failures with VM_CHECK (vm_util.h) and the test asserts
 * vm_assert_clean().
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sched.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>

#include "krill.h"
#include "vm_util.h"

TestSuite(embed, .fini = vm_fini, .timeout = 60);

/* ---- a host-side channel: a bounded queue with a mutex and condvars ---- */

typedef struct chan {
	pthread_mutex_t lock;
	pthread_cond_t nonempty, nonfull;
	uint64_t *ring;
	size_t cap, head, len;
} chan;

static void chan_init(chan *c, size_t cap)
{
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->nonempty, NULL);
	pthread_cond_init(&c->nonfull, NULL);
	c->ring = calloc(cap, sizeof *c->ring);
	c->cap = cap;
	c->head = c->len = 0;
}

static void chan_destroy(chan *c)
{
	free(c->ring);
	pthread_cond_destroy(&c->nonempty);
	pthread_cond_destroy(&c->nonfull);
	pthread_mutex_destroy(&c->lock);
}

static void chan_put(chan *c, uint64_t v)
{
	pthread_mutex_lock(&c->lock);
	while (c->len == c->cap)
		pthread_cond_wait(&c->nonfull, &c->lock);
	c->ring[(c->head + c->len++) % c->cap] = v;
	pthread_cond_signal(&c->nonempty);
	pthread_mutex_unlock(&c->lock);
}

/* 0 and *v set, or -1 after ms with nothing. */
static int chan_get(chan *c, uint64_t *v, long ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += ms / 1000;
	dl.tv_nsec += (ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L)
		dl.tv_sec++, dl.tv_nsec -= 1000000000L;
	pthread_mutex_lock(&c->lock);
	while (c->len == 0)
		if (pthread_cond_timedwait(&c->nonempty, &c->lock, &dl) == ETIMEDOUT)
			break;
	int rc = -1;
	if (c->len) {
		*v = c->ring[c->head];
		c->head = (c->head + 1) % c->cap;
		c->len--;
		pthread_cond_signal(&c->nonfull);
		rc = 0;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* ---- a million messages in, replies out ---- */

#define EMB_N (1000000 / VM_HEAVY_DIV)
#define EMB_WORKERS 4
#define EMB_WINDOW 50000 /* the host sender keeps at most this many unanswered */

static chan emb_replies;
static atomic_long emb_replied; /* taken off the channel by the collector */
static atomic_long emb_collected_ok;
static unsigned char *emb_seen;

/* Worker w gets the host's messages i with i % EMB_WORKERS == w, in order,
 * and answers each through the channel. Tag 0 ends it. */
static void emb_worker(void *arg)
{
	uint64_t w = (uintptr_t)arg, want = w;
	kr_msg *m;
	for (;;) {
		int rc = kr_recv(&m, 30000);
		if (rc != 0) {
			VM_CHECK(rc == 0, "worker %llu: kr_recv: %d (waiting for %llu)", (unsigned long long)w,
			         rc, (unsigned long long)want);
			return;
		}
		if (m->tag == 0) {
			kr_msg_free(m);
			return;
		}
		uint64_t i;
		int ok = m->len == sizeof i && m->sender == 0;
		memcpy(&i, m->data, sizeof i);
		kr_msg_free(m);
		if (!ok || i != want) {
			VM_CHECK(0, "worker %llu: got %llu, want %llu (sender/len ok: %d)",
			         (unsigned long long)w, (unsigned long long)i, (unsigned long long)want, ok);
			return;
		}
		want += EMB_WORKERS;
		chan_put(&emb_replies, i);
	}
}

static void *emb_collector(void *arg)
{
	long n = (long)(intptr_t)arg, ok = 0;
	for (long k = 0; k < n; k++) {
		uint64_t i;
		if (chan_get(&emb_replies, &i, 30000) != 0) {
			VM_CHECK(0, "the collector waited 30 s after %ld replies", k);
			break;
		}
		if (i >= (uint64_t)n || emb_seen[i]) {
			VM_CHECK(0, "reply %llu %s", (unsigned long long)i, i >= (uint64_t)n ? "out of range" : "twice");
			break;
		}
		emb_seen[i] = 1;
		ok++;
		atomic_fetch_add(&emb_replied, 1);
	}
	atomic_store(&emb_collected_ok, ok);
	return NULL;
}

Test(embed, a_host_thread_sends_a_million_messages_and_gets_every_reply, .timeout = 300)
{
	long n = EMB_N;
	chan_init(&emb_replies, 1 << 17);
	emb_seen = calloc((size_t)n, 1);
	cr_assert_not_null(emb_seen);
	vm_start(2);
	kr_pid w[EMB_WORKERS];
	for (int i = 0; i < EMB_WORKERS; i++)
		w[i] = vm_spawn(emb_worker, (void *)(intptr_t)i);
	pthread_t collector;
	cr_assert_eq(pthread_create(&collector, NULL, emb_collector, (void *)(intptr_t)n), 0);
	int64_t give_up = vm_now_ns() + 240 * 1000000000LL;
	for (long i = 0; i < n; i++) {
		while (i - atomic_load(&emb_replied) > EMB_WINDOW && vm_now_ns() < give_up &&
		       !atomic_load(&vm_fails))
			sched_yield();
		uint64_t v = (uint64_t)i;
		int rc = kr_send(w[i % EMB_WORKERS], 1, &v, sizeof v);
		cr_assert_eq(rc, 0, "host kr_send %ld: %d", i, rc);
	}
	pthread_join(collector, NULL);
	vm_assert_clean();
	cr_assert_eq(atomic_load(&emb_collected_ok), n, "%ld of %ld replies",
	             atomic_load(&emb_collected_ok), n);
	for (int i = 0; i < EMB_WORKERS; i++)
		kr_send(w[i], 0, NULL, 0);
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_stop();
	free(emb_seen);
	chan_destroy(&emb_replies);
}

/* ---- several host threads send to one process ---- */

#define MH_THREADS 8
#define MH_PER (50000 / VM_HEAVY_DIV)

static kr_pid mh_target;
static atomic_int mh_done;

static void *mh_sender(void *arg)
{
	uint32_t t = (uint32_t)(uintptr_t)arg;
	for (uint32_t k = 0; k < MH_PER; k++) {
		uint32_t p[2] = { t, k };
		int rc = kr_send(mh_target, 2, p, sizeof p);
		if (rc != 0) {
			VM_CHECK(rc == 0, "host thread %u: kr_send %u: %d", t, k, rc);
			break;
		}
	}
	return NULL;
}

static void mh_receiver(void *arg)
{
	uint32_t next[MH_THREADS] = { 0 };
	for (long got = 0; got < (long)MH_THREADS * MH_PER; got++) {
		kr_msg *m;
		int rc = kr_recv(&m, 30000);
		if (rc != 0) {
			VM_CHECK(rc == 0, "receiver stuck after %ld: %d", got, rc);
			return;
		}
		uint32_t p[2];
		memcpy(p, m->data, sizeof p);
		kr_msg_free(m);
		if (p[0] >= MH_THREADS || p[1] != next[p[0]]) {
			VM_CHECK(0, "from host thread %u: %u, want %u", p[0], p[1],
			         p[0] < MH_THREADS ? next[p[0]] : 0);
			return;
		}
		next[p[0]]++;
	}
	kr_msg *m;
	VM_CHECK(kr_recv(&m, 20) == KR_ETIMEDOUT, "a message too many");
	atomic_store(&mh_done, 1);
}

Test(embed, many_host_threads_send_to_one_process_each_in_order, .timeout = 120)
{
	vm_start(2);
	mh_target = vm_spawn(mh_receiver, NULL);
	pthread_t t[MH_THREADS];
	for (int i = 0; i < MH_THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, mh_sender, (void *)(intptr_t)i), 0);
	for (int i = 0; i < MH_THREADS; i++)
		pthread_join(t[i], NULL);
	cr_assert(VM_WAIT(atomic_load(&mh_done) || !kr_is_alive(mh_target), 60000));
	vm_assert_clean();
	cr_assert(atomic_load(&mh_done));
	vm_stop();
}

/* ---- several host threads spawn at once ---- */

#define HS_THREADS 4
#define HS_PER KR_TEST_MIN(5000 / KR_TEST_SCALE, KR_TEST_MAX_LIVE_CTX / HS_THREADS / 2)

static atomic_long hs_ran;

static void hs_child(void *arg) { atomic_fetch_add(&hs_ran, 1); }

static void *hs_spawner(void *arg)
{
	for (int i = 0; i < HS_PER; i++) {
		kr_pid p = kr_spawn(hs_child, NULL);
		if (p <= 0) {
			VM_CHECK(p > 0, "host spawn %d: %lld", i, (long long)p);
			break;
		}
	}
	return NULL;
}

Test(embed, host_threads_spawn_at_once)
{
	vm_start(2);
	pthread_t t[HS_THREADS];
	for (int i = 0; i < HS_THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, hs_spawner, NULL), 0);
	for (int i = 0; i < HS_THREADS; i++)
		pthread_join(t[i], NULL);
	vm_assert_clean();
	cr_assert(VM_WAIT(atomic_load(&hs_ran) == (long)HS_THREADS * HS_PER, 30000), "%ld ran",
	          atomic_load(&hs_ran));
	cr_assert(VM_WAIT(vm_alive() == 0 && vm_stacks() == 0, 10000));
	cr_assert_eq(vm_stats().procs_spawned, (uint64_t)HS_THREADS * HS_PER);
	vm_stop();
}

/* ---- host threads look processes up while they exit ---- */

#define LK_N KR_TEST_MIN(20000 / VM_LIGHT_DIV, KR_TEST_MAX_LIVE_CTX / 2)
#define LK_THREADS 2
static kr_pid *lk_pids;
static atomic_long lk_published;
static atomic_int lk_stop;

static void lk_child(void *arg)
{
	if ((uintptr_t)arg % 2)
		kr_yield();
}

static void *lk_looker(void *arg)
{
	uint32_t seed = (uint32_t)(uintptr_t)arg;
	kr_proc_info info;
	while (!atomic_load(&lk_stop)) {
		long n = atomic_load(&lk_published);
		if (n == 0)
			continue;
		kr_pid p = lk_pids[vm_rand(&seed) % (uint32_t)n];
		int rc = kr_info(p, &info);
		VM_CHECK(rc == 0 || rc == KR_ENOPROC, "kr_info: %d", rc);
		if (rc == 0)
			VM_CHECK(info.status >= KR_RUNNING && info.status <= KR_EXITING, "status %d",
			         info.status);
		int alive = kr_is_alive(p);
		VM_CHECK(alive == 0 || alive == 1, "kr_is_alive: %d", alive);
		if (!alive) /* once dead, always dead */
			VM_CHECK(kr_is_alive(p) == 0 && kr_info(p, &info) == KR_ENOPROC,
			         "pid %lld came back to life", (long long)p);
		rc = kr_send(p, 1, "boo", 3);
		VM_CHECK(rc == 0, "kr_send to a live or dead process: %d", rc);
	}
	return NULL;
}

Test(embed, host_threads_look_up_processes_while_they_exit, .timeout = 120)
{
	lk_pids = calloc(LK_N, sizeof *lk_pids);
	vm_start(2);
	pthread_t t[LK_THREADS];
	for (int i = 0; i < LK_THREADS; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, lk_looker, (void *)(intptr_t)(i + 1)), 0);
	for (long i = 0; i < LK_N; i++) {
		lk_pids[i] = vm_spawn(lk_child, (void *)(intptr_t)i);
		atomic_store(&lk_published, i + 1);
	}
	cr_assert(VM_WAIT(vm_alive() == 0, 30000));
	vm_host_sleep_ms(20);
	atomic_store(&lk_stop, 1);
	for (int i = 0; i < LK_THREADS; i++)
		pthread_join(t[i], NULL);
	vm_assert_clean();
	cr_assert_gt(vm_stats().dead_letters, 0);
	vm_stop();
	free(lk_pids);
}

/* ---- a host thread keeps sending while the VM stops ---- */

static atomic_int stopper_last_rc = 1;
static atomic_long stopper_sent;
static kr_pid stopper_target;

static void *keep_sending(void *arg)
{
	for (;;) {
		int rc = kr_send(stopper_target, 1, "x", 1);
		if (rc != 0) {
			atomic_store(&stopper_last_rc, rc);
			return NULL;
		}
		atomic_fetch_add(&stopper_sent, 1);
	}
}

static void drain_forever(void *arg)
{
	kr_msg *m;
	while (kr_recv(&m, KR_INFINITY) == 0)
		kr_msg_free(m);
}

Test(embed, a_host_thread_sending_while_the_vm_stops_gets_estopped)
{
	vm_start(2);
	stopper_target = vm_spawn(drain_forever, NULL);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, keep_sending, NULL), 0);
	cr_assert(VM_WAIT(atomic_load(&stopper_sent) > 1000, 10000));
	vm_stop();
	pthread_join(t, NULL);
	cr_assert_eq(atomic_load(&stopper_last_rc), KR_ESTOPPED, "kr_send during stop: %d",
	             atomic_load(&stopper_last_rc));
}

/* ---- a host embeds, stops and embeds again ---- */

static void echo(void *arg)
{
	chan *c = arg;
	kr_msg *m;
	while (kr_recv(&m, KR_INFINITY) == 0) {
		uint64_t v;
		memcpy(&v, m->data, sizeof v);
		kr_msg_free(m);
		chan_put(c, v + 1);
	}
}

Test(embed, request_reply_from_the_host_across_restarts)
{
	static chan c;
	chan_init(&c, 16);
	for (int round = 0; round < 3; round++) {
		vm_start((unsigned)round % 2 + 1);
		kr_pid e = vm_spawn(echo, &c);
		for (uint64_t i = 0; i < 1000; i++) {
			cr_assert_eq(kr_send(e, 1, &i, sizeof i), 0);
			uint64_t r;
			cr_assert_eq(chan_get(&c, &r, 10000), 0, "no reply to %llu", (unsigned long long)i);
			cr_assert_eq(r, i + 1);
		}
		vm_stop();
	}
	chan_destroy(&c);
}

/* ---- a fault in krill's own code: the host gets a crash dump ----
 *
 * A bad pointer that krill's code dereferences cannot be contained (a
 * fault in krill's code may leave its state half-changed): krill prints a
 * crash dump on stderr and aborts the program (docs/faults.md). What a
 * host needs from that dump: the signal, the address, that the fault was
 * in krill's code, the scheduler and the process that was running, and a
 * backtrace. The program is this test binary run again (not forked: TSan
 * and qemu-user cannot start threads in the child of a process that has
 * some), with KR_TEST_CRASH_DUMP_CHILD in its environment and its stderr
 * on a pipe the test reads; Criterion's first hook in it makes the fault
 * (and never returns). */

/* Exported: backtrace_symbols names exported functions only. */
__attribute__((visibility("default"))) void embed_bad_binary_reader(void *arg);
void embed_bad_binary_reader(void *arg)
{
	(void)arg;
	/* kr_bin_size reads the binary's length: in krill's code, at an
	 * address no one maps. */
	volatile size_t n = kr_bin_size((const kr_bin *)(uintptr_t)0x1000);
	(void)n;
}

ReportHook(PRE_ALL)(struct criterion_test_set *tests)
{
	(void)tests;
	if (!getenv("KR_TEST_CRASH_DUMP_CHILD"))
		return;
	kr_config cfg = { .schedulers = 1 };
	if (kr_vm_start(&cfg) != 0)
		_exit(90);
	kr_spawn_opts o = { .name = "bad_reader" };
	if (kr_spawn_opt(embed_bad_binary_reader, NULL, &o) <= 0)
		_exit(91);
	vm_host_sleep_ms(30000);
	_exit(92); /* not aborted */
}

extern char **environ;

Test(embed, a_fault_in_krills_code_prints_a_crash_dump_and_aborts)
{
	int fds[2];
	cr_assert_eq(pipe(fds), 0);
	/* This worker's environment, less BoxFort's (which would make the
	 * child a Criterion worker too), plus the child's mark. */
	size_t n_env = 0;
	while (environ[n_env])
		n_env++;
	char **env = calloc(n_env + 2, sizeof *env);
	cr_assert_not_null(env);
	size_t k = 0;
	for (size_t i = 0; i < n_env; i++)
		if (strncmp(environ[i], "BXFI_", 5) != 0)
			env[k++] = environ[i];
	env[k] = "KR_TEST_CRASH_DUMP_CHILD=1";
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], STDERR_FILENO);
	posix_spawn_file_actions_addclose(&fa, fds[0]);
	char *argv[] = { "krill_tests", NULL };
	pid_t child;
	int rc = posix_spawn(&child, "/proc/self/exe", &fa, NULL, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	free(env);
	cr_assert_eq(rc, 0, "posix_spawn: %s", strerror(rc));
	close(fds[1]);
	static char out[16384];
	size_t len = 0;
	ssize_t n;
	while (len < sizeof out - 1 && (n = read(fds[0], out + len, sizeof out - 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		cr_assert_geq(n, 0, "read: %s", strerror(errno));
		len += (size_t)n;
	}
	out[len] = 0;
	close(fds[0]);
	int status;
	cr_assert_eq(waitpid(child, &status, 0), child);
	cr_log_info("the child's stderr:\n%s", out);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
	          "the program was not aborted (status %#x); its stderr:\n%s", status, out);
	static const char *const want[] = {
		"fatal SIGSEGV",                  /* the signal */
		"at address 0x1008",              /* the address: the length field */
		"in krill's code",                /* whose code faulted */
		"on scheduler 0",                 /* where */
		"running process <0.",            /* the process on that scheduler */
		"bad_reader",                     /* ... by its name */
		"a fault in krill itself",        /* what it means */
		"kr_bin_size",                    /* the backtrace: the faulting function */
		"embed_bad_binary_reader",        /* ... and the process's own frame */
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		cr_assert_not_null(strstr(out, want[i]), "the crash dump lacks \"%s\":\n%s", want[i], out);
}
