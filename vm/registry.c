/*
 * registry.c - registered names (see registry.h).
 *
 * A hash table under one mutex, each entry on two chains: by name (for
 * whereis and send) and by pid (for the exit path, which must find a
 * process's name without knowing it). Registering is rare and lookups are
 * short; a mutex keeps it plain.
 *
 * A process that ends must not leave its name behind, yet the exit path
 * should not take the lock for the many processes that have no name. So
 * each process has a `named` word: kr_register sets it, then checks that
 * the process is alive; the exit path clears live_pid, then reads `named`.
 * Each side stores, fences, then loads (Dekker): at least one sees the
 * other's store, so either kr_register finds the process dead and takes
 * the name back, or the exit path finds the flag and drops the name.
 */
#include "registry.h"

#include <pthread.h>
#include <string.h>

#include "vm.h"

typedef struct entry {
	struct entry *next_by_name, *next_by_pid;
	kr_pid pid;
	char name[KR_NAME_MAX + 1];
} entry;

static struct {
	pthread_mutex_t lock;
	entry **by_name, **by_pid;
	size_t nbuckets, n;
} R = { .lock = PTHREAD_MUTEX_INITIALIZER };

static uint64_t hash_name(const char *s)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

static size_t name_bucket(const char *name)
{
	return (size_t)(hash_name(name) & (R.nbuckets - 1));
}

static size_t pid_bucket(kr_pid pid)
{
	return (size_t)(((uint64_t)pid * 0x9e3779b97f4a7c15ull) >> 40) & (R.nbuckets - 1);
}

int krx_registry_init(void)
{
	R.nbuckets = 256;
	R.n = 0;
	R.by_name = krx_calloc_raw(R.nbuckets, sizeof *R.by_name);
	R.by_pid = krx_calloc_raw(R.nbuckets, sizeof *R.by_pid);
	if (!R.by_name || !R.by_pid) {
		krx_registry_free();
		return KR_ENOMEM;
	}
	return 0;
}

void krx_registry_free(void)
{
	for (size_t b = 0; R.by_name && b < R.nbuckets; b++) {
		for (entry *e = R.by_name[b], *next; e; e = next) {
			next = e->next_by_name;
			krx_free_raw(e);
		}
	}
	krx_free_raw(R.by_name);
	krx_free_raw(R.by_pid);
	R.by_name = R.by_pid = NULL;
	R.nbuckets = R.n = 0;
}

/* Under the lock. */
static entry **find_name(const char *name)
{
	entry **e = &R.by_name[name_bucket(name)];
	while (*e && strcmp((*e)->name, name) != 0)
		e = &(*e)->next_by_name;
	return e;
}

static entry **find_pid(kr_pid pid)
{
	entry **e = &R.by_pid[pid_bucket(pid)];
	while (*e && (*e)->pid != pid)
		e = &(*e)->next_by_pid;
	return e;
}

/* Double the tables when they hold as many names as buckets. */
static void maybe_grow(void)
{
	if (R.n < R.nbuckets)
		return;
	size_t nb = 2 * R.nbuckets;
	entry **bn = krx_calloc_raw(nb, sizeof *bn), **bp = krx_calloc_raw(nb, sizeof *bp);
	if (!bn || !bp) {
		krx_free_raw(bn);
		krx_free_raw(bp);
		return; /* longer chains, still correct */
	}
	entry **old = R.by_name;
	size_t ob = R.nbuckets;
	krx_free_raw(R.by_pid);
	R.by_name = bn;
	R.by_pid = bp;
	R.nbuckets = nb;
	for (size_t b = 0; b < ob; b++) {
		for (entry *e = old[b], *next; e; e = next) {
			next = e->next_by_name;
			size_t i = name_bucket(e->name), j = pid_bucket(e->pid);
			e->next_by_name = bn[i];
			bn[i] = e;
			e->next_by_pid = bp[j];
			bp[j] = e;
		}
	}
	krx_free_raw(old);
}

/* Under the lock: unlink e from both chains and free it. */
static void drop(entry **by_name, entry **by_pid)
{
	entry *e = *by_name;
	*by_name = e->next_by_name;
	*by_pid = e->next_by_pid;
	krx_free_raw(e);
	R.n--;
}

static bool valid_name(const char *name)
{
	return name && name[0] && strnlen(name, KR_NAME_MAX + 1) <= KR_NAME_MAX;
}

static int do_register(const char *name, kr_pid pid)
{
	krx_proc *p = krx_proc_slot(pid);
	if (!p)
		return KR_EINVAL;
	int err = 0;
	pthread_mutex_lock(&R.lock);
	if (*find_name(name) || *find_pid(pid)) {
		err = KR_EEXIST;
		goto out;
	}
	entry *e = krx_alloc_raw(sizeof *e);
	if (!e) {
		err = KR_ENOMEM;
		goto out;
	}
	/* Full, then a load: Dekker with the exit path (see the top). */
	AO_store(&p->named, 1);
	AO_nop_full();
	if ((kr_pid)AO_load(&p->live_pid) != pid) {
		krx_free_raw(e);
		err = KR_ENOPROC;
		goto out;
	}
	e->pid = pid;
	memcpy(e->name, name, strlen(name) + 1);
	size_t i = name_bucket(name), j = pid_bucket(pid);
	e->next_by_name = R.by_name[i];
	R.by_name[i] = e;
	e->next_by_pid = R.by_pid[j];
	R.by_pid[j] = e;
	R.n++;
	maybe_grow();
out:
	pthread_mutex_unlock(&R.lock);
	return err;
}

void krx_registry_drop(krx_proc *p, kr_pid pid)
{
	pthread_mutex_lock(&R.lock);
	entry **bp = find_pid(pid);
	if (*bp)
		drop(find_name((*bp)->name), bp);
	/* A slot's next process starts unnamed. The flag may be set again
	 * only under the lock, by a kr_register that then finds us dead. */
	AO_store(&p->named, 0);
	pthread_mutex_unlock(&R.lock);
}

static kr_pid lookup(const char *name)
{
	pthread_mutex_lock(&R.lock);
	entry *e = *find_name(name);
	kr_pid pid = e ? e->pid : KR_ENOPROC;
	pthread_mutex_unlock(&R.lock);
	return pid;
}

KR_API int kr_register(const char *name, kr_pid pid)
{
	if (!valid_name(name) || pid <= 0)
		return KR_EINVAL;
	krx_sched *s = krx_sched_self();
	if (krx_vm_enter(s))
		return KR_ESTOPPED;
	int err = do_register(name, pid);
	krx_vm_leave(s);
	return err;
}

KR_API int kr_unregister(const char *name)
{
	if (!valid_name(name))
		return KR_EINVAL;
	krx_sched *s = krx_sched_self();
	if (krx_vm_enter(s))
		return KR_ESTOPPED;
	int err = KR_ENOPROC;
	pthread_mutex_lock(&R.lock);
	entry **bn = find_name(name);
	if (*bn) {
		kr_pid pid = (*bn)->pid;
		drop(bn, find_pid(pid));
		err = 0;
		/* Its `named` flag stays set: harmless, the exit path then
		 * finds nothing to drop. */
	}
	pthread_mutex_unlock(&R.lock);
	krx_vm_leave(s);
	return err;
}

KR_API kr_pid kr_whereis(const char *name)
{
	if (!valid_name(name))
		return KR_EINVAL;
	krx_sched *s = krx_sched_self();
	if (krx_vm_enter(s))
		return KR_ESTOPPED;
	kr_pid pid = lookup(name);
	krx_vm_leave(s);
	return pid;
}

void krx_registry_name_of(kr_pid pid, char out[KR_NAME_MAX + 1])
{
	out[0] = 0;
	pthread_mutex_lock(&R.lock);
	entry *e = R.by_pid ? *find_pid(pid) : NULL;
	if (e)
		memcpy(out, e->name, sizeof e->name);
	pthread_mutex_unlock(&R.lock);
}

KR_API int kr_registered(kr_name_entry *out, size_t max)
{
	if (max && !out)
		return KR_EINVAL;
	krx_sched *s = krx_sched_self();
	if (krx_vm_enter(s))
		return KR_ESTOPPED;
	size_t n = 0;
	pthread_mutex_lock(&R.lock);
	for (size_t b = 0; b < R.nbuckets; b++) {
		for (entry *e = R.by_name[b]; e; e = e->next_by_name, n++) {
			if (n >= max)
				continue;
			memcpy(out[n].name, e->name, sizeof out[n].name);
			out[n].pid = e->pid;
		}
	}
	pthread_mutex_unlock(&R.lock);
	krx_vm_leave(s);
	return (int)n;
}

KR_API int kr_send_named(const char *name, uint64_t tag, const void *data, size_t len)
{
	if (tag >= KR_TAG_SUP)
		return KR_EINVAL; /* krill's own tags, as kr_send */
	kr_pid pid = kr_whereis(name);
	return pid < 0 ? (int)pid : kr_send(pid, tag, data, len);
}
