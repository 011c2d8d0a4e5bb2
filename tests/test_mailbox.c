/*
 * test_mailbox.c - messages through the public API: send and receive,
 * copies and binaries, selective receive by tag and by predicate, timeouts
 * (0 polls; a timeout never loses or doubles a message), the order of one
 * sender's messages, dead letters, max_message, and received messages on
 * the receiver's heap. The heavy ones: 100 senders x 100,000 messages to 10
 * receivers, and 100,000 receive-with-timeout races against sends.
 *
 * Criterion asserts only on the test thread: processes record failures
 * with VM_CHECK (vm_util.h) and the test asserts vm_assert_clean().
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "krill.h"
#include "vm_util.h"
#if KRX_ASAN
/* sanitizer/allocator_interface.h, which gcc does not install: whether p
 * was given out by the sanitizer's allocator and not yet freed. */
int __sanitizer_get_ownership(const volatile void *p);
#endif

TestSuite(mailbox, .fini = vm_fini, .timeout = 60);

static void nothing(void *arg) { (void)arg; }

static int take_int(kr_msg *m);

/* ---- one message, copied ---- */

static atomic_llong rtr_sender_pid;
static atomic_int rt_done;

static void roundtrip_receiver(void *arg)
{
	kr_msg *m;
	int rc = kr_recv(&m, 10000);
	VM_CHECK(rc == 0, "kr_recv: %d", rc);
	if (rc != 0)
		goto out;
	VM_CHECK(m->sender == atomic_load(&rtr_sender_pid), "sender %lld, want %lld", (long long)m->sender,
	         (long long)atomic_load(&rtr_sender_pid));
	VM_CHECK(m->tag == 0xfeedfacecafebeefull, "tag %#llx", (unsigned long long)m->tag);
	VM_CHECK(m->len == 11, "len %zu", m->len);
	VM_CHECK(m->data && !memcmp(m->data, "hello krill", 11), "payload differs");
	VM_CHECK(m->bin == NULL, "a copied message has a binary");
	kr_msg_free(m);
out:
	atomic_store(&rt_done, 1);
}

static void roundtrip_sender(void *arg)
{
	kr_pid to = (kr_pid)(intptr_t)arg;
	char buf[16] = "hello krill";
	atomic_store(&rtr_sender_pid, kr_self());
	int rc = kr_send(to, 0xfeedfacecafebeefull, buf, 11);
	VM_CHECK(rc == 0, "kr_send: %d", rc);
	memset(buf, 'X', sizeof buf); /* the message is a copy */
}

Test(mailbox, send_copies_and_recv_gets_sender_tag_payload)
{
	vm_start(2);
	atomic_store(&rtr_sender_pid, -1);
	kr_pid r = vm_spawn(roundtrip_receiver, NULL);
	vm_spawn(roundtrip_sender, (void *)(intptr_t)r);
	cr_assert(VM_WAIT(atomic_load(&rt_done), 15000));
	vm_assert_clean();
	vm_stop();
}

/* From a host thread the sender is 0; an empty payload is a message. */
static atomic_int host_done;

static void host_mail_receiver(void *arg)
{
	kr_msg *m;
	int rc = kr_recv(&m, 10000);
	VM_CHECK(rc == 0, "kr_recv: %d", rc);
	if (rc == 0) {
		VM_CHECK(m->sender == 0, "a host thread's message has sender %lld", (long long)m->sender);
		VM_CHECK(m->tag == 5 && m->len == 0, "tag %llu len %zu", (unsigned long long)m->tag, m->len);
		kr_msg_free(m);
	}
	rc = kr_recv(&m, 10000);
	VM_CHECK(rc == 0, "kr_recv: %d", rc);
	if (rc == 0) {
		VM_CHECK(m->sender == 0 && m->tag == 6 && m->len == 3 && !memcmp(m->data, "abc", 3),
		         "second host message wrong");
		kr_msg_free(m);
	}
	atomic_store(&host_done, 1);
}

Test(mailbox, host_messages_have_sender_zero)
{
	vm_start(2);
	kr_pid r = vm_spawn(host_mail_receiver, NULL);
	cr_assert_eq(kr_send(r, 5, NULL, 0), 0);
	cr_assert_eq(kr_send(r, 6, "abc", 3), 0);
	cr_assert(VM_WAIT(atomic_load(&host_done), 15000));
	vm_assert_clean();
	vm_stop();
}

/* ---- timeouts ---- */

static atomic_int to_done;

static void timeout_worker(void *arg)
{
	kr_msg *m = NULL;
	int64_t t0 = vm_now_ns();
	int rc = kr_recv(&m, 0);
	VM_CHECK(rc == KR_ETIMEDOUT, "kr_recv(0) on an empty mailbox: %d", rc);
	VM_CHECK(vm_ms_since(t0) < 1000, "kr_recv(0) blocked for %.1f ms", vm_ms_since(t0));
	rc = kr_recv_tag(&m, 1, 0);
	VM_CHECK(rc == KR_ETIMEDOUT, "kr_recv_tag(0): %d", rc);

	static const long waits[] = { 1, 2, 10, 30 };
	for (int i = 0; i < 4; i++) {
		t0 = vm_now_ns();
		rc = kr_recv(&m, waits[i]);
		double took = vm_ms_since(t0);
		VM_CHECK(rc == KR_ETIMEDOUT, "kr_recv(%ld): %d", waits[i], rc);
		VM_CHECK(took >= (double)waits[i], "kr_recv(%ld) timed out after %.3f ms", waits[i], took);
	}
	/* A message present: timeout 0 takes it. */
	kr_pid me = kr_self();
	kr_send(me, 3, "z", 1);
	rc = kr_recv(&m, 0);
	VM_CHECK(rc == 0, "kr_recv(0) with a message waiting: %d", rc);
	if (rc == 0)
		kr_msg_free(m);
	/* Non-matching messages stay put through a timed-out selective receive. */
	kr_send(me, 4, "a", 1);
	kr_send(me, 5, "b", 1);
	t0 = vm_now_ns();
	rc = kr_recv_tag(&m, 6, 5);
	VM_CHECK(rc == KR_ETIMEDOUT, "kr_recv_tag(6, 5ms): %d", rc);
	VM_CHECK(vm_ms_since(t0) >= 5.0, "kr_recv_tag timed out after %.3f ms", vm_ms_since(t0));
	rc = kr_recv(&m, 0);
	VM_CHECK(rc == 0 && m->tag == 4, "first left-over message: rc %d", rc);
	if (rc == 0)
		kr_msg_free(m);
	rc = kr_recv(&m, 0);
	VM_CHECK(rc == 0 && m->tag == 5, "second left-over message: rc %d", rc);
	if (rc == 0)
		kr_msg_free(m);
	atomic_store(&to_done, 1);
}

Test(mailbox, timeout_zero_polls_and_timeouts_wait_at_least)
{
	vm_start(2);
	vm_spawn(timeout_worker, NULL);
	cr_assert(VM_WAIT(atomic_load(&to_done), 15000));
	vm_assert_clean();
	vm_stop();
}

/* An infinite receive wakes for a message sent later, from a host thread. */
static atomic_int inf_waiting, inf_got;

static void infinite_receiver(void *arg)
{
	kr_msg *m;
	atomic_store(&inf_waiting, 1);
	int rc = kr_recv(&m, KR_INFINITY);
	VM_CHECK(rc == 0, "kr_recv(INFINITY): %d", rc);
	if (rc == 0) {
		VM_CHECK(m->tag == 42, "tag %llu", (unsigned long long)m->tag);
		kr_msg_free(m);
	}
	atomic_store(&inf_got, 1);
}

Test(mailbox, infinite_receive_wakes_for_a_late_message)
{
	vm_start(2);
	kr_pid p = vm_spawn(infinite_receiver, NULL);
	cr_assert(VM_WAIT(vm_status(p) == KR_WAITING, 10000));
	vm_host_sleep_ms(30);
	cr_assert_eq(atomic_load(&inf_got), 0, "kr_recv returned with no message");
	cr_assert_eq(kr_send(p, 42, NULL, 0), 0);
	cr_assert(VM_WAIT(atomic_load(&inf_got), 10000), "a waiting receiver was never woken");
	vm_assert_clean();
	vm_stop();
}

/* ---- order ---- */

#define ORDER_N (100000 / VM_LIGHT_DIV)
static atomic_long order_got;

static void order_receiver(void *arg)
{
	for (long want = 0; want < ORDER_N; want++) {
		kr_msg *m;
		int rc = kr_recv(&m, 10000);
		if (rc != 0) {
			VM_CHECK(rc == 0, "kr_recv after %ld messages: %d", want, rc);
			return;
		}
		long got;
		memcpy(&got, m->data, sizeof got);
		kr_msg_free(m);
		if (got != want) {
			VM_CHECK(got == want, "message %ld arrived as number %ld", got, want);
			return;
		}
		atomic_store(&order_got, want + 1);
	}
}

static void order_sender(void *arg)
{
	kr_pid to = (kr_pid)(intptr_t)arg;
	for (long i = 0; i < ORDER_N; i++)
		if (kr_send(to, 1, &i, sizeof i) != 0) {
			VM_CHECK(0, "kr_send %ld failed", i);
			return;
		}
}

Test(mailbox, one_senders_messages_arrive_in_order_across_schedulers)
{
	vm_start(2);
	kr_pid r = vm_spawn_on(order_receiver, NULL, 1);
	vm_spawn_on(order_sender, (void *)(intptr_t)r, 2);
	cr_assert(VM_WAIT(atomic_load(&order_got) == ORDER_N || atomic_load(&vm_fails), 60000),
	          "received %ld of %d", atomic_load(&order_got), ORDER_N);
	vm_assert_clean();
	vm_stop();
}

/* ---- 100 senders x 100,000 messages to 10 receivers ---- */

#define MS_SENDERS 100
#define MS_RECEIVERS 10
#define MS_PER_SENDER (100000 / VM_HEAVY_DIV)
/* Senders wait (yield) while this many messages are in flight, so the
 * mailboxes cannot grow without bound. It leaves the order untouched. */
#define MS_WINDOW 200000

struct ms_payload {
	uint32_t sender, seq;
	kr_pid pid;
	uint64_t check;
};

static kr_pid ms_receivers[MS_RECEIVERS];
static atomic_long ms_sent, ms_received;
static atomic_int ms_receivers_done;

static uint64_t ms_check(uint32_t s, uint32_t q)
{
	return ((uint64_t)s * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)q * 0xc2b2ae3d27d4eb4full);
}

static void ms_sender(void *arg)
{
	uint32_t s = (uint32_t)(uintptr_t)arg;
	struct ms_payload p = { .sender = s, .pid = kr_self() };
	for (uint32_t k = 0; k < MS_PER_SENDER; k++) {
		while (atomic_load(&ms_sent) - atomic_load(&ms_received) > MS_WINDOW &&
		       !atomic_load(&vm_abort))
			kr_yield();
		p.seq = k;
		p.check = ms_check(s, k);
		int rc = kr_send(ms_receivers[(s + k) % MS_RECEIVERS], s, &p, sizeof p);
		if (rc != 0) {
			VM_CHECK(rc == 0, "sender %u: kr_send %u: %d", s, k, rc);
			return;
		}
		atomic_fetch_add(&ms_sent, 1);
	}
}

static void ms_receiver(void *arg)
{
	uint32_t r = (uint32_t)(uintptr_t)arg;
	/* Sender s sends its k-th message to receiver (s + k) % 10, so here its
	 * sequence numbers go up by 10 from the first k with (s + k) % 10 == r. */
	uint32_t next[MS_SENDERS];
	long total = 0;
	for (uint32_t s = 0; s < MS_SENDERS; s++) {
		next[s] = (r + MS_RECEIVERS - s % MS_RECEIVERS) % MS_RECEIVERS;
		if (next[s] < MS_PER_SENDER)
			total += (MS_PER_SENDER - next[s] + MS_RECEIVERS - 1) / MS_RECEIVERS;
	}
	for (long got = 0; got < total; got++) {
		kr_msg *m;
		int rc = kr_recv(&m, 30000);
		if (rc != 0) {
			VM_CHECK(rc == 0, "receiver %u stuck after %ld of %ld messages: %d", r, got, total, rc);
			return;
		}
		struct ms_payload p;
		VM_CHECK(m->len == sizeof p, "receiver %u: len %zu", r, m->len);
		memcpy(&p, m->data, sizeof p);
		int ok = p.sender < MS_SENDERS && m->tag == p.sender && m->sender == p.pid &&
		         p.check == ms_check(p.sender, p.seq) && p.seq == next[p.sender];
		if (!ok) {
			VM_CHECK(ok,
			         "receiver %u: from sender %u (tag %llu, pid %lld vs %lld) got seq %u, "
			         "want %u (check %s)",
			         r, p.sender, (unsigned long long)m->tag, (long long)m->sender,
			         (long long)p.pid, p.seq, p.sender < MS_SENDERS ? next[p.sender] : 0,
			         p.check == ms_check(p.sender, p.seq) ? "ok" : "bad");
			kr_msg_free(m);
			return;
		}
		next[p.sender] += MS_RECEIVERS;
		kr_msg_free(m);
		atomic_fetch_add(&ms_received, 1);
	}
	/* Nothing more: no message came twice. */
	kr_msg *m;
	int rc = kr_recv(&m, 20);
	VM_CHECK(rc == KR_ETIMEDOUT, "receiver %u got a message beyond its %ld", r, total);
	if (rc == 0)
		kr_msg_free(m);
	atomic_fetch_add(&ms_receivers_done, 1);
}

Test(mailbox, hundred_senders_to_ten_receivers_exactly_once_in_order, .timeout = 300)
{
	vm_start(2);
	/* Receivers bound alternately to each scheduler; senders free to move. */
	for (uint32_t r = 0; r < MS_RECEIVERS; r++)
		ms_receivers[r] = vm_spawn_on(ms_receiver, (void *)(uintptr_t)r, r % 2 + 1);
	for (uint32_t s = 0; s < MS_SENDERS; s++)
		vm_spawn(ms_sender, (void *)(uintptr_t)s);
	cr_assert(VM_WAIT(atomic_load(&ms_receivers_done) == MS_RECEIVERS || atomic_load(&vm_fails),
	                  280000),
	          "%ld sent, %ld received", atomic_load(&ms_sent), atomic_load(&ms_received));
	vm_assert_clean();
	cr_assert_eq(atomic_load(&ms_received), (long)MS_SENDERS * MS_PER_SENDER);
	cr_assert_eq(atomic_load(&ms_sent), (long)MS_SENDERS * MS_PER_SENDER);
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_stop();
}

/* ---- receive with timeout racing sends ---- */

/* Pairs of one sender and one receiver. The sender sends its numbered
 * messages at varying moments (at once, after a yield, a spin of a few
 * microseconds, a sleep of 1-2 ms); the receiver receives with timeouts of
 * 0-2 ms, so timeouts fire as messages arrive. A timeout that wins must
 * leave the message for the next receive (nothing lost), and a receive
 * must never return a message twice (nothing doubled). After a timeout the
 * receiver sometimes sleeps: a stray second wake-up would cut it short. */
#define RT_PAIRS 50
#define RT_ROUNDS (100000 / RT_PAIRS / VM_LIGHT_DIV)

static atomic_long rt_received, rt_timeouts, rt_pairs_done;
static atomic_int rt_sender_done[RT_PAIRS];
static kr_pid rt_receiver_pid[RT_PAIRS];

static int rt_match_tag1(const kr_msg *m, void *ctx) { return m->tag == *(uint64_t *)ctx; }

static void race_sender(void *arg)
{
	int pair = (int)(intptr_t)arg;
	uint32_t seed = 7u + (uint32_t)pair * 7919u;
	kr_pid to = rt_receiver_pid[pair];
	for (uint32_t i = 0; i < RT_ROUNDS && !atomic_load(&vm_abort); i++) {
		switch (vm_rand(&seed) % 6) {
		case 0: break;
		case 1: kr_yield(); break;
		case 2: kr_sleep(1); break;
		case 3: vm_spin_us(vm_rand(&seed) % 300); break;
		case 4: kr_sleep(2); break;
		case 5: vm_spin_us(vm_rand(&seed) % 100); kr_yield(); break;
		}
		int rc = kr_send(to, 1, &i, sizeof i);
		VM_CHECK(rc == 0, "pair %d: kr_send %u: %d", pair, i, rc);
	}
	atomic_store(&rt_sender_done[pair], 1);
}

static void rt_receiver(void *arg)
{
	int pair = (int)(intptr_t)arg;
	uint64_t tag1 = 1;
	uint32_t seed = 11u + (uint32_t)pair * 104729u;
	long timeouts = 0;
	uint32_t want = 0;
	while (want < RT_ROUNDS) {
		kr_msg *m = NULL;
		long t = (long)(vm_rand(&seed) % 3);
		int how = (int)(vm_rand(&seed) % 3);
		int64_t t0 = vm_now_ns();
		int rc = how == 0   ? kr_recv(&m, t)
		         : how == 1 ? kr_recv_tag(&m, 1, t)
		                    : kr_recv_match(&m, rt_match_tag1, &tag1, t);
		if (rc == 0) {
			uint32_t got;
			memcpy(&got, m->data, sizeof got);
			kr_msg_free(m);
			if (got != want) {
				VM_CHECK(got == want, "pair %d: got message %u, want %u (%s)", pair, got, want,
				         got < want ? "doubled" : "lost");
				break;
			}
			want++;
			atomic_fetch_add(&rt_received, 1);
			continue;
		}
		if (rc != KR_ETIMEDOUT) {
			VM_CHECK(0, "pair %d: receive returned %d", pair, rc);
			break;
		}
		double took = vm_ms_since(t0);
		VM_CHECK(took >= (double)t, "pair %d: a %ld ms timeout fired after %.3f ms", pair, t, took);
		timeouts++;
		if (timeouts % 4 == 0) {
			t0 = vm_now_ns();
			kr_sleep(1);
			took = vm_ms_since(t0);
			VM_CHECK(took >= 1.0, "pair %d: kr_sleep(1) after a timeout woke after %.3f ms", pair,
			         took);
		}
		if (atomic_load(&rt_sender_done[pair])) {
			/* Everything is sent: what is missing must be in the mailbox. */
			rc = kr_recv(&m, 5000);
			if (rc != 0) {
				VM_CHECK(rc == 0, "pair %d: message %u lost (sender done): %d", pair, want, rc);
				break;
			}
			uint32_t got;
			memcpy(&got, m->data, sizeof got);
			kr_msg_free(m);
			if (got != want) {
				VM_CHECK(got == want, "pair %d: got message %u, want %u", pair, got, want);
				break;
			}
			want++;
			atomic_fetch_add(&rt_received, 1);
		}
		if (atomic_load(&vm_abort))
			break;
	}
	kr_msg *m;
	int rc = kr_recv(&m, 20);
	VM_CHECK(rc == KR_ETIMEDOUT, "pair %d: a message beyond the last (doubled)", pair);
	if (rc == 0)
		kr_msg_free(m);
	atomic_fetch_add(&rt_timeouts, timeouts);
	atomic_fetch_add(&rt_pairs_done, 1);
}

Test(mailbox, receive_timeouts_race_sends_without_loss_or_double, .timeout = 240)
{
	vm_start(2);
	for (int p = 0; p < RT_PAIRS; p++)
		rt_receiver_pid[p] = vm_spawn_on(rt_receiver, (void *)(intptr_t)p, (unsigned)p % 2 + 1);
	for (int p = 0; p < RT_PAIRS; p++)
		vm_spawn_on(race_sender, (void *)(intptr_t)p, (unsigned)(p / 2) % 2 + 1);
	cr_assert(VM_WAIT(atomic_load(&rt_pairs_done) == RT_PAIRS, 200000), "%ld pairs done",
	          atomic_load(&rt_pairs_done));
	vm_assert_clean();
	cr_assert_eq(atomic_load(&rt_received), (long)RT_PAIRS * RT_ROUNDS);
	cr_log_info("receive races: %d rounds, %ld timeouts", RT_PAIRS * RT_ROUNDS,
	            atomic_load(&rt_timeouts));
	cr_assert_gt(atomic_load(&rt_timeouts), 0, "no receive ever timed out: nothing raced");
	vm_stop();
}

/* ---- partners on one scheduler (direct switches, deferred commits) ----
 * A ping-pong pair bound to one scheduler hands the CPU straight from one
 * to the other and delivers into a parked partner's queue without a CAS
 * (sched.h). Meanwhile outsiders on the other scheduler send to the pair's
 * first process, and the partner sometimes sends twice in a row (the
 * second message finds its receiver already woken). Every message must
 * arrive once, each sender's in order. */

#define PAIR_ROUNDS (200000 / VM_LIGHT_DIV)
#define PAIR_OUTSIDERS 4
#define PAIR_OUT_MSGS (20000 / VM_LIGHT_DIV)
enum { PAIR_PING = 1, PAIR_PONG, PAIR_EXTRA, PAIR_OUT };

static atomic_llong pair_a_pid, pair_b_pid;
static atomic_int pair_done;

static void pair_b(void *arg)
{
	(void)arg;
	for (long i = 0; i < PAIR_ROUNDS; i++) {
		kr_msg *m;
		int rc = kr_recv_tag(&m, PAIR_PING, 10000);
		VM_CHECK(rc == 0, "pair_b: recv round %ld: %d", i, rc);
		if (rc)
			return;
		/* Reply to the sender: the test thread may not have published
		 * pair_a_pid yet when the first ping comes. */
		kr_pid a = m->sender;
		long v = take_int(m);
		VM_CHECK(v == (int)i, "pair_b: ping %ld, want %ld", v, i);
		int x = (int)i;
		VM_CHECK(kr_send(a, PAIR_PONG, &x, sizeof x) == 0, "pair_b: pong %d", x);
		if (i % 3 == 0)
			VM_CHECK(kr_send(a, PAIR_EXTRA, &x, sizeof x) == 0, "pair_b: extra %d", x);
	}
}

static void pair_a(void *arg)
{
	(void)arg;
	int next_pong = 0, next_extra = 0, next_out[PAIR_OUTSIDERS] = { 0 };
	long outs = 0;
	/* Before the first ping: pair_b answers to this pid, and the test
	 * thread may not have stored it yet. */
	atomic_store(&pair_a_pid, kr_self());
	for (int i = 0; i < PAIR_ROUNDS; i++) {
		kr_send((kr_pid)atomic_load(&pair_b_pid), PAIR_PING, &i, sizeof i);
		/* Take whatever comes until the pong of this round. */
		for (;;) {
			kr_msg *m;
			int rc = kr_recv(&m, 10000);
			VM_CHECK(rc == 0, "pair_a: recv in round %d: %d", i, rc);
			if (rc)
				return;
			uint64_t tag = m->tag;
			int from = (int)(m->sender == (kr_pid)atomic_load(&pair_b_pid));
			int v = take_int(m);
			if (tag == PAIR_OUT) {
				int who = v >> 24, n = v & 0xffffff;
				VM_CHECK(who >= 0 && who < PAIR_OUTSIDERS && n == next_out[who],
				         "outsider %d: %d, want %d", who, n, next_out[who]);
				if (who >= 0 && who < PAIR_OUTSIDERS)
					next_out[who] = n + 1;
				outs++;
				continue;
			}
			VM_CHECK(from, "a pong from someone else");
			if (tag == PAIR_EXTRA) {
				VM_CHECK(v == next_extra && v % 3 == 0, "extra %d, want %d", v, next_extra);
				next_extra = v + 3;
				continue;
			}
			VM_CHECK(tag == PAIR_PONG && v == next_pong, "pong %d, want %d", v, next_pong);
			next_pong = v + 1;
			break;
		}
	}
	/* The outsiders' last messages may still be on their way. */
	while (outs < (long)PAIR_OUTSIDERS * PAIR_OUT_MSGS) {
		kr_msg *m;
		int rc = kr_recv_tag(&m, PAIR_OUT, 10000);
		VM_CHECK(rc == 0, "pair_a: %ld outsiders' messages of %ld", outs,
		         (long)PAIR_OUTSIDERS * PAIR_OUT_MSGS);
		if (rc)
			return;
		int v = take_int(m), who = v >> 24, n = v & 0xffffff;
		VM_CHECK(who >= 0 && who < PAIR_OUTSIDERS && n == next_out[who], "outsider %d: %d", who, n);
		if (who >= 0 && who < PAIR_OUTSIDERS)
			next_out[who] = n + 1;
		outs++;
	}
	/* The last extra: round PAIR_ROUNDS-1 rounded down to a multiple of 3. */
	kr_msg *m;
	if (kr_recv_tag(&m, PAIR_EXTRA, 0) == 0)
		next_extra = take_int(m) + 3;
	VM_CHECK(next_extra == ((PAIR_ROUNDS - 1) / 3 + 1) * 3, "extras end at %d", next_extra);
	VM_CHECK(kr_recv(&m, 0) == KR_ETIMEDOUT, "a message too many");
	atomic_store(&pair_done, 1);
}

static void pair_outsider(void *arg)
{
	int who = (int)(intptr_t)arg;
	for (int n = 0; n < PAIR_OUT_MSGS; n++) {
		int v = who << 24 | n;
		kr_send((kr_pid)atomic_load(&pair_a_pid), PAIR_OUT, &v, sizeof v);
		if (n % 64 == 0)
			kr_yield();
	}
}

Test(mailbox, partners_on_one_scheduler_and_outsiders_keep_every_order, .timeout = 120)
{
	vm_start(2);
	atomic_store(&pair_a_pid, 0);
	kr_spawn_opts o = { .bind_scheduler = 1 };
	kr_pid b = kr_spawn_opt(pair_b, NULL, &o);
	cr_assert_gt(b, 0);
	atomic_store(&pair_b_pid, b);
	kr_pid a = kr_spawn_opt(pair_a, NULL, &o);
	cr_assert_gt(a, 0);
	atomic_store(&pair_a_pid, a);
	for (int i = 0; i < PAIR_OUTSIDERS; i++)
		vm_spawn_on(pair_outsider, (void *)(intptr_t)i, 2);
	cr_assert(VM_WAIT(atomic_load(&pair_done) || atomic_load(&vm_fails), 100000));
	vm_assert_clean();
	vm_stop();
}

/* A receive with a timeout that parks by handing the CPU to its partner
 * (its commit deferred) still times out when the partner never answers,
 * and still gets the answer when it comes late. */
static atomic_int late_result[2];
static atomic_llong late_waited_ms[2];

static void late_partner(void *arg)
{
	kr_msg *m;
	long delay = (long)(intptr_t)arg; /* < 0: never answer */
	if (kr_recv(&m, 10000) != 0)
		return;
	kr_pid to = m->sender;
	kr_msg_free(m);
	if (delay < 0) {
		kr_recv(&m, 300); /* park with nothing for the asker */
		return;
	}
	kr_sleep(delay);
	kr_send(to, 2, NULL, 0);
}

static void late_asker(void *arg)
{
	int which = (int)(intptr_t)arg;
	kr_spawn_opts o = { .bind_scheduler = 1 };
	kr_pid p = kr_spawn_opt(late_partner, (void *)(intptr_t)(which ? 20 : -1), &o);
	VM_CHECK(p > 0, "spawn: %lld", (long long)p);
	kr_yield(); /* let the partner park in its receive */
	int64_t t0 = vm_now_ns();
	kr_send(p, 1, NULL, 0);
	kr_msg *m;
	int rc = kr_recv(&m, 100);
	late_waited_ms[which] = (vm_now_ns() - t0) / 1000000;
	if (rc == 0)
		kr_msg_free(m);
	atomic_store(&late_result[which], rc == 0 ? 1 : rc == KR_ETIMEDOUT ? 2 : 3);
}

Test(mailbox, a_deferred_receive_times_out_or_gets_a_late_answer)
{
	vm_start(2);
	kr_spawn_opts o = { .bind_scheduler = 1 };
	cr_assert_gt(kr_spawn_opt(late_asker, (void *)0, &o), 0);
	cr_assert_gt(kr_spawn_opt(late_asker, (void *)1, &o), 0);
	cr_assert(VM_WAIT(atomic_load(&late_result[0]) && atomic_load(&late_result[1]), 10000));
	cr_assert_eq(atomic_load(&late_result[0]), 2, "no answer: want a timeout, got %d",
	             atomic_load(&late_result[0]));
	cr_assert_geq(atomic_load(&late_waited_ms[0]), 99, "timed out after %lld ms",
	              atomic_load(&late_waited_ms[0]));
	cr_assert_eq(atomic_load(&late_result[1]), 1, "a late answer: want it, got %d",
	             atomic_load(&late_result[1]));
	vm_assert_clean();
	vm_stop();
}

/* ---- selective receive ---- */

#define SEL_N 30
static atomic_int sel_done;

static int is_multiple_of(const kr_msg *m, void *ctx)
{
	int v;
	memcpy(&v, m->data, sizeof v);
	return m->len == sizeof v && v % *(int *)ctx == 0;
}

static int take_int(kr_msg *m)
{
	int v = -1;
	if (m->len == sizeof v)
		memcpy(&v, m->data, sizeof v);
	kr_msg_free(m);
	return v;
}

static void selective_worker(void *arg)
{
	kr_pid me = kr_self();
	kr_proc_info info;
	/* Wait until all SEL_N are in (sent by the test thread, tags 1,2,3,...). */
	while (kr_info(me, &info) == 0 && info.mailbox_len < SEL_N && !atomic_load(&vm_abort))
		kr_sleep(1);
	kr_msg *m;
	/* Tag 3 first: 2, 5, 8, ... in order. */
	for (int k = 2; k < SEL_N; k += 3) {
		int rc = kr_recv_tag(&m, 3, 0);
		VM_CHECK(rc == 0, "kr_recv_tag(3) for %d: %d", k, rc);
		if (rc != 0)
			return;
		VM_CHECK(m->tag == 3, "kr_recv_tag(3) returned tag %llu", (unsigned long long)m->tag);
		int v = take_int(m);
		VM_CHECK(v == k, "kr_recv_tag(3) gave %d, want %d", v, k);
	}
	VM_CHECK(kr_recv_tag(&m, 3, 0) == KR_ETIMEDOUT, "a fourth... eleventh tag 3?");
	kr_info(me, &info);
	VM_CHECK(info.mailbox_len == SEL_N - SEL_N / 3, "mailbox_len %zu after taking tag 3",
	         info.mailbox_len);
	/* By predicate: multiples of 4 among what is left (tags 1 and 2). */
	int four = 4;
	for (int k = 0; k < SEL_N; k += 4) {
		if (k % 3 == 2)
			continue; /* taken above */
		int rc = kr_recv_match(&m, is_multiple_of, &four, 0);
		VM_CHECK(rc == 0, "kr_recv_match(x%%4) for %d: %d", k, rc);
		if (rc != 0)
			return;
		int v = take_int(m);
		VM_CHECK(v == k, "kr_recv_match gave %d, want %d", v, k);
	}
	VM_CHECK(kr_recv_match(&m, is_multiple_of, &four, 0) == KR_ETIMEDOUT, "one more x%%4?");
	/* The rest, with plain kr_recv: all in the order sent. */
	for (int k = 0; k < SEL_N; k++) {
		if (k % 3 == 2 || k % 4 == 0)
			continue;
		int rc = kr_recv(&m, 0);
		VM_CHECK(rc == 0, "kr_recv for %d: %d", k, rc);
		if (rc != 0)
			return;
		int v = take_int(m);
		VM_CHECK(v == k, "kr_recv gave %d, want %d (unmatched messages out of order)", v, k);
	}
	VM_CHECK(kr_recv(&m, 0) == KR_ETIMEDOUT, "messages left over");
	atomic_store(&sel_done, 1);
}

Test(mailbox, selective_receive_keeps_unmatched_messages_in_order)
{
	vm_start(2);
	kr_pid p = vm_spawn(selective_worker, NULL);
	for (int k = 0; k < SEL_N; k++)
		cr_assert_eq(kr_send(p, (uint64_t)(k % 3 + 1), &k, sizeof k), 0);
	cr_assert(VM_WAIT(atomic_load(&sel_done) || !kr_is_alive(p), 15000));
	vm_assert_clean();
	cr_assert(atomic_load(&sel_done));
	vm_stop();
}

/* A selective receive that waits: non-matching arrivals do not end it, the
 * matching one does, and the others stay in order. */
static atomic_int selw_stage;

static void selective_waiter(void *arg)
{
	kr_msg *m;
	atomic_store(&selw_stage, 1);
	int rc = kr_recv_tag(&m, 99, KR_INFINITY);
	VM_CHECK(rc == 0, "kr_recv_tag(99, INFINITY): %d", rc);
	if (rc != 0)
		return;
	VM_CHECK(m->tag == 99, "woke with tag %llu", (unsigned long long)m->tag);
	kr_msg_free(m);
	for (int k = 0; k < 10; k++) {
		rc = kr_recv(&m, 0);
		VM_CHECK(rc == 0, "left-over %d: %d", k, rc);
		if (rc != 0)
			return;
		VM_CHECK(m->tag == 7, "tag %llu", (unsigned long long)m->tag);
		int v = take_int(m);
		VM_CHECK(v == k, "left-over %d came as %d", v, k);
	}
	atomic_store(&selw_stage, 2);
}

Test(mailbox, waiting_selective_receive_wakes_only_for_a_match)
{
	vm_start(2);
	kr_pid p = vm_spawn(selective_waiter, NULL);
	cr_assert(VM_WAIT(vm_status(p) == KR_WAITING, 10000));
	for (int k = 0; k < 10; k++) {
		cr_assert_eq(kr_send(p, 7, &k, sizeof k), 0);
		if (k % 3 == 0)
			vm_host_sleep_ms(2);
	}
	vm_host_sleep_ms(20);
	cr_assert_eq(atomic_load(&selw_stage), 1, "the receive ended without its tag");
	kr_proc_info i;
	cr_assert(VM_WAIT(kr_info(p, &i) == 0 && i.status == KR_WAITING && i.mailbox_len == 10, 10000),
	          "status %d mailbox_len %zu", i.status, i.mailbox_len);
	cr_assert_eq(kr_send(p, 99, NULL, 0), 0);
	cr_assert(VM_WAIT(atomic_load(&selw_stage) == 2 || !kr_is_alive(p), 10000));
	vm_assert_clean();
	cr_assert_eq(atomic_load(&selw_stage), 2);
	vm_stop();
}

/* Bad arguments to a receive are KR_EINVAL at once, even with a timeout
 * that would wait for ever, and take nothing: no place for the message, or
 * a selective receive with no test. */
static atomic_int badrecv_done;

static int match_tag_2(const kr_msg *m, void *ctx) { return m->tag == 2; }

static void bad_receives(void *arg)
{
	kr_msg *m = (kr_msg *)&m;
	int rc;
	VM_CHECK((rc = kr_recv(NULL, 0)) == KR_EINVAL, "kr_recv(NULL, 0): %d", rc);
	VM_CHECK((rc = kr_recv(NULL, KR_INFINITY)) == KR_EINVAL, "kr_recv(NULL, INFINITY): %d", rc);
	VM_CHECK((rc = kr_recv_tag(NULL, 1, KR_INFINITY)) == KR_EINVAL, "kr_recv_tag(NULL): %d", rc);
	VM_CHECK((rc = kr_recv_match(NULL, match_tag_2, NULL, KR_INFINITY)) == KR_EINVAL,
	         "kr_recv_match(NULL): %d", rc);
	VM_CHECK((rc = kr_recv_match(&m, NULL, NULL, KR_INFINITY)) == KR_EINVAL,
	         "kr_recv_match without a test: %d", rc);
	VM_CHECK(m == NULL, "*out was left %p", (void *)m);
	/* The message sent before is still there, and the only one. */
	VM_CHECK((rc = kr_recv(&m, 0)) == 0, "the message is gone: %d", rc);
	if (rc == 0) {
		VM_CHECK(m->tag == 2, "tag %llu", (unsigned long long)m->tag);
		kr_msg_free(m);
	}
	VM_CHECK(kr_recv(&m, 0) == KR_ETIMEDOUT, "more than one message");
	atomic_store(&badrecv_done, 1);
}

static void send_self_then(void *arg)
{
	kr_send(kr_self(), 2, NULL, 0);
	bad_receives(arg);
}

Test(mailbox, bad_arguments_to_a_receive_are_einval_at_once)
{
	vm_start(1);
	vm_spawn(send_self_then, NULL);
	cr_assert(VM_WAIT(atomic_load(&badrecv_done) || atomic_load(&vm_fails), 10000),
	          "a receive with a bad argument waited");
	vm_stop();
}

/* ---- received messages live on the receiver's heap ---- */

#define HEAPMSG_LEN 10000
static atomic_int hm_stage;
static atomic_size_t hm_seen_self;

static void heap_msg_receiver(void *arg)
{
	kr_pid me = kr_self();
	VM_CHECK(vm_heap(me) == 0, "heap_bytes %zu before any message", vm_heap(me));
	kr_msg *m;
	int rc = kr_recv(&m, 10000);
	VM_CHECK(rc == 0, "kr_recv: %d", rc);
	if (rc != 0)
		return;
	VM_CHECK(m->len == HEAPMSG_LEN, "len %zu", m->len);
	atomic_store(&hm_seen_self, vm_heap(me));
	atomic_store(&hm_stage, 1);
	while (atomic_load(&hm_stage) == 1 && !atomic_load(&vm_abort))
		kr_sleep(1);
	kr_msg_free(m);
	atomic_store(&hm_seen_self, vm_heap(me));
	atomic_store(&hm_stage, 3);
	while (atomic_load(&hm_stage) == 3 && !atomic_load(&vm_abort))
		kr_sleep(1);
}

Test(mailbox, received_messages_count_on_the_heap_until_freed)
{
	vm_start(2);
	kr_pid p = vm_spawn(heap_msg_receiver, NULL);
	static char big[HEAPMSG_LEN];
	memset(big, 'm', sizeof big);
	cr_assert_eq(kr_send(p, 1, big, sizeof big), 0);
	cr_assert(VM_WAIT(atomic_load(&hm_stage) == 1, 10000));
	cr_assert_geq(atomic_load(&hm_seen_self), HEAPMSG_LEN, "heap_bytes %zu from itself",
	              atomic_load(&hm_seen_self));
	size_t outside = vm_heap(p);
	cr_assert(outside >= HEAPMSG_LEN && outside != (size_t)-1, "heap_bytes %zu from outside",
	          outside);
	atomic_store(&hm_stage, 2);
	cr_assert(VM_WAIT(atomic_load(&hm_stage) == 3, 10000));
	cr_assert_eq(atomic_load(&hm_seen_self), 0, "heap_bytes %zu after kr_msg_free",
	             atomic_load(&hm_seen_self));
	cr_assert_eq(vm_heap(p), 0);
	atomic_store(&hm_stage, 4);
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_assert_clean();
	vm_stop();
}

/* ---- dead letters ---- */

static atomic_int dl_done;

static void dead_letter_sender(void *arg)
{
	kr_pid dead = (kr_pid)(intptr_t)arg;
	kr_vm_stats s0, s1;
	kr_vm_stats_get(&s0);
	int rc = kr_send(dead, 1, "late", 4);
	VM_CHECK(rc == 0, "kr_send to a dead process from a process: %d", rc);
	kr_vm_stats_get(&s1);
	VM_CHECK(s1.dead_letters == s0.dead_letters + 1, "dead_letters %llu -> %llu",
	         (unsigned long long)s0.dead_letters, (unsigned long long)s1.dead_letters);
	atomic_store(&dl_done, 1);
}

Test(mailbox, sending_to_a_dead_process_is_a_dead_letter)
{
	vm_start(2);
	kr_pid dead = vm_spawn(nothing, NULL);
	cr_assert(VM_WAIT(!kr_is_alive(dead), 10000));
	uint64_t d0 = vm_stats().dead_letters;
	cr_assert_eq(kr_send(dead, 1, "late", 4), 0);
	cr_assert_eq(vm_stats().dead_letters, d0 + 1);
	kr_bin *b = kr_bin_new("binary", 6);
	cr_assert_eq(kr_send_bin(dead, 2, b), 0); /* its reference is dropped: ASan sees a leak */
	cr_assert_eq(vm_stats().dead_letters, d0 + 2);
	kr_bin_unref(b);
	vm_spawn(dead_letter_sender, (void *)(intptr_t)dead);
	cr_assert(VM_WAIT(atomic_load(&dl_done), 10000));
	vm_assert_clean();
	vm_stop();
}

/* ---- max_message ---- */

static atomic_int limit_done;

static void limit_sender(void *arg)
{
	static char buf[1025];
	kr_pid me = kr_self();
	int rc = kr_send(me, 1, buf, 1025);
	VM_CHECK(rc == KR_ELIMIT, "kr_send of 1025 bytes with max_message 1024: %d", rc);
	rc = kr_send(me, 1, buf, 1024);
	VM_CHECK(rc == 0, "kr_send of 1024 bytes with max_message 1024: %d", rc);
	kr_msg *m;
	rc = kr_recv(&m, 0);
	VM_CHECK(rc == 0 && m->len == 1024, "the 1024-byte message");
	if (rc == 0)
		kr_msg_free(m);
	VM_CHECK(kr_recv(&m, 0) == KR_ETIMEDOUT, "the refused message was delivered");
	atomic_store(&limit_done, 1);
}

static void wait_one(void *arg)
{
	kr_msg *m;
	if (kr_recv(&m, KR_INFINITY) == 0)
		kr_msg_free(m);
}

Test(mailbox, messages_over_max_message_are_elimit)
{
	kr_config cfg = { .schedulers = 2, .max_message = 1024 };
	vm_start_cfg(&cfg);
	static char buf[1025];
	kr_pid w = vm_spawn(wait_one, NULL);
	uint64_t d0 = vm_stats().dead_letters;
	cr_assert_eq(kr_send(w, 1, buf, 1025), KR_ELIMIT, "from a host thread");
	cr_assert_eq(vm_stats().dead_letters, d0, "a refused message counted as a dead letter");
	vm_spawn(limit_sender, NULL);
	cr_assert(VM_WAIT(atomic_load(&limit_done), 10000));
	cr_assert_eq(kr_info(w, &(kr_proc_info){ 0 }), 0);
	cr_assert_eq(kr_send(w, 1, buf, 1024), 0);
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_assert_clean();
	vm_stop();
}

/* A limit below the size of a cached block holds too: a small message from
 * a process, the path that copies into a block from its scheduler's cache,
 * is refused like any other; so is a call's request. */
static atomic_int small_limit_done;

static void small_limit_sender(void *arg)
{
	char buf[16] = { 0 };
	kr_pid me = kr_self(), srv = *(kr_pid *)arg;
	kr_msg *m;
	/* Fill the scheduler's cache: blocks freed here are reused. */
	for (int i = 0; i < 8; i++)
		kr_send(me, 2, buf, 4);
	for (int i = 0; i < 8 && kr_recv(&m, 0) == 0; i++)
		kr_msg_free(m);
	int rc = kr_send(me, 1, buf, 9);
	VM_CHECK(rc == KR_ELIMIT, "kr_send of 9 bytes with max_message 8: %d", rc);
	rc = kr_send(me, 1, buf, 8);
	VM_CHECK(rc == 0, "kr_send of 8 bytes with max_message 8: %d", rc);
	rc = kr_call(srv, 1, buf, 9, &m, 1000);
	VM_CHECK(rc == KR_ELIMIT, "kr_call with 9 bytes with max_message 8: %d", rc);
	rc = kr_recv(&m, 0);
	VM_CHECK(rc == 0 && m->len == 8, "the 8-byte message");
	if (rc == 0)
		kr_msg_free(m);
	VM_CHECK(kr_recv(&m, 0) == KR_ETIMEDOUT, "the refused message was delivered");
	atomic_store(&small_limit_done, 1);
}

Test(mailbox, a_limit_below_a_cached_block_holds_for_small_messages)
{
	kr_config cfg = { .schedulers = 1, .max_message = 8 };
	vm_start_cfg(&cfg);
	static kr_pid w;
	w = vm_spawn(wait_one, NULL);
	vm_spawn(small_limit_sender, &w);
	cr_assert(VM_WAIT(atomic_load(&small_limit_done), 10000));
	cr_assert_eq(kr_send(w, 1, NULL, 0), 0);
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_assert_clean();
	vm_stop();
}

Test(mailbox, default_max_message_is_64_mib)
{
	vm_start(1);
	kr_pid w = vm_spawn(wait_one, NULL);
	/* Never read if the VM checks the size first: a reservation suffices. */
	size_t len = ((size_t)64 << 20) + 1;
	void *big = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	cr_assert_neq(big, MAP_FAILED);
	cr_assert_eq(kr_send(w, 1, big, len), KR_ELIMIT);
	munmap(big, len);
	cr_assert_eq(kr_send(w, 1, NULL, 0), 0);
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_stop();
}

/* ---- binaries: shared, never copied, freed once ---- */

#define BIN_RECEIVERS 100
#define BIN_LEN 4096
static const void *bin_bytes; /* where the binary's bytes live */
static atomic_int bin_ok, bin_done;
static kr_pid bin_forward_to;

static void bin_receiver(void *arg)
{
	int id = (int)(intptr_t)arg;
	kr_msg *m;
	int rc = kr_recv(&m, 10000);
	VM_CHECK(rc == 0, "binary receiver %d: %d", id, rc);
	if (rc != 0)
		goto out;
	int good = m->bin != NULL && m->len == BIN_LEN && m->tag == 77 &&
	           kr_bin_data(m->bin) == bin_bytes && m->data == bin_bytes &&
	           kr_bin_size(m->bin) == BIN_LEN;
	VM_CHECK(good, "receiver %d: bin %p len %zu data %p (binary at %p): copied or wrong", id,
	         (void *)m->bin, m->len, m->data, bin_bytes);
	if (good) {
		const unsigned char *d = m->data;
		int bad = 0;
		for (int i = 0; i < BIN_LEN; i++)
			bad += d[i] != (unsigned char)(i * 7);
		VM_CHECK(bad == 0, "receiver %d: %d bytes differ", id, bad);
		atomic_fetch_add(&bin_ok, 1);
	}
	if (id % 3 == 0 && m->bin) {
		/* Keep a reference past the message, pass it on, then drop it. */
		kr_bin *b = kr_bin_ref(m->bin);
		kr_msg_free(m);
		VM_CHECK(((const unsigned char *)kr_bin_data(b))[BIN_LEN - 1] ==
		                 (unsigned char)((BIN_LEN - 1) * 7),
		         "the bytes changed after the message was freed");
		rc = kr_send_bin(bin_forward_to, 78, b);
		VM_CHECK(rc == 0, "forwarding: %d", rc);
		kr_yield();
		kr_bin_unref(b);
	} else {
		kr_msg_free(m);
	}
out:
	atomic_fetch_add(&bin_done, 1);
}

static atomic_int bin_forwarded;

static void bin_collector(void *arg)
{
	int want = (BIN_RECEIVERS + 2) / 3;
	for (int i = 0; i < want; i++) {
		kr_msg *m;
		int rc = kr_recv(&m, 10000);
		VM_CHECK(rc == 0, "collector: %d after %d", rc, i);
		if (rc != 0)
			return;
		VM_CHECK(m->tag == 78 && m->data == bin_bytes && m->bin && kr_bin_data(m->bin) == bin_bytes,
		         "a forwarded binary was copied");
		if (i % 2) /* half freed here, half left for exit to free */
			kr_msg_free(m);
		atomic_fetch_add(&bin_forwarded, 1);
	}
}

Test(mailbox, a_binary_sent_to_a_hundred_processes_is_shared_not_copied)
{
	vm_start(2);
	static unsigned char bytes[BIN_LEN];
	for (int i = 0; i < BIN_LEN; i++)
		bytes[i] = (unsigned char)(i * 7);
	kr_bin *b = kr_bin_new(bytes, BIN_LEN);
	cr_assert_not_null(b);
	cr_assert_eq(kr_bin_size(b), BIN_LEN);
	cr_assert_neq(kr_bin_data(b), bytes, "kr_bin_new keeps a copy");
	cr_assert_eq(memcmp(kr_bin_data(b), bytes, BIN_LEN), 0);
	bin_bytes = kr_bin_data(b);
	bin_forward_to = vm_spawn(bin_collector, NULL);
	kr_pid pids[BIN_RECEIVERS];
	for (int i = 0; i < BIN_RECEIVERS; i++)
		pids[i] = vm_spawn(bin_receiver, (void *)(intptr_t)i);
	for (int i = 0; i < BIN_RECEIVERS; i++)
		cr_assert_eq(kr_send_bin(pids[i], 77, b), 0);
	/* The sender's own reference, dropped while receivers still hold theirs. */
	kr_bin_unref(b);
	cr_assert(VM_WAIT(atomic_load(&bin_done) == BIN_RECEIVERS, 15000));
	cr_assert(VM_WAIT(vm_alive() == 0, 15000));
	vm_assert_clean();
	cr_assert_eq(atomic_load(&bin_ok), BIN_RECEIVERS);
	cr_assert_eq(atomic_load(&bin_forwarded), (BIN_RECEIVERS + 2) / 3);
	vm_stop();
}

/* Reference counting from many threads at once: two processes on two
 * schedulers and two host threads take and drop references to one binary
 * the test holds, all at once, for BINRC_MS. An increment or a decrement
 * lost to a race (a count updated with a load and a store) frees the
 * binary while the test still holds it, or never: natively the test
 * watches the binary's block (tests/alloc_count.c) and asserts that only
 * its own last unref frees it, once; ASan sees a use after free and asks
 * its allocator whether the binary lives on; TSan sees a free racing the
 * other holders. */
#define BINRC_MS (300 * VM_LIGHT_DIV) /* longer where a race is slower to lose updates */
#define BINRC_RACERS 4
static kr_bin *binrc;
static atomic_llong binrc_until, binrc_rounds;
static atomic_int binrc_done, binrc_bad;

static void binrc_race(void)
{
	int64_t until;
	while (!(until = atomic_load(&binrc_until)) && !atomic_load(&vm_abort))
		;
	int bad = 0;
	long rounds = 0;
	do {
		for (int i = 0; i < 1000; i++, rounds++) {
			kr_bin *b = kr_bin_ref(binrc);
			bad += b != binrc || *(const char *)kr_bin_data(b) != 's';
			kr_bin_unref(b);
		}
	} while (vm_now_ns() < until);
	atomic_fetch_add(&binrc_rounds, rounds);
	atomic_fetch_add(&binrc_bad, bad);
	atomic_fetch_add(&binrc_done, 1);
}

static void binrc_proc(void *arg) { binrc_race(); }

static void *binrc_thread(void *arg)
{
	binrc_race();
	return NULL;
}

Test(mailbox, binary_refcounts_from_many_threads, .timeout = 120)
{
	vm_start_quiet(2); /* the racing processes make no call that yields */
	binrc = kr_bin_new("shared", 6);
	cr_assert_not_null(binrc);
	vm_watch_free(binrc);
	for (unsigned s = 1; s <= 2; s++)
		vm_spawn_on(binrc_proc, NULL, s);
	pthread_t t[BINRC_RACERS - 2];
	for (int i = 0; i < BINRC_RACERS - 2; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, binrc_thread, NULL), 0);
	atomic_store(&binrc_until, vm_now_ns() + BINRC_MS * 1000000LL);
	for (int i = 0; i < BINRC_RACERS - 2; i++)
		pthread_join(t[i], NULL);
	cr_assert(VM_WAIT(atomic_load(&binrc_done) == BINRC_RACERS, 60000));
	cr_log_info("%d racers: %lld references taken and dropped", BINRC_RACERS,
	            atomic_load(&binrc_rounds));
	cr_assert_eq(atomic_load(&binrc_bad), 0, "holders of a reference saw another binary");
	cr_assert_eq(vm_watched_frees(), 0, "the binary was freed while the test held a reference");
	cr_assert_eq(memcmp(kr_bin_data(binrc), "shared", 6), 0);
	const void *block = binrc;
	kr_bin_unref(binrc);
	binrc = NULL;
#if KRX_ASAN
	/* ASan's allocator knows whether the block is still given out (its
	 * quarantine keeps a freed block from being handed out again at once).
	 * TSan's says yes for a freed block too: there a premature free is
	 * caught as a race, and a binary that lives on is a leak it cannot see. */
	cr_assert(!__sanitizer_get_ownership(block), "the last reference dropped, the binary lives on");
#elif !KRX_TSAN
	cr_assert_eq(vm_watched_frees(), 1, "the last reference dropped, the binary was freed %ld times",
	             vm_watched_frees());
#endif
	(void)block;
	vm_watch_free(NULL);
	vm_stop();
}

/* ---- what a process received and never freed goes with it ---- */

static atomic_int kept_received;

static void receive_and_keep(void *arg)
{
	kr_msg *m;
	for (int i = 0; i < 2; i++)
		VM_CHECK(kr_recv(&m, 5000) == 0, "message %d did not arrive", i);
	atomic_fetch_add(&kept_received, 1);
	/* Exit without kr_msg_free: exit frees the copy and drops the binary. */
}

/* The binary is made and sent from a process, so that no pointer to it
 * survives anywhere LeakSanitizer looks once the VM has stopped. */
static void send_copy_and_binary(void *arg)
{
	kr_pid to = *(kr_pid *)arg;
	VM_CHECK(kr_send(to, 1, "copied", 7) == 0, "send");
	kr_bin *bin = kr_bin_new("shared bytes", 13);
	VM_CHECK(bin != NULL, "kr_bin_new");
	VM_CHECK(kr_send_bin(to, 2, bin) == 0, "send_bin");
	kr_bin_unref(bin); /* the message's reference is now the only one */
}

Test(mailbox, messages_received_but_not_freed_are_freed_at_exit)
{
	static kr_pid keeper;
	vm_start(2);
	keeper = kr_spawn(receive_and_keep, NULL);
	cr_assert_gt(keeper, 0);
	cr_assert_gt(kr_spawn(send_copy_and_binary, &keeper), 0);
	cr_assert(VM_WAIT(atomic_load(&kept_received) == 1 && vm_alive() == 0, 10000));
	vm_assert_clean();
	vm_stop(); /* in ASan builds: a leak check of both messages and the binary */
}

/* ---- messages held in a scheduler's outbox ----
 * A message to a busy process that last ran on another scheduler waits in
 * the sender's outbox until the sender leaves the CPU. None may be lost when
 * the sender exits at once, none may leak when the receiver dies first, and
 * batches must keep each sender's order. */

#define OB_MSGS 300 /* several batches of 64 */
static atomic_int ob_got, ob_bad_order, ob_receiver_done;
static kr_pid ob_receiver;

static void ob_receive_after_a_nap(void *arg)
{
	kr_sleep(50); /* busy elsewhere, not waiting in a receive */
	long expect = 0;
	kr_msg *m;
	while (kr_recv(&m, 2000) == 0) {
		long v = *(const long *)m->data;
		if (v != expect++)
			atomic_fetch_add(&ob_bad_order, 1);
		atomic_fetch_add(&ob_got, 1);
		kr_msg_free(m);
	}
	atomic_store(&ob_receiver_done, 1);
}

static void ob_send_and_exit(void *arg)
{
	for (long i = 0; i < OB_MSGS; i++)
		VM_CHECK(kr_send(ob_receiver, 1, &i, sizeof i) == 0, "send %ld", i);
	/* Return at once: whatever is still held must be delivered. */
}

Test(mailbox, held_messages_are_delivered_when_the_sender_exits, .timeout = 30)
{
	vm_start(2);
	ob_receiver = vm_spawn_on(ob_receive_after_a_nap, NULL, 1);
	vm_host_sleep_ms(5); /* let it run on scheduler 0 and fall asleep */
	vm_spawn_on(ob_send_and_exit, NULL, 2);
	cr_assert(VM_WAIT(atomic_load(&ob_receiver_done), 10000));
	vm_assert_clean();
	cr_assert_eq(atomic_load(&ob_got), OB_MSGS, "%d of %d arrived", atomic_load(&ob_got), OB_MSGS);
	cr_assert_eq(atomic_load(&ob_bad_order), 0, "messages out of order");
	vm_stop();
}

static void ob_exit_soon(void *arg)
{
	kr_sleep(20);
}

static void ob_send_to_the_dying(void *arg)
{
	kr_pid to = *(kr_pid *)arg;
	for (long i = 0; kr_is_alive(to); i++) {
		VM_CHECK(kr_send(to, 1, &i, sizeof i) == 0, "send %ld", i);
		if (i % 1000 == 999)
			kr_yield();
	}
	for (long i = 0; i < 100; i++)
		VM_CHECK(kr_send(to, 1, &i, sizeof i) == 0, "send after death %ld", i);
}

Test(mailbox, held_messages_to_a_process_that_died_are_dead_letters, .timeout = 30)
{
	static kr_pid dying;
	vm_start(2);
	uint64_t before = vm_stats().dead_letters;
	dying = vm_spawn_on(ob_exit_soon, NULL, 1);
	vm_spawn_on(ob_send_to_the_dying, &dying, 2);
	cr_assert(VM_WAIT(vm_alive() == 0, 10000));
	vm_assert_clean();
	cr_assert_geq(vm_stats().dead_letters - before, 100, "sends after death were not counted");
	vm_stop(); /* ASan: nothing held in an outbox may leak */
}
