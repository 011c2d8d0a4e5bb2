/*
 * blocking.c - kr_blocking: run a blocking call on a helper thread while the
 * calling process is parked, so no scheduler ever sleeps in a syscall.
 *
 * Helpers are started on demand (up to MAX_HELPERS) and wait on a condition
 * variable for jobs. A job lives on the waiting process's own stack: the
 * process cannot resume, and so cannot pop that frame, before the helper has
 * won the wake-up CAS, which is the helper's last touch of the job.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "sched.h"

#define MAX_HELPERS 64

typedef struct job {
	struct job *next;
	long (*fn)(void *);
	void *arg;
	long result;
	krx_task *task;
} job;

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	job *head, *tail;
	unsigned helpers, idle;
	bool stopping;
	pthread_t threads[MAX_HELPERS];
} B = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void *helper_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&B.lock);
	for (;;) {
		while (!B.head && !B.stopping) {
			B.idle++;
			pthread_cond_wait(&B.cond, &B.lock);
			B.idle--;
		}
		if (!B.head)
			break;
		job *j = B.head;
		B.head = j->next;
		if (!B.head)
			B.tail = NULL;
		pthread_mutex_unlock(&B.lock);
		j->result = j->fn(j->arg);
		/* The task parked with WAIT_OTHER; only we wake it. The CAS's
		 * full barrier publishes the result with the wake-up. */
		krx_task_wake(j->task, KRX_WAIT_OTHER);
		pthread_mutex_lock(&B.lock);
	}
	pthread_mutex_unlock(&B.lock);
	return NULL;
}

/* Runs on the scheduler's stack once the task's waiting state is public. */
static bool submit(krx_task *t, void *arg)
{
	job *j = arg;
	(void)t;
	pthread_mutex_lock(&B.lock);
	if (B.tail)
		B.tail->next = j;
	else
		B.head = j;
	B.tail = j;
	if (B.idle == 0 && B.helpers < MAX_HELPERS &&
	    pthread_create(&B.threads[B.helpers], NULL, helper_main, NULL) == 0)
		B.helpers++;
	pthread_cond_signal(&B.cond);
	pthread_mutex_unlock(&B.lock);
	return true;
}

long krx_blocking(long (*fn)(void *), void *arg)
{
	krx_task *t = krx_task_self();
	if (!t)
		return fn(arg);
	job j = { .fn = fn, .arg = arg, .task = t };
	krx_task_park(KRX_WAIT_OTHER, 0, submit, &j);
	return j.result;
}

void krx_blocking_stop(void)
{
	pthread_mutex_lock(&B.lock);
	B.stopping = true;
	pthread_cond_broadcast(&B.cond);
	unsigned n = B.helpers;
	pthread_mutex_unlock(&B.lock);
	for (unsigned i = 0; i < n; i++)
		pthread_join(B.threads[i], NULL);
	pthread_mutex_lock(&B.lock);
	B.helpers = B.idle = 0;
	B.head = B.tail = NULL;
	B.stopping = false;
	pthread_mutex_unlock(&B.lock);
}
