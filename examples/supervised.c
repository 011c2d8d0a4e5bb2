/*
 * supervised.c - krill's story: a supervision tree that repairs itself,
 * one branch at a time, while the rest of it keeps working.
 *
 *     build/supervised
 *
 *     top            one_for_one
 *      ├─ math       one_for_one, at most 2 restarts in 5 s
 *      │   └─ divider    answers "100 / n"
 *      └─ clock      one_for_one
 *          └─ ticker     counts ticks, and tells the count when asked
 *
 * The root asks the divider for 100 / 5, then 100 / 0: the divider
 * crashes, and math restarts it, so 100 / 4 is answered by a new divider.
 * Then the root makes the divider crash twice more: three restarts within
 * 5 s, one more than math allows, so math gives up and escalates: top
 * restarts math (and with it a new divider), and 100 / 10 is answered
 * again. All along, the ticker in the other branch counts on: the root
 * looks at it after each act, and it is the same process, its count never
 * reset. Finally the root stops the tree.
 *
 * krill's own reports (crashes, restarts, giving up) are printed as they
 * come, indented after a "|", each with its level (an error, or an info
 * for a supervisor's progress report). Everything here uses only the public API
 * (krill.h).
 */
#include <krill.h>
#include <stdio.h>
#include <string.h>

enum { DIVIDE = 1, ANSWER, HOW_MANY, TICKS };

/* The worker of the math branch: answers each request, and crashes on a
 * division by zero. */
static void divider(void *arg)
{
	(void)arg;
	kr_msg *m;
	while (kr_recv(&m, KR_INFINITY) == 0) {
		int n;
		memcpy(&n, m->data, sizeof n);
		if (n == 0)
			kr_crash("asked to divide 100 by zero");
		int q = 100 / n;
		kr_reply(m, ANSWER, &q, sizeof q);
		kr_msg_free(m);
	}
}

/* The worker of the clock branch: a tick every 10 ms, and the count to
 * whoever asks. */
static void ticker(void *arg)
{
	(void)arg;
	long ticks = 0;
	for (;;) {
		kr_msg *m;
		if (kr_recv(&m, 10) != 0) {
			ticks++; /* 10 ms without a message */
			continue;
		}
		kr_reply(m, TICKS, &ticks, sizeof ticks);
		kr_msg_free(m);
	}
}

/* Supervisor children: their start function becomes the supervisor. */
static void math(void *arg)
{
	(void)arg;
	static const kr_child_spec children[] = { { .id = "divider", .start = divider } };
	static const kr_sup_flags flags = { .strategy = KR_ONE_FOR_ONE, .max_restarts = 2,
		                            .period_ms = 5000 };
	kr_sup_run(&flags, children, 1);
}

static void clock_branch(void *arg)
{
	(void)arg;
	static const kr_child_spec children[] = { { .id = "ticker", .start = ticker } };
	static const kr_sup_flags flags = { .strategy = KR_ONE_FOR_ONE };
	kr_sup_run(&flags, children, 1);
}

/* The pid of the child with this id (children move: ask their supervisor). */
static kr_pid child(kr_pid sup, const char *id)
{
	kr_sup_child v[4];
	int n = kr_sup_which_children(sup, v, 4);
	for (int i = 0; i < n && i < 4; i++)
		if (!strcmp(v[i].id, id))
			return v[i].pid;
	return KR_ENOPROC;
}

static kr_pid last_divider, first_ticker;
static int dividers;

static void ask(kr_pid top, int n)
{
	kr_pid d = child(child(top, "math"), "divider");
	if (d != last_divider) {
		last_divider = d;
		dividers++;
	}
	kr_msg *reply;
	int rc = kr_call(d, DIVIDE, &n, sizeof n, &reply, 1000);
	if (rc == 0) {
		printf("100 / %d = %d, from divider #%d\n", n, *(const int *)reply->data, dividers);
		kr_msg_free(reply);
	} else {
		printf("100 / %d: divider #%d ended without answering (%s)\n", n, dividers,
		       kr_strerror(rc));
	}
}

/* The other branch, after a little while: still counting, still the same? */
static void look_at_the_clock(kr_pid top)
{
	kr_sleep(100);
	kr_pid t = child(child(top, "clock"), "ticker");
	kr_msg *reply;
	if (kr_call(t, HOW_MANY, NULL, 0, &reply, 1000) != 0) {
		printf("    (the clock branch: the ticker does not answer)\n");
		return;
	}
	printf("    (the clock branch: %ld ticks, %s)\n", *(const long *)reply->data,
	       t == first_ticker ? "the same ticker as at the start" : "a NEW ticker");
	kr_msg_free(reply);
}

/* Wait for the DOWN of this monitor. */
static void wait_end(kr_ref ref)
{
	kr_msg *m;
	while (kr_recv_tag(&m, KR_TAG_DOWN, KR_INFINITY) == 0) {
		int mine = kr_msg_down(m)->ref == ref;
		kr_msg_free(m);
		if (mine)
			return;
	}
}

static void root(void *arg)
{
	(void)arg;
	/* A supervisor's parent gets its exit signal when it ends: trap it. */
	kr_trap_exit(1);
	static const kr_child_spec children[] = {
		{ .id = "math", .start = math, .type = KR_SUPERVISOR },
		{ .id = "clock", .start = clock_branch, .type = KR_SUPERVISOR },
	};
	static const kr_sup_flags flags = { .strategy = KR_ONE_FOR_ONE, .max_restarts = 5,
		                            .period_ms = 5000 };
	kr_pid top = kr_sup_start_link(&flags, children, 2, "top");
	if (top < 0) {
		printf("the tree did not start: %s\n", kr_strerror((int)top));
		return;
	}
	first_ticker = child(child(top, "clock"), "ticker");
	printf("1. the tree has started:  top ─┬─ math ── divider\n"
	       "                               └─ clock ── ticker\n");
	look_at_the_clock(top);

	printf("\n2. a bad request crashes the divider; math restarts it\n");
	ask(top, 5);
	ask(top, 0);
	ask(top, 4);
	look_at_the_clock(top);

	printf("\n3. two more crashes: three restarts in 5 s, one more than math allows;\n"
	       "   math gives up, and the failure climbs to top, which restarts math\n");
	kr_pid old_math = child(top, "math");
	kr_ref ref = kr_monitor(old_math);
	for (int i = 0; i < 2; i++)
		ask(top, 0);
	wait_end(ref); /* math gave up; top has had its exit before our next request */
	printf("math was %s\n",
	       child(top, "math") != old_math ? "restarted by top" : "not restarted");
	look_at_the_clock(top);

	printf("\n4. recovered: the math branch answers again\n");
	ask(top, 10);
	look_at_the_clock(top);
	printf("   four dividers and two maths came and went; the clock branch never noticed\n");

	printf("\n5. stopping the tree\n");
	ref = kr_monitor(top);
	kr_exit_sig(top, KR_EXIT_SHUTDOWN);
	wait_end(ref);
	printf("stopped\n");
}

/* krill's reports: their first line (a crash report's backtrace follows). */
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
	int rc = kr_main(&cfg, root, NULL);
	return rc < 0 ? 1 : 0;
}
