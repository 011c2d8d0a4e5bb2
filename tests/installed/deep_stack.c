/*
 * deep_stack.c - processes that go deep into their stacks and end, built by
 * scripts/test-installed.sh against the installed library and run under
 * memcheck.
 *
 * When a process ends, the stack pool reads a few words 16 KiB under the top
 * of its stack to tell whether it went deeper (sched/stack.c, recycle): those
 * are words of frames that have returned, which memcheck calls unaddressable
 * unless krill says the read is meant. Each process here recurses through
 * about 40 KiB of its 64 KiB stack and returns; there are more processes than
 * schedulers, so stacks are used again after such an end.
 */
#include <krill.h>
#include <stdio.h>
#include <string.h>

#define PROCS 8
#define DEPTH 40 /* frames of a little over 1 KiB */

static int depth_sum(int n)
{
	char frame[1024];
	memset(frame, n, sizeof frame);
	__asm__ volatile("" : : "r"(frame) : "memory"); /* keep the frame */
	return n ? depth_sum(n - 1) + frame[n] : frame[0];
}

static void deep(void *arg)
{
	int (*volatile fn)(int) = depth_sum; /* no inlining, no tail call */
	kr_send(*(kr_pid *)arg, 1, &(int){ fn(DEPTH) }, sizeof(int));
}

static void root(void *arg)
{
	(void)arg;
	kr_pid self = kr_self();
	for (int i = 0; i < PROCS; i++)
		kr_spawn(deep, &self);
	int want = 0, got = 0;
	for (int n = DEPTH; n > 0; n--)
		want += n;
	for (int i = 0; i < PROCS; i++) {
		kr_msg *m;
		if (kr_recv(&m, 10000) != 0)
			break;
		got += *(const int *)m->data == want;
		kr_msg_free(m);
	}
	printf("deep_stack: %d of %d processes came back from %d frames\n", got, PROCS, DEPTH);
}

int main(void)
{
	return kr_main(NULL, root, NULL);
}
