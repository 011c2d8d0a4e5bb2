/*
 * host.c - host threads' mailboxes (see host.h, and sched/host.c for how
 * their threads wait).
 *
 * A host thread that first needs a pid or a mailbox gets a process slot of
 * its own (krx_procs_host_new): a process in every way (messages, links,
 * monitors, a name, kr_info) but that its task never runs on a scheduler,
 * and that it traps exits, since an exit signal cannot end a thread: it
 * arrives as a KR_TAG_EXIT message, KR_EXIT_KILL included. The thread keeps
 * it until kr_host_release or its end (a thread-specific key's
 * destructor), when the slot goes down a process's exit path with reason
 * normal: its links and monitors fire, its name is freed, requests it took
 * and did not answer are told, its messages are freed.
 *
 * A thread finds its slot through a record in its thread-local storage.
 * The records are read and written only inside krx_vm_enter (or under
 * `lock`), so kr_vm_stop, which frees the table, never runs under a use.
 * The records of threads that hold a mailbox are on one list, under
 * `lock`: kr_vm_stop, its door closed, wakes those parked in a receive
 * until every host call has left (krx_host_kick_all), then forgets every
 * mailbox (krx_host_vm_stopped), so no thread-local pointer dangles, and
 * a thread that calls in after a restart gets a fresh one. A thread takes
 * its record off the list before it ends, so the list never holds a record
 * whose storage is gone.
 */
#include "host.h"

#include <pthread.h>

#include "exit.h"
#include "vm.h"

typedef krx_host_rec host_rec;

__thread host_rec krx_host_self;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static host_rec *list;

static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static int key_err;

static void thread_ends(void *arg);

static void make_key(void)
{
	key_err = pthread_key_create(&key, thread_ends);
}

/* Under the lock: h on the list, holding p. */
static void link_rec(host_rec *h, krx_proc *p, kr_pid pid)
{
	h->proc = p;
	h->pid = pid;
	h->prev = NULL;
	h->next = list;
	if (list)
		list->prev = h;
	list = h;
}

/* Under the lock: h off the list, holding nothing. */
static void unlink_rec(host_rec *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else
		list = h->next;
	if (h->next)
		h->next->prev = h->prev;
	h->proc = NULL;
	h->pid = 0;
	h->prev = h->next = NULL;
}

krx_proc *krx_host_proc(int *err)
{
	host_rec *h = &krx_host_self;
	if (h->proc)
		return h->proc;
	pthread_once(&key_once, make_key);
	/* The key's value names the record, so that the destructor runs. */
	if (key_err || pthread_setspecific(key, h)) {
		*err = KR_ENOMEM;
		return NULL;
	}
	kr_pid pid;
	krx_proc *p = krx_procs_host_new(&pid);
	if (!p) {
		*err = (int)pid;
		return NULL;
	}
	pthread_mutex_lock(&lock);
	link_rec(h, p, pid);
	pthread_mutex_unlock(&lock);
	return p;
}

krx_proc *krx_host_enter(bool make, int *err)
{
	if (krx_vm_enter_host()) {
		*err = KR_ESTOPPED;
		return NULL;
	}
	krx_proc *p = make ? krx_host_proc(err) : krx_host_peek();
	if (!p) {
		if (!make)
			*err = 0;
		krx_vm_leave_host();
	}
	return p;
}

/* Inside krx_vm_enter: h's mailbox ends as a process that ended normally. */
static void release(host_rec *h)
{
	pthread_mutex_lock(&lock);
	krx_proc *p = h->proc;
	if (p)
		unlink_rec(h); /* kr_vm_stop's kicks no longer reach it */
	pthread_mutex_unlock(&lock);
	if (!p)
		return;
	krx_task_discard(&p->task); /* marked done, as a task that returned */
	krx_proc_exited(&p->task);
}

/* The key's destructor: the thread ends (its record is still there). */
static void thread_ends(void *arg)
{
	host_rec *h = arg;
	if (krx_vm_enter_host() == 0) {
		release(h);
		krx_vm_leave_host();
		return;
	}
	/* No VM, or it is stopping: the slot goes with the table, but the
	 * record must leave the list before the thread's storage does. */
	pthread_mutex_lock(&lock);
	if (h->proc)
		unlink_rec(h);
	pthread_mutex_unlock(&lock);
}

KR_API int kr_host_release(void)
{
	if (krx_sched_self())
		return KR_EINVAL; /* a process is not a host thread */
	if (krx_vm_enter_host())
		return KR_ESTOPPED;
	release(&krx_host_self);
	krx_vm_leave_host();
	return 0;
}

void krx_host_kick_all(void)
{
	pthread_mutex_lock(&lock);
	for (host_rec *h = list; h; h = h->next)
		(void)krx_task_kick_host(&h->proc->task);
	pthread_mutex_unlock(&lock);
}

void krx_host_vm_stopped(void)
{
	pthread_mutex_lock(&lock);
	while (list)
		unlink_rec(list);
	pthread_mutex_unlock(&lock);
}
